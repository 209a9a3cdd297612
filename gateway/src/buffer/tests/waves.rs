//! Durable wave segments in the buffer (`buffer/waves.rs`): order, their own budget with
//! drop-oldest, observations untouched by a wave backlog, the schema 2 → 3 migration, and
//! segments that survive `kill -9`.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::buffer::{BufferHandle, SqliteStore, StoredWave};

fn seg(i: usize, len: usize) -> StoredWave {
    StoredWave {
        id: 0,
        topic: format!("medgw/v1/gw/BED{}/spo2/wave", i % 4),
        format: "application/json".into(),
        payload: Bytes::from(format!("{{\"seq\":{i},\"samples\":\"{}\"}}", "7".repeat(len))),
    }
}

fn all_waves(store: &mut SqliteStore) -> Vec<StoredWave> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = store.read_waves_after(after, 100).unwrap();
        let Some(last) = page.last() else { return out };
        after = last.id;
        out.extend(page);
    }
}

#[test]
fn stored_segments_come_back_in_order_and_go_when_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 64 << 20, WhenFull::DropOldest);
    let (mut store, _) = SqliteStore::open(&cfg).unwrap();
    assert_eq!(store.set_wave_budget(8 << 20).unwrap(), 0);
    let first = store.append_waves(&(0..5).map(|i| seg(i, 3000)).collect::<Vec<_>>()).unwrap();
    let second = store.append_waves(&(5..8).map(|i| seg(i, 3000)).collect::<Vec<_>>()).unwrap();
    assert_eq!(first.dropped + second.dropped, 0);
    let ids: Vec<i64> = first.ids.iter().chain(&second.ids).copied().collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let back = all_waves(&mut store);
    assert_eq!(back.iter().map(|w| w.id).collect::<Vec<_>>(), ids);
    assert_eq!(back[3], StoredWave { id: ids[3], ..seg(3, 3000) }, "topic, format and payload as stored");
    assert_eq!(store.read_waves_after(ids[5], 100).unwrap().len(), 2, "by cursor");
    let (bytes, _, _) = store.wave_usage();
    assert!(bytes >= 8 * 3000, "measured pages: {bytes}");
    store.delete_waves(&[ids[0], ids[2]]).unwrap();
    let left: Vec<i64> = all_waves(&mut store).iter().map(|w| w.id).collect();
    assert_eq!(left, [ids[1], ids[3], ids[4], ids[5], ids[6], ids[7]]);
    store.delete_waves(&left).unwrap();
    assert_eq!((store.wave_depth().unwrap(), store.wave_usage().0), (0, 0));
}

#[test]
fn a_full_wave_budget_drops_the_oldest_segments_counts_them_and_spares_observations() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 16 << 20, WhenFull::DropOldest);
    let (mut store, _) = SqliteStore::open(&cfg).unwrap();
    store.set_wave_budget(1 << 20).unwrap();
    let obs = store.append(&observations(&beds(2), 0, 200)).unwrap();
    assert_eq!(obs.dropped, 0);
    let mut dropped = 0;
    let mut last = Vec::new();
    // 3 MB of segments through a 1 MB budget.
    for round in 0..100 {
        let out = store.append_waves(&(round * 10..round * 10 + 10).map(|i| seg(i, 3000)).collect::<Vec<_>>()).unwrap();
        dropped += out.dropped;
        last = out.ids;
        let (bytes, limit, _) = store.wave_usage();
        assert!(bytes <= limit + 10 * 8192, "round {round}: {bytes} bytes over the {limit} budget");
    }
    assert!(dropped > 500, "{dropped}");
    let (_, _, total) = store.wave_usage();
    assert_eq!(total, dropped, "every drop counted");
    let kept = all_waves(&mut store);
    assert_eq!(kept.len() as u64 + dropped, 1000, "dropped or kept, nothing else");
    // The newest survive, the oldest went, in order.
    assert_eq!(kept.last().unwrap().id, *last.last().unwrap());
    assert!(kept.windows(2).all(|w| w[0].id < w[1].id));
    assert!(kept[0].payload.starts_with(format!("{{\"seq\":{}", 1000 - kept.len()).as_bytes()));
    // The observations did not move: the wave backlog has a budget of its own.
    assert_eq!(store.depth(), 200);
    assert_eq!(store.stats().unwrap().dropped_total, 0);
    // The counters and the bytes survive a restart.
    drop(store);
    let (mut store, _) = SqliteStore::open(&cfg).unwrap();
    store.set_wave_budget(1 << 20).unwrap();
    let (bytes, _, total) = store.wave_usage();
    assert_eq!(total, dropped);
    assert!(bytes > 512 << 10, "{bytes}");
    // Waves turned off: what a durable run left is deleted and counted.
    assert_eq!(store.set_wave_budget(0).unwrap(), 0);
    assert_eq!(store.wave_usage().2, 1000);
    assert_eq!(store.depth(), 200);
}

