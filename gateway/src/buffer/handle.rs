//! The async face of the buffer: one storage thread that owns the store, and group commit.
//!
//! ```text
//!  tasks ──append/read/stats──▶ bounded queue ──▶ storage thread ──▶ SqliteStore
//!    ▲                          (semaphore)         │  group: the appends queued
//!    └──── tokio oneshot replies ◀──────────────────┘  while the last commit ran, one transaction,
//!  sink ──ack(rowids)──▶ pending acks (mutex) ─────▶    one fsync, every caller answered
//! ```
//!
//! Storage calls never run on the executor: an `append` future only waits for its reply. With
//! `commit_interval_ms = 0` (the default) an append is committed as soon as the thread is free,
//! together with every append queued by then: when idle an observation waits one fsync, and
//! under load the appends that arrive during a commit form the next group, so groups grow with
//! the load and the latency stays proportional to the fsync. A non-zero interval makes the first
//! append of a group wait that long for others (fewer fsyncs, more latency). A group is
//! committed at once when it holds [`MAX_GROUP`] observations. Once a group is durable the
//! thread hands each batch that came with a [`LiveHandOver`] to the sinks itself (`live.rs`), before
//! answering its caller, so a reading does not wait for its source task to be scheduled again
//! on its way to the broker. Acknowledgements are not urgent (a lost one means one duplicate
//! delivery, which receivers remove by observation id), so they are collected and deleted
//! every [`ACK_PERIOD`]: in the next append's transaction when there is one (no fsync of their
//! own, and no append waiting behind one), else in a transaction of their own.
//!
//! The thread also keeps the store healthy: every [`MAINTAIN_PERIOD`] it lets the store check
//! whether the disk space returned after a full disk, and when a call finds the file damaged
//! (SQLITE_CORRUPT / SQLITE_NOTADB) it has the store quarantine and replace it, then retries
//! the call once. What the store reports (disk full, disk ok, quarantined) goes to the pipeline
//! through [`BufferHandle::take_events`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use medgw_protocols::observation::Observation;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use super::sqlite::{Durability, SqliteStore, StartupReport};
use super::{AppendOutcome, BufferError, BufferEvent, BufferStats, Entry, RowId};
use crate::config::BufferConfig;

/// Commands waiting for the storage thread at most.
const QUEUE: usize = 256;
/// A group is committed when it holds this many observations, whatever the interval.
pub const MAX_GROUP: usize = 8192;
/// Acknowledged rowids are deleted this often, or sooner when [`ACK_BATCH`] are pending.
pub const ACK_PERIOD: Duration = Duration::from_millis(100);
const ACK_BATCH: usize = 8192;
/// Acks that fail to apply (disk trouble) are retried; beyond this many the oldest are
/// forgotten, which only means duplicate deliveries later.
const ACK_BACKLOG_MAX: usize = 1 << 20;
/// How long the idle thread sleeps between looks at the pending acks.
const IDLE_WAKE: Duration = Duration::from_millis(500);
/// How often the store's housekeeping runs (disk space after a full disk).
const MAINTAIN_PERIOD: Duration = Duration::from_secs(1);

use super::live::LiveHandOver;

type Reply<T> = oneshot::Sender<Result<T, BufferError>>;
/// An append's answer carries its batch back, so that the caller can offer it again after a
/// refusal or a failure without having kept a copy.
type AppendReply = oneshot::Sender<(Result<AppendOutcome, BufferError>, Vec<Observation>)>;

pub(super) enum Cmd {
    Append {
        batch: Vec<Observation>,
        live: Option<LiveHandOver>,
        reply: AppendReply,
    },
    Read {
        after: RowId,
        limit: usize,
        reply: Reply<Vec<Entry>>,
    },
    Stats {
        reply: Reply<BufferStats>,
    },
    Close {
        reply: Reply<()>,
    },
    /// Delivery per sink (issue 15): see `SqliteStore::set_sinks` and the calls below it.
    Sinks(SinkCmd),
    /// Durable wave segments (`waves.rs`).
    Waves(super::waves::WaveCmd),
}

