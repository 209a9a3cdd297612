//! MLLP deframer and ACK parser on arbitrary bytes: never panics, never exceeds its bound.
#![no_main]
use libfuzzer_sys::fuzz_target;
use medgw_protocols::encode::{hl7v2, mllp};

fuzz_target!(|data: &[u8]| {
    let mut d = mllp::Deframer::new(4096);
    let mut out = Vec::new();
    // Feed in two chunks so that state carried across calls is exercised.
    let split = data.first().map(|b| *b as usize % (data.len() + 1)).unwrap_or(0);
    d.feed(&data[..split], &mut out);
    d.feed(&data[split..], &mut out);
    for f in out {
        if let mllp::Frame::Message(m) = f {
            assert!(m.len() <= 4096);
            if let Ok(text) = std::str::from_utf8(&m) {
                let _ = hl7v2::parse_ack(text);
            }
        }
    }
});
