//! Damaged buffer files: detected at start-up, moved aside, good rows kept, the gateway goes on.

use std::collections::HashMap;
use std::io::{Seek, SeekFrom, Write};

use super::*;
use crate::buffer::{BufferError, RowId, SqliteStore};
use rusqlite::config::DbConfig;

const N: u64 = 5000;

/// A closed store with `N` entries from 8 beds, all in the database file (checkpointed).
fn filled(dir: &Path) -> (BufferConfig, HashMap<RowId, Observation>) {
    let cfg = config(dir, 64 << 20, WhenFull::DropOldest);
    let (mut store, _) = SqliteStore::open(&cfg).unwrap();
    let beds = beds(8);
    let mut all = HashMap::new();
    for i in 0..N / 500 {
        let batch = observations(&beds, i * 500, 500);
        let out = store.append(&batch).unwrap();
        all.extend(out.rowids.into_iter().zip(batch));
    }
    store.checkpoint().unwrap();
    drop(store);
    assert!(!dir.join("buffer.db-wal").exists());
    (cfg, all)
}

fn read_all(store: &mut SqliteStore) -> Vec<crate::buffer::Entry> {
    let mut out = Vec::new();
    loop {
        let page = store.read_after(out.last().map_or(0, |e: &crate::buffer::Entry| e.rowid), 1000).unwrap();
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

/// Every salvaged entry is exactly what was appended under that rowid.
fn assert_intact(entries: &[crate::buffer::Entry], all: &HashMap<RowId, Observation>) {
    for e in entries {
        assert_eq!(Some(&e.observation), all.get(&e.rowid), "rowid {}", e.rowid);
    }
}

/// Every rowid that was in the file is accounted for: salvaged, quarantined as undecodable, or
/// inside a reported unreadable range. Nothing is lost silently.
fn assert_accounted(store: &SqliteStore, q: &crate::buffer::QuarantineReport, entries: &[crate::buffer::Entry]) {
    let salvaged: std::collections::HashSet<RowId> = entries.iter().map(|e| e.rowid).collect();
    let mut stmt = store.conn().prepare("SELECT entry_id FROM quarantine").unwrap();
    let quarantined: std::collections::HashSet<RowId> = stmt.query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect();
    assert_eq!(quarantined.len() as u64, q.undecodable);
    for id in 1..=N as RowId {
        let in_range = q.unreadable_ranges.iter().any(|(lo, hi)| *lo < id && id < *hi);
        assert!(salvaged.contains(&id) || quarantined.contains(&id) || in_range, "rowid {id} lost silently: {q:?}");
    }
}

#[test]
fn a_truncated_file_is_quarantined_and_its_readable_rows_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, all) = filled(dir.path());
    let len = std::fs::metadata(&cfg.path).unwrap().len();
    let cut = (len * 6 / 10) / 4096 * 4096 + 1000;
    std::fs::OpenOptions::new().write(true).open(&cfg.path).unwrap().set_len(cut).unwrap();

    let (mut store, report) = SqliteStore::open(&cfg).unwrap();
    let q = report.quarantine.clone().expect("damage not detected");
    eprintln!("truncated: {q:?}");
    // The damaged file is kept as it was found.
    assert_eq!(std::fs::metadata(&q.moved_to).unwrap().len(), cut);
    assert!(q.salvaged > N / 4 && q.salvaged < N, "{q:?}");
    let entries = read_all(&mut store);
    assert_eq!(entries.len() as u64, q.salvaged);
    assert_eq!(report.depth, q.salvaged);
    assert_intact(&entries, &all);
    assert_accounted(&store, &q, &entries);
    // The first rows (the front of the file) survive.
    assert_eq!(entries[0].rowid, 1);
    assert!(store.stats().unwrap().quarantined >= 1);
    // And the store goes on, without reusing an id.
    let out = store.append(&observations(&beds(1), 0, 1)).unwrap();
    assert!(out.rowids[0] > N as i64);
}

