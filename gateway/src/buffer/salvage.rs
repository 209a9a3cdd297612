//! A damaged buffer file: moved aside untouched, then every readable row copied into a new
//! store.
//!
//! SQLite itself recovers a torn write-ahead log (frames whose checksum fails are ignored) and
//! an interrupted transaction; what reaches this module is damage that the start-up check
//! (`integrity_check` / `quick_check`) found in the database file, or that a statement met
//! while the store was running (SQLITE_CORRUPT / SQLITE_NOTADB, see
//! `SqliteStore::recover_from_corruption`): a truncated file, pages overwritten with garbage, a
//! file that is not a database at all.
//!
//! Rows are read in rowid order by one statement. When a step fails (an unreadable B-tree page),
//! the scan probes `rowid > x` for growing `x` until a seek succeeds, then narrows the gap by
//! bisection, records the unreadable rowid range, and goes on from there. A row that reads but
//! does not decode (postcard, device JSON) is kept in the new store's `quarantine` table.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use medgw_protocols::observation::DeviceContext;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::files::{suffixed, sync_dir};
use super::format::{decode_reading, now_ms, RawRow};
use super::{BufferError, RowId};

/// A damaged buffer file moved aside and what could be saved from it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct QuarantineReport {
    /// Where the damaged file (and its `-wal`, `-shm`) now is, untouched, for an engineer.
    pub moved_to: PathBuf,
    /// What the check said.
    pub reason: String,
    /// Entries copied into the new store, with their rowids.
    pub salvaged: u64,
    /// Entries that could be read but not decoded; kept in the new store's `quarantine` table.
    pub undecodable: u64,
    /// Rowid ranges (both bounds exclusive) that could not be read: whatever entries were there
    /// are only in the quarantined file.
    pub unreadable_ranges: Vec<(RowId, RowId)>,
}

/// Where salvaged rows go: the new store. The store implements it (`sqlite.rs`), so this
/// module reads damaged files without knowing the store, and the dependency runs one way.
pub(super) trait Target {
    /// Inserts rows read from the damaged file with their original rowids, in one transaction.
    fn import(&mut self, rows: &[(RowId, String, i64, Vec<u8>)], device_ids: &mut HashMap<String, i64>) -> Result<(), BufferError>;
    /// Keeps rows that read but do not decode in the quarantine table.
    fn quarantine_rows(&mut self, rows: &[(RawRow, String)]) -> Result<(), BufferError>;
    /// Rowids continue after `at_least`, so no id of the damaged file is issued again; the
    /// damaged file's counters carry over.
    fn raise_sequence(&mut self, at_least: RowId, dropped_total: u64, quarantined_before: u64) -> Result<(), BufferError>;
}

/// Salvaged rows are written in transactions of this many.
const IMPORT_BATCH: usize = 4096;
/// A file with more unreadable regions than this is given up on after that many.
const MAX_REGIONS: usize = 10_000;

/// Renames `path` (and its `-wal`, `-shm`) to `<path>.quarantine-<UTC time>` and returns the
/// new path. The WAL keeps its pairing with the database under the new name, so the quarantined
/// copy still holds every committed transaction.
pub(super) fn move_aside(path: &Path) -> Result<PathBuf, BufferError> {
    let stamp = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ").to_string();
    let mut to = suffixed(path, &format!(".quarantine-{stamp}"));
    let mut n = 1;
    while to.exists() {
        to = suffixed(path, &format!(".quarantine-{stamp}-{n}"));
        n += 1;
    }
    let rename =
        |from: &Path, to: &Path| std::fs::rename(from, to).map_err(|e| BufferError::storage(format!("quarantine {}", from.display()), e));
    rename(path, &to)?;
    for suffix in ["-wal", "-shm"] {
        let from = suffixed(path, suffix);
        if from.exists() {
            rename(&from, &suffixed(&to, suffix))?;
        }
    }
    sync_dir(path)?;
    Ok(to)
}

/// One row as read from the damaged file.
struct Row {
    id: RowId,
    device: Option<i64>,
    receipt_ms: Option<i64>,
    reading: Option<Vec<u8>>,
}