#[test]
fn observations_drop_oldest_within_their_share_not_because_of_waves() {
    // Observations fill a small buffer while waves hold their whole budget: the observations'
    // drop-oldest counts only observations against the buffer less the waves' budget.
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 4 << 20, WhenFull::DropOldest);
    let (mut store, _) = SqliteStore::open(&cfg).unwrap();
    store.set_wave_budget(1 << 20).unwrap();
    for round in 0..40 {
        store.append_waves(&(round * 10..round * 10 + 10).map(|i| seg(i, 3000)).collect::<Vec<_>>()).unwrap();
    }
    let waves_before = store.wave_depth().unwrap();
    let mut dropped = 0;
    for b in 0..60 {
        dropped += store.append(&observations(&beds(4), b * 1000, 1000)).unwrap().dropped;
    }
    assert!(dropped > 0, "the observations' share filled");
    assert_eq!(store.wave_depth().unwrap(), waves_before, "observations never delete waves");
    let live = crate::buffer::cli::stats(&cfg.path).unwrap().bytes;
    assert!(live <= 4 << 20, "the file stays within buffer.max_bytes: {live}");
}

#[test]
fn a_schema_2_buffer_is_migrated_to_3_and_keeps_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 64 << 20, WhenFull::DropOldest);
    let (mut store, _) = SqliteStore::open(&cfg).unwrap();
    store.append(&observations(&beds(2), 0, 8)).unwrap();
    store.set_sinks(&["mqtt".to_string(), "epic".to_string()]).unwrap();
    let ids: Vec<i64> = store.read_after_for(Some("epic"), 0, 100).unwrap().iter().map(|e| e.rowid).collect();
    store.ack_for("epic", &ids[..3]).unwrap();
    // The file as medgw with schema 2 left it: no wave table.
    store.conn().execute_batch("DROP TABLE wave_segments; PRAGMA user_version = 2;").unwrap();
    drop(store);
    let (mut store, report) = SqliteStore::open(&cfg).unwrap();
    assert_eq!(report.depth, 8);
    let v: i64 = store.conn().pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(v, 3);
    store.set_sinks(&["mqtt".to_string(), "epic".to_string()]).unwrap();
    assert_eq!(store.read_after_for(Some("epic"), 0, 100).unwrap().len(), 5, "per-sink acknowledgements kept");
    assert_eq!(store.read_after(0, 100).unwrap().len(), 8);
    store.set_wave_budget(1 << 20).unwrap();
    let ids = store.append_waves(&[seg(0, 10)]).unwrap().ids;
    assert_eq!(all_waves(&mut store)[0].id, ids[0]);
}

const CHILD_PATH: &str = "MEDGW_WAVE_CRASH_CHILD";
const CHILD_TEST: &str = "buffer::tests::waves::wave_crash_child";

