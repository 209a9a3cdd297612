//! `medgw buffer stats|export`: read the buffer file without the daemon's help.
//!
//! Both open the file read-only and read in short statements, so they work while the daemon
//! runs (WAL readers do not block the writer, and short reads do not hold up checkpoints) and on
//! a copy taken for an engineer. They never repair or quarantine anything: that is the daemon's
//! job at start-up.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use medgw_protocols::encode::canonical;
use medgw_protocols::nomenclature::Nomenclature;
use medgw_protocols::observation::{DeviceContext, Observation};
use medgw_protocols::Timestamp;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::files::{file_bytes, reserve_path, suffixed};
use super::format::{decode_reading, APPLICATION_ID};
use super::{BufferError, BufferStats, RowId};

/// Rows per read statement: each is its own short read transaction.
const CHUNK: i64 = 1000;

fn open_read_only(path: &Path) -> Result<Connection, BufferError> {
    let unusable = |reason: String| BufferError::Unusable { path: path.display().to_string(), reason };
    if !path.exists() {
        return Err(unusable("no such file".into()));
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = if suffixed(path, "-wal").exists() {
        // A running daemon (or a copy taken with its log): read through the WAL.
        Connection::open_with_flags(path, flags)
    } else {
        // No log: the file is all there is. `immutable` reads it without creating -wal/-shm
        // files beside an engineer's copy (SQLite URI parameters, "immutable").
        let text = path.to_string_lossy().replace('%', "%25").replace('?', "%3f").replace('#', "%23");
        Connection::open_with_flags(format!("file:{text}?immutable=1"), flags | OpenFlags::SQLITE_OPEN_URI)
    }
    .map_err(|e| unusable(e.to_string()))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let app: i64 = conn.pragma_query_value(None, "application_id", |r| r.get(0)).map_err(|e| unusable(e.to_string()))?;
    if app != APPLICATION_ID {
        return Err(unusable(format!("not a medgw buffer (application_id {app:#x})")));
    }
    Ok(conn)
}

fn meta(conn: &Connection, key: &str) -> Result<u64, BufferError> {
    let v: Option<i64> = conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional()?;
    Ok(v.unwrap_or(0).max(0) as u64)
}

/// Depth, oldest entry, bytes and counters of the buffer file at `path`.
pub fn stats(path: &Path) -> Result<BufferStats, BufferError> {
    let conn = open_read_only(path)?;
    let depth: i64 = conn.query_row("SELECT count(*) FROM entries", [], |r| r.get(0))?;
    let oldest: Option<i64> = conn.query_row("SELECT receipt_ms FROM entries ORDER BY id LIMIT 1", [], |r| r.get(0)).optional()?;
    let reserve_len = std::fs::metadata(reserve_path(path)).ok().map(|m| m.len());
    Ok(BufferStats {
        depth: depth.max(0) as u64,
        bytes: file_bytes(path),
        max_bytes: meta(&conn, "max_bytes")?,
        oldest: oldest.map(Timestamp),
        dropped_total: meta(&conn, "dropped_total")?,
        quarantined: meta(&conn, "quarantined")?,
        // What the file system says; the disk-full state and capacity live in the daemon
        // (its status page), not in the file.
        disk_free_bytes: super::reserve::space(path).map(|s| s.avail),
        reserve_bytes: reserve_len.unwrap_or(0),
        reserve_present: reserve_len.is_some(),
        dead_lettered: meta(&conn, "dead_lettered")?,
        wave_segments: if has_table(&conn, "wave_segments")? {
            conn.query_row("SELECT count(*) FROM wave_segments", [], |r| r.get::<_, i64>(0))?.max(0) as u64
        } else {
            0
        },
        wave_bytes: meta(&conn, "wave_bytes")?,
        waves_dropped_total: meta(&conn, "waves_dropped_total")?,
        sinks: sink_backlogs(&conn, depth.max(0) as u64)?,
        recent_dead_letters: recent_dead_letters(&conn)?,
        ..BufferStats::default()
    })
}

/// Whether the file has the tables of schema 2 (a file of schema 1 is read as it is).
fn has_table(conn: &Connection, name: &str) -> Result<bool, BufferError> {
    let n: i64 = conn.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1", [name], |r| r.get(0))?;
    Ok(n > 0)
}

/// The sinks that acknowledged rows still waiting for another sink, with what each has still
/// to deliver. The file does not hold the configuration: a sink that acknowledged nothing
/// still waiting is not listed (its backlog is the depth or none).
fn sink_backlogs(conn: &Connection, depth: u64) -> Result<Vec<super::SinkBacklog>, BufferError> {
    if !has_table(conn, "sink_acks")? {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare("SELECT sink, count(*) FROM sink_acks GROUP BY sink ORDER BY sink")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (name, done) = row?;
        out.push(super::SinkBacklog { name, backlog: depth.saturating_sub(done.max(0) as u64) });
    }
    Ok(out)
}

fn recent_dead_letters(conn: &Connection) -> Result<Vec<super::DeadLetterInfo>, BufferError> {
    if !has_table(conn, "dead_letters")? {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare("SELECT sink, entry_id, control_id, reason, at_ms FROM dead_letters ORDER BY id DESC LIMIT ?1")?;
    let rows = stmt.query_map([super::RECENT_DEAD_LETTERS as i64], |r| {
        Ok(super::DeadLetterInfo { sink: r.get(0)?, entry_rowid: r.get(1)?, control_id: r.get(2)?, reason: r.get(3)?, at_ms: r.get(4)? })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

fn blob_hex(v: ValueRef<'_>) -> serde_json::Value {
    match v {
        ValueRef::Blob(b) => serde_json::Value::String(hex::encode(b)),
        ValueRef::Text(t) => serde_json::Value::String(hex::encode(t)),
        _ => serde_json::Value::Null,
    }
}

fn int(v: ValueRef<'_>) -> Option<i64> {
    match v {
        ValueRef::Integer(i) => Some(i),
        _ => None,
    }
}

fn write_line<W: Write>(out: &mut W, line: &[u8]) -> Result<(), BufferError> {
    out.write_all(line).and_then(|()| out.write_all(b"\n")).map_err(|e| BufferError::storage("export", e))
}

/// Writes every buffered observation as one JSON line, oldest first, and then the quarantined
/// rows and the dead letters; returns the number of lines.
///
/// ```text
/// {"rowid":17,"observation":{...canonical JSON, docs/canonical-json.md...}}
/// {"rowid":18,"undecodable":"reason","device":{...}|null,"receipt_ms":...,"reading_hex":"..."}
/// {"quarantined":3,"entry_rowid":12,"reason":"...","device":"...","receipt_ms":...,"reading_hex":"...","at_ms":...}
/// {"dead_letter":1,"sink":"epic","entry_rowid":40,"control_id":"...","reason":"AR: ...","device":"...",
///  "receipt_ms":...,"reading_hex":"...","at_ms":...}
/// ```
pub fn export<W: Write>(path: &Path, out: &mut W) -> Result<u64, BufferError> {
    let conn = open_read_only(path)?;
    let nom = Nomenclature::builtin();
    let mut contexts: HashMap<i64, Result<Arc<DeviceContext>, String>> = HashMap::new();
    let mut lines = 0u64;
    let mut cursor: RowId = 0;
    let mut line = Vec::with_capacity(1024);
    loop {
        let mut stmt = conn.prepare_cached("SELECT id, device, receipt_ms, reading FROM entries WHERE id > ?1 ORDER BY id LIMIT ?2")?;
        let mut rows = stmt.query(rusqlite::params![cursor, CHUNK])?;
        let mut n = 0;
        while let Some(row) = rows.next()? {
            n += 1;
            let id: i64 = row.get(0)?;
            cursor = id;
            let device = int(row.get_ref(1)?);
            let ctx = match device {
                Some(d) => contexts
                    .entry(d)
                    .or_insert_with(|| {
                        let json: Option<String> =
                            conn.query_row("SELECT context FROM devices WHERE id = ?1", [d], |r| r.get(0)).optional().ok().flatten();
                        match json {
                            Some(j) => {
                                serde_json::from_str::<DeviceContext>(&j).map(Arc::new).map_err(|e| format!("device {d} context: {e}"))
                            }
                            None => Err(format!("device {d} missing")),
                        }
                    })
                    .clone(),
                None => Err("device id is not an integer".into()),
            };
            let reading = match row.get_ref(3)? {
                ValueRef::Blob(b) => decode_reading(b),
                _ => Err("reading is not a blob".into()),
            };
            line.clear();
            match (ctx, reading) {
                (Ok(context), Ok(reading)) => {
                    line.extend_from_slice(format!("{{\"rowid\":{id},\"observation\":").as_bytes());
                    canonical::write(&mut line, &Observation { context, reading }, &nom);
                    line.push(b'}');
                }
                (ctx, reading) => {
                    let reason = [ctx.as_ref().err().cloned(), reading.err()].into_iter().flatten().collect::<Vec<_>>().join("; ");
                    let device = match ctx {
                        Ok(c) => serde_json::to_value(&*c).unwrap_or(serde_json::Value::Null),
                        Err(_) => serde_json::Value::Null,
                    };
                    let v = serde_json::json!({
                        "rowid": id,
                        "undecodable": reason,
                        "device": device,
                        "receipt_ms": int(row.get_ref(2)?),
                        "reading_hex": blob_hex(row.get_ref(3)?),
                    });
                    line.extend_from_slice(v.to_string().as_bytes());
                }
            }
            write_line(out, &line)?;
            lines += 1;
        }
        if n < CHUNK {
            break;
        }
    }
    let mut cursor = 0i64;
    loop {
        let mut stmt = conn.prepare_cached(
            "SELECT id, entry_id, reason, device_context, receipt_ms, reading, at_ms FROM quarantine WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?;
        let mut rows = stmt.query(rusqlite::params![cursor, CHUNK])?;
        let mut n = 0;
        while let Some(row) = rows.next()? {
            n += 1;
            let id: i64 = row.get(0)?;
            cursor = id;
            let v = serde_json::json!({
                "quarantined": id,
                "entry_rowid": int(row.get_ref(1)?),
                "reason": row.get::<_, Option<String>>(2).ok().flatten(),
                "device": row.get::<_, Option<String>>(3).ok().flatten(),
                "receipt_ms": int(row.get_ref(4)?),
                "reading_hex": blob_hex(row.get_ref(5)?),
                "at_ms": int(row.get_ref(6)?),
            });
            write_line(out, v.to_string().as_bytes())?;
            lines += 1;
        }
        if n < CHUNK {
            break;
        }
    }
    if has_table(&conn, "dead_letters")? {
        let mut cursor = 0i64;
        loop {
            let mut stmt = conn.prepare_cached(
                "SELECT id, sink, entry_id, control_id, reason, device_context, receipt_ms, reading, at_ms FROM dead_letters \
                 WHERE id > ?1 ORDER BY id LIMIT ?2",
            )?;
            let mut rows = stmt.query(rusqlite::params![cursor, CHUNK])?;
            let mut n = 0;
            while let Some(row) = rows.next()? {
                n += 1;
                let id: i64 = row.get(0)?;
                cursor = id;
                let v = serde_json::json!({
                    "dead_letter": id,
                    "sink": row.get::<_, Option<String>>(1).ok().flatten(),
                    "entry_rowid": int(row.get_ref(2)?),
                    "control_id": row.get::<_, Option<String>>(3).ok().flatten(),
                    "reason": row.get::<_, Option<String>>(4).ok().flatten(),
                    "device": row.get::<_, Option<String>>(5).ok().flatten(),
                    "receipt_ms": int(row.get_ref(6)?),
                    "reading_hex": blob_hex(row.get_ref(7)?),
                    "at_ms": int(row.get_ref(8)?),
                });
                write_line(out, v.to_string().as_bytes())?;
                lines += 1;
            }
            if n < CHUNK {
                break;
            }
        }
    }
    out.flush().map_err(|e| BufferError::storage("export", e))?;
    Ok(lines)
}
