//! The SQLite store on its own: order, ids, durability, capacity policy, disk full.

use std::collections::HashSet;

use super::*;
use crate::buffer::sqlite::{verify_durability, Durability};
use crate::buffer::{BufferError, RowId, SqliteStore};

fn all_rowids(store: &mut SqliteStore) -> Vec<RowId> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = store.read_after(after, 1000).unwrap();
        match page.last() {
            Some(e) => after = e.rowid,
            None => return out,
        }
        out.extend(page.iter().map(|e| e.rowid));
    }
}

#[test]
fn appends_read_back_in_order_with_the_same_content() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, report) = SqliteStore::open(&config(dir.path(), 64 << 20, WhenFull::DropOldest)).unwrap();
    assert!(report.created);
    assert_eq!(report.quarantine, None);
    let beds = beds(3);
    let batch = observations(&beds, 0, 10);
    let out = store.append(&batch).unwrap();
    assert_eq!(out.rowids.len(), 10);
    assert!(out.rowids.windows(2).all(|w| w[0] < w[1]), "{:?}", out.rowids);
    assert_eq!((out.dropped, out.refused_full), (0, false));

    let read = store.read_after(0, 100).unwrap();
    assert_eq!(read.iter().map(|e| e.rowid).collect::<Vec<_>>(), out.rowids);
    for (e, o) in read.iter().zip(&batch) {
        assert_eq!(&e.observation, o);
    }
    // Entries of one device share one context allocation.
    assert!(Arc::ptr_eq(&read[0].observation.context, &read[3].observation.context));
    // `after` and `limit` page through.
    let page = store.read_after(out.rowids[3], 4).unwrap();
    assert_eq!(page.iter().map(|e| e.rowid).collect::<Vec<_>>(), out.rowids[4..8]);
}

#[test]
fn one_device_row_per_distinct_context() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = SqliteStore::open(&config(dir.path(), 64 << 20, WhenFull::DropOldest)).unwrap();
    let beds = beds(4);
    store.append(&observations(&beds, 0, 40)).unwrap();
    // A new Arc with equal content is the same device row; a changed identity is a new one.
    let same = Arc::new((*beds[0]).clone());
    let mut moved = (*beds[0]).clone();
    moved.identity.firmware = Some("M.00.03".into());
    store.append(&[observation(&same, 100), observation(&Arc::new(moved), 101)]).unwrap();
    let n: i64 = store.conn().query_row("SELECT count(*) FROM devices", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 5);
}

#[test]
fn acked_entries_are_gone_and_ids_are_never_reused_even_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 64 << 20, WhenFull::DropOldest);
    let beds = beds(2);
    let mut seen = HashSet::new();
    let first = {
        let (mut store, _) = SqliteStore::open(&cfg).unwrap();
        let out = store.append(&observations(&beds, 0, 20)).unwrap();
        seen.extend(out.rowids.iter().copied());
        // Ack the newest ten (the highest ids) and two in the middle.
        let mut acked: Vec<RowId> = out.rowids[10..].to_vec();
        acked.extend([out.rowids[2], out.rowids[5]]);
        store.ack(&acked).unwrap();
        let left = all_rowids(&mut store);
        let expect: Vec<RowId> = out.rowids[..10].iter().copied().filter(|id| !acked.contains(id)).collect();
        assert_eq!(left, expect);
        assert_eq!(store.stats().unwrap().depth, 8);
        // Without AUTOINCREMENT the next id would be max(rowid)+1, an acked id.
        let again = store.append(&observations(&beds, 20, 1)).unwrap();
        assert!(again.rowids[0] > *out.rowids.last().unwrap());
        seen.extend(again.rowids.iter().copied());
        let rest = all_rowids(&mut store);
        store.ack(&rest).unwrap();
        assert_eq!(store.stats().unwrap().depth, 0);
        again.rowids[0]
    };
    let (mut store, report) = SqliteStore::open(&cfg).unwrap();
    assert!(!report.created);
    assert_eq!(report.depth, 0);
    let out = store.append(&observations(&beds, 21, 5)).unwrap();
    assert!(out.rowids[0] > first, "{} after {first}", out.rowids[0]);
    for id in &out.rowids {
        assert!(seen.insert(*id), "rowid {id} reused");
    }
}

