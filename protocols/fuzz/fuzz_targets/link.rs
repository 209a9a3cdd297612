//! Fuzz target: medgw-link.
//!
//! The first byte chooses chunk sizes; the rest is fed to the gateway decoder in those chunks,
//! and every frame is also decoded directly. A frame that decodes is re-encoded and must decode
//! to the same message. The CRC is not skipped under `cfg(fuzzing)`: libFuzzer still reaches the
//! postcard layer through the round-trip half, which builds valid frames from decoded messages,
//! and through the structured half below, which frames the input bytes as a payload.
#![no_main]
use libfuzzer_sys::fuzz_target;
use medgw_protocols::decode::{Decoder, DecoderOptions};
use medgw_protocols::time::Timestamp;
use medgw_protocols::wire::link::{self, LinkDecoder, MAX_FRAME};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let chunk = (mode as usize % 64) + 1;
    let mut dec = LinkDecoder::new(&DecoderOptions { listen_only: mode & 0x80 != 0, ..Default::default() });
    let mut out = Vec::new();
    for c in rest.chunks(chunk) {
        dec.feed(c, Timestamp(1_710_498_125_000), &mut out);
    }
    for frame in rest.split(|&b| b == 0) {
        if let Ok(msg) = link::decode(frame) {
            let mut buf = [0u8; MAX_FRAME];
            let n = link::encode(&msg, &mut buf).expect("a decoded message re-encodes");
            assert_eq!(link::decode(&buf[..n - 1]), Ok(msg));
        }
    }
    // The input as a payload with a valid CRC: exercises postcard parsing of arbitrary bytes.
    if rest.len() <= link::MAX_PAYLOAD {
        if let Ok(msg) = link::parse_payload(rest) {
            let mut buf = [0u8; MAX_FRAME];
            let n = link::encode(&msg, &mut buf).expect("a parsed payload re-encodes");
            assert_eq!(link::decode(&buf[..n - 1]), Ok(msg.clone()));
            let mut out = Vec::new();
            dec.feed(&buf[..n], Timestamp(0), &mut out);
        }
    }
});
