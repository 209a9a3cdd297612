//! The in-flight window: which packet id carries which message.
//!
//! medgw assigns MQTT packet ids itself. rumqttc's `AsyncClient::publish` returns before the
//! broker acknowledges and never tells which packet id it used (rumqttc #349, #805); correlating
//! its `Outgoing(Publish(pkid))` events with calls in order breaks after a reconnect, when stale
//! events and dropped requests shift the order — and a shifted correlation deletes from the
//! buffer a row that was never delivered. Owning the ids makes a PUBACK name its row exactly.

use std::collections::VecDeque;

use crate::buffer::RowId;
use crate::int_hash::IntMap;
use crate::sink::delivery::Delivery;

/// What a packet id is carrying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Carried {
    /// A set of buffered rows (one or more observations in one message): acknowledged means
    /// every row of it is deleted from the buffer.
    Rows(Delivery),
    /// A message outside the buffer (status, Device resource, event), by its queue id.
    Aux(u64),
    /// A waveform segment (QoS 1), by its wave-queue id (`waves.rs`).
    Wave(u64),
}

/// Packet ids `1..=limit` and what each carries.
#[derive(Debug)]
pub struct Window {
    free: VecDeque<u16>,
    in_flight: IntMap<u16, Carried>,
    limit: u16,
}

impl Window {
    /// A window of `limit` packet ids (MQTT allows 1..=65535).
    pub fn new(limit: u16) -> Window {
        let limit = limit.max(1);
        Window { free: (1..=limit).collect(), in_flight: IntMap::with_capacity_and_hasher(limit as usize, Default::default()), limit }
    }

    pub fn limit(&self) -> u16 {
        self.limit
    }

    pub fn has_room(&self) -> bool {
        !self.free.is_empty()
    }

    pub fn len(&self) -> usize {
        self.in_flight.len()
    }

    pub fn is_empty(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// Takes a packet id for `what`. Ids are reused least recently first, so an id comes back
    /// only after `limit - 1` others: a late duplicate PUBACK cannot hit a fresh message.
    pub fn take(&mut self, what: Carried) -> Option<u16> {
        let pkid = self.free.pop_front()?;
        self.in_flight.insert(pkid, what);
        Some(pkid)
    }

    /// The broker acknowledged `pkid`: returns what it carried (`None` for an unknown id).
    pub fn release(&mut self, pkid: u16) -> Option<Carried> {
        let what = self.in_flight.remove(&pkid)?;
        self.free.push_back(pkid);
        Some(what)
    }

    /// The connection is gone: every message in flight is undelivered. Returns them; the ids
    /// are free again.
    pub fn reset(&mut self) -> Vec<Carried> {
        let lost: Vec<Carried> = self
            .in_flight
            .drain()
            .map(|(pkid, what)| {
                self.free.push_back(pkid);
                what
            })
            .collect();
        lost
    }

    pub fn carries_row(&self, row: RowId) -> bool {
        self.in_flight.values().any(|c| matches!(c, Carried::Rows(d) if d.rows.contains(row)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::delivery::RowSet;

    fn rows(r: &[RowId]) -> Carried {
        Carried::Rows(Delivery { rows: RowSet::new(r).unwrap(), receipt: 0, device: "d".into() })
    }

    #[test]
    fn ids_map_exactly_and_are_reused_last() {
        let mut w = Window::new(3);
        let a = w.take(rows(&[10])).unwrap();
        let b = w.take(rows(&[11, 13])).unwrap();
        let c = w.take(Carried::Aux(1)).unwrap();
        assert!(!w.has_room());
        assert_eq!(w.take(rows(&[12])), None);
        // Acknowledged out of order.
        assert_eq!(w.release(b), Some(rows(&[11, 13])));
        assert_eq!(w.release(b), None, "a duplicate PUBACK is ignored");
        assert_eq!(w.release(999), None);
        let d = w.take(rows(&[12])).unwrap();
        assert_eq!(d, b);
        assert_eq!(w.release(a), Some(rows(&[10])));
        assert_eq!(w.release(c), Some(Carried::Aux(1)));
        assert!(w.carries_row(12));
        assert!(!w.carries_row(13));
        let lost = w.reset();
        assert_eq!(lost, vec![rows(&[12])]);
        assert!(w.is_empty());
        assert_eq!(w.free.len(), 3);
    }

    proptest::proptest! {
        /// Against a model: ids stay within the broker's limit, an id in flight is never handed
        /// out again, a release returns exactly what was taken, and the window is full exactly
        /// when `limit` messages are in flight.
        #[test]
        fn the_window_matches_a_model(limit in 1u16..8, ops in proptest::collection::vec((proptest::prelude::any::<bool>(), 0u16..10), 0..200)) {
            let mut w = Window::new(limit);
            let mut model: std::collections::HashMap<u16, Carried> = std::collections::HashMap::new();
            let mut next = 0i64;
            for (take, pick) in ops {
                if take {
                    next += 1;
                    match w.take(rows(&[next])) {
                        Some(pkid) => {
                            proptest::prop_assert!((1..=limit).contains(&pkid));
                            proptest::prop_assert!(model.insert(pkid, rows(&[next])).is_none(), "id {} handed out twice", pkid);
                        }
                        None => proptest::prop_assert_eq!(model.len(), limit as usize),
                    }
                } else {
                    proptest::prop_assert_eq!(w.release(pick), model.remove(&pick));
                }
                proptest::prop_assert_eq!(w.len(), model.len());
                proptest::prop_assert_eq!(w.has_room(), model.len() < limit as usize);
            }
            let mut lost = w.reset();
            let mut expected: Vec<Carried> = model.into_values().collect();
            let key = |c: &Carried| match c { Carried::Rows(d) => d.rows.as_slice()[0], Carried::Aux(id) | Carried::Wave(id) => *id as i64 };
            lost.sort_by_key(key);
            expected.sort_by_key(key);
            proptest::prop_assert_eq!(lost, expected);
        }
    }
}
