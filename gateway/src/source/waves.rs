//! A device's waveforms on their way out: decoders' chunks → fixed-length numbered segments
//! (`medgw_protocols::wave::Segmenter`) → the configured payload → the sink's wave queue
//! (docs/waveforms.md).
//!
//! Segments do not go through the buffer: they are encoded here and handed to the sink
//! without waiting (`try_send`), so a slow broker never holds up a device's numerics. A segment
//! the channel cannot take is counted with the sink's drops ([`SinkStats::waves_dropped`]) and
//! logged at most once a minute. The last segment of each device is kept for the status
//! page's live trace ([`LiveWave`]).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use medgw_protocols::encode::wave as encode;
use medgw_protocols::mdc::code;
use medgw_protocols::nomenclature::Nomenclature;
use medgw_protocols::observation::DeviceContext;
use medgw_protocols::wave::{Segmenter, SegmenterConfig, WaveChunk, WaveSegment};
use medgw_protocols::Timestamp;
use tokio::sync::mpsc;

use crate::config::PayloadFormat;
use crate::log_limit::LogLimiter;
use crate::sink::mqtt::waves::WaveMessage;
use crate::sink::mqtt::SinkStats;

/// A wave whose last sample is older than this many segment lengths is closed (it stopped:
/// the sensor was removed, the monitor dropped it from its list).
const IDLE_SEGMENTS: i64 = 2;

/// Where a device's segments go.
#[derive(Clone)]
pub struct WaveLink {
    pub tx: mpsc::Sender<WaveMessage>,
    pub format: PayloadFormat,
    pub segment_ms: u32,
    /// Counts the segments the channel could not take.
    pub stats: Arc<SinkStats>,
}

/// The last segment of a device, for the status page (one wave: the pleth when there is one).
#[derive(Debug, Clone, serde::Serialize)]
pub struct LiveTrace {
    pub metric: u32,
    pub label: String,
    pub start: String,
    pub seq: u64,
    pub after_gap: bool,
    pub rate_hz: f64,
    pub min_raw: i32,
    pub max_raw: i32,
    /// Raw samples; `null` where a sample is marked invalid or missing.
    pub samples: Vec<Option<i32>>,
}

/// The status page's view of a device's wave.
#[derive(Debug, Default)]
pub struct LiveWave(Mutex<Option<LiveTrace>>);

impl LiveWave {
    pub fn get(&self) -> Option<LiveTrace> {
        self.0.lock().ok().and_then(|g| g.clone())
    }

    fn set(&self, seg: &WaveSegment, nom: &Nomenclature) {
        let label = nom.metric(seg.metric).map(|m| m.ref_id.to_string()).unwrap_or_else(|| seg.metric.0.to_string());
        let invalid = medgw_protocols::wave::SampleMarks::INVALID.union(medgw_protocols::wave::SampleMarks::MISSING);
        let samples = seg.samples.iter().enumerate().map(|(i, &s)| (!seg.mark(i).intersects(invalid)).then_some(s)).collect();
        let trace = LiveTrace {
            metric: seg.metric.0,
            label,
            start: seg.start.rfc3339().to_string(),
            seq: seg.seq,
            after_gap: seg.after_gap,
            rate_hz: seg.period.rate_hz().to_f64(),
            min_raw: seg.scale.min_raw,
            max_raw: seg.scale.max_raw,
            samples,
        };
        if let Ok(mut g) = self.0.lock() {
            // The pleth is the trace a bedside view shows; another wave only while there is none.
            let keep_pleth = g.as_ref().is_some_and(|t| t.metric == code::MDC_PULS_OXIM_PLETH.0) && seg.metric != code::MDC_PULS_OXIM_PLETH;
            if !keep_pleth {
                *g = Some(trace);
            }
        }
    }
}

/// One device's segmenter and its way to the sink.
pub struct DeviceWaves {
    segmenter: Segmenter,
    segments: Vec<WaveSegment>,
    link: WaveLink,
    topic: String,
    nomenclature: Arc<Nomenclature>,
    log: LogLimiter<&'static str>,
    buf: Vec<u8>,
}

impl DeviceWaves {
    pub fn new(link: WaveLink, topic: String, nomenclature: Arc<Nomenclature>) -> DeviceWaves {
        let segmenter = Segmenter::new(SegmenterConfig { segment_ms: link.segment_ms, ..Default::default() });
        DeviceWaves { segmenter, segments: Vec::new(), link, topic, nomenclature, log: LogLimiter::default(), buf: Vec::new() }
    }

    /// A decoder's chunk. A chunk the segmenter refuses (invalid period or scale) is logged
    /// (rate-limited) and the stream goes on after a gap.
    pub fn push(&mut self, chunk: &WaveChunk, device: &str) {
        if let Err(e) = self.segmenter.push(chunk, &mut self.segments) {
            if let Some(suppressed) = self.log.report("refused", std::time::Instant::now()) {
                tracing::warn!(device, error = %e, suppressed, "wave samples refused");
            }
        }
    }

    /// Closes waves that stopped.
    pub fn idle(&mut self, now: Timestamp) {
        self.segmenter.flush_idle(now, self.link.segment_ms as i64 * IDLE_SEGMENTS, &mut self.segments);
    }

    /// Closes every open segment (disconnect, shutdown): the next starts after a gap.
    pub fn flush(&mut self) {
        self.segmenter.flush(&mut self.segments);
    }

