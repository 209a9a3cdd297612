//! Fuzz target: the Masimo ASCII 1 decoder and line parser.
//!
//! The input is fed to the decoder in chunks whose sizes come from its first byte, and parsed
//! as one line: a timestamp that parses is written again and must give back the same text, and
//! every field value is parsed (no panic). There is no checksum to skip.
#![no_main]
use libfuzzer_sys::fuzz_target;
use medgw_protocols::decode::{Decoder, Event};
use medgw_protocols::time::Timestamp;
use medgw_protocols::wire::masimo::decoder::MasimoDecoder;
use medgw_protocols::wire::masimo::line::{parse_hex, parse_number, Line, Tag, ALARM_WIDTHS, EXC_WIDTHS};

fuzz_target!(|data: &[u8]| {
    let Some((&seed, bytes)) = data.split_first() else { return };
    let chunk = (seed as usize % 64) + 1;
    let mut d = MasimoDecoder::new();
    let mut out = Vec::new();
    for c in bytes.chunks(chunk) {
        d.feed(c, Timestamp(0), &mut out);
    }
    for e in &out {
        if let Event::Rejected { offset, .. } = e {
            assert!(*offset < bytes.len() as u64);
        }
    }
    if let Ok(line) = Line::parse(bytes) {
        let t = line.time;
        let text = format!("{:02}/{:02}/{:02} {:02}:{:02}:{:02}", t.month, t.day, t.year % 100, t.hour, t.minute, t.second);
        assert_eq!(text.as_bytes(), &bytes[..17]);
        for (name, value) in line.fields().flatten() {
            if let Some(tag) = Tag::from_bytes(name) {
                let _ = match tag {
                    Tag::Alarm => parse_hex(tag, value, ALARM_WIDTHS).map(|_| ()),
                    Tag::Exc => parse_hex(tag, value, EXC_WIDTHS).map(|_| ()),
                    _ => parse_number(tag, value).map(|_| ()),
                };
            }
        }
    }
});
