//! The durable store-and-forward buffer between the normaliser and the sinks.
//!
//! An observation is *accepted* when the transaction holding it is committed to disk, and
//! *delivered* only when the broker acknowledged it (decisions.md, "Durability"). Everything in
//! between is in the store and is replayed after a crash or a reconnect. The store is the source
//! of truth, not the MQTT client's memory (rumqttc drops unacknowledged QoS 1 messages on a
//! reconnect without session resumption, style.md).
//!
//! Layout: [`SqliteStore`] is the synchronous storage engine (`sqlite.rs`), owned by one
//! dedicated thread; [`BufferHandle`] is the async face the pipeline uses. Storage calls never run
//! on the async executor's threads.

use std::sync::Arc;

pub mod cli;
mod files;
mod format;
mod handle;
pub mod live;
mod reserve;
mod salvage;
mod sqlite;
#[cfg(test)]
mod tests;
mod waves;

pub use handle::BufferHandle;
pub use live::{LiveBuilder, LiveHandOver, LiveReceiver};
pub use waves::{StoredWave, WaveAppend};
pub const RECENT_DEAD_LETTERS: usize = 10;
pub use salvage::QuarantineReport;
pub use sqlite::{SqliteStore, StartupReport};

use medgw_protocols::observation::{DeviceContext, Observation};
use medgw_protocols::Timestamp;

/// Position of an entry in the store: strictly increasing in append order, never reused.
pub type RowId = i64;

/// A buffered observation.
#[derive(Debug, Clone)]
pub struct Entry {
    pub rowid: RowId,
    pub observation: Observation,
}

/// What an append did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Row ids of the appended observations, in order (empty when refused).
    pub rowids: Vec<RowId>,
    /// Older observations deleted to make room (policy drop-oldest): counted, never silent.
    pub dropped: u64,
    /// Receipt-time span of what was dropped.
    pub dropped_span: Option<(Timestamp, Timestamp)>,
    /// `true` when the store is full and the policy is stop-reading: nothing was appended.
    pub refused_full: bool,
}

/// Depth and age of the buffer.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct BufferStats {
    /// Observations not yet acknowledged by the broker.
    pub depth: u64,
    /// Bytes the store uses on disk (database, write-ahead log and disk reserve).
    pub bytes: u64,
    pub max_bytes: u64,
    /// Receipt time of the oldest unacknowledged observation.
    pub oldest: Option<Timestamp>,
    /// Observations deleted by the drop-oldest policy since the store was created.
    pub dropped_total: u64,
    /// Damage moved aside since the store was created: each entry that could be read but not
    /// decoded (kept in the `quarantine` table), plus each unreadable region of a damaged file
    /// found at start-up or at run time (its entries stay in the quarantined file; see
    /// `salvage.rs`).
    pub quarantined: u64,
    /// The file system is full (`buffer-disk-full` sent, `buffer-disk-ok` not yet).
    pub disk_full: bool,
    /// Free bytes on the buffer's file system, when the OS says.
    pub disk_free_bytes: Option<u64>,
    /// What entries may use now: `max_bytes` less the WAL and reserve shares, lower after the
    /// disk was found full and until the space returns.
    pub capacity_bytes: u64,
    /// Size of the disk reserve and whether it is in place.
    pub reserve_bytes: u64,
    pub reserve_present: bool,
    /// Times the disk reserve file was written since open (flash wear).
    pub reserve_writes: u64,
    /// Damaged buffer files moved aside while running (not at start-up).
    pub runtime_quarantines: u64,
    /// Rows a sink's peer rejected for good (HL7 AR/CR, or AE after its retries), kept in the
    /// `dead_letters` table, since the store was created.
    pub dead_lettered: u64,
    /// Durable wave segments stored (`[waves] durable = true`, `waves.rs`), the bytes they
    /// occupy, their budget (0 when waves are not durable, or read from a file) and the
    /// segments the waves' drop-oldest deleted since the store was created.
    pub wave_segments: u64,
    pub wave_bytes: u64,
    pub wave_max_bytes: u64,
    pub waves_dropped_total: u64,
    /// What each configured sink has still to deliver (empty when no sinks were set).
    pub sinks: Vec<SinkBacklog>,
    /// The latest dead letters, newest first (filled by `medgw buffer stats`, which reads the
    /// file; the daemon's statistics leave it empty).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recent_dead_letters: Vec<DeadLetterInfo>,
}

/// One dead-lettered row as `medgw buffer stats` shows it: no patient data, only what the
/// peer said and where to look (`medgw buffer export` has the row itself).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeadLetterInfo {
    pub sink: String,
    pub entry_rowid: Option<RowId>,
    pub control_id: Option<String>,
    pub reason: String,
    pub at_ms: i64,
}

/// One sink's share of the buffer: rows it has not acknowledged or dead-lettered yet.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SinkBacklog {
    pub name: String,
    pub backlog: u64,
}

/// Something the storage thread reports to the pipeline, which publishes it as a gateway event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BufferEvent {
    /// The file system is full: what is done about new observations is in `detail`.
    DiskFull { free_bytes: Option<u64>, capacity_bytes: u64, detail: String },
    /// The space returned: the reserve is in place again and the capacity raised.
    DiskOk { free_bytes: Option<u64>, capacity_bytes: u64 },
    /// The file was found damaged while running, moved aside and salvaged into a new one.
    Quarantined(QuarantineReport),
}

/// Errors at the buffer boundary.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BufferError {
    /// SQLite or the file system failed. `context` says at what (empty when SQLite's message
    /// says it all); the cause (a `rusqlite::Error`, an `io::Error`, ...) is kept, shared so
    /// that every caller of a failed group commit gets it.
    #[error("buffer storage: {}{source}", storage_context(context))]
    Storage {
        context: String,
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// The disk is full (ENOSPC/SQLITE_FULL); handled like the capacity policy.
    #[error("disk full")]
    DiskFull,
    /// SQLITE_CORRUPT / SQLITE_NOTADB: the file is damaged; the storage thread quarantines it.
    #[error("buffer file damaged: {0}")]
    Corrupt(String),
    #[error("buffer file {path} is not usable: {reason}")]
    Unusable { path: String, reason: String },
    #[error("buffer thread stopped")]
    Closed,
}

impl BufferError {
    /// A storage failure at `context` (may be empty), keeping its cause.
    pub(crate) fn storage(context: impl Into<String>, cause: impl std::error::Error + Send + Sync + 'static) -> BufferError {
        BufferError::Storage { context: context.into(), source: Arc::new(cause) }
    }
}

fn storage_context(context: &str) -> String {
    if context.is_empty() {
        String::new()
    } else {
        format!("{context}: ")
    }
}

/// The context of an entry read back from the store is shared by all entries of its device.
pub type SharedContext = Arc<DeviceContext>;

/// Opens the buffer of the configuration for the pipeline: the start-up check runs on a
/// blocking thread. What it found is logged where it was found (a quarantine at error level,
/// by the store), once.
pub async fn open(cfg: &crate::config::BufferConfig) -> Result<(BufferHandle, StartupReport), BufferError> {
    let cfg = cfg.clone();
    let (handle, report) = tokio::task::spawn_blocking(move || BufferHandle::open(&cfg)).await.map_err(|_| BufferError::Closed)??;
    Ok((handle, report))
}
