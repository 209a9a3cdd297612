//! Which buffered observation to publish next.
//!
//! Two sources feed the outbox: the *live* path (rows the pipeline just committed, handed over
//! in memory so the current value goes out within milliseconds) and the *backlog* (rows read
//! back from the buffer by row id: after a restart, after a reconnect, or when the live path
//! overflowed). The buffer is the truth; the live path is only a shortcut, so anything the live
//! path drops is still found by the backlog cursor.
//!
//! Replay policies (config `buffer.replay`):
//! - `live-first` (default): live rows go out first; the backlog drains, oldest first, in the
//!   capacity live data leaves. Per device, the backlog is in order and live data is in order.
//! - `ordered`: every row goes out in row-id order, so each device's topic sees its
//!   observations strictly in the order they were accepted.
//!
//! No row is sent twice on one connection: rows in flight, queued, or acknowledged but not
//! yet deleted are skipped when the backlog is read.
//!
//! Rows go out in *sets*: one message may carry several rows ([`Outbox::next_entry`] opens a
//! set, [`Outbox::next_if`] adds the rows queued right behind it that belong with it), and the
//! sink acknowledges or refuses every row of a set together (see `delivery.rs`).
//!
//! Nothing here knows MQTT: the outbox speaks rows, and a sink speaks it in these calls —
//! `push_live`/`live_overflowed` as rows arrive, `backlog_request`/`backlog_read` to read the
//! buffer, `next_entry`/`next_if` to fill a message, `acked`/`refused` per row as the peer
//! answers, `connection_lost` when the connection goes. The MLLP sink is meant to drive the
//! same calls with its own framing and ACKs.

use std::collections::{BTreeSet, VecDeque};

use crate::buffer::{Entry, RowId};
use crate::config::Replay;
use crate::int_hash::IntSet;

/// Rows read from the buffer per backlog read. Each read costs a task and one statement, so
/// 1,024 rows keep that small against the rows' own cost, while the rows held (up to 1.25
/// reads' worth, decoded, ~350 bytes each) stay a fraction of a megabyte (issue 20: 4,096
/// made the backlog the largest heap user at full speed, 1.4 MB).
pub const BACKLOG_BATCH: usize = 1024;
/// Rows of live data held in memory at most (and the live channel's capacity); beyond it
/// they are left to the backlog. 1,024 rows are 30 ms at 34,000 observations/s.
pub const LIVE_CAPACITY: usize = 1024;
/// Acknowledged rows remembered until the buffer has surely deleted them.
const RECENT_ACKS: usize = 16_384;

#[derive(Debug)]
pub struct Outbox {
    mode: Replay,
    live: VecDeque<Entry>,
    live_rows: IntSet<RowId>,
    backlog: VecDeque<Entry>,
    backlog_rows: IntSet<RowId>,
    /// Highest row id read from the buffer.
    cursor: RowId,
    /// The buffer may hold rows beyond `cursor` that are not in `live`.
    backlog_maybe: bool,
    in_flight: IntSet<RowId>,
    recent_acks: BTreeSet<RowId>,
    /// The queue the last row came from: the rows of one set come from one queue, in order.
    last_from: Option<Queue>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Queue {
    Live,
    Backlog,
}

impl Outbox {
    pub fn new(mode: Replay) -> Outbox {
        Outbox {
            mode,
            live: VecDeque::new(),
            live_rows: IntSet::default(),
            backlog: VecDeque::new(),
            backlog_rows: IntSet::default(),
            cursor: 0,
            // At start-up the buffer may hold anything from before a crash.
            backlog_maybe: true,
            in_flight: IntSet::default(),
            recent_acks: BTreeSet::new(),
            last_from: None,
        }
    }

    /// Whether the live path can take more.
    pub fn wants_live(&self) -> bool {
        self.live.len() < LIVE_CAPACITY
    }

    /// A row the pipeline just committed.
    pub fn push_live(&mut self, e: Entry) {
        match self.mode {
            Replay::Ordered => self.backlog_maybe = true,
            Replay::LiveFirst => {
                if e.rowid <= self.cursor || self.in_flight.contains(&e.rowid) || self.recent_acks.contains(&e.rowid) {
                    // Already read by the backlog cursor: it goes out from there.
                    return;
                }
                if self.live.len() >= LIVE_CAPACITY {
                    self.backlog_maybe = true;
                    return;
                }
                self.live_rows.insert(e.rowid);
                self.live.push_back(e);
            }
        }
    }

    /// The live path lost rows (its channel was full): the backlog must look again.
    pub fn live_overflowed(&mut self) {
        self.backlog_maybe = true;
    }

    /// `Some((after, limit))` when the driver should read the backlog now.
    pub fn backlog_request(&self) -> Option<(RowId, usize)> {
        (self.backlog_maybe && self.backlog.len() < BACKLOG_BATCH / 4).then_some((self.cursor, BACKLOG_BATCH))
    }

