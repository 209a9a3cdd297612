//! Fuzz target: the MEDIBUS session (polling and listen-only) and the message parser.
//!
//! The input is fed in chunks whose sizes come from its first byte, with time moving between
//! chunks and `poll` called when the decoder asks for it; a listener must never transmit. Any
//! CR-terminated piece that parses as a message is emitted again and must give back the same
//! bytes. Checksums are not skipped under `cfg(fuzzing)`: two hex digits are easy to match.
#![no_main]
use libfuzzer_sys::fuzz_target;
use medgw_protocols::decode::{Decoder, DecoderOptions, Event};
use medgw_protocols::time::Timestamp;
use medgw_protocols::wire::medibus::decoder::MedibusDecoder;
use medgw_protocols::wire::medibus::alarms::alarm_records;
use medgw_protocols::wire::medibus::Message;

fuzz_target!(|data: &[u8]| {
    let Some((&seed, bytes)) = data.split_first() else { return };
    let chunk = (seed as usize % 32) + 1;
    for listen_only in [false, true] {
        let mut d = MedibusDecoder::new(&DecoderOptions { poll_period_ms: 500, listen_only, ..Default::default() });
        let mut out = Vec::new();
        let mut now = Timestamp(0);
        d.start(now, &mut out);
        for c in bytes.chunks(chunk) {
            now = Timestamp(now.0 + 7 * c.len() as i64 + (c[0] as i64 & 0x3F) * 100);
            d.feed(c, now, &mut out);
            if d.next_wakeup().is_some_and(|w| w <= now) {
                d.poll(now, &mut out);
            }
        }
        if listen_only {
            assert!(!out.iter().any(|e| matches!(e, Event::Transmit(_))));
        }
    }
    // Current-alarm records (the 0x27 answer's data).
    if let Ok(records) = alarm_records(bytes) {
        for r in records.flatten() {
            assert!(r.phrase.len() <= 12);
        }
    }
    for piece in bytes.split(|&b| b == b'\r') {
        if let Ok(m) = Message::parse(piece) {
            let mut b = vec![0u8; m.wire_len()];
            let n = m.emit(&mut b).unwrap();
            assert_eq!(&b[..n - 1], piece);
            assert_eq!(Message::parse(&b[..n - 1]).unwrap(), m);
        }
    }
});
