//! The storage engine: SQLite in WAL mode with `synchronous=FULL`.
//!
//! Why SQLite and these settings (style.md, "Storage"): it is the most crash-tested embedded
//! store, and each of its known pitfalls is closed here:
//! - `synchronous=NORMAL` in WAL mode can lose a committed transaction on power loss, so the
//!   store sets `FULL`, reads it back and refuses to run otherwise ([`verify_durability`]);
//! - rowids are reused without `AUTOINCREMENT` (the sink acknowledges by rowid), so the entries
//!   table has it;
//! - long read transactions stop WAL checkpoints, so every read is one short statement;
//! - the file never shrinks without `auto_vacuum`, so it is `INCREMENTAL` and acknowledged
//!   space is given back in small steps.
//!
//! ```text
//! devices    id INTEGER PRIMARY KEY AUTOINCREMENT, context TEXT UNIQUE   -- JSON DeviceContext
//! entries    id INTEGER PRIMARY KEY AUTOINCREMENT, device, receipt_ms,  -- one per observation
//!            reading BLOB                                                -- postcard(Reading)
//! quarantine id, entry_id, device_context, receipt_ms, reading, reason, at_ms
//! meta       key TEXT PRIMARY KEY, value INTEGER                         -- counters, max_bytes
//! sink_acks  (entry_id, sink) PRIMARY KEY                                -- schema 2: which sink
//!                                                                        -- has a row already
//! dead_letters id, sink, entry_id, control_id, reason, device_context,   -- schema 2: rows a
//!            receipt_ms, reading, at_ms                                  -- sink's peer rejected
//! wave_segments id INTEGER PRIMARY KEY AUTOINCREMENT, topic, format,     -- schema 3: durable
//!            at_ms, payload BLOB                                         -- waves (`waves.rs`)
//! ```
//!
//! Delivery per sink (issue 15): with one sink (the MQTT broker alone) an acknowledgement
//! deletes the row, as it always did, and `sink_acks` stays empty. With more, each sink's
//! acknowledgement is a `sink_acks` row, and the entry is deleted (with its `sink_acks`) in the
//! transaction that records the last configured sink's. A row a sink's peer rejected for good
//! is copied to `dead_letters` and counts as that sink's acknowledgement, so one bad message
//! never holds the buffer. The capacity policy deletes entries for every sink alike: a sink
//! that is down cannot hold the others beyond `max_bytes`.
//!
//! Device contexts are stored once (JSON, readable with the `sqlite3` shell by an engineer) and
//! referenced by id, so a row costs about 80 bytes on disk.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use medgw_protocols::observation::{DeviceContext, Observation};
use medgw_protocols::Timestamp;
use nix::fcntl::{Flock, FlockArg};
use rusqlite::config::DbConfig;
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};

use super::files::{file_bytes, io_err, suffixed, sync_dir};
use super::format::{decode_reading, now_ms, RawRow, APPLICATION_ID};
use super::reserve::{self, Reserve};
use super::salvage::{self, QuarantineReport};
use super::{AppendOutcome, BufferError, BufferEvent, BufferStats, Entry, RowId};
use crate::config::{BufferConfig, WhenFull};

/// `PRAGMA user_version`: the schema below.
const SCHEMA_VERSION: i64 = 3;
const PAGE_SIZE: u64 = 4096;
/// SQLite page cache per connection in KiB. Appends touch the right edge of the B-tree,
/// acknowledgements (deletes) and backlog reads the left: 128 pages hold both edges of a
/// buffer of many millions of rows. At full speed the cache fills, and each KiB of it is
/// resident: 1,024 took ~0.6 MiB more anonymous memory at the same throughput (issue 20,
/// peak RSS target 16 MiB).
const CACHE_KIB: i64 = 512;
/// Files up to this size get the full `integrity_check` at start-up, larger ones `quick_check`
/// (which skips the index cross-checks and is several times faster).
const FULL_CHECK_MAX_BYTES: u64 = 64 << 20;
/// Freed pages are given back to the file system in steps of this many pages, so that an
/// acknowledgement never stalls appends for long.
const VACUUM_STEP_PAGES: i64 = 2048;
/// An estimate of the B-tree overhead of one entry (cell pointer, header, rowid and integer
/// columns) used before the first entries can be measured.
const ROW_OVERHEAD: u64 = 24;
/// On a full disk, acknowledged rows are deleted in transactions of at most this many, each
/// followed by a checkpoint, so that the WAL fits in the room the reserve left.
const ACK_CHUNK_ON_FULL_DISK: usize = 256;

/// The disk reserve's hold-off; `MEDGW_BUFFER_RESERVE_HOLDOFF_MS` shortens it for tests.
fn reserve_holdoff() -> Duration {
    std::env::var("MEDGW_BUFFER_RESERVE_HOLDOFF_MS").ok().and_then(|v| v.parse().ok()).map_or(reserve::HOLDOFF, Duration::from_millis)
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS devices (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    context TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device INTEGER NOT NULL,
    receipt_ms INTEGER NOT NULL,
    reading BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    entry_id INTEGER,
    device_context TEXT,
    receipt_ms INTEGER,
    reading BLOB,
    reason TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sink_acks (
    entry_id INTEGER NOT NULL,
    sink TEXT NOT NULL,
    PRIMARY KEY (entry_id, sink)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sink TEXT NOT NULL,
    entry_id INTEGER,
    control_id TEXT,
    reason TEXT NOT NULL,
    device_context TEXT,
    receipt_ms INTEGER,
    reading BLOB,
    at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS wave_segments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    format TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    payload BLOB NOT NULL
);
";

/// What `open` found and did: logged by the caller and shown by `medgw buffer stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct StartupReport {
    pub path: PathBuf,
    /// `true` when there was no buffer file (or an empty one) and a new store was made.
    pub created: bool,
    /// Which check ran on the existing file: `integrity_check`, `quick_check` or `none`.
    pub check: &'static str,
    /// Observations waiting for the broker when the store opened (after any salvage).
    pub depth: u64,
    /// Set when the file was damaged and moved aside.
    pub quarantine: Option<QuarantineReport>,
}

/// How the store syncs. Only `Full` exists outside tests; `UnsafeNormal` lets the tests show
/// that the start-up check refuses it and that the power-cut emulation catches what it loses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    Full,
    /// `NORMAL`, which the start-up check refuses.
    #[cfg(test)]
    UnsafeNormal,
    /// `NORMAL` without the check: the control run of the power-cut emulation.
    #[cfg(test)]
    UnsafeNormalUnchecked,
}

impl Durability {
    fn pragma(self) -> &'static str {
        match self {
            Durability::Full => "FULL",
            #[cfg(test)]
            Durability::UnsafeNormal | Durability::UnsafeNormalUnchecked => "NORMAL",
        }
    }

    fn checked(self) -> bool {
        match self {
            Durability::Full => true,
            #[cfg(test)]
            Durability::UnsafeNormal => true,
            #[cfg(test)]
            Durability::UnsafeNormalUnchecked => false,
        }
    }
}

impl From<rusqlite::Error> for BufferError {
    fn from(e: rusqlite::Error) -> BufferError {
        match e.sqlite_error_code() {
            // SQLITE_FULL: the OS said ENOSPC, or max_page_count was reached.
            Some(ErrorCode::DiskFull) => BufferError::DiskFull,
            // Damage found by whatever statement met it: the storage thread quarantines the
            // file (`SqliteStore::recover_from_corruption`).
            Some(ErrorCode::DatabaseCorrupt) | Some(ErrorCode::NotADatabase) => BufferError::Corrupt(e.to_string()),
            _ => BufferError::storage("", e),
        }
    }
}