#[test]
fn committed_entries_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 64 << 20, WhenFull::DropOldest);
    let beds = beds(5);
    let batch = observations(&beds, 0, 500);
    let ids = {
        let (mut store, _) = SqliteStore::open(&cfg).unwrap();
        let ids = store.append(&batch).unwrap().rowids;
        // No checkpoint at close: the rows are only in the WAL, as after a crash.
        store.conn().set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true).unwrap();
        ids
    };
    let wal = std::fs::metadata(dir.path().join("buffer.db-wal")).map(|m| m.len()).unwrap_or(0);
    assert!(wal > 0, "the test must leave the rows in the WAL");
    let (mut store, report) = SqliteStore::open(&cfg).unwrap();
    assert_eq!(report.depth, 500);
    let read: Vec<_> = store.read_after(0, 1000).unwrap();
    assert_eq!(read.iter().map(|e| e.rowid).collect::<Vec<_>>(), ids);
    assert!(read.iter().zip(&batch).all(|(e, o)| &e.observation == o));
}

/// Live bytes as the capacity policy counts them.
fn live_bytes(store: &SqliteStore) -> u64 {
    let pages: u64 = store.conn().query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
    let free: u64 = store.conn().query_row("PRAGMA freelist_count", [], |r| r.get(0)).unwrap();
    (pages - free) * 4096
}

#[test]
fn drop_oldest_at_the_limit_counts_and_spans_what_it_dropped() {
    let dir = tempfile::tempdir().unwrap();
    // 1 MiB, the smallest the configuration allows: 256 KiB for the WAL, 256 KiB for the disk
    // reserve, 512 KiB for entries.
    let (mut store, _) = SqliteStore::open(&config(dir.path(), 1 << 20, WhenFull::DropOldest)).unwrap();
    let beds = beds(8);
    let mut appended = 0u64;
    let mut dropped = 0u64;
    let mut events = Vec::new();
    for _ in 0..300 {
        let out = store.append(&observations(&beds, appended, 100)).unwrap();
        assert!(!out.refused_full);
        assert_eq!(out.rowids.len(), 100);
        appended += 100;
        if out.dropped > 0 {
            events.push((dropped, out.dropped, out.dropped_span.unwrap()));
            dropped += out.dropped;
        } else {
            assert_eq!(out.dropped_span, None);
        }
        assert!(live_bytes(&store) <= 512 << 10, "live {} after {appended}", live_bytes(&store));
    }
    assert!(events.len() >= 2, "the limit was never reached: {events:?}");
    // Fixture reading i was received at T0 + 250 ms * i; the buffer drops strictly oldest first,
    // so each event spans exactly the readings after the previous event's.
    for (before, n, (from, to)) in &events {
        assert_eq!(from.0, T0 + 250 * *before as i64);
        assert_eq!(to.0, T0 + 250 * (*before + *n - 1) as i64);
    }
    let stats = store.stats().unwrap();
    assert_eq!(stats.dropped_total, dropped);
    assert_eq!(stats.depth + dropped, appended);
    assert_eq!(stats.oldest, Some(Timestamp(T0 + 250 * dropped as i64)));
    // Ids start at 1 and nothing was acked: the oldest left is the one after the dropped.
    assert_eq!(store.read_after(0, 1).unwrap()[0].rowid, dropped as i64 + 1);
    store.checkpoint().unwrap();
    assert!(store.stats().unwrap().bytes <= 1 << 20, "{} bytes on disk", store.stats().unwrap().bytes);
    // The count survives a restart.
    drop(store);
    let (mut store, _) = SqliteStore::open(&config(dir.path(), 1 << 20, WhenFull::DropOldest)).unwrap();
    assert_eq!(store.stats().unwrap().dropped_total, dropped);
}

#[test]
fn stop_reading_refuses_at_the_limit_and_resumes_after_acks() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = SqliteStore::open(&config(dir.path(), 1 << 20, WhenFull::StopReading)).unwrap();
    let beds = beds(8);
    let mut appended = 0u64;
    let mut refused = None;
    for _ in 0..300 {
        let out = store.append(&observations(&beds, appended, 100)).unwrap();
        assert_eq!(out.dropped, 0);
        if out.refused_full {
            assert!(out.rowids.is_empty());
            refused = Some(appended);
            break;
        }
        appended += 100;
    }
    assert!(refused.is_some(), "never refused");
    let stats = store.stats().unwrap();
    // Nothing was deleted and the refused batch left no trace.
    assert_eq!(stats.depth, appended);
    assert_eq!(stats.dropped_total, 0);
    assert_eq!(all_rowids(&mut store).len() as u64, appended);
    // Still full.
    assert!(store.append(&observations(&beds, appended, 100)).unwrap().refused_full);
    // The broker takes the oldest half: there is room again.
    let ids = all_rowids(&mut store);
    store.ack(&ids[..ids.len() / 2]).unwrap();
    let out = store.append(&observations(&beds, appended, 100)).unwrap();
    assert!(!out.refused_full);
    assert_eq!(out.rowids.len(), 100);
}

