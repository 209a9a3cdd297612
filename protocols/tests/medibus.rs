//! MEDIBUS decoder: stream properties (listen-only and polling), arbitrary input with arbitrary
//! timing, and the DP-1..DP-3 vectors against the simulated device.
#![cfg(feature = "sim")]

use medgw_protocols::decimal::Decimal;
use medgw_protocols::decode::{Decoder, DecoderOptions, Event};
use medgw_protocols::mdc::code;
use medgw_protocols::sim::medibus::MedibusSim;
use medgw_protocols::sim::{DeviceSimulator, Fault, SimOptions};
use medgw_protocols::time::Timestamp;
use medgw_protocols::wire::medibus::decoder::MedibusDecoder;
use proptest::prelude::*;

const NOW: Timestamp = Timestamp(1_710_498_125_000);
/// DP-1 (request measured data CP1), DP-2 (its answer: HR 72, pulse rate 71, SpO2 97),
/// DP-3 (ICC).
const DP1: &[u8] = &[0x1B, 0x24, 0x33, 0x46, 0x0D];
const DP2: &[u8] = &[
    0x01, 0x24, 0x44, 0x43, 0x20, 0x20, 0x37, 0x32, 0x45, 0x31, 0x20, 0x20, 0x37, 0x31, 0x45, 0x42, 0x20, 0x20, 0x39, 0x37, 0x41, 0x41,
    0x0D,
];
const ICC: &[u8] = &[0x1B, 0x51, 0x36, 0x43, 0x0D];

fn listen() -> MedibusDecoder {
    MedibusDecoder::new(&DecoderOptions { poll_period_ms: 1000, listen_only: true, ..Default::default() })
}

