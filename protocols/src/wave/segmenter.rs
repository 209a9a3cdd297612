//! Cuts decoders' wave chunks into fixed-length, numbered segments per metric (sans-IO).

use alloc::vec::Vec;

use super::segment::{Continuity, SampleMarks, SamplePeriod, WaveChunk, WaveScale, WaveSegment};
use crate::error::Error;
use crate::mdc::MdcCode;
use crate::observation::Flags;
use crate::time::Timestamp;

/// How segments are cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmenterConfig {
    /// Segment length in milliseconds (issue 17: configurable, default 1 s). A segment holds
    /// this duration's worth of samples, rounded to whole samples.
    pub segment_ms: u32,
    /// A known loss of at most this many milliseconds' worth of samples is filled with
    /// placeholders marked [`SampleMarks::MISSING`] inside the stream, so the time base stays
    /// exact; a longer or unknown loss closes the segment and the next one starts after a gap.
    pub max_fill_ms: u32,
    /// A stream without a clock of its own (Nonin) is timed by counting samples from its first
    /// chunk; when the chunks' own time estimate differs from the count by more than this, the
    /// next segment starts at the estimate (the device's and the gateway's clocks drift apart,
    /// and a count alone would drift from the wall clock without bound).
    pub max_drift_ms: u32,
}

impl Default for SegmenterConfig {
    fn default() -> Self {
        SegmenterConfig { segment_ms: 1000, max_fill_ms: 250, max_drift_ms: 500 }
    }
}

/// The sample clock of a stream: when its next sample is due, in µs since the epoch.
#[derive(Debug, Clone, Copy)]
struct Clock {
    period: SamplePeriod,
    scale: WaveScale,
    /// Time of the open segment's first sample (or of the next segment's, if none is open).
    anchor_us: i64,
    /// Samples since the anchor.
    count: u64,
}

impl Clock {
    fn next_us(&self) -> i64 {
        self.anchor_us.saturating_add(self.period.offset_us(self.count))
    }
}

#[derive(Debug)]
struct Stream {
    metric: MdcCode,
    next_seq: u64,
    clock: Option<Clock>,
    open: Option<WaveSegment>,
    /// The next segment starts after a gap.
    gap: bool,
}

/// Turns [`WaveChunk`]s into [`WaveSegment`]s: one stream per metric, each segment holding
/// [`SegmenterConfig::segment_ms`] of samples, except the last before a change of scale or
/// period, a gap, or [`Segmenter::flush`], which closes it early.
#[derive(Debug)]
pub struct Segmenter {
    cfg: SegmenterConfig,
    streams: Vec<Stream>,
}

impl Segmenter {
    pub fn new(cfg: SegmenterConfig) -> Segmenter {
        Segmenter { cfg, streams: Vec::new() }
    }

    pub fn config(&self) -> &SegmenterConfig {
        &self.cfg
    }

    /// Adds a chunk; segments it completes are appended to `out`. A chunk with an invalid
    /// period or scale is refused whole (nothing of it is kept), and the stream continues
    /// after a gap.
    pub fn push(&mut self, chunk: &WaveChunk, out: &mut Vec<WaveSegment>) -> Result<(), Error> {
        let cfg = self.cfg;
        let i = match self.streams.iter().position(|s| s.metric == chunk.metric) {
            Some(i) => i,
            None => {
                self.streams.push(Stream { metric: chunk.metric, next_seq: 0, clock: None, open: None, gap: true });
                self.streams.len() - 1
            }
        };
        let Some(stream) = self.streams.get_mut(i) else { return Ok(()) };
        if !chunk.period.is_valid() {
            stream.close(out);
            stream.clock = None;
            stream.gap = true;
            return Err(Error::BadField { field: "wave sample period", value: chunk.period.micros });
        }
        if !chunk.scale.is_valid() {
            stream.close(out);
            stream.clock = None;
            stream.gap = true;
            return Err(Error::BadField { field: "wave scale", value: chunk.scale.upper_raw as u32 });
        }
        let start_us = chunk.start.0.saturating_mul(1000);
        let same = stream.clock.is_some_and(|c| c.period == chunk.period && c.scale == chunk.scale);
        let max_fill = chunk.period.samples_in_ms(cfg.max_fill_ms) as u64;
        match chunk.continuity {
            Continuity::Continuous if same => {}
            Continuity::Lost(n) if same && (n as u64) <= max_fill && cfg.max_fill_ms > 0 => {
                for _ in 0..n {
                    stream.append(&cfg, chunk, 0, SampleMarks::MISSING, Flags::NONE, None, out);
                }
            }
            // A new scale (or period) on a continuous stream: the samples follow on in time,
            // only the map changes.
            Continuity::Continuous if stream.clock.is_some() => {
                stream.close(out);
                if let Some(c) = stream.clock.as_mut() {
                    let next = c.next_us();
                    *c = Clock { period: chunk.period, scale: chunk.scale, anchor_us: next, count: 0 };
                }
            }
            _ => {
                stream.close(out);
                stream.clock = Some(Clock { period: chunk.period, scale: chunk.scale, anchor_us: start_us, count: 0 });
                stream.gap = true;
            }
        }
        for (k, &s) in chunk.samples.iter().enumerate() {
            let estimate = start_us.saturating_add(chunk.period.offset_us(k as u64));
            stream.append(&cfg, chunk, s, chunk.mark(k), chunk.flags, Some(estimate), out);
        }
        Ok(())
    }