/// Refuses a connection that would not keep a committed transaction across a power cut: WAL
/// journal and `synchronous` FULL (2) or EXTRA (3), read back because SQLite ignores a pragma
/// it cannot apply (e.g. WAL on a file system without shared memory) instead of failing.
pub(crate) fn verify_durability(conn: &Connection, path: &Path) -> Result<(), BufferError> {
    let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
    let sync: i64 = conn.pragma_query_value(None, "synchronous", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(BufferError::Unusable {
            path: path.display().to_string(),
            reason: format!("journal_mode is {mode}, not wal (does the file system support shared memory?)"),
        });
    }
    if sync < 2 {
        return Err(BufferError::Unusable {
            path: path.display().to_string(),
            reason: format!("synchronous is {sync}, not FULL (2): a power cut could lose committed observations"),
        });
    }
    Ok(())
}

/// Sizes derived from the room the buffer has (`max_bytes`, or less when the file system is
/// smaller): the write-ahead log and the disk reserve (`reserve.rs`) get a share each, entries
/// the rest. Sizing from the file system matters on small disks: with a 1 GB `max_bytes` on a
/// 20 MB partition a 16 MB WAL share would leave nothing, and a WAL that may grow to 8 MB before
/// its checkpoint can fill a 2 MB partition on its own, after which no checkpoint (which copies
/// into the database file) and no delete (which adds to the WAL) can run.
#[derive(Debug, Clone, Copy)]
struct Budget {
    /// `journal_size_limit`: the WAL is truncated to this after a checkpoint. Also the size of
    /// the disk reserve, which must cover a checkpoint and a delete on a full disk.
    wal_limit: u64,
    /// `wal_autocheckpoint` in pages: half the WAL share, so that one large transaction on top
    /// of a full log still fits.
    autocheckpoint_pages: u64,
    /// Live pages (page_count - freelist_count) may use this much.
    data_limit: u64,
    /// When dropping oldest, free this much more than needed, so that a full buffer drops (and
    /// logs and publishes) in chunks rather than at every append.
    drop_slack: u64,
}

impl Budget {
    fn new(room: u64) -> Budget {
        let wal_limit = (room / 16).clamp(256 << 10, 16 << 20);
        let data_limit = room.saturating_sub(2 * wal_limit).max(16 * PAGE_SIZE);
        Budget {
            wal_limit,
            autocheckpoint_pages: (wal_limit / 2 / PAGE_SIZE).max(16),
            data_limit,
            drop_slack: (data_limit / 256).clamp(16 << 10, 1 << 20),
        }
    }
}

/// Device contexts by pointer (appends) and by id (reads), so that neither re-serialises nor
/// re-parses a context per observation. The `Arc` kept in `by_ptr` pins the allocation, so a
/// pointer cannot be reused by another context while it is a key.
#[derive(Default)]
struct DeviceCache {
    by_ptr: crate::int_hash::IntMap<usize, (Arc<DeviceContext>, i64)>,
    by_id: crate::int_hash::IntMap<i64, Arc<DeviceContext>>,
}

/// More distinct contexts than this (identity churn) and the cache starts over.
const DEVICE_CACHE_MAX: usize = 4096;

impl DeviceCache {
    fn clear(&mut self) {
        self.by_ptr.clear();
        self.by_id.clear();
    }

    fn id_for(&mut self, conn: &Connection, ctx: &Arc<DeviceContext>) -> Result<i64, BufferError> {
        let key = Arc::as_ptr(ctx) as usize;
        if let Some((_, id)) = self.by_ptr.get(&key) {
            return Ok(*id);
        }
        let known = self.by_id.iter().find(|(_, c)| ***c == **ctx).map(|(id, _)| *id);
        let id = match known {
            Some(id) => id,
            None => {
                let json = serde_json::to_string(&**ctx).map_err(|e| BufferError::storage("device context", e))?;
                let found: Option<i64> =
                    conn.prepare_cached("SELECT id FROM devices WHERE context = ?1")?.query_row([&json], |r| r.get(0)).optional()?;
                match found {
                    Some(id) => id,
                    None => {
                        conn.prepare_cached("INSERT INTO devices (context) VALUES (?1)")?.execute([&json])?;
                        conn.last_insert_rowid()
                    }
                }
            }
        };
        if self.by_ptr.len() >= DEVICE_CACHE_MAX || self.by_id.len() >= DEVICE_CACHE_MAX {
            self.clear();
        }
        self.by_ptr.insert(key, (ctx.clone(), id));
        self.by_id.insert(id, ctx.clone());
        Ok(id)
    }

    /// The context of device `id`, or why it cannot be had (its row is gone or its JSON is bad).
    fn context(&mut self, conn: &Connection, id: i64) -> Result<Result<Arc<DeviceContext>, String>, BufferError> {
        if let Some(c) = self.by_id.get(&id) {
            return Ok(Ok(c.clone()));
        }
        let json: Option<String> =
            conn.prepare_cached("SELECT context FROM devices WHERE id = ?1")?.query_row([id], |r| r.get(0)).optional()?;
        let Some(json) = json else { return Ok(Err(format!("device {id} missing"))) };
        match serde_json::from_str::<DeviceContext>(&json) {
            Ok(c) => {
                if self.by_id.len() >= DEVICE_CACHE_MAX {
                    self.clear();
                }
                let c = Arc::new(c);
                self.by_id.insert(id, c.clone());
                Ok(Ok(c))
            }
            Err(e) => Ok(Err(format!("device {id} context: {e}"))),
        }
    }
}

/// What one drop-oldest step deleted.
#[derive(Debug, Default, Clone, Copy)]
struct Dropped {
    count: u64,
    span: Option<(i64, i64)>,
}

impl Dropped {
    fn add(&mut self, other: Dropped) {
        self.count += other.count;
        self.span = match (self.span, other.span) {
            (Some((a, b)), Some((c, d))) => Some((a.min(c), b.max(d))),
            (a, b) => a.or(b),
        };
    }
}

/// The SQLite store. One thread owns it (see `handle.rs`).
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    max_bytes: u64,
    when_full: WhenFull,
    budget: Budget,
    /// Live bytes at which the OS last reported the disk full: a lower limit than `max_bytes`
    /// until the space returns (`maintain`).
    disk_limit: Option<u64>,
    /// In a disk-full episode: from the first SQLITE_FULL/ENOSPC (or no room for the reserve)
    /// until the reserve could be made again.
    disk_full: bool,
    /// When `maintain` last gave free pages back while waiting for room.
    last_squeeze: Option<std::time::Instant>,
    /// For the events: reported to the storage thread, which forwards them.
    events: Vec<BufferEvent>,
    /// Damaged files moved aside while running.
    runtime_quarantines: u64,
    /// What the store was opened with, to open it again after damage.
    cfg: BufferConfig,
    durability: Durability,
    /// Run-time damage: set while the damaged file is being replaced (what was found, whether
    /// its connection is closed, where it was moved).
    damage: Option<String>,
    detached: bool,
    moved_to: Option<PathBuf>,
    depth: u64,
    dropped_total: u64,
    quarantined: u64,
    /// Rows dead-lettered since the store was created (meta `dead_lettered`).
    dead_lettered: u64,
    /// The configured sinks, the first being the one the sink-less calls (`ack`, `read_after`)
    /// speak for. Empty or one: delivery is not tracked per sink.
    sinks: Vec<String>,
    /// Durable wave segments: their bytes, budget and drops (`waves.rs`).
    pub(super) waves: super::waves::WaveState,
    devices: DeviceCache,
    reserve: Reserve,
    /// Append transactions committed since open (one fsync each): the group-commit counter.
    commits: u64,
    /// Advisory lock on `<path>.lock`: two daemons on one buffer would each replay the other's
    /// entries.
    /// `None` only briefly while the store is reopened after damage.
    lock: Option<Flock<File>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).field("depth", &self.depth).finish_non_exhaustive()
    }
}

/// The row ids as inclusive runs of consecutive ids, ascending (duplicates merged).
fn runs(rowids: &[RowId]) -> Vec<(RowId, RowId)> {
    let mut ids = rowids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let mut out: Vec<(RowId, RowId)> = Vec::new();
    for id in ids {
        match out.last_mut() {
            Some((_, last)) if *last + 1 == id => *last = id,
            _ => out.push((id, id)),
        }
    }
    out
}

