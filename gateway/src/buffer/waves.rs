//! Durable wave segments (`[waves] durable = true`, docs/waveforms.md): a table of their own in
//! the buffer (`wave_segments`, schema 3) with a budget of their own.
//!
//! Why a separate budget: a second of ECG is kilobytes, a reading about 80 bytes, so a wave
//! backlog would otherwise push observations out of the buffer. The waves' budget is taken out
//! of `buffer.max_bytes` ([`SqliteStore::limit`] subtracts it), and within it the oldest
//! segments are dropped first, counted (`waves_dropped_total` in `meta`) and logged. The bytes
//! segments occupy are measured, not estimated: every wave transaction touches only this
//! table, whose pages no other table shares, so the change in live pages across it is exactly
//! what it added or freed (kept in `meta` as `wave_bytes`).
//!
//! A segment is deleted when the broker acknowledged it (PUBACK, QoS 1): one that was sent but
//! not acknowledged before a crash goes out again after the restart (a duplicate with the same
//! id and sequence number, which a receiver drops).

use bytes::Bytes;
use rusqlite::{params, OptionalExtension, TransactionBehavior};
use tokio::sync::oneshot;

use super::format::now_ms;
use super::handle::{apply_healed, BufferHandle};
use super::sqlite::SqliteStore;
use super::BufferError;

/// Row id of a stored segment.
pub type WaveId = i64;

/// A segment as stored: where it goes, its payload format (`PayloadFormat::name`-like text:
/// `fhir`, `hl7v2`, `canonical`) and the encoded payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredWave {
    /// Assigned by the store (0 before it is stored).
    pub id: WaveId,
    pub topic: String,
    pub format: String,
    pub payload: Bytes,
}

/// What an append did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WaveAppend {
    /// The new segments' ids, in order.
    pub ids: Vec<WaveId>,
    /// Older segments dropped to stay within the budget.
    pub dropped: u64,
}

/// The waves' share of the store.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct WaveState {
    /// Bytes of live pages wave segments occupy.
    pub bytes: u64,
    /// Their budget; 0 when waves are not durable.
    pub limit: u64,
    pub dropped_total: u64,
}

impl WaveState {
    pub(super) fn load(meta: &dyn Fn(&str) -> Result<u64, BufferError>) -> Result<WaveState, BufferError> {
        Ok(WaveState { bytes: meta("wave_bytes")?, limit: 0, dropped_total: meta("waves_dropped_total")? })
    }
}

/// Deleting to make room frees this share of the budget more than needed, so that a full
/// budget drops (and logs) in chunks rather than at every append.
const SLACK_DIVISOR: u64 = 16;

impl SqliteStore {
    /// Sets the waves' budget (taken out of the observations'). `0`: waves are not durable;
    /// segments a durable run left are deleted, counted as dropped and logged. Returns the
    /// segments stored.
    pub fn set_wave_budget(&mut self, max_bytes: u64) -> Result<u64, BufferError> {
        self.waves.limit = max_bytes;
        let stored = self.wave_depth()?;
        if max_bytes == 0 && stored > 0 {
            let ids: Vec<WaveId> =
                self.db().prepare("SELECT id FROM wave_segments")?.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
            self.delete_waves(&ids)?;
            self.count_wave_drops(stored)?;
            tracing::warn!(dropped = stored, "durable waves are off: the wave segments a durable run left in the buffer were deleted");
            return Ok(0);
        }
        Ok(stored)
    }

    /// Segments stored.
    pub fn wave_depth(&self) -> Result<u64, BufferError> {
        let n: i64 = self.db().query_row("SELECT count(*) FROM wave_segments", [], |r| r.get(0))?;
        Ok(n.max(0) as u64)
    }

    /// Bytes stored segments occupy, their budget and the segments dropped so far.
    pub fn wave_usage(&self) -> (u64, u64, u64) {
        (self.waves.bytes, self.waves.limit, self.waves.dropped_total)
    }