    /// Encodes the segments closed so far and hands them to the sink; `ctx_at` is the device's
    /// context with the patient valid at a segment's start (the ADT association, as readings).
    pub fn publish(&mut self, ctx_at: &dyn Fn(Timestamp) -> Arc<DeviceContext>, live: &LiveWave, now: Timestamp) {
        for seg in std::mem::take(&mut self.segments) {
            let ctx = &*ctx_at(seg.start);
            live.set(&seg, &self.nomenclature);
            self.buf.clear();
            match self.link.format {
                PayloadFormat::Fhir => encode::write_fhir(&mut self.buf, &seg, ctx, &self.nomenclature, now),
                PayloadFormat::Canonical => encode::write_canonical(&mut self.buf, &seg, ctx, &self.nomenclature),
                PayloadFormat::Hl7v2 => {
                    let id = encode::segment_id(ctx, &seg).to_string();
                    self.buf.extend_from_slice(encode::hl7(&seg, ctx, &self.nomenclature, &id, now).as_bytes());
                }
            }
            let m = WaveMessage {
                topic: self.topic.clone(),
                payload: Bytes::copy_from_slice(&self.buf),
                content_type: self.link.format.content_type(),
                stored: None,
            };
            if self.link.tx.try_send(m).is_err() {
                self.link.stats.waves_dropped.fetch_add(1, Ordering::Relaxed);
                if let Some(suppressed) = self.log.report("dropped", std::time::Instant::now()) {
                    tracing::warn!(device = %ctx.name, suppressed, "wave segment dropped: the sink is not keeping up (waves are not buffered)");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use medgw_protocols::mdc::unit;
    use medgw_protocols::observation::Flags;
    use medgw_protocols::wave::{Continuity, SamplePeriod, WaveScale};

    fn chunk(start: i64, continuity: Continuity, n: usize) -> WaveChunk {
        WaveChunk {
            metric: code::MDC_PULS_OXIM_PLETH,
            period: SamplePeriod::per_second(75),
            scale: WaveScale::identity(unit::MDC_DIM_DIMLESS, 0, 255),
            start: Timestamp(start),
            continuity,
            flags: Flags::NONE,
            samples: (0..n as i32).collect(),
            marks: Vec::new(),
        }
    }

    fn waves(capacity: usize, format: PayloadFormat) -> (DeviceWaves, mpsc::Receiver<WaveMessage>, Arc<SinkStats>) {
        let (tx, rx) = mpsc::channel(capacity);
        let stats = Arc::new(SinkStats::default());
        let link = WaveLink { tx, format, segment_ms: 1000, stats: stats.clone() };
        (DeviceWaves::new(link, "p/gw/BED1/spo2/wave".into(), Arc::new(Nomenclature::builtin())), rx, stats)
    }

    #[test]
    fn chunks_become_numbered_one_second_segments_on_the_wave_topic() {
        let (mut w, mut rx, _) = waves(16, PayloadFormat::Canonical);
        let live = LiveWave::default();
        let ctx = DeviceContext { name: "spo2".into(), ..Default::default() };
        for i in 0..9 {
            w.push(&chunk(1000 + i * 333, if i == 0 { Continuity::Broken } else { Continuity::Continuous }, 25), "spo2");
            w.publish(&|_| Arc::new(ctx.clone()), &live, Timestamp(2000));
        }
        let mut seqs = Vec::new();
        while let Ok(m) = rx.try_recv() {
            assert_eq!(m.topic, "p/gw/BED1/spo2/wave");
            let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
            assert_eq!(v["samples"].as_array().unwrap().len(), 75);
            seqs.push(v["seq"].as_u64().unwrap());
        }
        assert_eq!(seqs, [0, 1, 2]);
        let t = live.get().unwrap();
        assert_eq!((t.seq, t.samples.len(), t.label.as_str()), (2, 75, "MDC_PULS_OXIM_PLETH"));
    }

    #[test]
    fn flush_and_idle_close_the_open_segment() {
        let (mut w, mut rx, _) = waves(16, PayloadFormat::Fhir);
        let live = LiveWave::default();
        let ctx = DeviceContext { name: "spo2".into(), ..Default::default() };
        w.push(&chunk(1000, Continuity::Broken, 30), "spo2");
        w.idle(Timestamp(2000));
        w.publish(&|_| Arc::new(ctx.clone()), &live, Timestamp(2000));
        assert!(rx.try_recv().is_err(), "not idle yet");
        w.idle(Timestamp(4000));
        w.publish(&|_| Arc::new(ctx.clone()), &live, Timestamp(4000));
        let m = rx.try_recv().unwrap();
        assert!(std::str::from_utf8(&m.payload).unwrap().contains("valueSampledData"));
        w.push(&chunk(5000, Continuity::Broken, 10), "spo2");
        w.flush();
        w.publish(&|_| Arc::new(ctx.clone()), &live, Timestamp(5000));
        assert!(rx.try_recv().is_ok());
    }

    #[test]
    fn a_full_channel_counts_the_segments_it_drops() {
        let (mut w, _rx, stats) = waves(1, PayloadFormat::Hl7v2);
        let live = LiveWave::default();
        let ctx = DeviceContext { name: "spo2".into(), ..Default::default() };
        w.push(&chunk(1000, Continuity::Broken, 75 * 3), "spo2");
        w.publish(&|_| Arc::new(ctx.clone()), &live, Timestamp(5000));
        assert_eq!(stats.waves_dropped.load(Ordering::Relaxed), 2);
    }
}
