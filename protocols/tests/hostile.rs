//! Hostile input (issue 19, item 3): no decoder may turn random bytes, or another protocol's
//! stream, into a measurement. Every byte-stream decoder in the registry is fed seeded random
//! bytes and the recorded output of every other protocol's simulator; the simulators of each
//! protocol must still decode through their own decoder. GATT decoders take one characteristic
//! value per call over a BLE link with its own CRC-24, not a byte stream, and are not fed noise.
#![cfg(feature = "sim")]

use medgw_protocols::decode::{Decoder, DecoderOptions, Event};
use medgw_protocols::error::Error;
use medgw_protocols::registry;
use medgw_protocols::sim::{self, Rng, SimOptions};
use medgw_protocols::time::Timestamp;
use medgw_protocols::wire::nonin::decoder::NoninDecoder;

const T0: i64 = 1_710_498_125_000;

/// A byte stream as it arrived: chunks with their receipt times.
type Stream = Vec<(Timestamp, Vec<u8>)>;

fn stream_protocols() -> Vec<&'static str> {
    registry::protocols().filter(|p| !p.gatt).map(|p| p.name).collect()
}

fn decoder(name: &str) -> Box<dyn Decoder> {
    (registry::find(name).unwrap().make)(&DecoderOptions::default())
}

fn measurements(ev: &[Event]) -> usize {
    ev.iter().filter(|e| matches!(e, Event::Measurement(_))).count()
}

/// Feeds a stream to a fresh decoder (opened with `start`, as the gateway does) and returns
/// everything it produced.
fn feed(name: &str, stream: &Stream) -> Vec<Event> {
    let mut d = decoder(name);
    let mut out = Vec::new();
    d.start(stream.first().map_or(Timestamp(T0), |c| c.0), &mut out);
    for (t, bytes) in stream {
        d.feed(bytes, *t, &mut out);
        if d.next_wakeup().is_some_and(|w| w <= *t) {
            d.poll(*t, &mut out);
        }
    }
    out
}

/// `len` seeded random bytes arriving as a 9600-baud line delivers them (about one byte per
/// millisecond), in chunks of 1–256 bytes.
fn noise(seed: u64, len: usize) -> Stream {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    let mut t = T0;
    let mut left = len;
    while left > 0 {
        let n = (rng.range(1, 256) as usize).min(left);
        let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
        t += n as i64;
        out.push((Timestamp(t), bytes));
        left -= n;
    }
    out
}

/// `seconds` of a simulator's output at the device's real rate, driven by its own decoder (so
/// request/response protocols answer requests), and the measurements that decoder produced.
fn record(name: &str, seconds: i64) -> (Stream, usize) {
    let make = sim::find(name).unwrap_or_else(|| panic!("no simulator for {name}"));
    let mut sim = make(&SimOptions { seed: 3, period_ms: 1000, record: false }, Timestamp(T0));
    let mut d = decoder(name);
    let mut ev = Vec::new();
    let mut stream = Vec::new();
    let mut values = 0;
    d.start(Timestamp(T0), &mut ev);
    let mut t = T0;
    while t < T0 + seconds * 1000 {
        let now = Timestamp(t);
        let mut bytes = Vec::new();
        for e in ev.drain(..) {
            match e {
                Event::Transmit(req) => sim.receive(&req, now, &mut bytes),
                Event::Measurement(_) => values += 1,
                _ => {}
            }
        }
        sim.tick(now, &mut bytes);
        if !bytes.is_empty() {
            d.feed(&bytes, now, &mut ev);
            stream.push((now, bytes));
        }
        if d.next_wakeup().is_some_and(|w| w <= now) {
            d.poll(now, &mut ev);
        }
        t += 10;
    }
    values += measurements(&ev);
    (stream, values)
}

#[test]
fn random_bytes_publish_nothing_on_any_byte_stream_decoder() {
    for name in stream_protocols() {
        for seed in 1..=4u64 {
            let stream = noise(seed, 64 << 10);
            let ev = feed(name, &stream);
            assert_eq!(measurements(&ev), 0, "{name}, seed {seed}: values from noise");
            // All at once, as a pseudo-terminal delivers a flood: nothing either.
            let all: Vec<u8> = stream.iter().flat_map(|(_, b)| b.iter().copied()).collect();
            let ev = feed(name, &vec![(Timestamp(T0), all)]);
            assert_eq!(measurements(&ev), 0, "{name}, seed {seed}: values from a flood of noise");
        }
    }
}