/// The result of the start-up check of an existing file.
enum Health {
    Good,
    Damaged(String),
}

/// Opens the existing file and checks it without changing it (no checkpoint on close).
fn check_health(path: &Path, size: u64) -> Result<(Health, &'static str), BufferError> {
    let unusable = |reason: String| BufferError::Unusable { path: path.display().to_string(), reason };
    let conn = match Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX) {
        Ok(c) => c,
        Err(e) => return Err(unusable(format!("cannot open: {e}"))),
    };
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let damaged = |e: rusqlite::Error| match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) | Some(ErrorCode::DatabaseCorrupt) => Ok(Health::Damaged(e.to_string())),
        _ => Err(unusable(e.to_string())),
    };
    let app: i64 = match conn.pragma_query_value(None, "application_id", |r| r.get(0)) {
        Ok(a) => a,
        Err(e) => return damaged(e).map(|h| (h, "none")),
    };
    let tables: i64 = match conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0)) {
        Ok(n) => n,
        Err(e) => return damaged(e).map(|h| (h, "none")),
    };
    if app != APPLICATION_ID && (app != 0 || tables > 0) {
        return Err(unusable(format!("not a medgw buffer (application_id {app:#x}, {tables} schema objects); refusing to touch it")));
    }
    let check = if size <= FULL_CHECK_MAX_BYTES { "integrity_check" } else { "quick_check" };
    let result = conn
        .prepare(&format!("PRAGMA {check}(20)"))
        .and_then(|mut s| s.query_map([], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>());
    match result {
        Ok(lines) if lines.len() == 1 && lines.first().map(String::as_str) == Some("ok") => Ok((Health::Good, check)),
        Ok(lines) => Ok((Health::Damaged(lines.join("; ")), check)),
        Err(e) => damaged(e).map(|h| (h, check)),
    }
}

fn lock(path: &Path) -> Result<Flock<File>, BufferError> {
    let lock_path = suffixed(path, ".lock");
    let file = File::options().create(true).truncate(false).write(true).open(&lock_path).map_err(|e| io_err("open", &lock_path, e))?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| BufferError::Unusable {
        path: path.display().to_string(),
        reason: format!("in use by another process ({errno})"),
    })
}

impl SqliteStore {
    /// Opens (or creates) the buffer at `cfg.path`: checks the file, quarantines and salvages a
    /// damaged one, and refuses a store that would not be durable. Blocking: call it from the
    /// storage thread, never from an async task.
    pub fn open(cfg: &BufferConfig) -> Result<(SqliteStore, StartupReport), BufferError> {
        Self::open_with(cfg, Durability::Full)
    }

