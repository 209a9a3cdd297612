//! Messages outside the buffer: gateway status, Device resources, events.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::SinkStats;

/// A message outside the buffer: gateway status, Device resources, events.
#[derive(Debug, Clone)]
pub struct AuxMessage {
    pub topic: String,
    pub payload: Bytes,
    pub retain: bool,
    /// Retained state (status, Device): a newer message for the same topic replaces a queued
    /// older one, and it is sent again after every reconnect.
    pub sticky: bool,
}

/// Events kept for the broker at most while it is unreachable (older ones are counted and
/// dropped; observations are never dropped here — they live in the buffer).
const AUX_CAPACITY: usize = 2048;

/// The queue of non-buffered messages.
#[derive(Debug, Default)]
pub(crate) struct AuxQueue {
    queue: VecDeque<(u64, AuxMessage)>,
    sticky: Vec<AuxMessage>,
    in_flight: Vec<(u64, AuxMessage)>,
    next_id: u64,
}

impl AuxQueue {
    pub(crate) fn push(&mut self, m: AuxMessage, stats: &SinkStats) {
        if m.sticky {
            self.sticky.retain(|s| s.topic != m.topic);
            self.sticky.push(m.clone());
            self.queue.retain(|(_, q)| q.topic != m.topic);
        } else if self.queue.len() >= AUX_CAPACITY {
            self.queue.pop_front();
            stats.events_dropped.fetch_add(1, Ordering::Relaxed);
        }
        self.next_id += 1;
        self.queue.push_back((self.next_id, m));
    }

    pub(crate) fn pop(&mut self) -> Option<(u64, AuxMessage)> {
        let item = self.queue.pop_front()?;
        self.in_flight.push(item.clone());
        Some(item)
    }

    pub(crate) fn acked(&mut self, id: u64) {
        self.in_flight.retain(|(i, _)| *i != id);
    }

    /// After a reconnect: unacknowledged events go out again, and all retained state.
    pub(crate) fn connection_lost(&mut self) {
        let lost: Vec<(u64, AuxMessage)> = self.in_flight.drain(..).filter(|(_, m)| !m.sticky).collect();
        for item in lost.into_iter().rev() {
            self.queue.push_front(item);
        }
        self.queue.retain(|(_, m)| !m.sticky);
        for m in self.sticky.clone() {
            self.next_id += 1;
            self.queue.push_front((self.next_id, m));
        }
    }
}
