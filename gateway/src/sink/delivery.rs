//! The rows one message carries, and what the sink does with them when the peer answers.
//!
//! A message covers a *set* of buffer rows: one row today (one observation per MQTT message),
//! several for an HL7 PCD-01 message that reports every observation of a device at one
//! effective time. The set is the unit of delivery: acknowledged, every row of it is deleted
//! from the buffer; refused or lost, every row of it stays and is offered again. No row is ever
//! acknowledged on its own while others of its message are not.
//!
//! Protocol-free on purpose: the MQTT sink keys deliveries by packet id (`mqtt/window.rs`), an
//! MLLP sink would key them by the message control id (MSH-10) it waits an ACK for, and both
//! settle them through [`Delivery::acked`] / [`Delivery::refused`] against the same `Outbox`.

use std::sync::Arc;

use crate::buffer::RowId;
use crate::sink::outbox::Outbox;

/// The row ids of one message, in the order they were taken. One row costs no allocation
/// (the common case, and every message but PCD-01 groups).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowSet {
    One(RowId),
    Many(Box<[RowId]>),
}

impl RowSet {
    /// The set of `rows`; `None` when empty (a message always carries at least one row).
    pub fn new(rows: &[RowId]) -> Option<RowSet> {
        match rows {
            [] => None,
            [one] => Some(RowSet::One(*one)),
            many => Some(RowSet::Many(many.into())),
        }
    }

    pub fn as_slice(&self) -> &[RowId] {
        match self {
            RowSet::One(r) => std::slice::from_ref(r),
            RowSet::Many(rows) => rows,
        }
    }

    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn contains(&self, row: RowId) -> bool {
        self.as_slice().contains(&row)
    }
}

/// A message out with the peer: its rows and what the statistics need when it is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub rows: RowSet,
    /// Receipt time of the earliest row (the latency of the set is that of its oldest reading).
    pub receipt: i64,
    /// The device's name, shared (for per-device delivery counts without an allocation).
    pub device: Arc<str>,
}

impl Delivery {
    /// The peer took the message: every row is delivered. Appends the rows to `acked` (handed
    /// to the buffer for deletion) and tells the outbox.
    pub fn acked(&self, outbox: &mut Outbox, acked: &mut Vec<RowId>) {
        for &row in self.rows.as_slice() {
            outbox.acked(row);
            acked.push(row);
        }
    }

    /// The peer refused the message: every row stays buffered and is retried together.
    pub fn refused(&self, outbox: &mut Outbox) {
        for &row in self.rows.as_slice() {
            outbox.refused(row);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_of_one_is_one_row_and_sets_keep_their_order() {
        assert_eq!(RowSet::new(&[]), None);
        assert_eq!(RowSet::new(&[7]), Some(RowSet::One(7)));
        let many = RowSet::new(&[9, 3, 5]).unwrap();
        assert_eq!(many.as_slice(), &[9, 3, 5]);
        assert_eq!(many.len(), 3);
        assert!(many.contains(3) && !many.contains(4));
    }
}