    pub(crate) fn open_with(cfg: &BufferConfig, durability: Durability) -> Result<(SqliteStore, StartupReport), BufferError> {
        let path = cfg.path.clone();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io_err("create directory", dir, e))?;
        }
        let lock = lock(&path)?;
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let mut report = StartupReport { path: path.clone(), created: size == 0, check: "none", ..StartupReport::default() };
        let mut damaged = None;
        if size > 0 {
            let (health, check) = check_health(&path, size)?;
            report.check = check;
            if let Health::Damaged(reason) = health {
                damaged = Some(reason);
            }
        }
        let store = match damaged {
            Some(reason) => {
                let to = salvage::move_aside(&path)?;
                tracing::error!(path = %path.display(), moved_to = %to.display(), reason = %reason, "buffer file damaged: moved aside, salvaging");
                let (store, q) = Self::rebuild(path, cfg, durability, lock, &to, reason)?;
                store.set_meta("quarantined", store.quarantined)?;
                tracing::error!(
                    salvaged = q.salvaged,
                    undecodable = q.undecodable,
                    unreadable_ranges = q.unreadable_ranges.len(),
                    moved_to = %q.moved_to.display(),
                    "buffer salvaged after damage"
                );
                report.quarantine = Some(q);
                store
            }
            None => Self::init(path, cfg, durability, lock)?,
        };
        report.depth = store.depth;
        tracing::info!(path = %store.path.display(), depth = store.depth, check = report.check, created = report.created, "buffer open");
        Ok((store, report))
    }

    /// A new store at `path` filled from the damaged file moved aside to `moved_to`: the one
    /// salvage of both start-up and damage found while running. Undecodable rows are counted
    /// as they are quarantined; each unreadable region counts once (how many entries it held is
    /// unknown: acknowledged rows leave gaps). The caller saves the count.
    fn rebuild(
        path: PathBuf,
        cfg: &BufferConfig,
        durability: Durability,
        lock: Flock<File>,
        moved_to: &Path,
        reason: String,
    ) -> Result<(SqliteStore, QuarantineReport), BufferError> {
        let mut store = Self::init(path, cfg, durability, lock)?;
        let q = salvage::salvage(moved_to, reason, &mut store)?;
        store.quarantined += q.unreadable_ranges.len() as u64;
        Ok((store, q))
    }

    fn init(path: PathBuf, cfg: &BufferConfig, durability: Durability, lock: Flock<File>) -> Result<SqliteStore, BufferError> {
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| BufferError::Unusable { path: path.display().to_string(), reason: e.to_string() })?;
        // The room on the file system: what the buffer's files use now plus what is free.
        let fs = reserve::space(&path);
        let room = match fs {
            Some(s) => cfg.max_bytes.min(file_bytes(&path).saturating_add(s.avail)),
            None => cfg.max_bytes,
        };
        if room < cfg.max_bytes {
            tracing::warn!(path = %path.display(), max_bytes = cfg.max_bytes, room, "the file system is smaller than buffer.max_bytes: the buffer is sized to it");
        }
        let budget = Budget::new(room);
        conn.busy_timeout(Duration::from_secs(5))?;
        // Both only take effect on a new, empty file (they are fixed once a table exists).
        conn.pragma_update(None, "page_size", PAGE_SIZE as i64)?;
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        let _: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        conn.pragma_update(None, "synchronous", durability.pragma())?;
        conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
        conn.pragma_update(None, "journal_size_limit", budget.wal_limit as i64)?;
        conn.pragma_update(None, "wal_autocheckpoint", budget.autocheckpoint_pages as i64)?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        if durability.checked() {
            verify_durability(&conn, &path)?;
        }
        let app: i64 = conn.pragma_query_value(None, "application_id", |r| r.get(0))?;
        if app == 0 {
            conn.execute_batch(&format!(
                "BEGIN IMMEDIATE; {SCHEMA} PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            ))?;
            sync_dir(&path)?;
        } else {
            let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
            if version == 1 || version == 2 {
                // Schema 1 had no per-sink tables, schema 2 no wave segments: each migration
                // only adds tables, so nothing that is there changes.
                conn.execute_batch(&format!("BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"))?;
                tracing::info!(path = %path.display(), from = version, to = SCHEMA_VERSION, "buffer schema migrated (1 → 2: delivery per sink, dead letters; 2 → 3: durable wave segments)");
            } else if version != SCHEMA_VERSION {
                return Err(BufferError::Unusable {
                    path: path.display().to_string(),
                    reason: format!("schema version {version}, this medgw knows {SCHEMA_VERSION}"),
                });
            }
            conn.execute_batch(SCHEMA)?;
        }
        let vacuum: i64 = conn.pragma_query_value(None, "auto_vacuum", |r| r.get(0))?;
        if vacuum != 2 {
            tracing::warn!(path = %path.display(), auto_vacuum = vacuum, "buffer file was made without incremental vacuum: it will not shrink after a drain");
        }
        let meta = |key: &str| -> Result<u64, BufferError> {
            let v: Option<i64> = conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional()?;
            Ok(v.unwrap_or(0).max(0) as u64)
        };
        let dropped_total = meta("dropped_total")?;
        let quarantined = meta("quarantined")?;
        let dead_lettered = meta("dead_lettered")?;
        let waves = super::waves::WaveState::load(&meta)?;
        let depth: i64 = conn.query_row("SELECT count(*) FROM entries", [], |r| r.get(0))?;
        let mut reserve = Reserve::new(&path, budget.wal_limit, reserve_holdoff());
        let reserve_ok = reserve.ensure();
        let mut store = SqliteStore {
            conn,
            path,
            reserve,
            max_bytes: cfg.max_bytes,
            when_full: cfg.when_full,
            budget,
            disk_limit: None,
            disk_full: false,
            last_squeeze: None,
            events: Vec::new(),
            runtime_quarantines: 0,
            cfg: cfg.clone(),
            durability,
            damage: None,
            detached: false,
            moved_to: None,
            depth: depth.max(0) as u64,
            dropped_total,
            quarantined,
            dead_lettered,
            sinks: Vec::new(),
            waves,
            devices: DeviceCache::default(),
            commits: 0,
            lock: Some(lock),
        };
        // For `medgw buffer stats`, which reads the file without the configuration. On a full
        // disk this write may fail: the store starts anyway, in a disk-full episode.
        match store.set_meta("max_bytes", cfg.max_bytes) {
            Ok(()) => {}
            Err(BufferError::DiskFull) => store.enter_disk_full("at start-up"),
            Err(e) => return Err(e),
        }
        if !reserve_ok {
            store.enter_disk_full("no room for the disk reserve at start-up");
            // A WAL left large by a previous run: try to fold it into the database file.
            if let Err(e) = store.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
                tracing::warn!(error = %e, "checkpoint at start-up on a full disk failed");
            }
        }
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Entries not yet acknowledged.
    pub fn depth(&self) -> u64 {
        self.depth
    }

    /// Append transactions committed since open: with group commit, far fewer than appends.
    pub fn commits(&self) -> u64 {
        self.commits
    }

    fn set_meta(&self, key: &str, value: u64) -> Result<(), BufferError> {
        self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)", params![key, value as i64])?;
        Ok(())
    }

    /// What observations may use: the room less the durable waves' budget (`waves.rs`), so a
    /// wave backlog never pushes observations out.
    fn limit(&self) -> u64 {
        let room = self.disk_limit.map_or(self.budget.data_limit, |d| d.min(self.budget.data_limit));
        room.saturating_sub(self.waves.limit).max(16 * PAGE_SIZE)
    }

    /// Bytes of live pages (what entries, devices and indexes occupy); free pages are reused
    /// before the file grows, so this is what the capacity policy limits.
    pub(super) fn live_bytes(conn: &Connection) -> Result<u64, BufferError> {
        let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
        Ok((pages - free).max(0) as u64 * PAGE_SIZE)
    }

    /// Live bytes less the pages of wave segments: what the observations' policy measures.
    fn entry_bytes(conn: &Connection, waves: u64) -> Result<u64, BufferError> {
        Ok(Self::live_bytes(conn)?.saturating_sub(waves))
    }

    /// Appends several callers' batches in ONE transaction (one fsync): the group commit. The
    /// drop-oldest count of the transaction is reported in the first outcome, so that the sum
    /// over the outcomes is exact. When the policy refuses, every batch is refused.
    pub fn append_group(&mut self, batches: &[&[Observation]]) -> Result<Vec<AppendOutcome>, BufferError> {
        match self.try_append(batches, &[]) {
            Err(BufferError::DiskFull) => self.after_disk_full(batches),
            r => r.map(|(outs, _)| outs),
        }
    }

    /// [`SqliteStore::append_group`] that also deletes the acknowledged `acks` in the same
    /// transaction, so that applying acknowledgements costs no fsync of its own and never makes
    /// an append wait behind one (issue 20: the separate acknowledgement transaction every
    /// 100 ms was a source of the latency tail). Only with one sink and room on the disk;
    /// `true` when the acknowledgements were applied, `false` when the caller must apply them
    /// with [`SqliteStore::ack`] (several sinks, a full disk, a refused or failed append).
    pub fn append_group_acking(&mut self, batches: &[&[Observation]], acks: &[RowId]) -> Result<(Vec<AppendOutcome>, bool), BufferError> {
        if acks.is_empty() || self.sinks.len() > 1 || self.disk_full {
            return self.append_group(batches).map(|outs| (outs, false));
        }
        match self.try_append(batches, acks) {
            Err(BufferError::DiskFull) => self.after_disk_full(batches).map(|outs| (outs, false)),
            r => r,
        }
    }

    /// The OS (or max_page_count) said the disk is full: give up the disk reserve so that the
    /// WAL can be checkpointed and old entries deleted, lower the limit to what fits (with room
    /// to make the reserve again), apply the policy like for `max_bytes`, and retry once.
    fn after_disk_full(&mut self, batches: &[&[Observation]]) -> Result<Vec<AppendOutcome>, BufferError> {
        self.devices.clear();
        self.enter_disk_full("an append");
        let released = self.reserve.release();
        if let Err(e) = self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "checkpoint on a full disk failed");
        }
        let live = Self::entry_bytes(&self.conn, self.waves.bytes)?;
        let need: u64 = batches.iter().flat_map(|b| b.iter()).map(estimate).sum();
        let limit = live.saturating_sub(need + self.budget.drop_slack + self.budget.wal_limit).max(16 * PAGE_SIZE);
        self.disk_limit = Some(self.disk_limit.map_or(limit, |d| d.min(limit)));
        tracing::warn!(
            path = %self.path.display(),
            live_bytes = live,
            new_limit = self.limit(),
            reserve_released = released,
            "disk full: buffer capacity lowered until the space returns"
        );
        match self.when_full {
            WhenFull::StopReading => {
                // Acknowledgements make room; the reserve is made again then (see `ack`).
                Ok(refused(batches.len()))
            }
            WhenFull::DropOldest => {
                let target = self.limit();
                let (depth, dropped_total, waves) = (self.depth, self.dropped_total, self.waves.bytes);
                let dropping = (|| {
                    let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                    let d = drop_oldest(&tx, target, RowId::MAX, depth, waves)?;
                    if d.count > 0 {
                        tx.execute(
                            "INSERT OR REPLACE INTO meta (key, value) VALUES ('dropped_total', ?1)",
                            [(dropped_total + d.count) as i64],
                        )?;
                    }
                    tx.commit()?;
                    Ok::<_, BufferError>(d)
                })();
                let dropped = match dropping {
                    Ok(d) => d,
                    Err(BufferError::DiskFull) => {
                        // Not even the delete fits: the batch waits at its source (`buffer-full`)
                        // until acknowledgements or the space return.
                        tracing::warn!(path = %self.path.display(), "disk full: no room to delete the oldest, new observations refused");
                        return Ok(refused(batches.len()));
                    }
                    Err(e) => return Err(e),
                };
                self.note_dropped(dropped);
                let mut outs = match self.try_append(batches, &[]) {
                    Ok((outs, _)) => outs,
                    Err(BufferError::DiskFull) => {
                        // Even with the oldest gone the disk has no room (something else
                        // filled it): the batch is refused, its source holds it and retries
                        // (`buffer-full` event); the oldest dropped so far are reported.
                        tracing::warn!(path = %self.path.display(), "disk full: nothing more to drop, new observations refused");
                        refused(batches.len())
                    }
                    Err(e) => return Err(e),
                };
                if let Some(first) = outs.first_mut() {
                    let mut d = dropped;
                    d.add(Dropped { count: first.dropped, span: first.dropped_span.map(|(a, b)| (a.0, b.0)) });
                    first.dropped = d.count;
                    first.dropped_span = d.span.map(|(a, b)| (Timestamp(a), Timestamp(b)));
                }
                Ok(outs)
            }
        }
    }

    fn note_dropped(&mut self, d: Dropped) {
        if d.count == 0 {
            return;
        }
        self.depth = self.depth.saturating_sub(d.count);
        self.dropped_total += d.count;
        let (from, to) = d.span.unwrap_or((0, 0));
        tracing::warn!(
            dropped = d.count,
            oldest_ms = from,
            newest_ms = to,
            dropped_total = self.dropped_total,
            "buffer full: oldest observations dropped"
        );
    }

    /// Appends `batches` and deletes the acknowledged `acks` (rows of the one sink, as
    /// `delete_acked` does) in one transaction; `true` when `acks` were applied (committed).
    fn try_append(&mut self, batches: &[&[Observation]], acks: &[RowId]) -> Result<(Vec<AppendOutcome>, bool), BufferError> {
        let limit = self.limit();
        let (when_full, dropped_total, slack) = (self.when_full, self.dropped_total, self.budget.drop_slack);
        let waves = self.waves.bytes;
        let SqliteStore { conn, devices, .. } = self;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut acked = 0u64;
        let result = (|| {
            if !acks.is_empty() {
                let mut del = tx.prepare_cached("DELETE FROM entries WHERE id BETWEEN ?1 AND ?2")?;
                for (first, last) in runs(acks) {
                    acked += del.execute([first, last])? as u64;
                }
            }
            let depth = self.depth.saturating_sub(acked);
            let mut outs = Vec::with_capacity(batches.len());
            let mut first_new = None;
            let mut n = 0u64;
            {
                let mut insert = tx.prepare_cached("INSERT INTO entries (device, receipt_ms, reading) VALUES (?1, ?2, ?3)")?;
                let mut buf = Vec::with_capacity(256);
                for batch in batches {
                    let mut rowids = Vec::with_capacity(batch.len());
                    for obs in batch.iter() {
                        let device = devices.id_for(&tx, &obs.context)?;
                        buf.clear();
                        buf = postcard::to_extend(&obs.reading, buf).map_err(|e| BufferError::storage("encode reading", e))?;
                        insert.execute(params![device, obs.reading.receipt_time.0, &buf[..]])?;
                        let id = tx.last_insert_rowid();
                        first_new.get_or_insert(id);
                        rowids.push(id);
                        n += 1;
                    }
                    outs.push(AppendOutcome { rowids, ..AppendOutcome::default() });
                }
            }
            let mut dropped = Dropped::default();
            let live = Self::entry_bytes(&tx, waves)?;
            if live > limit {
                match when_full {
                    WhenFull::StopReading => return Ok(None),
                    WhenFull::DropOldest => {
                        let target = limit.saturating_sub(slack);
                        dropped = drop_oldest(&tx, target, first_new.unwrap_or(RowId::MAX), depth, waves)?;
                        if Self::entry_bytes(&tx, waves)? > limit {
                            // Even with every older entry gone the batch does not fit.
                            return Ok(None);
                        }
                        tx.execute(
                            "INSERT OR REPLACE INTO meta (key, value) VALUES ('dropped_total', ?1)",
                            [(dropped_total + dropped.count) as i64],
                        )?;
                    }
                }
            }
            if let Some(first) = outs.first_mut() {
                first.dropped = dropped.count;
                first.dropped_span = dropped.span.map(|(a, b)| (Timestamp(a), Timestamp(b)));
            }
            Ok::<_, BufferError>(Some((outs, n, dropped)))
        })();
        match result {
            Ok(Some((outs, n, dropped))) => match tx.commit() {
                Ok(()) => {
                    self.commits += 1;
                    self.depth = self.depth.saturating_sub(acked) + n;
                    self.note_dropped(dropped);
                    Ok((outs, !acks.is_empty()))
                }
                Err(e) => {
                    self.devices.clear();
                    Err(e.into())
                }
            },
            Ok(None) => {
                drop(tx);
                self.devices.clear();
                Ok((refused(batches.len()), false))
            }
            Err(e) => {
                drop(tx);
                self.devices.clear();
                Err(e)
            }
        }
    }

    /// Moves unusable entries into the quarantine table (kept for an engineer, shown by
    /// `medgw buffer export`) and out of the way of the drain.
    fn quarantine_rows(&mut self, rows: &[(RawRow, String)]) -> Result<(), BufferError> {
        if rows.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let at = now_ms();
        let mut removed = 0u64;
        {
            let mut ins = tx.prepare_cached(
                "INSERT INTO quarantine (entry_id, device_context, receipt_ms, reading, reason, at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            let mut del = tx.prepare_cached("DELETE FROM entries WHERE id = ?1")?;
            for (row, reason) in rows {
                ins.execute(params![row.id, row.context, row.receipt_ms, row.reading, reason, at])?;
                removed += del.execute([row.id])? as u64;
                tx.prepare_cached("DELETE FROM sink_acks WHERE entry_id = ?1")?.execute([row.id])?;
            }
        }
        let total = self.quarantined + rows.len() as u64;
        tx.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('quarantined', ?1)", [total as i64])?;
        tx.commit()?;
        self.quarantined = total;
        self.depth = self.depth.saturating_sub(removed);
        tracing::error!(rows = rows.len(), quarantined_total = total, "undecodable buffer entries quarantined");
        Ok(())
    }

    /// Gives freed space back after a drain, a step at a time (auto_vacuum=INCREMENTAL), in its
    /// own transaction: moving pages needs WAL room, which a nearly full disk may not have.
    fn shrink_step(&mut self) -> Result<(), BufferError> {
        let pages: i64 = self.conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        let free: i64 = self.conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
        if free > 256 && free * 4 > pages {
            let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute_batch(&format!("PRAGMA incremental_vacuum({VACUUM_STEP_PAGES})"))?;
            tx.commit()?;
        }
        Ok(())
    }

    /// Starts a disk-full episode (once: an event, a warning).
    fn enter_disk_full(&mut self, during: &str) {
        if self.disk_full {
            return;
        }
        self.disk_full = true;
        let free = reserve::space(&self.path).map(|s| s.avail);
        let policy = match self.when_full {
            WhenFull::DropOldest => "the oldest observations are deleted to make room (buffer-dropped events)",
            WhenFull::StopReading => "devices are not read until acknowledgements make room (buffer-full events)",
        };
        let detail = format!(
            "the buffer's file system is full ({during}; {} bytes free): capacity lowered; {policy}; new observations that still do not fit are held by their source and not read",
            free.unwrap_or(0)
        );
        tracing::error!(path = %self.path.display(), free_bytes = free, "buffer disk full");
        self.events.push(BufferEvent::DiskFull { free_bytes: free, capacity_bytes: self.limit(), detail });
    }

    /// Housekeeping the storage thread runs every second or so: after a full disk, gives free
    /// pages back and makes the reserve again once the space has returned (see `reserve.rs`
    /// for the hold-off), which ends the disk-full episode and raises the capacity to what
    /// the file system holds now.
    pub(crate) fn maintain(&mut self) {
        if self.reserve.is_present() || !self.reserve.due() {
            return;
        }
        // Giving pages back may itself make the room; on a disk that stays full, try it
        // only every few seconds.
        if self.reserve.has_room() || self.last_squeeze.is_none_or(|t| t.elapsed() >= reserve::RETRY) {
            self.last_squeeze = Some(std::time::Instant::now());
            if let Err(e) = self.checkpoint() {
                tracing::debug!(error = %e, "checkpoint before making the disk reserve failed");
            }
        }
        if !self.reserve.restore_if_room() {
            return;
        }
        let free = reserve::space(&self.path);
        // Room for entries now: what they use plus what is free, less a WAL's worth.
        let live = Self::live_bytes(&self.conn).unwrap_or(0);
        let fits = free.map_or(0, |s| live + s.avail.saturating_sub(self.budget.wal_limit + self.budget.drop_slack));
        self.disk_limit = match self.disk_limit {
            Some(_) if fits < self.budget.data_limit => Some(fits.max(16 * PAGE_SIZE)),
            _ => None,
        };
        if self.disk_full {
            self.disk_full = false;
            tracing::warn!(path = %self.path.display(), capacity = self.limit(), "buffer disk space returned");
            self.events.push(BufferEvent::DiskOk { free_bytes: free.map(|s| s.avail), capacity_bytes: self.limit() });
        }
    }

    /// Events since the last call, for the storage thread to forward.
    pub(crate) fn take_events(&mut self) -> Vec<BufferEvent> {
        std::mem::take(&mut self.events)
    }

    /// In a disk-full episode.
    pub fn disk_full(&self) -> bool {
        self.disk_full
    }

    /// The damaged file was closed but no new one is open yet (see `recover_from_corruption`).
    pub(crate) fn detached(&self) -> bool {
        self.detached
    }

    /// Deletes acknowledged rows in one transaction.
    fn delete_acked(&mut self, rowids: &[RowId]) -> Result<(), BufferError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut removed = 0u64;
        {
            // Acknowledgements come mostly in runs of consecutive row ids: one statement per run
            // rather than per row. A run holds only acknowledged ids, so nothing else goes.
            let mut del = tx.prepare_cached("DELETE FROM entries WHERE id BETWEEN ?1 AND ?2")?;
            for (first, last) in runs(rowids) {
                removed += del.execute([first, last])? as u64;
            }
        }
        let depth = self.depth.saturating_sub(removed);
        let mut gc = false;
        if depth == 0 && removed > 0 {
            // Drained: forget the device rows (the quarantine keeps its own copies). Asked of
            // the table, not of the counter: an orphaned entry would become undecodable.
            tx.execute("DELETE FROM devices WHERE NOT EXISTS (SELECT 1 FROM entries)", [])?;
            gc = true;
        }
        tx.commit()?;
        if gc {
            self.devices.clear();
        }
        self.depth = depth;
        Ok(())
    }

    /// The file was found damaged while running: closes it, moves it aside and salvages it
    /// into a new one exactly as at start-up (`salvage.rs`), then carries on with the new
    /// file. Counters carry over (salvage reads them from the old file).
    pub(crate) fn recover_from_corruption(&mut self, reason: &str) -> Result<QuarantineReport, BufferError> {
        let reason = self.damage.get_or_insert_with(|| reason.to_string()).clone();
        if !self.detached {
            tracing::error!(path = %self.path.display(), reason, "buffer file damaged while running: moving it aside");
            // Close the damaged connection first, so that nothing more is written to the file
            // (or its WAL) once it has been renamed. Until a new file is open, every call
            // fails and the storage thread tries again.
            let old = std::mem::replace(&mut self.conn, Connection::open_in_memory()?);
            self.detached = true;
            if let Err((_, e)) = old.close() {
                tracing::warn!(error = %e, "closing the damaged buffer file");
            }
            self.devices.clear();
        }
        let to = match &self.moved_to {
            Some(to) => to.clone(),
            None => {
                let to = salvage::move_aside(&self.path)?;
                self.moved_to = Some(to.clone());
                to
            }
        };
        let lock = match self.lock.take() {
            Some(l) => l,
            None => lock(&self.path)?,
        };
        let (mut fresh, q) = Self::rebuild(self.path.clone(), &self.cfg, self.durability, lock, &to, reason)?;
        if let Err(e) = fresh.set_meta("quarantined", fresh.quarantined) {
            tracing::warn!(error = %e, "quarantine count not saved");
        }
        fresh.dropped_total = fresh.dropped_total.max(self.dropped_total);
        // Which sink had which row is not salvaged (those rows go to that sink again: a
        // duplicate, which receivers remove by id); the sinks and the count carry over.
        fresh.sinks = std::mem::take(&mut self.sinks);
        fresh.dead_lettered = fresh.dead_lettered.max(self.dead_lettered);
        // Wave segments are not salvaged (a gap the receiver sees by sequence); the budget stays.
        fresh.waves.limit = self.waves.limit;
        fresh.waves.dropped_total = fresh.waves.dropped_total.max(self.waves.dropped_total);
        fresh.commits += self.commits;
        fresh.runtime_quarantines = self.runtime_quarantines + 1;
        fresh.reserve.add_writes(self.reserve.writes());
        fresh.events.append(&mut self.events);
        fresh.events.push(BufferEvent::Quarantined(q.clone()));
        tracing::error!(
            salvaged = q.salvaged,
            undecodable = q.undecodable,
            unreadable_ranges = q.unreadable_ranges.len(),
            moved_to = %q.moved_to.display(),
            "buffer salvaged after damage found while running"
        );
        *self = fresh;
        Ok(q)
    }

    /// Writes the WAL into the database file and truncates it; gives free pages back first.
    pub fn checkpoint(&mut self) -> Result<(), BufferError> {
        loop {
            let free: i64 = self.conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
            if free == 0 {
                break;
            }
            let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute_batch(&format!("PRAGMA incremental_vacuum({VACUUM_STEP_PAGES})"))?;
            tx.commit()?;
            let after: i64 = self.conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
            if after >= free {
                break;
            }
        }
        self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// Test hook: makes SQLite report SQLITE_FULL beyond `pages` pages, like a full disk.
    #[cfg(test)]
    pub(crate) fn set_max_page_count(&self, pages: i64) -> Result<(), BufferError> {
        self.conn.pragma_update(None, "max_page_count", pages)?;
        Ok(())
    }

    /// Test hook: how long the reserve stays given up at least.
    #[cfg(test)]
    pub(crate) fn set_reserve_holdoff(&mut self, holdoff: Duration) {
        self.reserve.set_holdoff(holdoff);
    }

    /// Test hook: the connection, to damage rows behind the store's back.
    #[cfg(test)]
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }
}

