//! Fuzz target: the Nonin DF2, DF7 and DF8 decoders and frame parsers.
//!
//! The input is fed in chunks whose sizes come from its first byte, to all three decoders.
//! The DF2/DF7 pleth goes through the wave segmenter, which must keep every sample.
//! Rejected offsets (including frames held for a lock and then dropped) lie inside the input.
//! Every 5- and 4-byte window that parses as a frame is emitted again and must give back the
//! same bytes and parse to the same frame. Checksums are not skipped under `cfg(fuzzing)`: the
//! 8-bit sum is easy for the fuzzer to satisfy.
#![no_main]
use libfuzzer_sys::fuzz_target;
use medgw_protocols::decode::{Decoder, Event};
use medgw_protocols::time::Timestamp;
use medgw_protocols::wave::{Segmenter, SegmenterConfig};
use medgw_protocols::wire::nonin::decoder::NoninDecoder;
use medgw_protocols::wire::nonin::{Df8Frame, Format, Frame};

fuzz_target!(|data: &[u8]| {
    let Some((&seed, bytes)) = data.split_first() else { return };
    let chunk = (seed as usize % 64) + 1;
    // DF8 twice: with its rate gate (which 13 ms steps trip) and with the gate open, so the
    // lock on the stream is exercised on its own.
    for mut d in [NoninDecoder::df2(), NoninDecoder::df7(), NoninDecoder::df8(), NoninDecoder::df8_with_rate(u32::MAX)] {
        let mut out = Vec::new();
        for (i, c) in bytes.chunks(chunk).enumerate() {
            // Time moves in 13 ms steps, with a pause now and then.
            let now = Timestamp(i as i64 * if seed & 0x80 != 0 { 300 } else { 13 });
            d.feed(c, now, &mut out);
        }
        for e in &out {
            if let Event::Rejected { offset, .. } = e {
                assert!(*offset < bytes.len() as u64);
            }
        }
        // The pleth through the segmenter: the segments hold exactly the decoded samples.
        let mut seg = Segmenter::new(SegmenterConfig::default());
        let mut segments = Vec::new();
        let mut samples = Vec::new();
        for e in &out {
            if let Event::Wave(w) = e {
                samples.extend_from_slice(&w.samples);
                seg.push(w, &mut segments).unwrap();
            }
        }
        seg.flush(&mut segments);
        let joined: Vec<i32> = segments.iter().flat_map(|s| s.samples.iter().copied()).collect();
        assert_eq!(joined, samples);
    }
    for format in [Format::Df2, Format::Df7] {
        for w in bytes.windows(5) {
            if let Ok(f) = Frame::parse_bytes(w, format) {
                let mut b = [0u8; 5];
                f.emit(format, &mut b).unwrap();
                assert_eq!(&b, w);
                assert_eq!(Frame::parse_bytes(&b, format).unwrap(), f);
            }
        }
    }
    for w in bytes.windows(4) {
        if let Ok(f) = Df8Frame::parse_bytes(w) {
            let mut b = [0u8; 4];
            f.emit(&mut b).unwrap();
            assert_eq!(&b, w);
            assert_eq!(Df8Frame::parse_bytes(&b).unwrap(), f);
        }
    }
});