fn decode_chunks(d: &mut MedibusDecoder, stream: &[u8], sizes: &[usize]) -> Vec<Event> {
    let mut out = Vec::new();
    d.start(NOW, &mut out);
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

fn values(events: &[Event]) -> Vec<(u32, Option<Decimal>)> {
    events.iter().filter_map(|e| if let Event::Measurement(m) = e { Some((m.metric.0, m.value.numeric())) } else { None }).collect()
}

/// What the simulated device says to `n` data requests after ICC and identification, with
/// faults when asked: the device's side of a session, as a listener on its TX line sees it.
fn device_stream(seed: u64, n: usize, faults: bool) -> Vec<Vec<u8>> {
    let mut sim = MedibusSim::new(&SimOptions { seed, period_ms: 1000, record: false }, NOW);
    let mut answers = Vec::new();
    let script = [Fault::BadChecksum, Fault::Truncate, Fault::Garbage(9), Fault::SensorOff(true), Fault::SensorOff(false)];
    for (i, req) in [ICC, &[0x1B, 0x52, 0x36, 0x44, 0x0D][..]].into_iter().chain(std::iter::repeat_n(DP1, n)).enumerate() {
        if faults && i % 4 == 3 {
            sim.inject(script[(i / 4) % script.len()]);
        }
        let mut out = Vec::new();
        sim.receive(req, Timestamp(NOW.0 + 1000 * i as i64), &mut out);
        answers.push(out);
    }
    answers
}

#[test]
fn dp_vectors_against_the_simulated_device() {
    let mut sim = MedibusSim::new(&SimOptions { seed: 1, period_ms: 1000, record: true }, NOW);
    let mut d = MedibusDecoder::new(&DecoderOptions::default());
    let mut ev = Vec::new();
    d.start(NOW, &mut ev);
    assert_eq!(ev, [Event::Transmit(ICC.to_vec())]);
    let mut answer = Vec::new();
    sim.receive(ICC, NOW, &mut answer);
    let mut ev = Vec::new();
    d.feed(&answer, NOW, &mut ev);
    assert_eq!(ev, [Event::Transmit(vec![0x1B, 0x52, 0x36, 0x44, 0x0D])]);
    // The listener decodes DP-2 itself.
    let ev = decode_chunks(&mut listen(), DP2, &[1]);
    assert_eq!(
        values(&ev),
        [
            (code::MDC_ECG_HEART_RATE.0, Some(Decimal::from_int(72))),
            (code::MDC_PULS_OXIM_PULS_RATE.0, Some(Decimal::from_int(71))),
            (code::MDC_PULS_OXIM_SAT_O2.0, Some(Decimal::from_int(97)))
        ]
    );
}

#[test]
fn one_byte_at_a_time_equals_all_at_once() {
    let stream = device_stream(2, 20, true).concat();
    for mk in [listen as fn() -> MedibusDecoder, || MedibusDecoder::new(&DecoderOptions::default())] {
        let whole = decode_chunks(&mut mk(), &stream, &[stream.len()]);
        assert!(whole.iter().any(|e| matches!(e, Event::Rejected { .. })));
        assert!(values(&whole).len() > 100);
        let ones = decode_chunks(&mut mk(), &stream, &[1]);
        let kinds = |ev: &[Event]| {
            ev.iter()
                .map(|e| match e {
                    Event::Measurement(_) => "M".to_string(),
                    other => format!("{other:?}"),
                })
                .filter(|s| s != "M")
                .collect::<Vec<_>>()
        };
        assert_eq!(kinds(&ones), kinds(&whole));
        assert_eq!(ones, whole);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn chunking_does_not_change_what_is_decoded(seed in 0u64..1000, listen_only in any::<bool>(), sizes in prop::collection::vec(1usize..200, 1..20)) {
        let stream = device_stream(seed, 8, true).concat();
        let mk = || MedibusDecoder::new(&DecoderOptions { poll_period_ms: 1000, listen_only, ..Default::default() });
        let whole = decode_chunks(&mut mk(), &stream, &[stream.len()]);
        prop_assert_eq!(decode_chunks(&mut mk(), &stream, &sizes), whole);
    }

    /// Arbitrary bytes at arbitrary times, with polls in between: no panic, a listener never
    /// transmits, and a polling decoder always has a next wake-up.
    #[test]
    fn arbitrary_input_and_timing_never_panic(
        listen_only in any::<bool>(),
        steps in prop::collection::vec((prop::collection::vec(any::<u8>(), 0..300), 0i64..5000), 0..20),
    ) {
        let mut d = MedibusDecoder::new(&DecoderOptions { poll_period_ms: 700, listen_only, ..Default::default() });
        let mut out = Vec::new();
        let mut now = NOW;
        d.start(now, &mut out);
        for (bytes, dt) in steps {
            now = Timestamp(now.0 + dt);
            d.feed(&bytes, now, &mut out);
            d.poll(now, &mut out);
            prop_assert_eq!(d.next_wakeup().is_some(), !listen_only);
            if let Some(w) = d.next_wakeup() {
                // A wake-up in the past would spin the gateway; at most one poll period late.
                prop_assert!(w.0 + 700 >= now.0, "wake-up {} at {}", w.0, now.0);
            }
        }
        if listen_only {
            prop_assert!(!out.iter().any(|e| matches!(e, Event::Transmit(_))));
        }
    }

    /// Garbage of any bytes between the device's messages loses none of them: a message starts at
    /// its own SOH whatever came before.
    #[test]
    fn garbage_between_messages_loses_nothing(seed in 0u64..100, inserts in prop::collection::btree_map(0usize..12, prop::collection::vec(any::<u8>(), 1..64), 1..5)) {
        let answers = device_stream(seed, 10, false);
        let clean = values(&decode_chunks(&mut listen(), &answers.concat(), &[usize::MAX]));
        // 11 records per answer, etCO2 (mmHg, kPa, %) published once.
        prop_assert_eq!(clean.len(), 10 * 9);
        let mut stream = Vec::new();
        for (i, a) in answers.iter().enumerate() {
            if let Some(g) = inserts.get(&i) {
                stream.extend_from_slice(g);
            }
            stream.extend_from_slice(a);
        }
        prop_assert_eq!(values(&decode_chunks(&mut listen(), &stream, &[11])), clean);
    }
}
