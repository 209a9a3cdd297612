//! Nonin DF2/DF7/DF8 decoders: stream properties (chunking, arbitrary bytes, garbage between
//! frames) over simulator streams and hand-built packets, and the public vectors NP-1..NP-3 as
//! a stream.
#![cfg(feature = "sim")]

use medgw_protocols::decimal::Decimal;
use medgw_protocols::decode::{Decoder, Event};
use medgw_protocols::sim::nonin::NoninSim;
use medgw_protocols::sim::{DeviceSimulator, Fault, SimOptions};
use medgw_protocols::time::Timestamp;
use medgw_protocols::wave::{SampleMarks, Segmenter, SegmenterConfig};
use medgw_protocols::wire::nonin::decoder::NoninDecoder;
use medgw_protocols::wire::nonin::{Format, Frame, Status, PACKET_FRAMES};
use proptest::prelude::*;

const NOW: Timestamp = Timestamp(1_710_498_125_000);

/// NP-3 (protocols.md §1): one DF2 packet, HR 72, SpO2 97, SREV 0x41.
const NP3: [u8; 125] = [
    0x01, 0x81, 0x80, 0x00, 0x02, 0x01, 0x80, 0x80, 0x48, 0x49, 0x01, 0x80, 0x80, 0x61, 0x62, 0x01, 0x80, 0x80, 0x41, 0x42, 0x01, 0x80,
    0x80, 0x00, 0x01, 0x01, 0x80, 0x80, 0x00, 0x01, 0x01, 0x80, 0x80, 0x00, 0x01, 0x01, 0x80, 0x80, 0x00, 0x01, 0x01, 0x80, 0x80, 0x61,
    0x62, 0x01, 0x80, 0x80, 0x61, 0x62, 0x01, 0x80, 0x80, 0x61, 0x62, 0x01, 0x80, 0x80, 0x00, 0x01, 0x01, 0x80, 0x80, 0x00, 0x01, 0x01,
    0x80, 0x80, 0x00, 0x01, 0x01, 0x80, 0x80, 0x48, 0x49, 0x01, 0x80, 0x80, 0x61, 0x62, 0x01, 0x80, 0x80, 0x61, 0x62, 0x01, 0x80, 0x80,
    0x00, 0x01, 0x01, 0x80, 0x80, 0x00, 0x01, 0x01, 0x80, 0x80, 0x00, 0x01, 0x01, 0x80, 0x80, 0x48, 0x49, 0x01, 0x80, 0x80, 0x00, 0x01,
    0x01, 0x80, 0x80, 0x48, 0x49, 0x01, 0x80, 0x80, 0x00, 0x01, 0x01, 0x80, 0x80, 0x00, 0x01,
];
/// NP-1 and NP-2 (DF8).
const NP1: [u8; 4] = [0x80, 0x48, 0x61, 0x00];
const NP2: [u8; 4] = [0x81, 0x16, 0x5F, 0x20];

fn decoder(format: Option<Format>) -> NoninDecoder {
    match format {
        Some(Format::Df2) => NoninDecoder::df2(),
        Some(Format::Df7) => NoninDecoder::df7(),
        None => NoninDecoder::df8(),
    }
}

fn decode_chunks(format: Option<Format>, stream: &[u8], sizes: &[usize]) -> Vec<Event> {
    let mut d = decoder(format);
    let mut out = Vec::new();
    let mut rest = stream;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes.get(i % sizes.len().max(1)).copied().unwrap_or(rest.len()).clamp(1, rest.len());
        let (chunk, tail) = rest.split_at(n);
        d.feed(chunk, NOW, &mut out);
        rest = tail;
        i += 1;
    }
    out
}

/// (SpO2, pulse rate) of one reading.
type Reading = (Option<Decimal>, Option<Decimal>);

/// (SpO2, pulse rate) of each reading, in order.
fn readings(events: &[Event]) -> Vec<Reading> {
    let m: Vec<Option<Decimal>> =
        events.iter().filter_map(|e| if let Event::Measurement(m) = e { Some(m.value.numeric()) } else { None }).collect();
    m.chunks(2).map(|c| (c[0], c.get(1).copied().flatten())).collect()
}