fn read_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    let id: i64 = row.get(0)?;
    let int = |v: ValueRef<'_>| match v {
        ValueRef::Integer(i) => Some(i),
        _ => None,
    };
    Ok(Row {
        id,
        device: int(row.get_ref(1)?),
        receipt_ms: int(row.get_ref(2)?),
        reading: match row.get_ref(3)? {
            ValueRef::Blob(b) => Some(b.to_vec()),
            _ => None,
        },
    })
}

/// `Some(first rowid > x)`, `None` when there is none, `Err` when the seek hits damage.
fn probe(src: &Connection, x: RowId) -> rusqlite::Result<Option<RowId>> {
    src.query_row("SELECT id FROM entries WHERE id > ?1 ORDER BY id LIMIT 1", [x], |r| r.get(0)).optional()
}

/// After a failed step past `last_good`: the smallest `x` from which seeking works again, found
/// by doubling then bisection. `None` when nothing readable follows.
fn find_resume(src: &Connection, last_good: RowId) -> Option<RowId> {
    let mut lo = last_good;
    let mut step: i64 = 1;
    let mut hi = loop {
        let x = lo.checked_add(step)?;
        match probe(src, x) {
            Ok(_) => break x,
            Err(_) => {
                lo = x;
                step = step.checked_mul(2)?;
            }
        }
    };
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        match probe(src, mid) {
            Ok(_) => hi = mid,
            Err(_) => lo = mid,
        }
    }
    // Seeking past `hi` works; resume there (also when nothing follows: the scan then ends).
    Some(hi)
}