/// For the wave segments' own calls (`waves.rs`).
impl SqliteStore {
    pub(super) fn db(&self) -> &Connection {
        &self.conn
    }

    pub(super) fn db_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

fn refused(n: usize) -> Vec<AppendOutcome> {
    (0..n).map(|_| AppendOutcome { refused_full: true, ..AppendOutcome::default() }).collect()
}

/// Bytes an observation will take in the entries B-tree, roughly.
fn estimate(o: &Observation) -> u64 {
    postcard::to_allocvec(&o.reading).map_or(64, |v| v.len() as u64) + ROW_OVERHEAD
}

/// Deletes the oldest entries (rowid < `before`) until live bytes are at most `target`.
/// Free pages appear only when whole leaf pages empty, so it deletes by an estimate from the
/// average entry size and measures again.
fn drop_oldest(tx: &Connection, target: u64, before: RowId, depth: u64, waves: u64) -> Result<Dropped, BufferError> {
    let mut total = Dropped::default();
    for _ in 0..16 {
        let live = SqliteStore::entry_bytes(tx, waves)?;
        if live <= target {
            break;
        }
        let avg = (live / depth.max(1)).clamp(16, 1 << 20);
        let want = ((live - target) / avg).max(1) as i64;
        let boundary: Option<i64> = tx
            .prepare_cached("SELECT id FROM entries WHERE id < ?1 ORDER BY id LIMIT 1 OFFSET ?2")?
            .query_row(params![before, want - 1], |r| r.get(0))
            .optional()?;
        let upto = match boundary {
            Some(b) => b,
            None => before.saturating_sub(1),
        };
        let (count, lo, hi): (i64, Option<i64>, Option<i64>) = tx
            .prepare_cached("SELECT count(*), min(receipt_ms), max(receipt_ms) FROM entries WHERE id <= ?1")?
            .query_row([upto], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        if count == 0 {
            break;
        }
        tx.prepare_cached("DELETE FROM entries WHERE id <= ?1")?.execute([upto])?;
        tx.prepare_cached("DELETE FROM sink_acks WHERE entry_id <= ?1")?.execute([upto])?;
        total.add(Dropped { count: count as u64, span: lo.zip(hi) });
        if boundary.is_none() {
            break;
        }
    }
    Ok(total)
}

/// The salvage writes into a new store through these.
impl salvage::Target for SqliteStore {
    fn import(&mut self, rows: &[(RowId, String, i64, Vec<u8>)], device_ids: &mut HashMap<String, i64>) -> Result<(), BufferError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut added = 0u64;
        {
            let mut ins = tx.prepare_cached("INSERT OR IGNORE INTO entries (id, device, receipt_ms, reading) VALUES (?1, ?2, ?3, ?4)")?;
            for (id, ctx, receipt, blob) in rows {
                let device = match device_ids.get(ctx) {
                    Some(d) => *d,
                    None => {
                        tx.execute("INSERT OR IGNORE INTO devices (context) VALUES (?1)", [ctx])?;
                        let d: i64 = tx.query_row("SELECT id FROM devices WHERE context = ?1", [ctx], |r| r.get(0))?;
                        device_ids.insert(ctx.clone(), d);
                        d
                    }
                };
                added += ins.execute(params![id, device, receipt, blob])? as u64;
            }
        }
        tx.commit()?;
        self.depth += added;
        Ok(())
    }

    fn raise_sequence(&mut self, at_least: RowId, dropped_total: u64, quarantined_before: u64) -> Result<(), BufferError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute("UPDATE sqlite_sequence SET seq = max(seq, ?1) WHERE name = 'entries'", [at_least])?;
        if n == 0 {
            tx.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('entries', ?1)", [at_least])?;
        }
        if dropped_total > self.dropped_total {
            tx.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('dropped_total', ?1)", [dropped_total as i64])?;
        }
        let quarantined = self.quarantined + quarantined_before;
        tx.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('quarantined', ?1)", [quarantined as i64])?;
        tx.commit()?;
        self.dropped_total = self.dropped_total.max(dropped_total);
        self.quarantined = quarantined;
        Ok(())
    }

