//! Waveform segments on their way to the broker: a bounded in-memory queue below observations
//! and events (docs/waveforms.md).
//!
//! Waves are not buffered durably: a segment a second per wave and device would crowd the
//! buffer that observations rely on, and a receiver can live with a lost second of pleth when it
//! sees the gap (segments are numbered per stream). So the queue keeps at most its capacity and
//! drops the *oldest* segment when full — the newest matter most for a live view — counting
//! every drop in [`SinkStats::waves_dropped`] and logging it at most once a minute with the
//! count. A segment is never dropped silently.
//!
//! With `[waves] durable = true` the segments are in the disk buffer (`buffer/waves.rs`,
//! `sink/durable_waves.rs` feeds them here) and this queue only holds the ones read ahead: it
//! never drops — the driver stops taking segments while it is full ([`WaveQueue::has_room`]) —
//! and a PUBACK names the stored segment to delete ([`WaveAcks`]).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;

use super::SinkStats;
use crate::log_limit::LogLimiter;

/// One encoded segment for the wave topic.
#[derive(Debug, Clone)]
pub struct WaveMessage {
    pub topic: String,
    pub payload: Bytes,
    pub content_type: &'static str,
    /// Durable waves: the segment's id in the buffer, deleted on its PUBACK.
    pub stored: Option<i64>,
}

/// Ids of stored segments the broker acknowledged, collected by the sink for the task that
/// deletes them (`sink/durable_waves.rs`).
pub type WaveAcks = std::sync::Arc<std::sync::Mutex<Vec<i64>>>;

/// The sink's queue of wave segments; QoS 1 segments in flight are kept until acknowledged and
/// go out again after a reconnect.
#[derive(Debug)]
pub(crate) struct WaveQueue {
    queue: VecDeque<(u64, WaveMessage)>,
    in_flight: Vec<(u64, WaveMessage)>,
    capacity: usize,
    qos: u8,
    next_id: u64,
    log: LogLimiter<()>,
    /// Durable: where acknowledged stored segments go; the queue never drops.
    durable: Option<WaveAcks>,
}

impl Default for WaveQueue {
    fn default() -> Self {
        WaveQueue::new(crate::config::WavesConfig::default().queue, 0)
    }
}

impl WaveQueue {
    pub(crate) fn new(capacity: usize, qos: u8) -> WaveQueue {
        WaveQueue {
            queue: VecDeque::new(),
            in_flight: Vec::new(),
            capacity: capacity.max(1),
            qos: qos.min(1),
            next_id: 0,
            log: LogLimiter::default(),
            durable: None,
        }
    }

    /// A queue for durable waves: it holds at most `capacity` read-ahead segments (QoS 1) and
    /// reports the stored ids the broker acknowledged into `acks`.
    pub(crate) fn durable(capacity: usize, acks: WaveAcks) -> WaveQueue {
        WaveQueue { durable: Some(acks), ..WaveQueue::new(capacity, 1) }
    }

    /// Whether the driver should take another segment now (always, unless durable and full:
    /// a durable segment waits in the buffer instead of being dropped here).
    pub(crate) fn has_room(&self) -> bool {
        self.durable.is_none() || self.queue.len() + self.in_flight.len() < self.capacity
    }

    /// At the end of the shutdown drain: what is still here is lost unless durable (then it
    /// stays in the buffer). Counts and logs the loss; returns the segments lost.
    pub(crate) fn abandon(&mut self, stats: &SinkStats) -> u64 {
        let n = (self.queue.len() + self.in_flight.len()) as u64;
        self.queue.clear();
        self.in_flight.clear();
        if n > 0 {
            if self.durable.is_some() {
                tracing::info!(segments = n, "shutdown: wave segments not sent stay in the buffer for the next start");
                return 0;
            }
            stats.waves_dropped.fetch_add(n, Ordering::Relaxed);
            tracing::warn!(
                lost = n,
                total_dropped = stats.waves_dropped.load(Ordering::Relaxed),
                "shutdown: wave segments not sent within the drain are lost (waves are not durable)"
            );
        }
        n
    }

