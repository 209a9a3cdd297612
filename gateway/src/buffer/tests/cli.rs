//! `medgw buffer stats|export`, beside a running store and on a copy.

use super::*;
use crate::buffer::{cli, BufferError, SqliteStore};
use medgw_protocols::encode::canonical;
use medgw_protocols::nomenclature::Nomenclature;

#[test]
fn stats_and_export_while_the_store_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 64 << 20, WhenFull::DropOldest);
    let (mut store, _) = SqliteStore::open(&cfg).unwrap();
    let beds = beds(3);
    let batch = observations(&beds, 0, 30);
    let ids = store.append(&batch).unwrap().rowids;
    store.ack(&ids[..5]).unwrap();
    store.conn().execute("UPDATE entries SET reading = x'07' WHERE id = ?1", [ids[10]]).unwrap();

    // The store is open (and its rows are in the WAL only): the reader still sees everything.
    let stats = cli::stats(&cfg.path).unwrap();
    assert_eq!(stats.depth, 25);
    assert_eq!(stats.max_bytes, 64 << 20);
    assert_eq!(stats.oldest, Some(batch[5].reading.receipt_time));
    assert!(stats.bytes > 0);
    assert!(stats.reserve_present && stats.reserve_bytes > 0, "{stats:?}");
    assert!(stats.disk_free_bytes.is_some());

    let mut out = Vec::new();
    let lines = cli::export(&cfg.path, &mut out).unwrap();
    assert_eq!(lines, 25);
    let text = String::from_utf8(out).unwrap();
    let nom = Nomenclature::builtin();
    let mut parsed = text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap());
    // Line by line: rowid order, and each observation exactly as the canonical encoder writes it.
    for (i, line) in text.lines().enumerate() {
        let id = ids[5 + i];
        let v = parsed.next().unwrap();
        assert_eq!(v["rowid"], id);
        if id == ids[10] {
            assert!(v["undecodable"].as_str().unwrap().contains("reading"));
            assert_eq!(v["reading_hex"], "07");
            assert_eq!(v["device"]["name"], batch[10].context.name.as_str());
        } else {
            let expect = format!("{{\"rowid\":{id},\"observation\":{}}}", canonical::to_string(&batch[5 + i], &nom));
            assert_eq!(line, expect);
        }
    }
    // The export is a snapshot reader: appends go on meanwhile.
    store.append(&observations(&beds, 30, 1)).unwrap();
    // Reading quarantines the bad row; the export then lists it as quarantined.
    assert_eq!(store.read_after(0, 100).unwrap().len(), 25);
    let mut out = Vec::new();
    assert_eq!(cli::export(&cfg.path, &mut out).unwrap(), 26);
    let last: serde_json::Value = serde_json::from_str(String::from_utf8(out).unwrap().lines().last().unwrap()).unwrap();
    assert_eq!(last["entry_rowid"], ids[10]);
    assert_eq!(last["reading_hex"], "07");
}

#[test]
fn export_works_on_a_copy_in_a_read_only_place() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 64 << 20, WhenFull::DropOldest);
    {
        let (mut store, _) = SqliteStore::open(&cfg).unwrap();
        store.append(&observations(&beds(2), 0, 7)).unwrap();
        store.checkpoint().unwrap();
    }
    let copy_dir = tempfile::tempdir().unwrap();
    let copy = copy_dir.path().join("copy.db");
    std::fs::copy(&cfg.path, &copy).unwrap();
    let mut perms = std::fs::metadata(&copy).unwrap().permissions();
    perms.set_readonly(true);
    std::fs::set_permissions(&copy, perms).unwrap();
    let mut out = Vec::new();
    assert_eq!(cli::export(&copy, &mut out).unwrap(), 7);
    assert_eq!(cli::stats(&copy).unwrap().depth, 7);
    // Nothing was created beside the copy.
    let names: Vec<_> = std::fs::read_dir(copy_dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

#[test]
fn stats_refuses_what_is_not_a_buffer() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(cli::stats(&dir.path().join("missing.db")), Err(BufferError::Unusable { .. })));
    let other = dir.path().join("other.db");
    rusqlite::Connection::open(&other).unwrap().execute_batch("CREATE TABLE t (x);").unwrap();
    assert!(matches!(cli::stats(&other), Err(BufferError::Unusable { reason, .. }) if reason.contains("not a medgw buffer")));
    // And never creates a file.
    assert!(!dir.path().join("missing.db").exists());
}

/// An export whose output fails (a closed pipe, a full disk) says so and keeps the cause, so
/// the caller can tell what the operating system said.
#[test]
fn a_failing_export_keeps_the_io_cause() {
    struct Closed;
    impl std::io::Write for Closed {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 64 << 20, WhenFull::DropOldest);
    let (mut store, _) = SqliteStore::open(&cfg).unwrap();
    store.append(&observations(&beds(1), 0, 3)).unwrap();
    let e = cli::export(&cfg.path, &mut Closed).unwrap_err();
    assert!(e.to_string().starts_with("buffer storage: export: "), "{e}");
    match &e {
        BufferError::Storage { source, .. } => {
            let io = source.downcast_ref::<std::io::Error>().expect("the io::Error is kept");
            assert_eq!(io.kind(), std::io::ErrorKind::BrokenPipe);
        }
        other => panic!("{other:?}"),
    }
    assert!(std::error::Error::source(&e).is_some());
}