fn fill_until_full(store: &mut SqliteStore, beds: &[Arc<DeviceContext>]) -> (u64, u64, u64) {
    let (mut appended, mut dropped, mut refused) = (0u64, 0u64, 0u64);
    for _ in 0..800 {
        match store.append(&observations(beds, appended + refused, 100)) {
            Ok(out) if out.refused_full => refused += 100,
            Ok(out) => {
                appended += out.rowids.len() as u64;
                dropped += out.dropped;
            }
            Err(e) => panic!("append failed after {appended}: {e}"),
        }
    }
    (appended, dropped, refused)
}

/// SQLite's `max_page_count` makes it report SQLITE_FULL exactly as it does for ENOSPC, on
/// any machine. (The ENOSPC case itself is `disk_full_on_a_tiny_tmpfs`, which needs root.)
#[test]
fn sqlite_full_is_handled_like_the_policy() {
    for when_full in [WhenFull::DropOldest, WhenFull::StopReading] {
        let dir = tempfile::tempdir().unwrap();
        // max_bytes far above what the "disk" holds.
        let (mut store, _) = SqliteStore::open(&config(dir.path(), 1 << 30, when_full)).unwrap();
        let beds = beds(4);
        let pages: i64 = store.conn().query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
        store.set_max_page_count(pages + 100).unwrap();
        let (appended, dropped, refused) = fill_until_full(&mut store, &beds);
        let stats = store.stats().unwrap();
        match when_full {
            WhenFull::DropOldest => {
                assert!(dropped > 0, "never dropped");
                assert_eq!(refused, 0);
                assert_eq!(stats.depth + dropped, appended);
                assert_eq!(stats.dropped_total, dropped);
            }
            WhenFull::StopReading => {
                assert!(refused > 0, "never refused");
                assert_eq!(dropped, 0);
                assert_eq!(stats.depth, appended);
                // Room again after the broker acknowledged everything.
                let ids = all_rowids(&mut store);
                store.ack(&ids).unwrap();
                assert!(!store.append(&observations(&beds, 0, 100)).unwrap().refused_full);
            }
        }
        let count: i64 = store.conn().query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
        assert!(count <= pages + 100);
    }
}

/// A real ENOSPC: a 4 MiB tmpfs under a buffer configured for 8 MiB (needs root and `mount`;
/// skipped with a message otherwise).
#[test]
fn disk_full_on_a_tiny_tmpfs() {
    for when_full in [WhenFull::DropOldest, WhenFull::StopReading] {
        let dir = tempfile::tempdir().unwrap();
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
            .arg(&mnt)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            eprintln!("disk_full_on_a_tiny_tmpfs skipped: cannot mount a tmpfs here (not root?)");
            return;
        }
        struct Unmount<'a>(&'a Path);
        impl Drop for Unmount<'_> {
            fn drop(&mut self) {
                let _ = std::process::Command::new("umount").arg("-l").arg(self.0).status();
            }
        }
        let _guard = Unmount(&mnt);
        let (mut store, _) = SqliteStore::open(&config(&mnt, 8 << 20, when_full)).unwrap();
        let beds = beds(4);
        let (appended, dropped, refused) = fill_until_full(&mut store, &beds);
        assert!(appended > 10_000, "{appended}");
        let stats = store.stats().unwrap();
        eprintln!("tmpfs {when_full:?}: appended {appended}, dropped {dropped}, refused {refused}, depth {}", stats.depth);
        match when_full {
            WhenFull::DropOldest => {
                assert!(dropped > 0);
                assert_eq!(stats.depth + dropped, appended);
            }
            WhenFull::StopReading => {
                assert!(refused > 0);
                assert_eq!(stats.depth, appended);
                // The broker drains it, in acknowledgement batches as the handle makes them.
                let ids = all_rowids(&mut store);
                for chunk in ids.chunks(8192) {
                    store.ack(chunk).unwrap();
                }
                assert!(!store.append(&observations(&beds, 0, 10)).unwrap().refused_full);
            }
        }
        // Still a sound database.
        let check: String = store.conn().query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(check, "ok");
        drop(store);
    }
}