    fn quarantine_rows(&mut self, rows: &[(RawRow, String)]) -> Result<(), BufferError> {
        SqliteStore::quarantine_rows(self, rows)
    }
}

/// What the storage thread does for the pipeline.
impl SqliteStore {
    /// Appends a batch in one transaction and returns after it is durable (fsync).
    pub fn append(&mut self, batch: &[Observation]) -> Result<AppendOutcome, BufferError> {
        let mut outs = self.append_group(&[batch])?;
        Ok(outs.pop().unwrap_or_default())
    }

    /// Up to `limit` entries with `rowid > after`, in rowid order (with several sinks: those
    /// the first sink has not had yet).
    pub fn read_after(&mut self, after: RowId, limit: usize) -> Result<Vec<Entry>, BufferError> {
        let sink = if self.sinks.len() > 1 { self.sinks.first().cloned() } else { None };
        self.read_after_for(sink.as_deref(), after, limit)
    }

    /// Up to `limit` entries with `rowid > after` that `sink` has not acknowledged or
    /// dead-lettered yet, in rowid order. `None` (or a single sink): every entry.
    pub fn read_after_for(&mut self, sink: Option<&str>, after: RowId, limit: usize) -> Result<Vec<Entry>, BufferError> {
        let sink = if self.sinks.len() > 1 { sink } else { None };
        let mut out = Vec::with_capacity(limit.min(4096));
        let mut cursor = after;
        loop {
            let want = limit.saturating_sub(out.len());
            if want == 0 {
                break;
            }
            let mut bad = Vec::new();
            let mut fetched = 0usize;
            {
                let SqliteStore { conn, devices, .. } = self;
                let mut stmt = match sink {
                    None => {
                        conn.prepare_cached("SELECT id, device, receipt_ms, reading FROM entries WHERE id > ?1 ORDER BY id LIMIT ?2")?
                    }
                    Some(_) => conn.prepare_cached(
                        "SELECT id, device, receipt_ms, reading FROM entries WHERE id > ?1 \
                         AND NOT EXISTS (SELECT 1 FROM sink_acks WHERE entry_id = entries.id AND sink = ?3) ORDER BY id LIMIT ?2",
                    )?,
                };
                let mut rows = match sink {
                    None => stmt.query(params![cursor, want as i64])?,
                    Some(s) => stmt.query(params![cursor, want as i64, s])?,
                };
                while let Some(row) = rows.next()? {
                    fetched += 1;
                    let id: i64 = row.get(0)?;
                    cursor = id;
                    let device = match row.get_ref(1)? {
                        ValueRef::Integer(d) => Some(d),
                        _ => None,
                    };
                    let receipt = match row.get_ref(2)? {
                        ValueRef::Integer(t) => Some(t),
                        _ => None,
                    };
                    let blob = match row.get_ref(3)? {
                        ValueRef::Blob(b) => Some(b),
                        _ => None,
                    };
                    let ctx = match device {
                        Some(d) => devices.context(conn, d)?,
                        None => Err("device id is not an integer".to_string()),
                    };
                    let reading = blob.ok_or_else(|| "reading is not a blob".to_string()).and_then(decode_reading);
                    match (ctx, reading) {
                        (Ok(context), Ok(reading)) => out.push(Entry { rowid: id, observation: Observation { context, reading } }),
                        (ctx, reading) => {
                            let reason = [ctx.err(), reading.err()].into_iter().flatten().collect::<Vec<_>>().join("; ");
                            let context = match device {
                                Some(d) => conn.query_row("SELECT context FROM devices WHERE id = ?1", [d], |r| r.get(0)).optional()?,
                                None => None,
                            };
                            bad.push((RawRow { id, context, receipt_ms: receipt, reading: blob.map(<[u8]>::to_vec) }, reason));
                        }
                    }
                }
            }
            if let Err(e) = self.quarantine_rows(&bad) {
                // The rows are skipped by this read either way; they are retried next time.
                tracing::error!(error = %e, rows = bad.len(), "could not quarantine undecodable buffer entries");
            }
            if bad.is_empty() || fetched < want {
                break;
            }
        }
        Ok(out)
    }