    /// The result of a backlog read requested with [`Outbox::backlog_request`].
    pub fn backlog_read(&mut self, after: RowId, entries: Vec<Entry>, limit: usize) {
        if after != self.cursor {
            // The cursor moved (a reconnect reset it) while the read was under way.
            return;
        }
        if entries.len() < limit {
            self.backlog_maybe = false;
        }
        for e in entries {
            self.cursor = self.cursor.max(e.rowid);
            if self.in_flight.contains(&e.rowid) || self.recent_acks.contains(&e.rowid) || self.backlog_rows.contains(&e.rowid) {
                continue;
            }
            if self.live_rows.remove(&e.rowid) {
                // Queued live as well: send it once, in backlog order.
                self.live.retain(|l| l.rowid != e.rowid);
            }
            self.backlog_rows.insert(e.rowid);
            self.backlog.push_back(e);
        }
    }

    /// The next row to publish: the first of a new set.
    pub fn next_entry(&mut self) -> Option<Entry> {
        let from = match self.mode {
            Replay::LiveFirst if !self.live.is_empty() => Queue::Live,
            _ if !self.backlog.is_empty() => Queue::Backlog,
            _ => {
                self.last_from = None;
                return None;
            }
        };
        self.last_from = Some(from);
        self.take(from)
    }

    /// The row queued right behind the last one taken, if `belongs` says it goes into the same
    /// set (for HL7 PCD-01: same device and effective time). Never reorders: a row that does
    /// not belong ends the set.
    pub fn next_if(&mut self, belongs: impl FnOnce(&Entry) -> bool) -> Option<Entry> {
        let from = self.last_from?;
        let front = match from {
            Queue::Live => self.live.front(),
            Queue::Backlog => self.backlog.front(),
        }?;
        if !belongs(front) {
            return None;
        }
        self.take(from)
    }

    fn take(&mut self, from: Queue) -> Option<Entry> {
        let e = match from {
            Queue::Live => self.live.pop_front(),
            Queue::Backlog => self.backlog.pop_front(),
        }?;
        self.live_rows.remove(&e.rowid);
        self.backlog_rows.remove(&e.rowid);
        self.in_flight.insert(e.rowid);
        Some(e)
    }

    /// The broker acknowledged `row`.
    pub fn acked(&mut self, row: RowId) {
        self.in_flight.remove(&row);
        self.recent_acks.insert(row);
        while self.recent_acks.len() > RECENT_ACKS {
            self.recent_acks.pop_first();
        }
    }

    /// The broker refused `row` (MQTT 5 reason code): it stays in the buffer and is retried by
    /// the next [`Outbox::rescan`].
    pub fn refused(&mut self, row: RowId) {
        self.in_flight.remove(&row);
    }

    /// Reads the whole buffer again from the start (after a reconnect or a refusal): anything
    /// not acknowledged goes out again. Receivers de-duplicate by observation id.
    pub fn rescan(&mut self) {
        self.last_from = None;
        self.cursor = 0;
        self.backlog.clear();
        self.backlog_rows.clear();
        self.backlog_maybe = true;
    }

    /// The connection is gone: nothing in flight was delivered. The live queue is dropped too:
    /// its rows are in the buffer, and while the broker is away the buffer may delete the
    /// oldest of them (policy drop-oldest), which must then not be sent from memory.
    pub fn connection_lost(&mut self) {
        self.in_flight.clear();
        self.last_from = None;
        self.live.clear();
        self.live_rows.clear();
        self.rescan();
    }