/// Copies every readable row of the quarantined file at `from` into `store`.
pub(super) fn salvage(from: &Path, reason: String, store: &mut impl Target) -> Result<QuarantineReport, BufferError> {
    let mut report = QuarantineReport { moved_to: from.to_path_buf(), reason, ..QuarantineReport::default() };
    // Read-only: the quarantined file (and its WAL) stay exactly as they were found.
    let src = match Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "quarantined buffer cannot be opened: nothing salvaged");
            report.unreadable_ranges.push((0, RowId::MAX));
            return Ok(report);
        }
    };

    // A truncated file has fewer pages than its header says, which SQLite refuses as corrupt
    // unless the schema is writable (btree.c, lockBtree); then it uses the pages there are.
    // Nothing is written: the connection is read-only.
    if let Err(e) = src.pragma_update(None, "writable_schema", "ON") {
        tracing::debug!(error = %e, "writable_schema");
    }

    // Devices: a small table; read what can be read.
    let mut contexts: HashMap<i64, Result<String, String>> = HashMap::new();
    if let Ok(mut stmt) = src.prepare("SELECT id, context FROM devices ORDER BY id") {
        if let Ok(mut rows) = stmt.query([]) {
            while let Ok(Some(row)) = rows.next() {
                let Ok(id) = row.get::<_, i64>(0) else { continue };
                let ctx = match row.get_ref(1) {
                    Ok(ValueRef::Text(t)) => match std::str::from_utf8(t) {
                        Ok(s) if serde_json::from_str::<DeviceContext>(s).is_ok() => Ok(s.to_string()),
                        Ok(s) => Err(s.to_string()),
                        Err(_) => Err(String::from_utf8_lossy(t).into_owned()),
                    },
                    _ => Err(String::new()),
                };
                contexts.insert(id, ctx);
            }
        }
    }
    let seq: Option<i64> =
        src.query_row("SELECT seq FROM sqlite_sequence WHERE name = 'entries'", [], |r| r.get(0)).optional().ok().flatten();
    let meta = |key: &str| -> u64 {
        let v: Option<i64> = src.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional().ok().flatten();
        v.unwrap_or(0).max(0) as u64
    };
    let (dropped_total, quarantined_before) = (meta("dropped_total"), meta("quarantined"));

    let mut device_ids = HashMap::new();
    let mut good: Vec<(RowId, String, i64, Vec<u8>)> = Vec::with_capacity(IMPORT_BATCH);
    let mut bad: Vec<(RawRow, String)> = Vec::new();
    let mut max_seen: RowId = 0;
    // AUTOINCREMENT rowids start at 1.
    let mut cursor: RowId = 0;
    let mut scan_ok = false;
    let mut gap_from: Option<RowId> = None;

    'scan: for _ in 0..=MAX_REGIONS {
        let failed = {
            let mut stmt = match src.prepare("SELECT id, device, receipt_ms, reading FROM entries WHERE id > ?1 ORDER BY id") {
                Ok(s) => s,
                // The schema itself is unreadable (or this is not a database): nothing to scan.
                Err(_) => break 'scan,
            };
            let mut rows = match stmt.query([cursor]) {
                Ok(r) => r,
                Err(_) => break 'scan,
            };
            loop {
                match rows.next() {
                    Ok(Some(row)) => match read_row(row) {
                        Ok(r) => {
                            if r.id <= cursor {
                                // A damaged page yields cells out of order (zeroed cells read as
                                // rowid 0): the rows that were there are lost.
                                gap_from.get_or_insert(cursor);
                                continue;
                            }
                            if let Some(from) = gap_from.take() {
                                report.unreadable_ranges.push((from, r.id));
                            }
                            cursor = r.id;
                            max_seen = max_seen.max(r.id);
                            let ctx = r.device.and_then(|d| contexts.get(&d).cloned());
                            let decoded = r.reading.as_deref().ok_or_else(|| "reading is not a blob".to_string()).and_then(decode_reading);
                            match (ctx, decoded, r.receipt_ms, r.reading) {
                                (Some(Ok(ctx)), Ok(_), Some(receipt), Some(blob)) => good.push((r.id, ctx, receipt, blob)),
                                (ctx, decoded, receipt_ms, reading) => {
                                    let why = match (&ctx, &decoded) {
                                        (None, _) => "device row unreadable".to_string(),
                                        (Some(Err(_)), _) => "device context undecodable".to_string(),
                                        (_, Err(e)) => e.clone(),
                                        _ => "receipt time is not an integer".to_string(),
                                    };
                                    let context = ctx.map(|c| c.unwrap_or_else(|raw| raw));
                                    bad.push((RawRow { id: r.id, context, receipt_ms, reading }, why));
                                }
                            }
                            if good.len() >= IMPORT_BATCH {
                                store.import(&good, &mut device_ids)?;
                                report.salvaged += good.len() as u64;
                                good.clear();
                            }
                        }
                        Err(_) => {
                            // The row's cells are damaged; its rowid may be too.
                            break true;
                        }
                    },
                    Ok(None) => {
                        scan_ok = true;
                        break false;
                    }
                    Err(_) => break true,
                }
            }
        };
        if !failed {
            break;
        }
        gap_from = None;
        match find_resume(&src, cursor) {
            Some(resume) => {
                report.unreadable_ranges.push((cursor, resume.saturating_add(1)));
                // Rows up to `resume` were either unreadable or absent.
                let probe_next = probe(&src, resume).ok().flatten();
                match probe_next {
                    Some(_) => cursor = resume,
                    None => {
                        scan_ok = true;
                        break;
                    }
                }
            }
            None => {
                report.unreadable_ranges.push((cursor, RowId::MAX));
                scan_ok = true;
                break;
            }
        }
    }
    if let Some(from) = gap_from {
        report.unreadable_ranges.push((from, RowId::MAX));
    }
    if !scan_ok && report.unreadable_ranges.is_empty() {
        // The entries table could not be opened at all.
        report.unreadable_ranges.push((0, RowId::MAX));
    }
    if !good.is_empty() {
        store.import(&good, &mut device_ids)?;
        report.salvaged += good.len() as u64;
    }
    report.undecodable = bad.len() as u64;
    store.quarantine_rows(&bad)?;
    // Rowids must never be reused: continue after everything the damaged file may have issued.
    // Without its sequence, leave a wide gap, and never go below a clock-derived floor.
    let floor = match seq {
        Some(s) if report.unreadable_ranges.is_empty() => s.max(max_seen),
        Some(s) => s.max(max_seen).max(now_ms().saturating_mul(1000)),
        None => max_seen.saturating_add(1 << 32).max(now_ms().saturating_mul(1000)),
    };
    store.raise_sequence(floor, dropped_total, quarantined_before)?;
    Ok(report)
}
