//! Masimo ASCII 1 decoder: stream properties over simulator streams and the public vectors
//! MP-1 and MP-2 as a stream.
#![cfg(feature = "sim")]

use medgw_protocols::decimal::Decimal;
use medgw_protocols::decode::{Decoder, Event};
use medgw_protocols::mdc::{code, MdcCode};
use medgw_protocols::sim::masimo::MasimoSim;
use medgw_protocols::sim::{DeviceSimulator, Fault, SimOptions};
use medgw_protocols::time::Timestamp;
use medgw_protocols::wire::masimo::decoder::{MasimoDecoder, MAX_LINE};
use proptest::prelude::*;

/// 2024-03-15T10:22:05Z.
const NOW: Timestamp = Timestamp(1_710_498_125_000);
/// MP-1 and MP-2 (protocols.md §2).
const MP1: &[u8] = b"03/15/24 10:22:05 SN=0000123456 SPO2=097% BPM=072 PI=03.45% SPCO=--.-% SPMET=--.-% DESAT=-- PIDELTA=+-- PVI=--- ALARM=0000 EXC=000800\r\n";
const MP2: &[u8] = b"11/02/23 08:00:01 SPO2=---% BPM=--- PI=--.--% ALARM=0000 EXC=021\r\n";

fn decode_chunks(stream: &[u8], sizes: &[usize]) -> Vec<Event> {
    let mut d = MasimoDecoder::new();
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

fn values(events: &[Event]) -> Vec<(MdcCode, Option<String>, Option<Decimal>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Measurement(m) => Some((m.metric, m.vendor.as_ref().map(|v| v.code.to_string()), m.value.numeric())),
            _ => None,
        })
        .collect()
}

/// `lines` lines from the simulator, one per period, each ending in CR LF.
fn sim_lines(seed: u64, lines: usize, faults: bool) -> Vec<Vec<u8>> {
    let mut sim = MasimoSim::new(&SimOptions { seed, period_ms: 1000, record: false }, NOW);
    let script = [Fault::BadChecksum, Fault::Truncate, Fault::Garbage(23), Fault::SensorOff(true), Fault::SensorOff(false)];
    (0..lines)
        .map(|i| {
            if faults && i % 3 == 1 {
                sim.inject(script[(i / 3) % script.len()]);
            }
            let mut out = Vec::new();
            sim.tick(Timestamp(NOW.0 + 1000 * i as i64), &mut out);
            out
        })
        .collect()
}

#[test]
fn public_vectors_as_a_stream() {
    let ev = decode_chunks(&[MP1, MP2].concat(), &[1]);
    let v = values(&ev);
    assert_eq!(v.len(), 8 + 3);
    assert_eq!(v[0], (code::MDC_PULS_OXIM_SAT_O2, Some("SPO2".into()), Some(Decimal::from_int(97))));
    assert_eq!(v[1], (code::MDC_PULS_OXIM_PULS_RATE, Some("BPM".into()), Some(Decimal::from_int(72))));
    assert_eq!(v[2], (code::MDC_PULS_OXIM_PERF_REL, Some("PI".into()), Decimal::new(345, -2)));
    assert!(v[3..].iter().all(|(_, _, d)| d.is_none()));
}

#[test]
fn one_byte_at_a_time_equals_all_at_once() {
    let stream = sim_lines(4, 30, true).concat();
    let whole = decode_chunks(&stream, &[stream.len()]);
    assert!(whole.iter().any(|e| matches!(e, Event::Rejected { .. })), "the faults were seen");
    assert!(values(&whole).len() > 100);
    assert_eq!(decode_chunks(&stream, &[1]), whole);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn chunking_does_not_change_what_is_decoded(seed in 0u64..1000, sizes in prop::collection::vec(1usize..400, 1..20)) {
        let stream = sim_lines(seed, 12, true).concat();
        let whole = decode_chunks(&stream, &[stream.len()]);
        prop_assert_eq!(decode_chunks(&stream, &sizes), whole);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096), sizes in prop::collection::vec(1usize..64, 1..8)) {
        let ev = decode_chunks(&bytes, &sizes);
        for e in &ev {
            if let Event::Rejected { offset, .. } = e {
                prop_assert!(*offset < bytes.len() as u64);
            }
        }
    }

    /// Arbitrary ASCII-ish text that looks like a line: no panic, and nothing decoded from a line
    /// without a valid timestamp.
    #[test]
    fn line_shaped_text_never_panics(line in "[0-9/: A-Z=%.+-]{0,200}") {
        let bytes = [line.as_bytes(), b"\r\n"].concat();
        let ev = decode_chunks(&bytes, &[bytes.len()]);
        if !values(&ev).is_empty() {
            prop_assert!(line.contains('/') && line.contains(':'));
        }
    }

    /// Garbage between lines (any bytes, up to a line's length) loses no line: the decoder finds
    /// each line's own timestamp after it.
    #[test]
    fn garbage_between_lines_loses_nothing(seed in 0u64..100, inserts in prop::collection::btree_map(0usize..10, prop::collection::vec(any::<u8>(), 1..(MAX_LINE / 3)), 1..5)) {
        let lines = sim_lines(seed, 10, false);
        let clean = values(&decode_chunks(&lines.concat(), &[usize::MAX]));
        prop_assert_eq!(clean.len(), 10 * 8);
        let mut stream = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            if let Some(g) = inserts.get(&i) {
                stream.extend_from_slice(g);
            }
            stream.extend_from_slice(l);
        }
        let ev = decode_chunks(&stream, &[13]);
        prop_assert_eq!(values(&ev), clean);
    }
}