    fn count_wave_drops(&mut self, n: u64) -> Result<(), BufferError> {
        self.waves.dropped_total += n;
        self.db()
            .execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('waves_dropped_total', ?1)", [self.waves.dropped_total as i64])?;
        Ok(())
    }

    /// Appends segments in one transaction; when the waves' budget is exceeded the oldest
    /// stored segments (never the ones just written) are dropped and counted.
    pub fn append_waves(&mut self, segments: &[StoredWave]) -> Result<WaveAppend, BufferError> {
        if segments.is_empty() {
            return Ok(WaveAppend::default());
        }
        let (limit, mut bytes, dropped_total) = (self.waves.limit, self.waves.bytes, self.waves.dropped_total);
        let tx = self.db_mut().transaction_with_behavior(TransactionBehavior::Immediate)?;
        let before = SqliteStore::live_bytes(&tx)?;
        let mut ids = Vec::with_capacity(segments.len());
        {
            let mut insert = tx.prepare_cached("INSERT INTO wave_segments (topic, format, at_ms, payload) VALUES (?1, ?2, ?3, ?4)")?;
            let at = now_ms();
            for s in segments {
                insert.execute(params![s.topic, s.format, at, &s.payload[..]])?;
                ids.push(tx.last_insert_rowid());
            }
        }
        let mut live = SqliteStore::live_bytes(&tx)?;
        bytes = (bytes + live).saturating_sub(before);
        let mut dropped = 0u64;
        if limit > 0 && bytes > limit {
            let target = limit - limit / SLACK_DIVISOR;
            let first_new = ids[0];
            for _ in 0..16 {
                if bytes <= target {
                    break;
                }
                let count: i64 = tx.query_row("SELECT count(*) FROM wave_segments", [], |r| r.get(0))?;
                let avg = (bytes / count.max(1) as u64).max(1);
                let want = ((bytes - target) / avg).max(1) as i64;
                let upto: Option<i64> = tx
                    .prepare_cached("SELECT id FROM wave_segments WHERE id < ?1 ORDER BY id LIMIT 1 OFFSET ?2")?
                    .query_row(params![first_new, want - 1], |r| r.get(0))
                    .optional()?;
                let upto = upto.unwrap_or(first_new - 1);
                let n = tx.prepare_cached("DELETE FROM wave_segments WHERE id <= ?1")?.execute([upto])? as u64;
                if n == 0 {
                    break;
                }
                dropped += n;
                let now = SqliteStore::live_bytes(&tx)?;
                bytes = bytes.saturating_sub(live.saturating_sub(now));
                live = now;
            }
        }
        tx.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('wave_bytes', ?1)", [bytes as i64])?;
        if dropped > 0 {
            tx.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('waves_dropped_total', ?1)", [(dropped_total + dropped) as i64])?;
        }
        tx.commit()?;
        self.waves.bytes = bytes;
        if dropped > 0 {
            self.waves.dropped_total += dropped;
            tracing::warn!(
                dropped,
                max_bytes = limit,
                dropped_total = self.waves.dropped_total,
                "wave budget full: oldest stored wave segments dropped (the broker is away; observations are not affected)"
            );
        }
        Ok(WaveAppend { ids, dropped })
    }