/// A stream from the simulator, with faults, at its real rate.
fn sim_stream(format: Option<Format>, seed: u64) -> Vec<u8> {
    let name = match format {
        Some(Format::Df2) => "nonin-df2",
        Some(Format::Df7) => "nonin-df7",
        None => "nonin-df8",
    };
    let mut sim = NoninSim::new(name, format, &SimOptions { seed, period_ms: 200, record: false }, NOW);
    let mut out = Vec::new();
    for (i, f) in
        [Fault::BadChecksum, Fault::Garbage(17), Fault::Truncate, Fault::SensorOff(true), Fault::SensorOff(false)].into_iter().enumerate()
    {
        sim.tick(Timestamp(NOW.0 + 300 * i as i64 + 250), &mut out);
        sim.inject(f);
    }
    sim.tick(Timestamp(NOW.0 + 2_000), &mut out);
    out
}

/// `n` DF2/DF7 packets with a distinct (SpO2, HR) pair each, as frames.
fn packets(format: Format, n: usize) -> (Vec<Vec<u8>>, Vec<Reading>) {
    let mut frames = Vec::new();
    let mut want = Vec::new();
    for p in 0..n {
        let hr = 40 + 3 * p as u16;
        let spo2 = 70 + (p % 30) as u8;
        let mut floats = [0u8; PACKET_FRAMES];
        floats[0] = (hr >> 7) as u8;
        floats[1] = (hr & 0x7F) as u8;
        floats[2] = spo2;
        floats[3] = 0x41;
        for (i, f) in floats.iter().enumerate() {
            let status = Status(0x80 | if i == 0 { Status::SYNC } else { 0 });
            let mut b = [0u8; 5];
            Frame { status, pleth: (p * 7 + i * 13) as u16 % 256, float: *f }.emit(format, &mut b).unwrap();
            frames.push(b.to_vec());
        }
        want.push((Some(Decimal::from_int(spo2 as i32)), Some(Decimal::from_int(hr as i32))));
    }
    (frames, want)
}

/// Whether `sub` is a subsequence of `all`.
fn is_subsequence<T: PartialEq>(sub: &[T], all: &[T]) -> bool {
    let mut it = all.iter();
    sub.iter().all(|x| it.any(|y| y == x))
}

#[test]
fn public_vectors_as_a_stream() {
    let ev = decode_chunks(Some(Format::Df2), &NP3, &[1]);
    assert_eq!(readings(&ev), [(Some(Decimal::from_int(97)), Some(Decimal::from_int(72)))]);
    // DF8 publishes once three frames in a row confirm the lock, then all three.
    let ev = decode_chunks(None, &[NP1, NP2].concat(), &[3]);
    assert_eq!(readings(&ev), []);
    let ev = decode_chunks(None, &[NP1, NP2, NP1].concat(), &[3]);
    let (np1, np2) =
        ((Some(Decimal::from_int(97)), Some(Decimal::from_int(72))), (Some(Decimal::from_int(95)), Some(Decimal::from_int(150))));
    assert_eq!(readings(&ev), [np1, np2, np1]);
}

#[test]
fn one_byte_at_a_time_equals_all_at_once() {
    for format in [Some(Format::Df2), Some(Format::Df7), None] {
        let stream = sim_stream(format, 11);
        let whole = decode_chunks(format, &stream, &[stream.len()]);
        assert!(readings(&whole).len() > 3, "{format:?}");
        assert!(whole.iter().any(|e| matches!(e, Event::Rejected { .. })), "{format:?}: the faults were seen");
        let bytewise = decode_chunks(format, &stream, &[1]);
        // Pleth chunks follow the reads; their samples, and everything else, do not.
        assert_eq!(without_waves(&bytewise), without_waves(&whole), "{format:?}");
        assert_eq!(pleth(&bytewise), pleth(&whole), "{format:?}");
    }
}

fn without_waves(events: &[Event]) -> Vec<&Event> {
    events.iter().filter(|e| !matches!(e, Event::Wave(_))).collect()
}

/// The pleth samples of all wave chunks, in order.
fn pleth(events: &[Event]) -> Vec<i32> {
    events.iter().filter_map(|e| if let Event::Wave(w) = e { Some(w.samples.iter().copied()) } else { None }).flatten().collect()
}