    pub(crate) fn qos(&self) -> u8 {
        self.qos
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// Queues a segment; when the queue is full the oldest queued one is dropped and counted.
    pub(crate) fn push(&mut self, m: WaveMessage, stats: &SinkStats, now: Instant) {
        if self.durable.is_none() && self.queue.len() + self.in_flight.len() >= self.capacity {
            if self.queue.pop_front().is_some() {
                self.dropped(1, stats, now);
            } else {
                // Everything is in flight (capacity below the window): the new one goes.
                self.dropped(1, stats, now);
                return;
            }
        }
        self.next_id += 1;
        self.queue.push_back((self.next_id, m));
    }

    fn dropped(&mut self, n: u64, stats: &SinkStats, now: Instant) {
        stats.waves_dropped.fetch_add(n, Ordering::Relaxed);
        if let Some(suppressed) = self.log.report((), now) {
            tracing::warn!(
                queue = self.capacity,
                dropped_before = suppressed,
                total_dropped = stats.waves_dropped.load(Ordering::Relaxed),
                "wave queue full: oldest wave segments dropped (the broker is slow or away; waves are not buffered)"
            );
        }
    }

    /// The next segment to publish. QoS 1 segments are held as in flight until [`WaveQueue::acked`].
    pub(crate) fn pop(&mut self) -> Option<(u64, WaveMessage)> {
        let item = self.queue.pop_front()?;
        if self.qos == 1 {
            self.in_flight.push(item.clone());
        }
        Some(item)
    }

    pub(crate) fn acked(&mut self, id: u64) {
        if let Some(acks) = &self.durable {
            if let Some(stored) = self.in_flight.iter().find(|(i, _)| *i == id).and_then(|(_, m)| m.stored) {
                acks.lock().unwrap_or_else(|p| p.into_inner()).push(stored);
            }
        }
        self.in_flight.retain(|(i, _)| *i != id);
    }

    /// After a reconnect: QoS 1 segments that were not acknowledged go out again first.
    pub(crate) fn connection_lost(&mut self) {
        for item in self.in_flight.drain(..).rev() {
            self.queue.push_front(item);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(i: u32) -> WaveMessage {
        WaveMessage { topic: format!("t/{i}"), payload: Bytes::new(), content_type: "application/json", stored: Some(i as i64) }
    }

    #[test]
    fn full_queue_drops_the_oldest_and_counts_it() {
        let stats = SinkStats::default();
        let mut q = WaveQueue::new(3, 0);
        let now = Instant::now();
        for i in 0..5 {
            q.push(m(i), &stats, now);
        }
        assert_eq!(stats.waves_dropped.load(Ordering::Relaxed), 2);
        let topics: Vec<String> = std::iter::from_fn(|| q.pop()).map(|(_, w)| w.topic).collect();
        assert_eq!(topics, ["t/2", "t/3", "t/4"]);
    }

    #[test]
    fn qos1_in_flight_goes_out_again_after_a_reconnect() {
        let stats = SinkStats::default();
        let mut q = WaveQueue::new(8, 1);
        let now = Instant::now();
        for i in 0..3 {
            q.push(m(i), &stats, now);
        }
        let (a, _) = q.pop().unwrap();
        let (_b, _) = q.pop().unwrap();
        q.acked(a);
        q.connection_lost();
        let topics: Vec<String> = std::iter::from_fn(|| q.pop()).map(|(_, w)| w.topic).collect();
        assert_eq!(topics, ["t/1", "t/2"]);
        // QoS 0 keeps nothing once sent.
        let mut q = WaveQueue::new(8, 0);
        q.push(m(0), &stats, now);
        q.pop();
        q.connection_lost();
        assert!(q.pop().is_none());
    }

    #[test]
    fn a_durable_queue_never_drops_and_names_the_stored_segment_acknowledged() {
        let stats = SinkStats::default();
        let acks = WaveAcks::default();
        let mut q = WaveQueue::durable(2, acks.clone());
        let now = Instant::now();
        q.push(m(10), &stats, now);
        assert!(q.has_room());
        q.push(m(11), &stats, now);
        assert!(!q.has_room(), "full: the driver leaves the next in the buffer");
        q.push(m(12), &stats, now);
        assert_eq!(stats.waves_dropped.load(Ordering::Relaxed), 0);
        let (a, _) = q.pop().unwrap();
        let (_b, _) = q.pop().unwrap();
        q.acked(a);
        assert_eq!(*acks.lock().unwrap(), [10]);
        q.connection_lost();
        let topics: Vec<String> = std::iter::from_fn(|| q.pop()).map(|(_, w)| w.topic).collect();
        assert_eq!(topics, ["t/11", "t/12"]);
        // At shutdown what is left stays in the buffer: not counted as lost.
        assert_eq!(q.abandon(&stats), 0);
        assert_eq!(stats.waves_dropped.load(Ordering::Relaxed), 0);
        let mut q = WaveQueue::new(4, 0);
        q.push(m(1), &stats, now);
        assert_eq!(q.abandon(&stats), 1);
        assert_eq!(stats.waves_dropped.load(Ordering::Relaxed), 1, "not durable: the loss is counted");
    }
}