    /// Closes every open segment (end of the connection, shutdown); what follows starts after a
    /// gap.
    pub fn flush(&mut self, out: &mut Vec<WaveSegment>) {
        for s in &mut self.streams {
            s.close(out);
            s.clock = None;
            s.gap = true;
        }
    }

    /// Closes open segments whose last sample is older than `now` − `idle_ms` (a wave that
    /// stopped, e.g. a lead was removed from the monitor's priority list), so the receiver is
    /// not kept waiting for samples that will not come; the stream continues after a gap.
    pub fn flush_idle(&mut self, now: Timestamp, idle_ms: i64, out: &mut Vec<WaveSegment>) {
        for s in &mut self.streams {
            let idle = s.clock.is_some_and(|c| c.next_us() / 1000 < now.0.saturating_sub(idle_ms));
            if idle {
                s.close(out);
                s.clock = None;
                s.gap = true;
            }
        }
    }

    /// The open (incomplete) segment of `metric`, for a live view.
    pub fn open_segment(&self, metric: MdcCode) -> Option<&WaveSegment> {
        self.streams.iter().find(|s| s.metric == metric).and_then(|s| s.open.as_ref())
    }
}

impl Stream {
    fn close(&mut self, out: &mut Vec<WaveSegment>) {
        if let Some(seg) = self.open.take() {
            if let Some(c) = self.clock.as_mut() {
                // The next segment's first sample is timed from this one's end.
                c.anchor_us = c.next_us();
                c.count = 0;
            }
            out.push(seg);
        }
    }