/// Simulator capture: with every fault, the decoded pleth is exactly the samples of the intact
/// frames the simulator sent, and cut into segments it stays so; the segments after a fault
/// are marked as following a gap.
#[test]
fn pleth_decodes_to_what_the_simulator_sent_and_segments_keep_it() {
    for (name, format) in [("nonin-df2", Format::Df2), ("nonin-df7", Format::Df7)] {
        let mut sim = NoninSim::new(name, Some(format), &SimOptions { seed: 5, period_ms: 1000, record: true }, NOW);
        let mut d = decoder(Some(format));
        let mut events = Vec::new();
        let faults = [Fault::BadChecksum, Fault::Garbage(9), Fault::Truncate, Fault::Silence(700), Fault::SensorOff(true)];
        let mut t = NOW.0;
        for step in 0..200 {
            t += 50;
            let mut bytes = Vec::new();
            sim.tick(Timestamp(t), &mut bytes);
            d.feed(&bytes, Timestamp(t), &mut events);
            if step % 30 == 10 {
                sim.inject(faults[(step / 30) % faults.len()]);
            }
        }
        let sent: Vec<i32> = sim.take_pleth().into_iter().map(i32::from).collect();
        assert!(sent.len() > 600, "{name}: {} samples", sent.len());
        assert_eq!(pleth(&events), sent, "{name}");
        let mut seg = Segmenter::new(SegmenterConfig::default());
        let mut segments = Vec::new();
        for e in &events {
            if let Event::Wave(w) = e {
                seg.push(w, &mut segments).unwrap();
            }
        }
        seg.flush(&mut segments);
        let joined: Vec<i32> = segments.iter().flat_map(|g| g.samples.iter().copied()).collect();
        assert_eq!(joined, sent, "{name}");
        let gaps = segments.iter().filter(|g| g.after_gap).count();
        assert!(gaps >= 4, "{name}: {gaps} segments after a gap");
        assert!(segments.iter().all(|g| g.samples.len() <= 75));
        // Sensor off at the end: its samples are marked invalid.
        assert!(segments.last().is_some_and(|g| g.marks.contains(&SampleMarks::INVALID)), "{name}");
    }
}

/// The simulated pleth beats at the simulated pulse rate.
#[test]
fn simulated_pleth_beats_at_the_pulse_rate() {
    let mut sim = NoninSim::new("nonin-df2", Some(Format::Df2), &SimOptions { seed: 3, period_ms: 1000, record: true }, NOW);
    let mut bytes = Vec::new();
    sim.tick(Timestamp(NOW.0 + 20_000), &mut bytes);
    let samples = sim.take_pleth();
    let hr: Vec<f64> = sim
        .take_sent()
        .iter()
        .filter(|s| s.metric == medgw_protocols::mdc::code::MDC_PULS_OXIM_PULS_RATE)
        .filter_map(|s| s.value.map(|v| v.to_f64()))
        .collect();
    let mean_hr = hr.iter().sum::<f64>() / hr.len() as f64;
    let (lo, hi) = (*samples.iter().min().unwrap(), *samples.iter().max().unwrap());
    let mid = (lo + hi) / 2;
    let beats = samples.windows(2).filter(|w| w[0] < mid && w[1] >= mid).count() as f64;
    let want = mean_hr * samples.len() as f64 / 75.0 / 60.0;
    assert!((beats - want).abs() <= 2.0, "{beats} beats, {want:.1} expected at {mean_hr:.1}/min");
    assert!(hi - lo > 150, "amplitude {lo}..{hi}");
}

/// Garbage that ends in a frame-shaped SYNC frame (for DF7 a 1-in-512 chance per position) right
/// where a packet's real SYNC frame was lost: the packet behind it must not be published, since
/// its HR MSB would come from the garbage.
#[test]
fn a_forged_sync_frame_after_garbage_opens_no_packet() {
    for format in [Format::Df2, Format::Df7] {
        let (frames, want) = packets(format, 3);
        let mut forged = [0u8; 5];
        Frame { status: Status(0x80 | Status::SYNC), pleth: 0x10, float: 0x02 }.emit(format, &mut forged).unwrap();
        let mut stream = frames[..PACKET_FRAMES].concat();
        stream.extend_from_slice(&[0x00, 0x00]);
        stream.extend_from_slice(&forged);
        stream.extend(frames[PACKET_FRAMES + 1..].concat());
        let got = readings(&decode_chunks(Some(format), &stream, &[usize::MAX]));
        assert_eq!(got, [want[0], want[2]], "{format:?}");
    }
}

