//! A full disk for real (tmpfs of a few MB, needs root; skipped with a message otherwise) and
//! a buffer file damaged while the store runs.
//!
//! Before these were fixed, a 2 MB file system wedged the buffer for good: its WAL share
//! (16 MB, checkpointed only at 8 MB) filled the disk on its own, after which no checkpoint,
//! no delete and no append could run, even after a restart. A 20 MB file system lowered the
//! capacity to 64 KB and rewrote the 16 MB reserve at every append that met the full disk.

use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::buffer::{BufferError, BufferEvent, BufferHandle, RowId, SqliteStore};

/// A tmpfs of `size` mounted on a fresh directory, unmounted on drop.
struct Tmpfs {
    mnt: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str, test: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&mnt)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("SKIPPED {test}: cannot mount a {size} tmpfs here (needs root)");
            return None;
        }
        Some(Tmpfs { mnt, _dir: dir })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.mnt).status();
    }
}

fn all_rowids(store: &mut SqliteStore) -> Vec<RowId> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = store.read_after(after, 5000).unwrap();
        match page.last() {
            Some(e) => after = e.rowid,
            None => return out,
        }
        out.extend(page.iter().map(|e| e.rowid));
    }
}

/// Appends `batches` batches of 100; every call must answer (no error). Returns (appended,
/// dropped, refused).
fn pour(store: &mut SqliteStore, beds: &[Arc<DeviceContext>], batches: u64) -> (u64, u64, u64) {
    let (mut appended, mut dropped, mut refused) = (0u64, 0u64, 0u64);
    for _ in 0..batches {
        match store.append(&observations(beds, appended + refused, 100)) {
            Ok(out) if out.refused_full => refused += 100,
            Ok(out) => {
                appended += out.rowids.len() as u64;
                dropped += out.dropped;
            }
            Err(e) => panic!("append failed after {appended} appended, {dropped} dropped, {refused} refused: {e}"),
        }
    }
    (appended, dropped, refused)
}

fn disk_events(store: &mut SqliteStore) -> (usize, usize) {
    let events = store.take_events();
    let full = events.iter().filter(|e| matches!(e, BufferEvent::DiskFull { .. })).count();
    let ok = events.iter().filter(|e| matches!(e, BufferEvent::DiskOk { .. })).count();
    (full, ok)
}

/// Fills the rest of the file system, as another program's log would; returns its path.
fn fill_disk(dir: &std::path::Path) -> PathBuf {
    use std::io::Write;
    let ballast = dir.join("other-program.log");
    let mut f = std::fs::File::create(&ballast).unwrap();
    for size in [64 << 10, 4 << 10, 512] {
        let chunk = vec![0x5au8; size];
        while f.write_all(&chunk).is_ok() {}
    }
    ballast
}

#[test]
fn a_2_mb_file_system_never_wedges_the_buffer() {
    for when_full in [WhenFull::DropOldest, WhenFull::StopReading] {
        let Some(fs) = Tmpfs::mount("2m", "a_2_mb_file_system_never_wedges_the_buffer") else { return };
        // The default max_bytes (1 GB) on a 2 MB file system.
        let cfg = config(&fs.mnt, 1 << 30, when_full);
        let (mut store, _) = SqliteStore::open(&cfg).unwrap();
        let stats = store.stats().unwrap();
        assert!(stats.reserve_present && stats.reserve_bytes <= 512 << 10, "a reserve sized to the file system: {stats:?}");
        assert!(stats.capacity_bytes < 2 << 20, "a capacity sized to the file system: {stats:?}");
        let beds = beds(4);
        // The broker is away: the buffer fills to its capacity, which the disk holds.
        let (appended, dropped, refused) = pour(&mut store, &beds, 600);
        let stats = store.stats().unwrap();
        eprintln!("2 MB {when_full:?}: appended {appended}, dropped {dropped}, refused {refused}: {stats:?}");
        assert!(stats.depth > 2000, "the buffer holds data: {stats:?}");
        match when_full {
            WhenFull::DropOldest => assert_eq!(stats.depth + dropped, appended),
            WhenFull::StopReading => assert_eq!(stats.depth, appended),
        }
        // Another program takes the rest of the disk: appends still answer, once evented.
        let ballast = fill_disk(&fs.mnt);
        let (appended, dropped, refused) = pour(&mut store, &beds, 100);
        let stats = store.stats().unwrap();
        eprintln!("2 MB {when_full:?}, disk full: appended {appended}, dropped {dropped}, refused {refused}: {stats:?}");
        // At its capacity the buffer reuses its own free pages, so it may not even meet the
        // full disk; when it does, that is one event.
        let want = if stats.disk_full { (1, 0) } else { (0, 0) };
        assert_eq!(disk_events(&mut store), want, "one buffer-disk-full event per episode");
        assert!(stats.reserve_writes <= 1, "the reserve is not written again while the disk is full: {stats:?}");
        // The broker comes back: every acknowledgement applies on the full disk.
        let ids = all_rowids(&mut store);
        assert_eq!(ids.len() as u64, stats.depth);
        for chunk in ids.chunks(8192) {
            store.ack(chunk).unwrap();
        }
        assert_eq!(store.stats().unwrap().depth, 0);
        let out = store.append(&observations(&beds, 0, 100)).unwrap();
        assert_eq!(out.rowids.len(), 100, "room again after the acknowledgements");
        // A restart on the still full disk opens and accepts data.
        pour(&mut store, &beds, 50);
        drop(store);
        let (mut store, report) = SqliteStore::open(&cfg).unwrap();
        assert_eq!(report.quarantine, None);
        store.set_reserve_holdoff(Duration::ZERO);
        let (appended, _, _) = pour(&mut store, &beds, 50);
        assert!(appended > 0);
        // The other program's file goes: the episode ends without a restart.
        std::fs::remove_file(&ballast).unwrap();
        store.maintain();
        let stats = store.stats().unwrap();
        assert!(!stats.disk_full && stats.reserve_present, "{stats:?}");
        let check: String = store.conn().query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(check, "ok");
    }
}