    /// Deletes acknowledged entries.
    pub fn ack(&mut self, rowids: &[RowId]) -> Result<(), BufferError> {
        if rowids.is_empty() {
            return Ok(());
        }
        if self.sinks.len() > 1 {
            let first = self.sinks[0].clone();
            return self.ack_for(&first, rowids);
        }
        match self.delete_acked(rowids) {
            Ok(()) => {}
            Err(BufferError::DiskFull) => {
                // Deleting needs WAL room: give up the reserve, fold the WAL into the database
                // file, and delete in small transactions with a checkpoint after each, so that
                // the WAL never needs more than the reserve freed.
                self.enter_disk_full("applying acknowledgements");
                self.reserve.release();
                if let Err(e) = self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "checkpoint on a full disk failed");
                }
                let mut ids = rowids.to_vec();
                ids.sort_unstable();
                for chunk in ids.chunks(ACK_CHUNK_ON_FULL_DISK) {
                    self.delete_acked(chunk)?;
                    if let Err(e) = self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
                        tracing::debug!(error = %e, "checkpoint between acknowledgement chunks");
                    }
                }
            }
            Err(e) => return Err(e),
        }
        if let Err(e) = self.shrink_step() {
            // Only the file size is at stake; the next ack tries again.
            tracing::debug!(error = %e, "incremental vacuum failed");
        }
        Ok(())
    }

    pub fn stats(&mut self) -> Result<BufferStats, BufferError> {
        let oldest: Option<i64> = self.conn.query_row("SELECT receipt_ms FROM entries ORDER BY id LIMIT 1", [], |r| r.get(0)).optional()?;
        let (wave_bytes, wave_max_bytes, waves_dropped_total) = self.wave_usage();
        Ok(BufferStats {
            wave_segments: self.wave_depth()?,
            wave_bytes,
            wave_max_bytes,
            waves_dropped_total,
            depth: self.depth,
            bytes: file_bytes(&self.path),
            max_bytes: self.max_bytes,
            oldest: oldest.map(Timestamp),
            dropped_total: self.dropped_total,
            quarantined: self.quarantined,
            disk_full: self.disk_full,
            disk_free_bytes: reserve::space(&self.path).map(|s| s.avail),
            capacity_bytes: self.limit(),
            reserve_bytes: self.reserve.size(),
            reserve_present: self.reserve.is_present(),
            reserve_writes: self.reserve.writes(),
            runtime_quarantines: self.runtime_quarantines,
            dead_lettered: self.dead_lettered,
            sinks: self.sink_backlogs()?,
            recent_dead_letters: Vec::new(),
        })
    }
}