fn any_format() -> impl Strategy<Value = Option<Format>> {
    prop_oneof![Just(Some(Format::Df2)), Just(Some(Format::Df7)), Just(None)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn chunking_does_not_change_what_is_decoded(format in any_format(), seed in 0u64..1000, sizes in prop::collection::vec(1usize..300, 1..20)) {
        let stream = sim_stream(format, seed);
        let whole = decode_chunks(format, &stream, &[stream.len()]);
        let chunked = decode_chunks(format, &stream, &sizes);
        prop_assert_eq!(without_waves(&chunked), without_waves(&whole));
        prop_assert_eq!(pleth(&chunked), pleth(&whole));
    }

    /// DF8 takes aligned frames whole from the input (fast path) and everything else byte by
    /// byte: any mix of frames, damaged frames and garbage, in any chunking, gives exactly the
    /// events of the byte path (one byte per call), errors and offsets included.
    #[test]
    fn df8_whole_frame_path_equals_the_byte_path(
        parts in prop::collection::vec(prop_oneof![
            (0u8..0x80, 0u8..0x80, 0u8..0x7F).prop_map(|(hr, spo2, s2)| vec![0x80 | (hr & 0x03), hr, spo2.min(100), s2 & 0x29]),
            prop::collection::vec(any::<u8>(), 1..9),
        ], 1..60),
        sizes in prop::collection::vec(1usize..40, 1..8),
    ) {
        let stream: Vec<u8> = parts.concat();
        let bytewise = decode_chunks(None, &stream, &[1]);
        prop_assert_eq!(decode_chunks(None, &stream, &sizes), bytewise.clone());
        prop_assert_eq!(decode_chunks(None, &stream, &[stream.len()]), bytewise);
    }

    #[test]
    fn arbitrary_bytes_never_panic(format in any_format(), bytes in prop::collection::vec(any::<u8>(), 0..4096), sizes in prop::collection::vec(1usize..64, 1..8)) {
        let ev = decode_chunks(format, &bytes, &sizes);
        // Every rejected offset lies inside what was fed.
        for e in &ev {
            if let Event::Rejected { offset, .. } = e {
                prop_assert!(*offset < bytes.len() as u64);
            }
        }
    }

    /// Garbage of any bytes between frames loses at most the packet it lands in and the one
    /// after, and never yields a reading that no packet carried (no mixed packets).
    #[test]
    fn garbage_between_frames_only_loses_those_packets(
        df7 in any::<bool>(),
        inserts in prop::collection::btree_map(0usize..(20 * PACKET_FRAMES), prop::collection::vec(any::<u8>(), 1..40), 1..6),
    ) {
        let format = if df7 { Format::Df7 } else { Format::Df2 };
        let (frames, want) = packets(format, 20);
        let mut stream = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            if let Some(g) = inserts.get(&i) {
                stream.extend_from_slice(g);
            }
            stream.extend_from_slice(f);
        }
        // A SYNC frame after the last packet is not needed; the clean stream decodes every packet.
        let clean = readings(&decode_chunks(Some(format), &frames.concat(), &[usize::MAX]));
        prop_assert_eq!(&clean, &want);
        let got = readings(&decode_chunks(Some(format), &stream, &[7]));
        prop_assert!(is_subsequence(&got, &want), "invented or reordered readings: {:?}", got);
        prop_assert!(want.len() - got.len() <= 2 * inserts.len(), "lost {} packets for {} insertions", want.len() - got.len(), inserts.len());
    }

    /// DF8 has no checksum, so garbage drops the lock on the stream and the frames after it are
    /// held until three in a row confirm it again (then published, none lost). Garbage without
    /// bit 7 loses only frames that garbage or the end of the stream cuts off before a lock: at
    /// most two per insertion, never an invented or reordered reading.
    #[test]
    fn df8_garbage_without_frame_starts_loses_only_unconfirmed_frames(inserts in prop::collection::btree_map(0usize..30, prop::collection::vec(0u8..0x80, 1..40), 1..6)) {
        let mut stream = Vec::new();
        let mut want = Vec::new();
        for i in 0..30u8 {
            if let Some(g) = inserts.get(&(i as usize)) {
                stream.extend_from_slice(g);
            }
            stream.extend_from_slice(&[0x80, 40 + i, 70 + i, 0]);
            want.push((Some(Decimal::from_int(70 + i as i32)), Some(Decimal::from_int(40 + i as i32))));
        }
        let got = readings(&decode_chunks(None, &stream, &[5]));
        prop_assert!(is_subsequence(&got, &want), "invented or reordered readings: {:?}", got);
        prop_assert!(want.len() - got.len() <= 2 * inserts.len(), "lost {} frames for {} insertions", want.len() - got.len(), inserts.len());
        // Without garbage, every frame.
        let clean: Vec<u8> = (0..30u8).flat_map(|i| [0x80, 40 + i, 70 + i, 0]).collect();
        prop_assert_eq!(readings(&decode_chunks(None, &clean, &[5])), want);
    }
}
