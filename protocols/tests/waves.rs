//! Waveform segmenter properties: whatever the chunking, gaps and scale changes, the segments
//! hold exactly the device's samples in order (nothing lost, nothing repeated across segment
//! boundaries), numbered without a hole, one scale per segment.

use medgw_protocols::decimal::Decimal;
use medgw_protocols::mdc::{code, unit};
use medgw_protocols::observation::Flags;
use medgw_protocols::time::Timestamp;
use medgw_protocols::wave::{Continuity, SampleMarks, SamplePeriod, Segmenter, SegmenterConfig, WaveChunk, WaveScale, WaveSegment};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Spec {
    len: usize,
    continuity: u8,
    lost: u32,
    scale: u8,
    marked: bool,
}

fn spec() -> impl Strategy<Value = Spec> {
    (0usize..160, 0u8..10, 0u32..60, 0u8..8, any::<bool>()).prop_map(|(len, continuity, lost, scale, marked)| Spec {
        len,
        continuity,
        lost,
        scale,
        marked,
    })
}

fn scale(variant: u8) -> WaveScale {
    // Scale changes are rare (one chunk in eight switches to the other map).
    let mut s = WaveScale::identity(unit::MDC_DIM_DIMLESS, 0, 1 << 20);
    if variant == 0 {
        s.upper = Decimal::from_int(2 << 20);
    }
    s
}

/// Runs the chunks through a segmenter; returns the chunks (device truth) and the segments.
fn run(specs: &[Spec], period: SamplePeriod, cfg: SegmenterConfig) -> (Vec<WaveChunk>, Vec<WaveSegment>) {
    let mut seg = Segmenter::new(cfg);
    let mut out = Vec::new();
    let mut chunks = Vec::new();
    let mut next = 0i32;
    let mut t = 1_700_000_000_000i64;
    for (i, s) in specs.iter().enumerate() {
        let continuity = match (i, s.continuity) {
            (0, _) => Continuity::Broken,
            (_, 0) => Continuity::Broken,
            (_, 1) => Continuity::Lost(s.lost),
            _ => Continuity::Continuous,
        };
        if let Continuity::Lost(n) = continuity {
            t += period.offset_us(n as u64) / 1000;
        }
        let samples: Vec<i32> = (0..s.len as i32).map(|k| next + k).collect();
        next += s.len as i32;
        let marks = if s.marked { (0..s.len).map(|k| SampleMarks((k % 3) as u8)).collect() } else { Vec::new() };
        let c = WaveChunk {
            metric: code::MDC_PULS_OXIM_PLETH,
            period,
            scale: scale(s.scale),
            start: Timestamp(t),
            continuity,
            flags: if s.marked { Flags::ARTIFACT } else { Flags::NONE },
            samples,
            marks,
        };
        t += period.offset_us(s.len as u64) / 1000;
        seg.push(&c, &mut out).unwrap();
        chunks.push(c);
    }
    seg.flush(&mut out);
    (chunks, out)
}

fn periods() -> impl Strategy<Value = SamplePeriod> {
    prop_oneof![
        Just(SamplePeriod::per_second(75)),
        Just(SamplePeriod::from_micros(2000)),
        Just(SamplePeriod::from_micros(16_000)),
        Just(SamplePeriod::from_micros(8000)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn concatenated_segments_are_the_devices_samples(
        specs in proptest::collection::vec(spec(), 1..40),
        period in periods(),
        segment_ms in prop_oneof![Just(1000u32), 1u32..3000],
        max_fill_ms in prop_oneof![Just(0u32), Just(250u32), 0u32..2000],
    ) {
        let cfg = SegmenterConfig { segment_ms, max_fill_ms, ..SegmenterConfig::default() };
        let (chunks, segments) = run(&specs, period, cfg);
        let target = period.samples_in_ms(segment_ms);

        // Nothing lost, nothing repeated, order kept; marks travel with their sample.
        // (value, marks, scale) with the scale as its upper value, to keep failures readable.
        let want: Vec<(i32, u8, i64)> = chunks
            .iter()
            .flat_map(|c| c.samples.iter().enumerate().map(move |(k, s)| (*s, c.mark(k).0, c.scale.upper.mantissa())))
            .collect();
        let got: Vec<(i32, u8, i64)> = segments
            .iter()
            .flat_map(|g| g.samples.iter().enumerate().map(move |(k, s)| (*s, g.mark(k).0, g.scale.upper.mantissa())))
            .filter(|(_, m, _)| m & SampleMarks::MISSING.0 == 0)
            .collect();
        prop_assert_eq!(&got, &want);

        // Numbered without a hole; never longer than asked, never empty; marks aligned.
        for (i, g) in segments.iter().enumerate() {
            prop_assert_eq!(g.seq, i as u64);
            prop_assert!(!g.samples.is_empty() && g.samples.len() <= target, "{} samples, target {}", g.samples.len(), target);
            prop_assert!(g.marks.is_empty() || g.marks.len() == g.samples.len());
            prop_assert_eq!(g.period, period);
        }

        // Placeholders only where the device lost samples, and never more than it lost.
        let filled = segments.iter().flat_map(|g| g.marks.iter()).filter(|m| m.contains(SampleMarks::MISSING)).count() as u64;
        let lost: u64 = chunks.iter().map(|c| if let Continuity::Lost(n) = c.continuity { n as u64 } else { 0 }).sum();
        prop_assert!(filled <= lost);
        if max_fill_ms == 0 {
            prop_assert_eq!(filled, 0);
        }

        // A chunk after an unknown gap starts a segment flagged after_gap.
        for c in chunks.iter().filter(|c| c.continuity == Continuity::Broken) {
            if let Some(first) = c.samples.first() {
                let g = segments.iter().find(|g| g.samples.first() == Some(first));
                prop_assert!(g.is_some_and(|g| g.after_gap), "sample {} does not open a segment after a gap", first);
            }
        }
        // Segments that continue one another are contiguous in time (to the millisecond).
        for w in segments.windows(2) {
            if !w[1].after_gap && w[1].scale == w[0].scale {
                let gap = w[1].start.0 - w[0].end().0;
                prop_assert!(gap.abs() <= 1, "{} ms between segments {} and {}", gap, w[0].seq, w[1].seq);
            }
        }
    }

    /// Feeding the same samples in other chunk sizes gives the same segments.
    #[test]
    fn segments_do_not_depend_on_chunking(cuts in proptest::collection::vec(1usize..200, 1..30)) {
        let period = SamplePeriod::per_second(75);
        let total: usize = cuts.iter().sum();
        let one = vec![Spec { len: total, continuity: 2, lost: 0, scale: 1, marked: false }];
        let many: Vec<Spec> = cuts.iter().map(|&len| Spec { len, continuity: 2, lost: 0, scale: 1, marked: false }).collect();
        let (_, a) = run(&one, period, SegmenterConfig::default());
        let (_, b) = run(&many, period, SegmenterConfig::default());
        prop_assert_eq!(a, b);
    }
}