#[test]
fn other_protocols_streams_publish_nothing_and_each_simulator_decodes_through_its_own() {
    let names = stream_protocols();
    for &source in &names {
        let (stream, own) = record(source, 30);
        assert!(own > 0, "{source}: the simulator's own decoder published nothing");
        assert!(!stream.is_empty(), "{source}: the simulator sent nothing");
        for &target in names.iter().filter(|&&n| n != source) {
            let ev = feed(target, &stream);
            assert_eq!(measurements(&ev), 0, "{source} stream read as {target}: values from another protocol");
        }
    }
}

#[test]
fn a_df7_device_read_as_df8_gives_no_values_and_one_noisy_line_event() {
    let (stream, _) = record("nonin-df7", 20);
    let ev = feed("nonin-df8", &stream);
    assert_eq!(measurements(&ev), 0);
    let noisy: Vec<&Event> = ev.iter().filter(|e| matches!(e, Event::NoisyLine(_))).collect();
    assert_eq!(noisy.len(), 1, "{noisy:?}");
}

#[test]
fn noise_is_a_noisy_line_event_once() {
    let ev = feed("nonin-df8", &noise(9, 64 << 10));
    assert_eq!(ev.iter().filter(|e| matches!(e, Event::NoisyLine(_))).count(), 1);
}

/// DF8 frames from the simulator at `period_ms` per frame, for `frames` frames, with the
/// values it sent.
fn df8_frames(period_ms: u32, frames: usize, from: i64) -> (Stream, Vec<sim::Sent>) {
    let make = sim::find("nonin-df8").unwrap();
    let mut sim = make(&SimOptions { seed: 11, period_ms, record: true }, Timestamp(from));
    let mut stream = Vec::new();
    let mut t = from;
    while stream.len() < frames {
        let mut bytes = Vec::new();
        sim.tick(Timestamp(t), &mut bytes);
        if !bytes.is_empty() {
            stream.push((Timestamp(t), bytes));
        }
        t += 1;
    }
    (stream, sim.take_sent())
}

#[test]
fn after_noise_a_good_stream_locks_within_three_frames_and_loses_nothing() {
    let mut stream = noise(5, 8 << 10);
    let end = stream.last().unwrap().0 .0;
    // Noise that ends on a byte with bit 7 set, so it cannot run into the first good frame.
    stream.push((Timestamp(end + 1), vec![0xFF]));
    let (good, sent) = df8_frames(1000, 10, end + 1000);
    let mut d = NoninDecoder::df8();
    let mut out = Vec::new();
    for (t, b) in &stream {
        d.feed(b, *t, &mut out);
    }
    assert_eq!(measurements(&out), 0);
    let mut per_frame = Vec::new();
    for (t, b) in &good {
        out.clear();
        d.feed(b, *t, &mut out);
        per_frame.push(measurements(&out));
    }
    // Held for two frames, the third confirms the lock and publishes all three, then each.
    assert_eq!(per_frame, [0, 0, 6, 2, 2, 2, 2, 2, 2, 2]);
    assert_eq!(sent.len(), 20);
}

#[test]
fn the_rate_gate_passes_a_backlog_trips_on_a_sustained_flood_and_a_higher_limit_passes_it() {
    // A backlog of an hour of output at once (a reader stalled by a full buffer): every frame.
    let (backlog, _) = df8_frames(1000, 3600, T0);
    let at_once: Vec<u8> = backlog.iter().flat_map(|(_, b)| b.iter().copied()).collect();
    let mut d = NoninDecoder::df8();
    let mut out = Vec::new();
    d.feed(&at_once, Timestamp(T0 + 3_600_000), &mut out);
    assert_eq!(measurements(&out), 7200);
    assert!(!out.iter().any(|e| matches!(e, Event::NoisyLine(_) | Event::Rejected { .. })));
    // 100 frames a second for 80 s from a device that sends one: after the burst allowance
    // (4096 frames) and 20 a second, the gate stops them.
    let (stream, _) = df8_frames(10, 8000, T0);
    let mut d = NoninDecoder::df8();
    let mut out = Vec::new();
    for (t, b) in &stream {
        d.feed(b, *t, &mut out);
    }
    let published = measurements(&out) / 2;
    assert!(published < 5200, "{published} of 8000 frames published at 100 frames/s");
    assert!(out.iter().any(|e| matches!(e, Event::Rejected { error: Error::RateExceeded { per_s: 20 }, .. })));
    assert_eq!(out.iter().filter(|e| matches!(e, Event::NoisyLine(_))).count(), 1);
    // A simulator configured to run fast, with the limit raised to match: every frame.
    let mut d = NoninDecoder::df8_with_rate(200);
    let mut out = Vec::new();
    for (t, b) in &stream {
        d.feed(b, *t, &mut out);
    }
    assert_eq!(measurements(&out), 16000);
    assert!(!out.iter().any(|e| matches!(e, Event::NoisyLine(_) | Event::Rejected { .. })));
}