pub(super) enum SinkCmd {
    Set { names: Vec<String>, reply: Reply<()> },
    Read { sink: Arc<str>, after: RowId, limit: usize, reply: Reply<Vec<Entry>> },
    Ack { sink: Arc<str>, rows: Vec<RowId>, reply: Reply<()> },
    DeadLetter { sink: Arc<str>, rows: Vec<RowId>, control_id: String, reason: String, reply: Reply<u64> },
}

/// Runs one store call for a command and answers it; when the call finds the file damaged and
/// `heal` opened a new one, the call is tried once more there.
pub(super) fn apply_healed<T>(
    store: &mut SqliteStore,
    heal: &mut dyn FnMut(&mut SqliteStore, &BufferError) -> bool,
    reply: Reply<T>,
    mut f: impl FnMut(&mut SqliteStore) -> Result<T, BufferError>,
) {
    let mut r = f(store);
    if let Err(e) = &r {
        if heal(store, e) {
            r = f(store);
        }
    }
    let _ = reply.send(r);
}

impl SinkCmd {
    /// Runs the command on the store ([`apply_healed`]).
    fn apply(self, store: &mut SqliteStore, heal: &mut dyn FnMut(&mut SqliteStore, &BufferError) -> bool) {
        match self {
            SinkCmd::Set { names, reply } => apply_healed(store, heal, reply, |s| s.set_sinks(&names)),
            SinkCmd::Read { sink, after, limit, reply } => {
                apply_healed(store, heal, reply, |s| s.read_after_for(Some(&sink), after, limit))
            }
            SinkCmd::Ack { sink, rows, reply } => apply_healed(store, heal, reply, |s| s.ack_for(&sink, &rows)),
            SinkCmd::DeadLetter { sink, rows, control_id, reason, reply } => {
                apply_healed(store, heal, reply, |s| s.dead_letter(&sink, &rows, &control_id, &reason))
            }
        }
    }
}

/// A command and the queue slot it holds until the storage thread takes it.
struct Queued(Cmd, OwnedSemaphorePermit);

struct Shared {
    queue: SyncSender<Queued>,
    /// One permit per queue slot: `send` never blocks a thread, an async caller waits for a
    /// permit instead.
    slots: Arc<Semaphore>,
    acks: Arc<Mutex<Vec<RowId>>>,
    commits: Arc<AtomicU64>,
    events: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<BufferEvent>>>,
}

/// The buffer as the pipeline sees it. Cheap to clone; the storage thread ends when the last
/// clone is dropped or [`BufferHandle::close`] is called.
#[derive(Clone)]
pub struct BufferHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for BufferHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufferHandle").field("commits", &self.commits()).finish_non_exhaustive()
    }
}

/// `BufferError` is not `Clone` (a variant may hold a cause that is not); a group's callers
/// each get an equal copy, sharing the cause.
fn dup(e: &BufferError) -> BufferError {
    match e {
        BufferError::Storage { context, source } => BufferError::Storage { context: context.clone(), source: source.clone() },
        BufferError::DiskFull => BufferError::DiskFull,
        BufferError::Corrupt(s) => BufferError::Corrupt(s.clone()),
        BufferError::Unusable { path, reason } => BufferError::Unusable { path: path.clone(), reason: reason.clone() },
        BufferError::Closed => BufferError::Closed,
    }
}

impl BufferHandle {
    /// Opens the store on its own thread and returns when it is ready. Blocking (it runs the
    /// start-up integrity check, seconds on a large file): call it before the pipeline starts
    /// or from `spawn_blocking`.
    pub fn open(cfg: &BufferConfig) -> Result<(BufferHandle, StartupReport), BufferError> {
        Self::open_with(cfg, Durability::Full)
    }