    pub fn queued(&self) -> usize {
        self.live.len() + self.backlog.len()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether `row` is out with the peer, unanswered.
    pub fn is_in_flight(&self, row: RowId) -> bool {
        self.in_flight.contains(&row)
    }

    /// Nothing queued and nothing known to be waiting in the buffer.
    pub fn idle(&self) -> bool {
        self.live.is_empty() && self.backlog.is_empty() && !self.backlog_maybe
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use medgw_protocols::mdc::{code, unit};
    use medgw_protocols::observation::{DeviceContext, Flags, Measurement, Observation};
    use medgw_protocols::{Decimal, Timestamp};
    use std::sync::Arc;

    fn entry(rowid: RowId) -> Entry {
        let m = Measurement::numeric(code::MDC_PULS_OXIM_SAT_O2, Decimal::from_int(90 + rowid as i32 % 10), unit::MDC_DIM_PERCENT);
        Entry { rowid, observation: Observation::new(Arc::new(DeviceContext::default()), m, Timestamp(rowid), None, Flags::NONE) }
    }

    fn drain(o: &mut Outbox) -> Vec<RowId> {
        std::iter::from_fn(|| o.next_entry().map(|e| e.rowid)).collect()
    }

    #[test]
    fn live_first_sends_live_then_backlog_in_order() {
        let mut o = Outbox::new(Replay::LiveFirst);
        // Start-up: the buffer holds rows 1..=5 from before a crash; live rows 6, 7 arrive.
        assert_eq!(o.backlog_request(), Some((0, BACKLOG_BATCH)));
        o.push_live(entry(6));
        o.push_live(entry(7));
        o.backlog_read(0, (1..=7).map(entry).collect(), BACKLOG_BATCH);
        // 6 and 7 were queued live but also read: each goes out once.
        assert_eq!(drain(&mut o), vec![1, 2, 3, 4, 5, 6, 7]);
        assert!(o.backlog_request().is_none(), "a short read means the backlog is drained");
        o.push_live(entry(8));
        assert_eq!(drain(&mut o), vec![8]);
    }

    #[test]
    fn live_first_prefers_live_while_backlog_drains() {
        let mut o = Outbox::new(Replay::LiveFirst);
        o.backlog_read(0, (1..=3).map(entry).collect(), 3); // full read: maybe more
        o.push_live(entry(100));
        assert_eq!(o.next_entry().unwrap().rowid, 100);
        assert_eq!(o.next_entry().unwrap().rowid, 1);
    }

    #[test]
    fn ordered_sends_strictly_by_row_id() {
        let mut o = Outbox::new(Replay::Ordered);
        o.push_live(entry(9));
        assert!(o.next_entry().is_none(), "ordered mode only sends what it read in order");
        o.backlog_read(0, vec![entry(4), entry(9)], BACKLOG_BATCH);
        assert_eq!(drain(&mut o), vec![4, 9]);
    }

    #[test]
    fn reconnect_resends_unacknowledged_but_not_acknowledged() {
        let mut o = Outbox::new(Replay::LiveFirst);
        o.backlog_read(0, (1..=4).map(entry).collect(), BACKLOG_BATCH);
        assert_eq!(drain(&mut o), vec![1, 2, 3, 4]);
        o.acked(1);
        o.acked(3);
        o.connection_lost();
        // The buffer has not applied the deletes yet: it still returns 1..=4.
        let (after, limit) = o.backlog_request().unwrap();
        assert_eq!(after, 0);
        o.backlog_read(after, (1..=4).map(entry).collect(), limit);
        assert_eq!(drain(&mut o), vec![2, 4]);
    }

    #[test]
    fn in_flight_rows_are_not_read_twice_and_refusals_are_retried() {
        let mut o = Outbox::new(Replay::LiveFirst);
        o.push_live(entry(1));
        assert_eq!(o.next_entry().unwrap().rowid, 1);
        o.backlog_read(0, vec![entry(1), entry(2)], BACKLOG_BATCH);
        assert_eq!(drain(&mut o), vec![2]);
        o.refused(2);
        o.acked(1);
        o.rescan();
        o.backlog_read(0, vec![entry(1), entry(2)], BACKLOG_BATCH);
        assert_eq!(drain(&mut o), vec![2]);
    }

    #[test]
    fn a_stale_read_after_a_reset_is_ignored() {
        let mut o = Outbox::new(Replay::LiveFirst);
        o.backlog_read(0, vec![entry(1)], 1);
        let _ = o.next_entry();
        o.connection_lost();
        // A read that was requested with the old cursor arrives late.
        o.backlog_read(1, vec![entry(2)], BACKLOG_BATCH);
        assert!(o.next_entry().is_none());
    }

    #[test]
    fn a_set_takes_only_the_rows_right_behind_it_from_the_same_queue() {
        let mut o = Outbox::new(Replay::LiveFirst);
        o.backlog_read(0, vec![entry(1), entry(2)], 2);
        for r in [10, 11, 12, 20] {
            o.push_live(entry(r));
        }
        let first = o.next_entry().unwrap();
        assert_eq!(first.rowid, 10);
        // Rows 10..=12 belong together; 20 does not, and the backlog is never mixed in.
        let mut set = vec![first.rowid];
        while let Some(e) = o.next_if(|e| e.rowid < 20) {
            set.push(e.rowid);
        }
        assert_eq!(set, vec![10, 11, 12]);
        assert_eq!(o.in_flight(), 3);
        assert_eq!(o.next_entry().unwrap().rowid, 20);
        assert!(o.next_if(|_| true).is_none(), "the live queue is empty: the set ends");
        assert_eq!(drain(&mut o), vec![1, 2]);
        assert!(o.next_if(|_| true).is_none());
    }

    #[test]
    fn live_overflow_falls_back_to_the_backlog() {
        let mut o = Outbox::new(Replay::LiveFirst);
        o.backlog_read(0, vec![], BACKLOG_BATCH);
        for r in 1..=(LIVE_CAPACITY as i64 + 5) {
            o.push_live(entry(r));
        }
        assert!(o.backlog_request().is_some());
        let first: Vec<RowId> = drain(&mut o);
        assert_eq!(first.len(), LIVE_CAPACITY);
        o.backlog_read(0, (1..=(LIVE_CAPACITY as i64 + 5)).map(entry).collect(), 100_000);
        assert_eq!(drain(&mut o), ((LIVE_CAPACITY as i64 + 1)..=(LIVE_CAPACITY as i64 + 5)).collect::<Vec<_>>());
    }
}
