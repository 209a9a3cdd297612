//! The live hand-over: rows just committed, passed in memory to every sink so that a reading
//! goes out as soon as it is durable instead of when a sink next reads the buffer. The storage
//! thread hands a batch over right after its commit (`handle.rs`), before its source hears
//! that it is durable: one hop less than through the source task.
//!
//! Each sink (the MQTT sink, each `[[sink]]`) has its own bounded queue and its own overflow
//! flag: a sink that cannot take more (its engine is down, its window is full) loses nothing —
//! the row is in the buffer and the flag sends that sink's backlog cursor to look again — and it
//! never slows a source or another sink. The buffer stays the truth; this is only the shortcut.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use medgw_protocols::observation::Observation;

use super::{Entry, RowId};

/// One sink's end: the rows handed over, and the flag set when some did not fit.
pub struct LiveReceiver {
    pub rows: mpsc::Receiver<Entry>,
    /// Set by the sources when this sink's queue was full (rows left for its backlog).
    pub overflow: Arc<AtomicBool>,
}

struct LiveSender {
    tx: mpsc::Sender<Entry>,
    overflow: Arc<AtomicBool>,
}

/// The sources' end: hands each committed row to every sink. Cheap to clone.
#[derive(Clone, Default)]
pub struct LiveHandOver {
    sinks: Arc<Vec<LiveSender>>,
}

impl LiveHandOver {
    /// A hand-over to the sinks whose queues are built by [`LiveHandOver::builder`].
    pub fn builder() -> LiveBuilder {
        LiveBuilder { sinks: Vec::new() }
    }

    /// Passes committed rows (`rowids[i]` is `batch[i]`'s row) to every sink, in order.
    pub(super) fn hand_over_batch(&self, rowids: &[RowId], batch: &[Observation]) {
        for (&rowid, observation) in rowids.iter().zip(batch) {
            self.hand_over(Entry { rowid, observation: observation.clone() });
        }
    }

    /// Passes a committed row to every sink without waiting: a full queue sets that sink's
    /// overflow flag instead.
    pub fn hand_over(&self, e: Entry) {
        let Some((last, rest)) = self.sinks.split_last() else { return };
        for s in rest {
            if s.tx.try_send(e.clone()).is_err() {
                s.overflow.store(true, Ordering::Relaxed);
            }
        }
        if last.tx.try_send(e).is_err() {
            last.overflow.store(true, Ordering::Relaxed);
        }
    }
}

/// Builds a [`LiveHandOver`] one sink at a time.
pub struct LiveBuilder {
    sinks: Vec<LiveSender>,
}

impl LiveBuilder {
    /// A queue of `capacity` rows for one more sink.
    pub fn sink(&mut self, capacity: usize) -> LiveReceiver {
        let (tx, rows) = mpsc::channel(capacity);
        let overflow = Arc::new(AtomicBool::new(false));
        self.sinks.push(LiveSender { tx, overflow: overflow.clone() });
        LiveReceiver { rows, overflow }
    }

    pub fn build(self) -> LiveHandOver {
        LiveHandOver { sinks: Arc::new(self.sinks) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use medgw_protocols::mdc::{code, unit};
    use medgw_protocols::observation::{DeviceContext, Flags, Measurement, Observation};
    use medgw_protocols::{Decimal, Timestamp};

    fn entry(rowid: i64) -> Entry {
        let m = Measurement::numeric(code::MDC_PULS_OXIM_SAT_O2, Decimal::from_int(95), unit::MDC_DIM_PERCENT);
        Entry { rowid, observation: Observation::new(Arc::new(DeviceContext::default()), m, Timestamp(rowid), None, Flags::NONE) }
    }

    #[test]
    fn every_sink_gets_each_row_and_a_full_queue_flags_only_its_own_sink() {
        let mut b = LiveHandOver::builder();
        let mut mqtt = b.sink(4);
        let mut engine = b.sink(1);
        let live = b.build();
        live.hand_over(entry(1));
        live.hand_over(entry(2));
        assert_eq!(mqtt.rows.try_recv().unwrap().rowid, 1);
        assert_eq!(mqtt.rows.try_recv().unwrap().rowid, 2);
        assert!(!mqtt.overflow.load(Ordering::Relaxed));
        assert_eq!(engine.rows.try_recv().unwrap().rowid, 1);
        assert!(engine.rows.try_recv().is_err(), "row 2 did not fit");
        assert!(engine.overflow.load(Ordering::Relaxed), "so the engine's backlog must look again");
    }
}