    pub(crate) fn open_with(cfg: &BufferConfig, durability: Durability) -> Result<(BufferHandle, StartupReport), BufferError> {
        let (queue, rx) = sync_channel(QUEUE);
        let acks = Arc::new(Mutex::new(Vec::new()));
        let commits = Arc::new(AtomicU64::new(0));
        let (events_tx, events_rx) = tokio::sync::mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            queue,
            slots: Arc::new(Semaphore::new(QUEUE)),
            acks: acks.clone(),
            commits: commits.clone(),
            events: Mutex::new(Some(events_rx)),
        });
        let (opened_tx, opened_rx) = sync_channel(1);
        let cfg = cfg.clone();
        std::thread::Builder::new()
            .name("medgw-buffer".into())
            .spawn(move || {
                let store = match SqliteStore::open_with(&cfg, durability) {
                    Ok((store, report)) => {
                        let _ = opened_tx.send(Ok(report));
                        store
                    }
                    Err(e) if no_room(&e, &cfg) => {
                        // Never wedge at start-up: the pipeline starts, the buffer waits for room.
                        let report = StartupReport { path: cfg.path.clone(), check: "none", ..StartupReport::default() };
                        let _ = opened_tx.send(Ok(report));
                        match open_when_room(&cfg, durability, &rx, &events_tx, &mut Vec::new()) {
                            Some(store) => store,
                            None => return,
                        }
                    }
                    Err(e) => {
                        let _ = opened_tx.send(Err(e));
                        return;
                    }
                };
                Worker {
                    store,
                    rx,
                    acks,
                    commits,
                    interval: Duration::from_millis(u64::from(cfg.commit_interval_ms)),
                    events: events_tx,
                    last_acks: Instant::now(),
                }
                .run();
            })
            .map_err(|e| BufferError::storage("cannot start the buffer thread", e))?;
        let report = opened_rx.recv().map_err(|_| BufferError::Closed)??;
        Ok((BufferHandle { shared }, report))
    }

    pub(super) async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Cmd) -> Result<T, BufferError> {
        let permit = self.shared.slots.clone().acquire_owned().await.map_err(|_| BufferError::Closed)?;
        let (reply, answer) = oneshot::channel();
        // Cannot be full: every queued command holds one of QUEUE permits.
        self.shared.queue.try_send(Queued(make(reply), permit)).map_err(|_| BufferError::Closed)?;
        answer.await.map_err(|_| BufferError::Closed)?
    }

    /// Appends a batch; resolves when it is durable (committed and fsynced with its group).
    /// Dropping the future does not undo the append.
    pub async fn append(&self, batch: Vec<Observation>) -> Result<AppendOutcome, BufferError> {
        self.append_with(batch, None).await.0
    }

    /// [`BufferHandle::append`], with the batch given back (to offer it again when it was
    /// refused or failed) and, with `live`, handed to the sink by the storage thread as soon as
    /// it is durable, before this resolves. The batch comes back empty only when the buffer
    /// closed with it.
    pub async fn append_with(
        &self,
        batch: Vec<Observation>,
        live: Option<LiveHandOver>,
    ) -> (Result<AppendOutcome, BufferError>, Vec<Observation>) {
        if batch.is_empty() {
            return (Ok(AppendOutcome::default()), batch);
        }
        let Ok(permit) = self.shared.slots.clone().acquire_owned().await else {
            return (Err(BufferError::Closed), batch);
        };
        let (reply, answer) = oneshot::channel();
        // Cannot be full: every queued command holds one of QUEUE permits.
        if let Err(e) = self.shared.queue.try_send(Queued(Cmd::Append { batch, live, reply }, permit)) {
            let (std::sync::mpsc::TrySendError::Full(q) | std::sync::mpsc::TrySendError::Disconnected(q)) = e;
            let batch = match q {
                Queued(Cmd::Append { batch, .. }, _) => batch,
                _ => Vec::new(),
            };
            return (Err(BufferError::Closed), batch);
        }
        answer.await.unwrap_or_else(|_| (Err(BufferError::Closed), Vec::new()))
    }

    /// Up to `limit` entries with `rowid > after`, in rowid order. Entries that no longer decode
    /// are quarantined and skipped (counted in [`BufferStats::quarantined`]).
    pub async fn read_after(&self, after: RowId, limit: usize) -> Result<Vec<Entry>, BufferError> {
        self.call(|reply| Cmd::Read { after, limit, reply }).await
    }

    /// Marks entries as delivered. Never blocks: they are deleted in the next ack transaction.
    pub fn ack(&self, rowids: Vec<RowId>) {
        let mut acks = self.shared.acks.lock().unwrap_or_else(|p| p.into_inner());
        acks.extend(rowids);
    }

    /// Depth, size and counters (pending acks are applied first).
    pub async fn stats(&self) -> Result<BufferStats, BufferError> {
        self.call(|reply| Cmd::Stats { reply }).await
    }

    /// The sinks the buffer delivers to: a row is deleted when every one of them acknowledged
    /// (or dead-lettered) it. The first is the one [`BufferHandle::ack`] and
    /// [`BufferHandle::read_after`] speak for (the MQTT sink). Call it before the sinks start.
    pub async fn set_sinks(&self, names: Vec<String>) -> Result<(), BufferError> {
        self.call(|reply| Cmd::Sinks(SinkCmd::Set { names, reply })).await
    }

    /// [`BufferHandle::read_after`] for one sink: rows it has not acknowledged yet.
    pub async fn read_after_for(&self, sink: Arc<str>, after: RowId, limit: usize) -> Result<Vec<Entry>, BufferError> {
        self.call(|reply| Cmd::Sinks(SinkCmd::Read { sink, after, limit, reply })).await
    }

    /// `sink` delivered these rows; resolves when that is durable.
    pub async fn ack_for(&self, sink: Arc<str>, rows: Vec<RowId>) -> Result<(), BufferError> {
        self.call(|reply| Cmd::Sinks(SinkCmd::Ack { sink, rows, reply })).await
    }

    /// `sink`'s peer rejected these rows for good: kept in the dead-letter table with the
    /// control id and reason, and counted as delivered for `sink`. Resolves when durable, with
    /// the number of rows dead-lettered.
    pub async fn dead_letter(&self, sink: Arc<str>, rows: Vec<RowId>, control_id: String, reason: String) -> Result<u64, BufferError> {
        self.call(|reply| Cmd::Sinks(SinkCmd::DeadLetter { sink, rows, control_id, reason, reply })).await
    }

    /// What the storage thread reports (disk full, disk ok, damage quarantined while running),
    /// for the pipeline to publish; `None` after the first call. Events that come before it is
    /// taken wait in the channel.
    pub fn take_events(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<BufferEvent>> {
        self.shared.events.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Append transactions committed (one fsync each) since open.
    pub fn commits(&self) -> u64 {
        self.shared.commits.load(Ordering::Relaxed)
    }

    /// Commits what is pending, applies acks, checkpoints the WAL into the database file and
    /// stops the thread. Other clones get [`BufferError::Closed`] afterwards. A failure here
    /// loses nothing (the WAL is replayed at the next open); it is logged.
    pub async fn close(self) {
        match self.call(|reply| Cmd::Close { reply }).await {
            Ok(()) | Err(BufferError::Closed) => {}
            Err(e) => tracing::warn!(error = %e, "buffer close: acknowledgements or checkpoint not completed"),
        }
    }
}

/// How often a buffer that could not open for lack of room tries again.
const REOPEN_PERIOD: Duration = Duration::from_secs(2);

/// The store could not open because the disk is full (SQLite said so, or it failed otherwise
/// with almost nothing free: creating the WAL index or the schema fails in several ways).
fn no_room(e: &BufferError, cfg: &BufferConfig) -> bool {
    match e {
        BufferError::DiskFull => true,
        BufferError::Storage { .. } | BufferError::Unusable { .. } => super::reserve::space(&cfg.path).is_some_and(|s| s.avail < 64 << 10),
        _ => false,
    }
}

/// Start-up on a full disk: until the store opens, appends are refused (sources hold their
/// batches: `buffer-full`), reads are empty and stats say the disk is full; a
/// `buffer-disk-full` event is sent at once and `buffer-disk-ok` when the store opens with
/// room. `None` when the handle closed meanwhile.
fn open_when_room(
    cfg: &BufferConfig,
    durability: Durability,
    rx: &Receiver<Queued>,
    events: &tokio::sync::mpsc::UnboundedSender<BufferEvent>,
    sinks: &mut Vec<String>,
) -> Option<SqliteStore> {
    let free = || super::reserve::space(&cfg.path).map(|s| s.avail);
    tracing::error!(path = %cfg.path.display(), free_bytes = free(), "no room to open the buffer: starting without it until there is");
    let _ = events.send(BufferEvent::DiskFull {
        free_bytes: free(),
        capacity_bytes: 0,
        detail: "the buffer's file system is full at start-up: no room to open the buffer; devices are not read (their batches wait) until there is".into(),
    });
    let mut last_try = Instant::now();
    loop {
        match rx.recv_timeout(IDLE_WAKE) {
            Ok(Queued(cmd, permit)) => {
                drop(permit);
                match cmd {
                    Cmd::Append { reply, batch, .. } => {
                        let _ = reply.send((Ok(AppendOutcome { refused_full: true, ..AppendOutcome::default() }), batch));
                    }
                    Cmd::Read { reply, .. } => {
                        let _ = reply.send(Ok(Vec::new()));
                    }
                    Cmd::Stats { reply } => {
                        let _ = reply.send(Ok(BufferStats {
                            max_bytes: cfg.max_bytes,
                            disk_full: true,
                            disk_free_bytes: free(),
                            ..BufferStats::default()
                        }));
                    }
                    Cmd::Close { reply } => {
                        let _ = reply.send(Ok(()));
                        return None;
                    }
                    Cmd::Sinks(SinkCmd::Set { names, reply }) => {
                        *sinks = names;
                        let _ = reply.send(Ok(()));
                    }
                    Cmd::Sinks(SinkCmd::Read { reply, .. }) => {
                        let _ = reply.send(Ok(Vec::new()));
                    }
                    Cmd::Sinks(SinkCmd::Ack { reply, .. }) => {
                        let _ = reply.send(Err(BufferError::DiskFull));
                    }
                    Cmd::Sinks(SinkCmd::DeadLetter { reply, .. }) => {
                        let _ = reply.send(Err(BufferError::DiskFull));
                    }
                    Cmd::Waves(cmd) => cmd.refuse(),
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return None,
        }
        if last_try.elapsed() < REOPEN_PERIOD {
            continue;
        }
        last_try = Instant::now();
        match SqliteStore::open_with(cfg, durability) {
            Ok((mut store, report)) => {
                tracing::warn!(path = %cfg.path.display(), depth = report.depth, "buffer open after waiting for room");
                if !sinks.is_empty() {
                    if let Err(e) = store.set_sinks(sinks) {
                        tracing::error!(error = %e, "the buffer's sinks could not be set");
                    }
                }
                // One episode, one pair of events: the store's own disk-full (no room for its
                // reserve yet) continues the one already sent.
                let mut pending = store.take_events();
                pending.retain(|e| !matches!(e, BufferEvent::DiskFull { .. }));
                if let Some(q) = report.quarantine {
                    pending.push(BufferEvent::Quarantined(q));
                }
                if !store.disk_full() {
                    pending.push(BufferEvent::DiskOk { free_bytes: free(), capacity_bytes: store.stats().map_or(0, |s| s.capacity_bytes) });
                }
                for e in pending {
                    let _ = events.send(e);
                }
                return Some(store);
            }
            Err(e) if no_room(&e, cfg) => tracing::debug!(error = %e, "still no room to open the buffer"),
            Err(e) => tracing::error!(error = %e, "the buffer cannot be opened; retrying"),
        }
    }
}

/// See `Worker::heal`.
fn heal_store(store: &mut SqliteStore, e: &BufferError, events: &tokio::sync::mpsc::UnboundedSender<BufferEvent>) -> bool {
    let reason = match e {
        BufferError::Corrupt(r) => r.clone(),
        _ if store.detached() => String::new(),
        _ => return false,
    };
    let healed = match store.recover_from_corruption(&reason) {
        Ok(_) => true,
        Err(e) => {
            tracing::error!(error = %e, "the damaged buffer file could not be replaced yet; retrying");
            false
        }
    };
    for e in store.take_events() {
        let _ = events.send(e);
    }
    healed
}

struct Worker {
    store: SqliteStore,
    rx: Receiver<Queued>,
    /// Shared with the handles, but owned here too: acks still pending when the last handle
    /// is dropped are applied at shutdown.
    acks: Arc<Mutex<Vec<RowId>>>,
    commits: Arc<AtomicU64>,
    interval: Duration,
    events: tokio::sync::mpsc::UnboundedSender<BufferEvent>,
    /// When acknowledgements were last applied (on their own or with an append).
    last_acks: Instant,
}

struct Group {
    batches: Vec<(Vec<Observation>, Option<LiveHandOver>, AppendReply)>,
    len: usize,
    deadline: Option<Instant>,
}

impl Worker {
    fn run(mut self) {
        let mut group = Group { batches: Vec::new(), len: 0, deadline: None };
        let mut deferred: VecDeque<Cmd> = VecDeque::new();
        let mut last_maintain = Instant::now();
        loop {
            if last_maintain.elapsed() >= MAINTAIN_PERIOD {
                last_maintain = Instant::now();
                if self.store.detached() {
                    self.heal(&BufferError::Closed);
                } else {
                    self.store.maintain();
                }
            }
            for e in self.store.take_events() {
                // Nobody listening (a CLI or a test): the store has logged it already.
                let _ = self.events.send(e);
            }
            let cmd = match deferred.pop_front() {
                Some(c) => Some(c),
                None => {
                    let wait = match group.deadline {
                        Some(d) => d.saturating_duration_since(Instant::now()),
                        None if self.acks_pending() => ACK_PERIOD.saturating_sub(self.last_acks.elapsed()),
                        None => IDLE_WAKE,
                    };
                    match self.rx.recv_timeout(wait) {
                        Ok(Queued(cmd, permit)) => {
                            drop(permit);
                            Some(cmd)
                        }
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => {
                            self.commit(&mut group, &mut deferred);
                            if let Err(e) = self.flush_acks() {
                                // Not lost: the rows stay in the buffer and are sent again after
                                // the restart (same ids; a receiver drops the duplicates).
                                tracing::warn!(error = %e, "buffer acknowledgements at shutdown not applied");
                            }
                            if let Err(e) = self.store.checkpoint() {
                                tracing::warn!(error = %e, "buffer checkpoint at shutdown failed");
                            }
                            return;
                        }
                    }
                }
            };
            match cmd {
                Some(Cmd::Append { batch, live, reply }) => {
                    group.len += batch.len();
                    group.batches.push((batch, live, reply));
                    group.deadline.get_or_insert_with(|| Instant::now() + self.interval);
                }
                Some(Cmd::Read { after, limit, reply }) => {
                    let mut r = self.store.read_after(after, limit);
                    if let Err(e) = &r {
                        if self.heal(e) {
                            r = self.store.read_after(after, limit);
                        }
                    }
                    let _ = reply.send(r);
                }
                Some(Cmd::Stats { reply }) => {
                    // Stats answer even when the acknowledgements cannot be applied (a full
                    // disk): they are what shows the trouble.
                    if let Err(e) = self.flush_acks() {
                        tracing::warn!(error = %e, "buffer acknowledgements not applied; retrying");
                    }
                    let mut r = self.store.stats();
                    if let Err(e) = &r {
                        if self.heal(e) {
                            r = self.store.stats();
                        }
                    }
                    let _ = reply.send(r);
                }
                Some(Cmd::Sinks(cmd)) => {
                    let events = self.events.clone();
                    cmd.apply(&mut self.store, &mut |store, e| heal_store(store, e, &events));
                }
                Some(Cmd::Waves(cmd)) => {
                    let events = self.events.clone();
                    cmd.apply(&mut self.store, &mut |store, e| heal_store(store, e, &events));
                }
                Some(Cmd::Close { reply }) => {
                    self.commit(&mut group, &mut deferred);
                    // Anything queued behind the close still gets an answer: the buffer is closed.
                    drop(deferred);
                    let r = self.flush_acks().and_then(|()| self.store.checkpoint());
                    drop(self.store);
                    let _ = reply.send(r);
                    return;
                }
                None => {}
            }
            if group.len >= MAX_GROUP || group.deadline.is_some_and(|d| Instant::now() >= d) {
                self.commit(&mut group, &mut deferred);
            }
            if self.acks_due() {
                if let Err(e) = self.flush_acks() {
                    tracing::warn!(error = %e, "buffer acknowledgements not applied; retrying");
                }
                self.last_acks = Instant::now();
            }
        }
    }

    fn acks_len(&self) -> usize {
        self.acks.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn acks_pending(&self) -> bool {
        self.acks_len() > 0
    }

    /// Acknowledgements are applied every [`ACK_PERIOD`], or sooner when [`ACK_BATCH`] wait.
    fn acks_due(&self) -> bool {
        self.acks_pending() && (self.last_acks.elapsed() >= ACK_PERIOD || self.acks_len() >= ACK_BATCH)
    }

    /// Gives acknowledgements that were not applied back to the pending ones.
    fn restore_acks(&self, ids: Vec<RowId>) {
        let mut acks = self.acks.lock().unwrap_or_else(|p| p.into_inner());
        let mut back = ids;
        back.append(&mut acks);
        *acks = back;
    }

    /// After a failed call: when the error is damage (or an earlier replacement is still
    /// unfinished), has the store quarantine the file and open a new one. `true` when a new
    /// file is open, so the call is worth one retry.
    fn heal(&mut self, e: &BufferError) -> bool {
        heal_store(&mut self.store, e, &self.events)
    }

    fn flush_acks(&mut self) -> Result<(), BufferError> {
        let ids = std::mem::take(&mut *self.acks.lock().unwrap_or_else(|p| p.into_inner()));
        if ids.is_empty() {
            return Ok(());
        }
        let mut r = self.store.ack(&ids);
        if let Err(e) = &r {
            if self.heal(e) {
                r = self.store.ack(&ids);
            }
        }
        match r {
            Ok(()) => Ok(()),
            Err(e) => {
                let mut acks = self.acks.lock().unwrap_or_else(|p| p.into_inner());
                let mut back = ids;
                back.append(&mut acks);
                if back.len() > ACK_BACKLOG_MAX {
                    let excess = back.len() - ACK_BACKLOG_MAX;
                    back.drain(..excess);
                }
                *acks = back;
                Err(e)
            }
        }
    }

    /// Takes every append already queued (up to [`MAX_GROUP`]), commits the group in one
    /// transaction and answers each caller. Other commands met on the way wait in `deferred`.
    fn commit(&mut self, group: &mut Group, deferred: &mut VecDeque<Cmd>) {
        while group.len < MAX_GROUP {
            match self.rx.try_recv() {
                Ok(Queued(Cmd::Append { batch, live, reply }, permit)) => {
                    drop(permit);
                    group.len += batch.len();
                    group.batches.push((batch, live, reply));
                }
                Ok(Queued(other, permit)) => {
                    drop(permit);
                    deferred.push_back(other);
                }
                Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => break,
            }
        }
        group.deadline = None;
        group.len = 0;
        if group.batches.is_empty() {
            return;
        }
        let batches = std::mem::take(&mut group.batches);
        let slices: Vec<&[Observation]> = batches.iter().map(|(b, _, _)| b.as_slice()).collect();
        // Acknowledgements that are due ride in the append's transaction (one fsync for both);
        // the store says whether it could take them.
        let acks = if self.acks_due() { std::mem::take(&mut *self.acks.lock().unwrap_or_else(|p| p.into_inner())) } else { Vec::new() };
        let mut result = match self.store.append_group_acking(&slices, &acks) {
            Ok((outcomes, applied)) => {
                if applied {
                    self.last_acks = Instant::now();
                } else if !acks.is_empty() {
                    self.restore_acks(acks);
                }
                Ok(outcomes)
            }
            Err(e) => {
                if !acks.is_empty() {
                    self.restore_acks(acks);
                }
                Err(e)
            }
        };
        if let Err(e) = &result {
            if self.heal(e) {
                result = self.store.append_group(&slices);
            }
        }
        drop(slices);
        self.commits.store(self.store.commits(), Ordering::Relaxed);
        match result {
            Ok(outcomes) => {
                // Every batch to the sink first (in row order), then the callers: the hand-over
                // does not wait for a source task to be scheduled.
                for ((batch, live, _), outcome) in batches.iter().zip(&outcomes) {
                    if let Some(live) = live {
                        live.hand_over_batch(&outcome.rowids, batch);
                    }
                }
                for ((batch, _, reply), outcome) in batches.into_iter().zip(outcomes) {
                    let _ = reply.send((Ok(outcome), batch));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, batches = batches.len(), "buffer append failed");
                for (batch, _, reply) in batches {
                    let _ = reply.send((Err(dup(&e)), batch));
                }
            }
        }
    }
}