    /// Appends one sample, opening a segment first if none is open and closing it when full.
    #[allow(clippy::too_many_arguments)]
    fn append(
        &mut self,
        cfg: &SegmenterConfig,
        chunk: &WaveChunk,
        value: i32,
        marks: SampleMarks,
        flags: Flags,
        estimate_us: Option<i64>,
        out: &mut Vec<WaveSegment>,
    ) {
        let Some(clock) = self.clock.as_mut() else { return };
        if self.open.is_none() {
            // Re-anchor a stream whose count has drifted from its chunks' time estimate.
            if let Some(est) = estimate_us {
                if est.saturating_sub(clock.next_us()).unsigned_abs() > cfg.max_drift_ms as u64 * 1000 {
                    clock.anchor_us = est;
                    clock.count = 0;
                }
            }
            let start_us = clock.next_us();
            clock.anchor_us = start_us;
            clock.count = 0;
            let len = chunk.period.samples_in_ms(cfg.segment_ms);
            self.open = Some(WaveSegment {
                metric: chunk.metric,
                period: clock.period,
                scale: clock.scale,
                start: Timestamp(start_us.div_euclid(1000)),
                seq: self.next_seq,
                after_gap: core::mem::take(&mut self.gap),
                flags: Flags::NONE,
                samples: Vec::with_capacity(len),
                marks: Vec::new(),
            });
            self.next_seq += 1;
        }
        let Some(seg) = self.open.as_mut() else { return };
        // Marks are kept only once a sample is marked: then one per sample.
        if !marks.is_empty() || !seg.marks.is_empty() {
            seg.marks.resize(seg.samples.len(), SampleMarks::NONE);
            seg.marks.push(marks);
        }
        seg.samples.push(value);
        seg.flags.insert(flags);
        clock.count += 1;
        if seg.samples.len() >= chunk.period.samples_in_ms(cfg.segment_ms) {
            self.close(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mdc::{code, unit};
    use alloc::vec;

    fn chunk(start: i64, continuity: Continuity, samples: Vec<i32>) -> WaveChunk {
        WaveChunk {
            metric: code::MDC_PULS_OXIM_PLETH,
            period: SamplePeriod::per_second(75),
            scale: WaveScale::identity(unit::MDC_DIM_DIMLESS, 0, 255),
            start: Timestamp(start),
            continuity,
            flags: Flags::NONE,
            samples,
            marks: Vec::new(),
        }
    }

    #[test]
    fn one_second_segments_of_75_samples_timed_by_count() {
        let mut s = Segmenter::new(SegmenterConfig::default());
        let mut out = Vec::new();
        // 25 samples every 333 ms with receipt jitter of a few ms.
        for i in 0..9i64 {
            let samples: Vec<i32> = (0..25).map(|k| (i * 25 + k) as i32).collect();
            let cont = if i == 0 { Continuity::Broken } else { Continuity::Continuous };
            s.push(&chunk(10_000 + i * 333 + (i % 3) * 7, cont, samples), &mut out).unwrap();
        }
        assert_eq!(out.len(), 3);
        assert_eq!(out.iter().map(|g| g.seq).collect::<Vec<_>>(), vec![0, 1, 2]);
        assert_eq!(out.iter().map(|g| g.start.0).collect::<Vec<_>>(), vec![10_000, 11_000, 12_000]);
        assert!(out[0].after_gap && !out[1].after_gap && !out[2].after_gap);
        assert_eq!(out[1].samples.first(), Some(&75));
        assert_eq!(out[2].end(), Timestamp(13_000));
    }

    #[test]
    fn a_scale_change_closes_the_segment_and_keeps_the_time_base() {
        let mut s = Segmenter::new(SegmenterConfig::default());
        let mut out = Vec::new();
        s.push(&chunk(0, Continuity::Broken, vec![1; 30]), &mut out).unwrap();
        let mut c = chunk(400, Continuity::Continuous, vec![2; 10]);
        c.scale.upper = Decimal::from_int(510);
        s.push(&c, &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].samples, vec![1; 30]);
        s.flush(&mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].scale.upper, Decimal::from_int(510));
        assert_eq!(out[1].start, Timestamp(400)); // 30 samples at 75 Hz
        assert!(!out[1].after_gap);
    }

    #[test]
    fn known_small_losses_are_filled_unknown_ones_start_after_a_gap() {
        let mut s = Segmenter::new(SegmenterConfig::default());
        let mut out = Vec::new();
        s.push(&chunk(0, Continuity::Broken, vec![5; 10]), &mut out).unwrap();
        s.push(&chunk(0, Continuity::Lost(3), vec![6; 10]), &mut out).unwrap();
        s.flush(&mut out);
        assert_eq!(out.len(), 1);
        let g = &out[0];
        assert_eq!(g.samples.len(), 23);
        assert_eq!(g.marks.iter().filter(|m| m.contains(SampleMarks::MISSING)).count(), 3);
        assert_eq!(g.mark(10), SampleMarks::MISSING);
        assert_eq!(g.mark(13), SampleMarks::NONE);
        out.clear();
        s.push(&chunk(5000, Continuity::Broken, vec![7; 10]), &mut out).unwrap();
        s.push(&chunk(9000, Continuity::Lost(1000), vec![8; 10]), &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].start, out[0].after_gap, out[0].seq), (Timestamp(5000), true, 1));
        s.flush(&mut out);
        assert_eq!((out[1].start, out[1].after_gap, out[1].seq), (Timestamp(9000), true, 2));
    }

    #[test]
    fn drift_re_anchors_at_the_next_segment() {
        let mut s = Segmenter::new(SegmenterConfig::default());
        let mut out = Vec::new();
        s.push(&chunk(0, Continuity::Broken, vec![0; 75]), &mut out).unwrap();
        // The device's 75 samples took 1.6 s of gateway time.
        s.push(&chunk(1600, Continuity::Continuous, vec![0; 75]), &mut out).unwrap();
        assert_eq!(out.iter().map(|g| g.start.0).collect::<Vec<_>>(), vec![0, 1600]);
    }

    #[test]
    fn invalid_chunks_are_refused() {
        let mut s = Segmenter::new(SegmenterConfig::default());
        let mut out = Vec::new();
        let mut c = chunk(0, Continuity::Broken, vec![1]);
        c.period.micros = 0;
        assert!(s.push(&c, &mut out).is_err());
        let mut c = chunk(0, Continuity::Broken, vec![1]);
        c.scale.upper_raw = c.scale.lower_raw;
        assert!(s.push(&c, &mut out).is_err());
        assert!(out.is_empty());
    }

    use crate::decimal::Decimal;
}