#[test]
fn a_20_mb_file_system_keeps_its_capacity_and_writes_the_reserve_rarely() {
    let Some(fs) = Tmpfs::mount("20m", "a_20_mb_file_system_keeps_its_capacity_and_writes_the_reserve_rarely") else { return };
    let (mut store, _) = SqliteStore::open(&config(&fs.mnt, 1 << 30, WhenFull::DropOldest)).unwrap();
    let beds = beds(4);
    let (appended, dropped, _) = pour(&mut store, &beds, 3000);
    let stats = store.stats().unwrap();
    eprintln!("20 MB: appended {appended}, dropped {dropped}: {stats:?}");
    assert!(dropped > 0, "the capacity was reached");
    assert_eq!(stats.depth + dropped, appended);
    // Most of the file system holds entries (about 80 bytes each), not 64 KB of them.
    assert!(stats.depth > 100_000, "{stats:?}");
    assert!(stats.capacity_bytes > 10 << 20, "{stats:?}");
    assert!(stats.reserve_writes <= 2, "the reserve is not rewritten in a loop: {stats:?}");
}

#[test]
fn the_disk_full_episode_ends_when_space_returns_without_a_restart() {
    let Some(fs) = Tmpfs::mount("8m", "the_disk_full_episode_ends_when_space_returns_without_a_restart") else { return };
    let (mut store, _) = SqliteStore::open(&config(&fs.mnt, 1 << 30, WhenFull::StopReading)).unwrap();
    store.set_reserve_holdoff(Duration::ZERO);
    let beds = beds(4);
    pour(&mut store, &beds, 20);
    // Something else fills the disk.
    let ballast = fill_disk(&fs.mnt);
    let (appended, _, refused) = pour(&mut store, &beds, 50);
    assert!(refused > 0, "appended {appended}");
    let full = store.stats().unwrap();
    assert!(full.disk_full && !full.reserve_present, "{full:?}");
    assert_eq!(disk_events(&mut store), (1, 0));
    // Housekeeping while still full changes nothing and writes nothing.
    store.maintain();
    assert_eq!(store.stats().unwrap().reserve_writes, full.reserve_writes);
    assert_eq!(disk_events(&mut store), (0, 0));
    // The space returns.
    std::fs::remove_file(&ballast).unwrap();
    store.maintain();
    let ok = store.stats().unwrap();
    assert!(!ok.disk_full && ok.reserve_present, "{ok:?}");
    assert_eq!(ok.reserve_writes, full.reserve_writes + 1);
    assert!(ok.capacity_bytes > full.capacity_bytes, "capacity raised again: {} -> {}", full.capacity_bytes, ok.capacity_bytes);
    assert_eq!(disk_events(&mut store), (0, 1), "one buffer-disk-ok event");
    let (appended, _, refused) = pour(&mut store, &beds, 20);
    assert_eq!((appended, refused), (2000, 0));
}