#[test]
fn the_store_is_wal_with_full_sync_and_refuses_less() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 64 << 20, WhenFull::DropOldest);
    {
        let (store, _) = SqliteStore::open(&cfg).unwrap();
        let sync: i64 = store.conn().query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
        let mode: String = store.conn().query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        let vacuum: i64 = store.conn().query_row("PRAGMA auto_vacuum", [], |r| r.get(0)).unwrap();
        assert_eq!((sync, mode.as_str(), vacuum), (2, "wal", 2));
        verify_durability(store.conn(), &cfg.path).unwrap();
        // The check itself refuses NORMAL and a rollback journal.
        store.conn().pragma_update(None, "synchronous", "NORMAL").unwrap();
        assert!(
            matches!(verify_durability(store.conn(), &cfg.path), Err(BufferError::Unusable { reason, .. }) if reason.contains("synchronous"))
        );
    }
    // And open runs it: a store configured with NORMAL is refused.
    match SqliteStore::open_with(&cfg, Durability::UnsafeNormal) {
        Err(BufferError::Unusable { reason, .. }) => assert!(reason.contains("synchronous is 1"), "{reason}"),
        other => panic!("opened with synchronous=NORMAL: {other:?}"),
    }
    let conn = rusqlite::Connection::open(dir.path().join("rollback.db")).unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    assert!(matches!(verify_durability(&conn, &cfg.path), Err(BufferError::Unusable { reason, .. }) if reason.contains("journal_mode")));
}

#[test]
fn a_second_process_cannot_open_the_same_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 64 << 20, WhenFull::DropOldest);
    let (_store, _) = SqliteStore::open(&cfg).unwrap();
    assert!(matches!(SqliteStore::open(&cfg), Err(BufferError::Unusable { reason, .. }) if reason.contains("in use")));
}

#[test]
fn the_file_shrinks_after_a_drain() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = SqliteStore::open(&config(dir.path(), 64 << 20, WhenFull::DropOldest)).unwrap();
    let beds = beds(8);
    for i in 0..30 {
        store.append(&observations(&beds, i * 1000, 1000)).unwrap();
    }
    store.checkpoint().unwrap();
    let db = |store: &SqliteStore| std::fs::metadata(store.path()).unwrap().len();
    let full = db(&store);
    let ids = all_rowids(&mut store);
    for chunk in ids.chunks(5000) {
        store.ack(chunk).unwrap();
    }
    store.checkpoint().unwrap();
    let drained = db(&store);
    assert_eq!(store.stats().unwrap().depth, 0);
    assert!(drained * 4 < full, "{full} bytes full, {drained} drained");
}

/// Bytes per observation on disk (target <= 150 B): 32 beds, four numerics each.
#[test]
fn an_observation_costs_less_than_150_bytes_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = SqliteStore::open(&config(dir.path(), 1 << 30, WhenFull::DropOldest)).unwrap();
    store.checkpoint().unwrap();
    let empty = store.stats().unwrap().bytes;
    let beds = beds(32);
    let n = 50_000u64;
    for i in 0..n / 1000 {
        store.append(&observations(&beds, i * 1000, 1000)).unwrap();
    }
    store.checkpoint().unwrap();
    let per = (store.stats().unwrap().bytes - empty) as f64 / n as f64;
    eprintln!("bytes per observation on disk: {per:.1}");
    assert!(per <= 150.0, "{per:.1} bytes per observation");
}

/// Issue 20: acknowledgements that are due ride in the next append's transaction, so applying
/// them costs no fsync of its own (and no append waits behind one). With several sinks (a row
/// goes only when every sink has it) they are left to `ack`.
#[test]
fn acknowledgements_ride_in_the_appends_transaction_with_one_sink_only() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = SqliteStore::open(&config(dir.path(), 64 << 20, WhenFull::DropOldest)).unwrap();
    let beds = beds(2);
    let first = store.append(&observations(&beds, 0, 10)).unwrap();
    let commits = store.commits();
    let acked = &first.rowids[..6];
    let next = observations(&beds, 10, 4);
    let (outs, applied) = store.append_group_acking(&[next.as_slice()], acked).unwrap();
    assert!(applied);
    assert_eq!(store.commits(), commits + 1, "one transaction for the append and the acknowledgements");
    let mut expected = first.rowids[6..].to_vec();
    expected.extend(&outs[0].rowids);
    assert_eq!(all_rowids(&mut store), expected);
    assert_eq!(store.stats().unwrap().depth, 8);

    // Two sinks: not applied here; the caller applies them with `ack`.
    store.set_sinks(&["mqtt".to_string(), "mllp".to_string()]).unwrap();
    let (_, applied) = store.append_group_acking(&[next.as_slice()], &first.rowids[6..]).unwrap();
    assert!(!applied);
    assert_eq!(all_rowids(&mut store).len(), 12, "nothing deleted for one sink of two");
}
