//! Fuzz target: IntelliVue wave objects (real-time sample arrays) from arbitrary attribute
//! lists, through the wave decoder and the segmenter. The input is split at its first byte into
//! up to three attribute lists, decoded in turn as results of one object 256 ms apart; chunks
//! must reach the segments whole.
#![no_main]
use libfuzzer_sys::fuzz_target;
use medgw_protocols::time::Timestamp;
use medgw_protocols::wave::{Segmenter, SegmenterConfig};
use medgw_protocols::wire::intellivue::attributes::{AttributeList, RelativeTime};
use medgw_protocols::wire::intellivue::wave::RtsaDecoder;

fuzz_target!(|data: &[u8]| {
    let Some((&seed, bytes)) = data.split_first() else { return };
    let mut dec = RtsaDecoder::new();
    let mut chunks = Vec::new();
    let cut = (seed as usize).min(bytes.len());
    for (k, part) in [&bytes[..cut], &bytes[cut..]].into_iter().enumerate() {
        let Ok(list) = AttributeList::parse(part) else { continue };
        let _ = dec.observation(0x0101, &list, RelativeTime(k as u32 * 2048), Timestamp(k as i64 * 256), &mut chunks);
    }
    let mut seg = Segmenter::new(SegmenterConfig::default());
    let mut segments = Vec::new();
    let mut want = Vec::new();
    for c in &chunks {
        if seg.push(c, &mut segments).is_ok() {
            want.extend_from_slice(&c.samples);
        }
    }
    seg.flush(&mut segments);
    let got: Vec<i32> = segments
        .iter()
        .flat_map(|s| s.samples.iter().enumerate().filter(|(i, _)| !s.mark(*i).contains(medgw_protocols::wave::SampleMarks::MISSING)).map(|(_, v)| *v))
        .collect();
    assert_eq!(got, want);
});