#[test]
fn garbage_over_leaf_pages_loses_only_those_pages() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, all) = filled(dir.path());
    let bytes = std::fs::read(&cfg.path).unwrap();
    // Table leaf pages start with type 0x0d (SQLite file format, 1.6 "B-tree Pages"). Damage
    // three in the middle of the file.
    let leaves: Vec<usize> = (1..bytes.len() / 4096).filter(|p| bytes[p * 4096] == 0x0d).collect();
    assert!(leaves.len() > 20, "{} leaves", leaves.len());
    let hit: Vec<usize> = leaves[leaves.len() / 2..].iter().step_by(4).take(3).copied().collect();
    let mut f = std::fs::OpenOptions::new().write(true).open(&cfg.path).unwrap();
    let mut x: u32 = 0x1234_5678;
    for p in &hit {
        let garbage: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        f.seek(SeekFrom::Start((p * 4096) as u64)).unwrap();
        f.write_all(&garbage).unwrap();
    }
    drop(f);

    let (mut store, report) = SqliteStore::open(&cfg).unwrap();
    let q = report.quarantine.clone().expect("damage not detected");
    eprintln!("garbage over pages {hit:?}: salvaged {}, undecodable {}, unreadable {:?}", q.salvaged, q.undecodable, q.unreadable_ranges);
    let entries = read_all(&mut store);
    assert_intact(&entries, &all);
    assert_accounted(&store, &q, &entries);
    // A leaf holds about 50 entries: three of them lose at most a few hundred rows.
    assert!(q.salvaged < N && q.salvaged >= N - 400, "{q:?}");
    assert!(!q.unreadable_ranges.is_empty() || q.undecodable > 0);
    // Rows on both sides of the damage are kept.
    assert_eq!(entries.first().map(|e| e.rowid), Some(1));
    assert_eq!(entries.last().map(|e| e.rowid), Some(N as i64));
}

#[test]
fn a_file_that_is_not_a_database_is_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 64 << 20, WhenFull::DropOldest);
    let text = "this is not an SQLite database, it is a log file someone copied here\n".repeat(200);
    std::fs::write(&cfg.path, &text).unwrap();
    let (mut store, report) = SqliteStore::open(&cfg).unwrap();
    let q = report.quarantine.expect("not detected");
    assert!(q.reason.contains("not a database"), "{}", q.reason);
    assert_eq!(q.salvaged, 0);
    assert_eq!(std::fs::read_to_string(&q.moved_to).unwrap(), text);
    let out = store.append(&observations(&beds(1), 0, 3)).unwrap();
    assert_eq!(store.read_after(0, 10).unwrap().len(), 3);
    assert!(!out.refused_full);
}

#[test]
fn another_programs_database_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 64 << 20, WhenFull::DropOldest);
    {
        let c = rusqlite::Connection::open(&cfg.path).unwrap();
        c.execute_batch("CREATE TABLE customers (name TEXT); INSERT INTO customers VALUES ('x');").unwrap();
    }
    let before = std::fs::read(&cfg.path).unwrap();
    match SqliteStore::open(&cfg) {
        Err(BufferError::Unusable { reason, .. }) => assert!(reason.contains("not a medgw buffer"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read(&cfg.path).unwrap(), before);
}

/// A torn write-ahead log (the last frame half written, as at a crash) is SQLite's own crash
/// recovery, not damage: the torn transaction is gone as a whole, the earlier one kept.
#[test]
fn a_torn_wal_loses_exactly_the_torn_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 64 << 20, WhenFull::DropOldest);
    let beds = beds(2);
    let (a, b) = {
        let (mut store, _) = SqliteStore::open(&cfg).unwrap();
        let a = store.append(&observations(&beds, 0, 100)).unwrap().rowids;
        let b = store.append(&observations(&beds, 100, 100)).unwrap().rowids;
        store.conn().set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true).unwrap();
        (a, b)
    };
    let wal = dir.path().join("buffer.db-wal");
    let len = std::fs::metadata(&wal).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&wal).unwrap().set_len(len - 100).unwrap();
    let (mut store, report) = SqliteStore::open(&cfg).unwrap();
    assert_eq!(report.quarantine, None);
    let ids: Vec<RowId> = read_all(&mut store).iter().map(|e| e.rowid).collect();
    assert_eq!(ids, a);
    assert!(b.iter().all(|id| !ids.contains(id)));
}

#[test]
fn an_undecodable_row_is_quarantined_at_read_time_and_the_drain_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, all) = filled(dir.path());
    let (mut store, _) = SqliteStore::open(&cfg).unwrap();
    // Bit rot in one reading, trailing junk after another, and a device context that no longer
    // parses (every entry of bed 3 is then undecodable).
    store.conn().execute("UPDATE entries SET reading = x'ff01' WHERE id = 4", []).unwrap();
    store.conn().execute("UPDATE entries SET reading = reading || x'00' WHERE id = 9", []).unwrap();
    let bed3: i64 = store.conn().query_row("SELECT device FROM entries WHERE id = 3", [], |r| r.get(0)).unwrap();
    store.conn().execute("UPDATE devices SET context = '{\"gateway\": 7}' WHERE id = ?1", [bed3]).unwrap();
    let bed3_rows: i64 = store.conn().query_row("SELECT count(*) FROM entries WHERE device = ?1", [bed3], |r| r.get(0)).unwrap();

    let entries = read_all(&mut store);
    assert_intact(&entries, &all);
    let skipped = N - entries.len() as u64;
    assert_eq!(skipped, bed3_rows as u64 + 2);
    let stats = store.stats().unwrap();
    assert_eq!(stats.quarantined, skipped);
    assert_eq!(stats.depth, entries.len() as u64);
    // The damaged rows are kept for an engineer, with the reason.
    let (reading, reason): (Vec<u8>, String) =
        store.conn().query_row("SELECT reading, reason FROM quarantine WHERE entry_id = 4", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    assert_eq!(reading, vec![0xff, 0x01]);
    assert!(reason.contains("reading"), "{reason}");
    // The next pass finds nothing new to quarantine.
    assert_eq!(read_all(&mut store).len(), entries.len());
    assert_eq!(store.stats().unwrap().quarantined, skipped);
}