    /// Up to `limit` stored segments with `id > after`, oldest first.
    pub fn read_waves_after(&mut self, after: WaveId, limit: usize) -> Result<Vec<StoredWave>, BufferError> {
        let mut stmt =
            self.db().prepare_cached("SELECT id, topic, format, payload FROM wave_segments WHERE id > ?1 ORDER BY id LIMIT ?2")?;
        let rows = stmt.query_map(params![after, limit as i64], |r| {
            Ok(StoredWave { id: r.get(0)?, topic: r.get(1)?, format: r.get(2)?, payload: Bytes::from(r.get::<_, Vec<u8>>(3)?) })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The broker acknowledged these segments.
    pub fn delete_waves(&mut self, ids: &[WaveId]) -> Result<(), BufferError> {
        if ids.is_empty() {
            return Ok(());
        }
        let bytes = self.waves.bytes;
        let tx = self.db_mut().transaction_with_behavior(TransactionBehavior::Immediate)?;
        let before = SqliteStore::live_bytes(&tx)?;
        {
            let mut del = tx.prepare_cached("DELETE FROM wave_segments WHERE id = ?1")?;
            for id in ids {
                del.execute([id])?;
            }
        }
        let after = SqliteStore::live_bytes(&tx)?;
        let empty: bool = tx.query_row("SELECT NOT EXISTS (SELECT 1 FROM wave_segments)", [], |r| r.get(0))?;
        // An empty table holds no pages beyond its root: start the count afresh.
        let bytes = if empty { 0 } else { bytes.saturating_sub(before.saturating_sub(after)) };
        tx.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('wave_bytes', ?1)", [bytes as i64])?;
        tx.commit()?;
        self.waves.bytes = bytes;
        Ok(())
    }
}

type Reply<T> = oneshot::Sender<Result<T, BufferError>>;

/// Wave commands for the storage thread (`handle.rs`).
pub(super) enum WaveCmd {
    Budget { max_bytes: u64, reply: Reply<u64> },
    Append { segments: Vec<StoredWave>, reply: Reply<WaveAppend> },
    Read { after: WaveId, limit: usize, reply: Reply<Vec<StoredWave>> },
    Delete { ids: Vec<WaveId>, reply: Reply<()> },
}

impl WaveCmd {
    /// Runs the command on the store (`handle::apply_healed`).
    pub(super) fn apply(self, store: &mut SqliteStore, heal: &mut dyn FnMut(&mut SqliteStore, &BufferError) -> bool) {
        match self {
            WaveCmd::Budget { max_bytes, reply } => apply_healed(store, heal, reply, |s| s.set_wave_budget(max_bytes)),
            WaveCmd::Append { segments, reply } => apply_healed(store, heal, reply, |s| s.append_waves(&segments)),
            WaveCmd::Read { after, limit, reply } => apply_healed(store, heal, reply, |s| s.read_waves_after(after, limit)),
            WaveCmd::Delete { ids, reply } => apply_healed(store, heal, reply, |s| s.delete_waves(&ids)),
        }
    }

    /// No store (a full disk at start-up): nothing is stored, reads are empty.
    pub(super) fn refuse(self) {
        match self {
            WaveCmd::Budget { reply, .. } => {
                let _ = reply.send(Ok(0));
            }
            WaveCmd::Append { reply, .. } => {
                let _ = reply.send(Err(BufferError::DiskFull));
            }
            WaveCmd::Read { reply, .. } => {
                let _ = reply.send(Ok(Vec::new()));
            }
            WaveCmd::Delete { reply, .. } => {
                let _ = reply.send(Err(BufferError::DiskFull));
            }
        }
    }
}

impl BufferHandle {
    /// Sets the durable waves' budget (0: not durable); answers the segments stored.
    pub async fn set_wave_budget(&self, max_bytes: u64) -> Result<u64, BufferError> {
        self.call(|reply| super::handle::Cmd::Waves(WaveCmd::Budget { max_bytes, reply })).await
    }

    /// Stores segments; resolves when they are durable.
    pub async fn append_waves(&self, segments: Vec<StoredWave>) -> Result<WaveAppend, BufferError> {
        self.call(|reply| super::handle::Cmd::Waves(WaveCmd::Append { segments, reply })).await
    }

    /// Stored segments after `after`, oldest first.
    pub async fn read_waves_after(&self, after: WaveId, limit: usize) -> Result<Vec<StoredWave>, BufferError> {
        self.call(|reply| super::handle::Cmd::Waves(WaveCmd::Read { after, limit, reply })).await
    }

    /// Deletes segments the broker acknowledged.
    pub async fn delete_waves(&self, ids: Vec<WaveId>) -> Result<(), BufferError> {
        self.call(|reply| super::handle::Cmd::Waves(WaveCmd::Delete { ids, reply })).await
    }
}