/// The child: stores segments and deletes every third, printing `W id` once a segment is
/// durable and `A id` once its deletion is, until killed.
#[test]
#[ignore = "child process of the wave crash test, started by it"]
fn wave_crash_child() {
    let Some(path) = std::env::var_os(CHILD_PATH) else { return };
    let cfg = BufferConfig {
        path: PathBuf::from(path),
        max_bytes: 256 << 20,
        when_full: WhenFull::DropOldest,
        commit_interval_ms: 2,
        replay: Replay::LiveFirst,
    };
    let (buffer, _) = BufferHandle::open(&cfg).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let next = Arc::new(AtomicU64::new(0));
    rt.block_on(async {
        buffer.set_wave_budget(64 << 20).await.unwrap();
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let (buffer, next) = (buffer.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                use std::io::Write;
                let say = |text: String| {
                    let mut out = std::io::stdout().lock();
                    out.write_all(text.as_bytes()).unwrap();
                    out.flush().unwrap();
                };
                loop {
                    let from = next.fetch_add(3, Ordering::Relaxed) as usize;
                    // Small segments: a fast disk stores tens of thousands in the test's few
                    // seconds, and none may reach the budget (a drop is not a loss).
                    let out = buffer.append_waves((from..from + 3).map(|i| seg(i, 100)).collect()).await.unwrap();
                    if out.dropped > 0 {
                        say(format!("X {}\n", out.dropped));
                    }
                    say(out.ids.iter().map(|id| format!("W {id}\n")).collect());
                    let gone: Vec<i64> = out.ids.iter().copied().filter(|id| id % 3 == 0).collect();
                    buffer.delete_waves(gone.clone()).await.unwrap();
                    say(gone.iter().map(|id| format!("A {id}\n")).collect());
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
}

#[test]
fn kill_9_loses_no_stored_wave_segment_and_brings_no_deleted_one_back() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("buffer.db");
    let (mut stored, mut deleted) = (HashSet::new(), HashSet::new());
    for round in 0..8u64 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
            .env(CHILD_PATH, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            let mut r = BufReader::new(stdout);
            let mut buf = Vec::new();
            while let Ok(n) = r.read_until(b'\n', &mut buf) {
                if n == 0 || !buf.ends_with(b"\n") {
                    break;
                }
                lines.push(String::from_utf8_lossy(&buf).trim().to_string());
                buf.clear();
            }
            lines
        });
        std::thread::sleep(Duration::from_millis(400 + 97 * round));
        child.kill().unwrap();
        let _ = child.wait();
        for line in reader.join().unwrap() {
            let mut parts = line.split_whitespace();
            let (Some(kind), Some(id)) = (parts.next(), parts.next().and_then(|n| n.parse::<i64>().ok())) else { continue };
            match kind {
                "W" => assert!(stored.insert(id), "round {round}: id {id} issued twice (a stored segment was lost)"),
                "A" => drop(deleted.insert(id)),
                "X" => panic!("round {round}: the child's wave budget was full ({id} dropped): the test must stay below it"),
                _ => {}
            }
        }
        let cfg = config(dir.path(), 256 << 20, WhenFull::DropOldest);
        let (mut store, report) = SqliteStore::open(&cfg).unwrap();
        assert_eq!(report.quarantine, None, "a crash damaged the store");
        let present: HashSet<i64> = all_waves(&mut store).iter().map(|w| w.id).collect();
        for id in &stored {
            if deleted.contains(id) {
                assert!(!present.contains(id), "round {round}: segment {id} deleted, back after the crash");
            } else if id % 3 != 0 {
                // (A segment about to be deleted may be either way.)
                assert!(present.contains(id), "round {round}: stored segment {id} lost");
            }
        }
    }
    eprintln!("kill -9: {} segments stored, {} deleted, none lost", stored.len(), deleted.len());
    assert!(stored.len() > 50 && !deleted.is_empty());
}