/// Overwrites `len` bytes in the middle of the file: torn pages.
fn damage(path: &std::path::Path, len: usize) {
    use std::io::{Seek, SeekFrom, Write};
    let size = std::fs::metadata(path).unwrap().len();
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(size / 2 / 4096 * 4096)).unwrap();
    f.write_all(&vec![0xA5u8; len]).unwrap();
    f.sync_all().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_found_while_running_is_quarantined_and_the_buffer_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 64 << 20, WhenFull::DropOldest);
    let (buffer, _) = BufferHandle::open(&cfg).unwrap();
    let mut events = buffer.take_events().unwrap();
    let beds = beds(4);
    let mut last = 0;
    for i in 0..60u64 {
        last = *buffer.append(observations(&beds, i * 1000, 1000)).await.unwrap().rowids.last().unwrap();
    }
    // The file is damaged under the running store (a failing SD card, a stray write).
    damage(&cfg.path, 64 << 10);
    // The next reads meet the damage: they are answered from the salvaged file, not with
    // "database disk image is malformed" forever.
    let mut got = Vec::new();
    let mut after = 0;
    loop {
        let page = buffer.read_after(after, 4096).await.expect("reads go on after the damage");
        match page.last() {
            Some(e) => after = e.rowid,
            None => break,
        }
        got.extend(page.into_iter().map(|e| e.rowid));
    }
    assert!(got.len() > 30_000 && got.len() < 60_000, "salvaged {} of 60000", got.len());
    assert!(got.windows(2).all(|w| w[0] < w[1]));
    let ev = tokio::time::timeout(Duration::from_secs(5), events.recv()).await.unwrap().unwrap();
    let BufferEvent::Quarantined(q) = ev else { panic!("{ev:?}") };
    assert_eq!(q.salvaged, got.len() as u64);
    assert!(!q.unreadable_ranges.is_empty());
    assert!(q.moved_to.exists(), "the damaged file is kept aside: {}", q.moved_to.display());
    let stats = buffer.stats().await.unwrap();
    assert_eq!(stats.runtime_quarantines, 1);
    assert_eq!(stats.depth, got.len() as u64);
    assert!(stats.quarantined >= 1);
    // New observations are accepted, with new ids, and read back (to be delivered).
    let out = buffer.append(observations(&beds, 100_000, 100)).await.unwrap();
    assert!(out.rowids[0] > last, "ids are never reused: {} after {last}", out.rowids[0]);
    let new = buffer.read_after(last, 1000).await.unwrap();
    assert_eq!(new.iter().map(|e| e.rowid).collect::<Vec<_>>(), out.rowids);
    buffer.ack(got);
    let stats = buffer.stats().await.unwrap();
    assert_eq!(stats.depth, 100);
    buffer.close().await;
    // The new file is sound.
    let (mut store, report) = SqliteStore::open(&cfg).unwrap();
    assert_eq!(report.quarantine, None);
    assert_eq!(store.stats().unwrap().depth, 100);
    assert!(matches!(store.append(&observations(&beds, 0, 1)), Ok(_) | Err(BufferError::DiskFull)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buffer_on_a_disk_full_at_start_up_starts_and_opens_when_there_is_room() {
    let Some(fs) = Tmpfs::mount("2m", "a_buffer_on_a_disk_full_at_start_up_starts_and_opens_when_there_is_room") else { return };
    let ballast = fill_disk(&fs.mnt);
    let cfg = config(&fs.mnt, 1 << 30, WhenFull::DropOldest);
    let (buffer, report) = BufferHandle::open(&cfg).expect("the buffer starts on a full disk");
    assert_eq!(report.depth, 0);
    let mut events = buffer.take_events().unwrap();
    let beds = beds(2);
    let out = buffer.append(observations(&beds, 0, 10)).await.unwrap();
    assert!(out.refused_full && out.rowids.is_empty(), "refused, so the source holds the batch: {out:?}");
    let stats = buffer.stats().await.unwrap();
    assert!(stats.disk_full, "{stats:?}");
    let ev = tokio::time::timeout(Duration::from_secs(5), events.recv()).await.unwrap().unwrap();
    assert!(matches!(ev, BufferEvent::DiskFull { .. }), "{ev:?}");
    // The space returns: the buffer opens by itself and accepts the held batch.
    std::fs::remove_file(&ballast).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let out = loop {
        let out = buffer.append(observations(&beds, 0, 10)).await.unwrap();
        if !out.refused_full {
            break out;
        }
        assert!(std::time::Instant::now() < deadline, "the buffer never opened");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(out.rowids.len(), 10);
    let ev = tokio::time::timeout(Duration::from_secs(5), events.recv()).await.unwrap().unwrap();
    assert!(matches!(ev, BufferEvent::DiskOk { .. }), "{ev:?}");
    let stats = buffer.stats().await.unwrap();
    assert!(!stats.disk_full && stats.reserve_present && stats.depth == 10, "{stats:?}");
    assert_eq!(buffer.read_after(0, 100).await.unwrap().len(), 10);
    buffer.close().await;
}