#[test]
fn undecodable_rows_in_a_damaged_file_are_quarantined_by_the_salvage() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, all) = filled(dir.path());
    {
        let c = rusqlite::Connection::open(&cfg.path).unwrap();
        c.execute("UPDATE entries SET reading = x'00' WHERE id IN (2, 3)", []).unwrap();
    }
    let len = std::fs::metadata(&cfg.path).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&cfg.path).unwrap().set_len(len * 8 / 10).unwrap();
    let (mut store, report) = SqliteStore::open(&cfg).unwrap();
    let q = report.quarantine.expect("damage not detected");
    // Rows 2 and 3, and at most a row read from a page at the edge of an unreadable region
    // (where the cut fell depends on the page layout).
    assert!(q.undecodable >= 2, "{q:?}");
    let ids: Vec<i64> = store
        .conn()
        .prepare("SELECT entry_id FROM quarantine WHERE entry_id NOT IN (2, 3)")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(ids.len() as u64, q.undecodable - 2);
    for id in ids {
        assert!(q.unreadable_ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&id)), "row {id} undecodable away from the damage: {q:?}");
    }
    let entries = read_all(&mut store);
    assert_intact(&entries, &all);
    assert_accounted(&store, &q, &entries);
    assert!(entries.iter().all(|e| e.rowid != 2 && e.rowid != 3));
    let n: i64 = store.conn().query_row("SELECT count(*) FROM quarantine WHERE entry_id IN (2, 3)", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 2);
    assert_eq!(store.stats().unwrap().quarantined, q.undecodable + q.unreadable_ranges.len() as u64);
}

/// What the salvage handed to its target (`salvage::Target`), recorded instead of stored.
#[derive(Default)]
struct Recorded {
    /// One entry per import call (a transaction in the store): rowid, context JSON, reading.
    imports: Vec<Vec<(RowId, String, Vec<u8>)>>,
    quarantined: Vec<RowId>,
    floor: Option<(RowId, u64, u64)>,
}

impl crate::buffer::salvage::Target for Recorded {
    fn import(&mut self, rows: &[(RowId, String, i64, Vec<u8>)], _: &mut HashMap<String, i64>) -> Result<(), BufferError> {
        self.imports.push(rows.iter().map(|(id, ctx, _, blob)| (*id, ctx.clone(), blob.clone())).collect());
        Ok(())
    }
    fn quarantine_rows(&mut self, rows: &[(crate::buffer::format::RawRow, String)]) -> Result<(), BufferError> {
        self.quarantined.extend(rows.iter().map(|(r, _)| r.id));
        Ok(())
    }
    fn raise_sequence(&mut self, at_least: RowId, dropped_total: u64, quarantined_before: u64) -> Result<(), BufferError> {
        self.floor = Some((at_least, dropped_total, quarantined_before));
        Ok(())
    }
}

/// The salvage reads a file into any target, independent of the store: an intact file gives
/// every rowid once, in order, with its own device and reading, in bounded transactions, and
/// the rowid floor covers every id the file issued.
#[test]
fn the_salvage_hands_every_row_of_a_file_to_its_target_in_bounded_batches() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, all) = filled(dir.path());
    let mut target = Recorded::default();
    let q = crate::buffer::salvage::salvage(&cfg.path, "test".into(), &mut target).unwrap();
    assert_eq!((q.salvaged, q.undecodable, q.unreadable_ranges.len()), (N, 0, 0), "{q:?}");
    assert!(target.imports.len() > 1 && target.imports.iter().all(|b| !b.is_empty() && b.len() <= 4096), "{:?}", target.imports.len());
    let rows: Vec<_> = target.imports.concat();
    let mut want: Vec<RowId> = all.keys().copied().collect();
    want.sort_unstable();
    assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), want);
    for (id, ctx, blob) in &rows {
        let o = &all[id];
        assert_eq!(crate::buffer::format::decode_reading(blob).unwrap(), o.reading, "rowid {id}");
        assert_eq!(&serde_json::from_str::<medgw_protocols::observation::DeviceContext>(ctx).unwrap(), &*o.context, "rowid {id}");
    }
    assert!(target.quarantined.is_empty());
    let (floor, dropped, quarantined) = target.floor.expect("the rowid floor is raised");
    assert!(floor >= N as RowId, "{floor}");
    assert_eq!((dropped, quarantined), (0, 0));
}