/// Delivery per sink and dead letters (issue 15; the schema note at the top of this file).
impl SqliteStore {
    /// The sinks the gateway delivers to, the first being the one `ack`/`read_after` speak for.
    /// Entries every one of them has already acknowledged (a sink was removed from the
    /// configuration) are deleted, and acknowledgements of rows no longer there are forgotten.
    pub fn set_sinks(&mut self, names: &[String]) -> Result<(), BufferError> {
        self.sinks = names.to_vec();
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut removed = 0u64;
        if !self.sinks.is_empty() {
            let list = serde_json::to_string(&self.sinks).map_err(|e| BufferError::storage("sink names", e))?;
            // Driven by the acknowledgements (few), not by the entries (a full buffer at start).
            removed = tx.execute(
                "DELETE FROM entries WHERE id IN (SELECT entry_id FROM sink_acks \
                 WHERE sink IN (SELECT value FROM json_each(?1)) GROUP BY entry_id HAVING count(*) >= ?2)",
                params![list, self.sinks.len() as i64],
            )? as u64;
        }
        tx.execute("DELETE FROM sink_acks WHERE NOT EXISTS (SELECT 1 FROM entries WHERE entries.id = sink_acks.entry_id)", [])?;
        tx.commit()?;
        self.after_removed(removed)
    }

    /// The configured sinks (empty when none was set).
    pub fn sinks(&self) -> &[String] {
        &self.sinks
    }

    /// `sink` has these rows: with one sink they are deleted; with several, they are deleted
    /// once every configured sink has them, and meanwhile no longer read for `sink`.
    pub fn ack_for(&mut self, sink: &str, rowids: &[RowId]) -> Result<(), BufferError> {
        if rowids.is_empty() {
            return Ok(());
        }
        if self.sinks.len() <= 1 {
            if self.sinks.first().is_none_or(|s| s == sink) {
                return self.ack(rowids);
            }
            tracing::warn!(sink, "acknowledgement from a sink the buffer does not know: ignored");
            return Ok(());
        }
        if !self.sinks.iter().any(|s| s == sink) {
            tracing::warn!(sink, "acknowledgement from a sink the buffer does not know: ignored");
            return Ok(());
        }
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let removed = mark_acked(&tx, &self.sinks, sink, rowids)?;
        tx.commit()?;
        self.after_removed(removed)
    }

    /// `sink`'s peer rejected these rows for good: they are copied to the dead-letter table with
    /// the message control id and the peer's reason, and count as delivered for `sink` (the
    /// other sinks still get them). Returns how many rows were dead-lettered (rows no longer in
    /// the buffer, e.g. dropped by the capacity policy meanwhile, are not).
    pub fn dead_letter(&mut self, sink: &str, rowids: &[RowId], control_id: &str, reason: &str) -> Result<u64, BufferError> {
        if rowids.is_empty() {
            return Ok(0);
        }
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let at = now_ms();
        let mut added = 0u64;
        {
            let mut ins = tx.prepare_cached(
                "INSERT INTO dead_letters (sink, entry_id, control_id, reason, device_context, receipt_ms, reading, at_ms) \
                 SELECT ?1, e.id, ?2, ?3, d.context, e.receipt_ms, e.reading, ?4 \
                 FROM entries e LEFT JOIN devices d ON d.id = e.device WHERE e.id = ?5",
            )?;
            for id in rowids {
                added += ins.execute(params![sink, control_id, reason, at, id])? as u64;
            }
        }
        let total = self.dead_lettered + added;
        tx.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('dead_lettered', ?1)", [total as i64])?;
        let removed = if self.sinks.len() > 1 {
            mark_acked(&tx, &self.sinks, sink, rowids)?
        } else {
            let mut del = tx.prepare_cached("DELETE FROM entries WHERE id BETWEEN ?1 AND ?2")?;
            let mut n = 0u64;
            for (first, last) in runs(rowids) {
                n += del.execute([first, last])? as u64;
            }
            n
        };
        tx.commit()?;
        self.dead_lettered = total;
        tracing::warn!(sink, control_id, rows = added, dead_lettered_total = total, "rows dead-lettered");
        self.after_removed(removed)?;
        Ok(added)
    }

    /// Rows dead-lettered since the store was created.
    pub fn dead_lettered(&self) -> u64 {
        self.dead_lettered
    }

    /// What each configured sink has still to deliver.
    fn sink_backlogs(&self) -> Result<Vec<super::SinkBacklog>, BufferError> {
        let mut out = Vec::with_capacity(self.sinks.len());
        for name in &self.sinks {
            let done: i64 = if self.sinks.len() > 1 {
                self.conn.prepare_cached("SELECT count(*) FROM sink_acks WHERE sink = ?1")?.query_row([name], |r| r.get(0))?
            } else {
                0
            };
            out.push(super::SinkBacklog { name: name.clone(), backlog: self.depth.saturating_sub(done.max(0) as u64) });
        }
        Ok(out)
    }

    /// Book-keeping after entries were deleted outside `delete_acked`.
    fn after_removed(&mut self, removed: u64) -> Result<(), BufferError> {
        self.depth = self.depth.saturating_sub(removed);
        if removed > 0 && self.depth == 0 {
            self.conn.execute("DELETE FROM devices WHERE NOT EXISTS (SELECT 1 FROM entries)", [])?;
            self.devices.clear();
        }
        Ok(())
    }
}

/// Records `sink`'s acknowledgement of `rowids` (rows still in the buffer only) and deletes
/// those that every sink of `sinks` now has, with their acknowledgements. Returns the number
/// of entries deleted.
fn mark_acked(tx: &Connection, sinks: &[String], sink: &str, rowids: &[RowId]) -> Result<u64, BufferError> {
    let list = serde_json::to_string(sinks).map_err(|e| BufferError::storage("sink names", e))?;
    let mut ins = tx.prepare_cached("INSERT OR IGNORE INTO sink_acks (entry_id, sink) SELECT id, ?2 FROM entries WHERE id = ?1")?;
    for id in rowids {
        ins.execute(params![id, sink])?;
    }
    let mut del = tx.prepare_cached(
        "DELETE FROM entries WHERE id BETWEEN ?1 AND ?2 AND (SELECT count(*) FROM sink_acks s \
         WHERE s.entry_id = entries.id AND s.sink IN (SELECT value FROM json_each(?3))) >= ?4",
    )?;
    let mut forget = tx.prepare_cached(
        "DELETE FROM sink_acks WHERE entry_id BETWEEN ?1 AND ?2 AND NOT EXISTS (SELECT 1 FROM entries WHERE entries.id = sink_acks.entry_id)",
    )?;
    let mut removed = 0u64;
    for (first, last) in runs(rowids) {
        removed += del.execute(params![first, last, list, sinks.len() as i64])? as u64;
        forget.execute(params![first, last])?;
    }
    Ok(removed)
}

#[cfg(test)]
mod run_tests {
    use super::runs;

    #[test]
    fn row_ids_group_into_runs_of_consecutive_ids() {
        assert_eq!(runs(&[]), vec![]);
        assert_eq!(runs(&[7, 3, 4, 5, 9, 10, 4, 1]), vec![(1, 1), (3, 5), (7, 7), (9, 10)]);
        assert_eq!(runs(&[2]), vec![(2, 2)]);
    }
}
