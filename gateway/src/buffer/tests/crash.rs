//! Crashes and power cuts: nothing that was reported committed is lost.
//!
//! A child process (this test binary, started on the ignored test [`crash_child`]) appends
//! through a [`BufferHandle`] from several tasks and prints `C <rowid>` for each rowid once its
//! append has resolved (i.e. is durable), and `A <rowid>` before it acknowledges one. The parent
//! kills it at a random moment, reopens the store and checks that every committed and not
//! acknowledged rowid is there. A line is counted only when complete (a kill can cut one).
//!
//! `kill -9` only shows that the process's state does not matter: the OS still holds every
//! write. The power-cut emulation also drops what the OS holds but never wrote to the device:
//! the store lives on an ext4 file system in a loop device; at the cut the child is killed and
//! the loop device's backing image is copied at once, while the file system's dirty pages are
//! still only in memory (ext4 mounted with `commit=60`, and dirty pages are written back after
//! 30 s, far longer than a round). The copy is what a disk would hold after a power cut with
//! its write cache flushed on each fsync; it is mounted (ext4 replays its journal) and the
//! store opened on it. The control run with `synchronous=NORMAL` shows that the emulation does
//! lose unsynced commits, so the `FULL` run passing means something.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::*;
use crate::buffer::sqlite::Durability;
use crate::buffer::{BufferHandle, RowId, SqliteStore};

const CHILD_PATH: &str = "MEDGW_BUFFER_CRASH_CHILD";
const CHILD_SYNC: &str = "MEDGW_BUFFER_CRASH_SYNC";
const CHILD_TEST: &str = "buffer::tests::crash::crash_child";

/// The child: appends until killed. Does nothing when run by `cargo test -- --ignored` alone.
#[test]
#[ignore = "child process of the crash tests, started by them"]
fn crash_child() {
    let Some(path) = std::env::var_os(CHILD_PATH) else { return };
    let durability = match std::env::var(CHILD_SYNC).as_deref() {
        Ok("normal") => Durability::UnsafeNormalUnchecked,
        _ => Durability::Full,
    };
    let cfg = BufferConfig {
        path: PathBuf::from(path),
        max_bytes: 64 << 20,
        when_full: WhenFull::DropOldest,
        commit_interval_ms: 2,
        replay: Replay::LiveFirst,
    };
    let (buffer, _) = BufferHandle::open_with(&cfg, durability).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let next = Arc::new(AtomicU64::new(0));
    rt.block_on(async {
        let beds = Arc::new(beds(8));
        let mut tasks = Vec::new();
        for t in 0..8u64 {
            let (buffer, beds, next) = (buffer.clone(), beds.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let n = 1 + (next.load(Ordering::Relaxed) + t) % 8;
                    let from = next.fetch_add(n, Ordering::Relaxed);
                    let out = buffer.append(observations(&beds, from, n)).await.unwrap();
                    let mut text = String::new();
                    if out.dropped > 0 {
                        text.push_str(&format!("D {}\n", out.dropped));
                    }
                    let mut ack = Vec::new();
                    for id in &out.rowids {
                        text.push_str(&format!("C {id}\n"));
                        if id % 3 == 0 {
                            text.push_str(&format!("A {id}\n"));
                            ack.push(*id);
                        }
                    }
                    // One write per batch; only complete lines count.
                    use std::io::Write;
                    let mut out = std::io::stdout().lock();
                    out.write_all(text.as_bytes()).unwrap();
                    out.flush().unwrap();
                    drop(out);
                    buffer.ack(ack);
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
}

/// What the children said over all rounds.
#[derive(Default)]
struct Said {
    committed: HashSet<RowId>,
    acked: HashSet<RowId>,
}

impl Said {
    /// Records the lines; returns how many rowids were reported committed a second time (which
    /// means the first commit under that id was lost and its id issued again).
    fn take(&mut self, lines: Vec<String>) -> usize {
        let mut reissued = 0;
        for line in lines {
            let mut parts = line.split_whitespace();
            let (Some(kind), Some(n)) = (parts.next(), parts.next().and_then(|n| n.parse::<i64>().ok())) else { continue };
            match kind {
                "C" if !self.committed.insert(n) => reissued += 1,
                "A" => {
                    self.acked.insert(n);
                }
                "D" => panic!("the child dropped {n} entries; the test's buffer is too small"),
                _ => {}
            }
        }
        reissued
    }

    /// Committed, not acknowledged, and not in the store.
    fn missing(&self, path: &Path) -> Vec<RowId> {
        let cfg = BufferConfig {
            path: path.to_path_buf(),
            max_bytes: 64 << 20,
            when_full: WhenFull::DropOldest,
            commit_interval_ms: 2,
            replay: Replay::LiveFirst,
        };
        let (mut store, report) = SqliteStore::open(&cfg).unwrap();
        assert_eq!(report.quarantine, None, "a crash damaged the store");
        let mut present = HashSet::new();
        let mut after = 0;
        loop {
            let page = store.read_after(after, 10_000).unwrap();
            let Some(last) = page.last() else { break };
            after = last.rowid;
            present.extend(page.iter().map(|e| e.rowid));
        }
        let mut missing: Vec<RowId> =
            self.committed.iter().filter(|id| !self.acked.contains(id) && !present.contains(id)).copied().collect();
        missing.sort_unstable();
        missing
    }
}

/// A small xorshift generator: the delays of the kills, reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1) | 1;
        eprintln!("crash test seed {seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Starts the child on `path`, lets it run for a random time after its first commit, kills it
/// with SIGKILL and returns the complete lines it printed.
/// `at_cut` runs once the child is dead.
fn run_and_kill(path: &Path, sync: &str, rng: &mut Rng, at_cut: impl FnOnce()) -> Vec<String> {
    run_and_kill_child(CHILD_TEST, path, sync, rng, at_cut)
}

fn run_and_kill_child(test: &str, path: &Path, sync: &str, rng: &mut Rng, at_cut: impl FnOnce()) -> Vec<String> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_PATH, path)
        .env(CHILD_SYNC, sync)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (first_tx, first_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        let mut r = BufReader::new(stdout);
        let mut buf = Vec::new();
        let mut told = false;
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => return lines,
                Ok(_) if buf.ends_with(b"\n") => {
                    let line = String::from_utf8_lossy(&buf).trim().to_string();
                    if !told && line.starts_with("C ") {
                        let _ = first_tx.send(());
                        told = true;
                    }
                    lines.push(line);
                }
                // A line cut by the kill.
                Ok(_) => return lines,
            }
        }
    });
    let started = first_rx.recv_timeout(Duration::from_secs(30)).is_ok();
    std::thread::sleep(Duration::from_millis(rng.below(300)));
    child.kill().unwrap();
    let _ = child.wait();
    at_cut();
    let lines = reader.join().unwrap();
    assert!(started, "the child never committed anything");
    lines
}

#[test]
fn kill_9_at_random_moments_loses_nothing_committed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("buffer.db");
    let mut rng = Rng::seeded();
    let mut said = Said::default();
    for round in 0..20 {
        let lines = run_and_kill(&path, "full", &mut rng, || {});
        assert_eq!(said.take(lines), 0, "round {round}: rowids issued twice");
        let missing = said.missing(&path);
        assert!(missing.is_empty(), "round {round}: {} committed rowids lost, e.g. {:?}", missing.len(), &missing[..missing.len().min(10)]);
    }
    eprintln!("kill -9: 20 rounds, {} committed, {} acknowledged, none lost", said.committed.len(), said.acked.len());
    assert!(said.committed.len() > 100);
}

fn sh(cmd: &str, args: &[&std::ffi::OsStr]) -> Result<String, String> {
    let out = Command::new(cmd).args(args).output().map_err(|e| format!("{cmd}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// An ext4 file system in a loop device, unmounted and detached on drop.
struct LoopMount {
    dev: String,
    mnt: PathBuf,
}

impl LoopMount {
    fn mount(img: &Path, mnt: &Path) -> Result<LoopMount, String> {
        let dev = sh("losetup", &["-f".as_ref(), "--show".as_ref(), img.as_os_str()])?;
        // commit=60: ext4 would otherwise force dirty data out with its journal every 5 s.
        if let Err(e) = sh("mount", &["-t".as_ref(), "ext4".as_ref(), "-o".as_ref(), "commit=60".as_ref(), dev.as_ref(), mnt.as_os_str()]) {
            let _ = sh("losetup", &["-d".as_ref(), dev.as_ref()]);
            return Err(e);
        }
        Ok(LoopMount { dev, mnt: mnt.to_path_buf() })
    }
}

impl Drop for LoopMount {
    fn drop(&mut self) {
        if let Err(e) = sh("umount", &[self.mnt.as_os_str()]) {
            eprintln!("{e}");
            let _ = sh("umount", &["-l".as_ref(), self.mnt.as_os_str()]);
        }
        let _ = sh("losetup", &["-d".as_ref(), self.dev.as_ref()]);
    }
}

/// Runs `rounds` power cuts with the child at `sync`; returns, per cut, the committed rowids
/// lost (missing, or issued again by the next run), and the number committed in all.
/// `None` when this machine cannot emulate (not root, no loop devices, no mkfs.ext4).
fn power_cuts(sync: &str, rounds: usize) -> Option<(Vec<usize>, usize)> {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.img");
    let cut = dir.path().join("disk.cut");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    std::fs::File::create(&img).unwrap().set_len(128 << 20).unwrap();
    if let Err(e) = sh("mkfs.ext4", &["-q".as_ref(), "-F".as_ref(), img.as_os_str()]) {
        eprintln!("power-cut emulation skipped: {e}");
        return None;
    }
    let path = mnt.join("buffer.db");
    let mut rng = Rng::seeded();
    let mut said = Said::default();
    let mut lost = Vec::new();
    let mut reissued = 0;
    for round in 0..=rounds {
        let mount = match LoopMount::mount(&img, &mnt) {
            Ok(m) => m,
            Err(e) if round == 0 => {
                eprintln!("power-cut emulation skipped: {e}");
                return None;
            }
            Err(e) => panic!("mounting the image after cut {round} failed: {e}"),
        };
        if round > 0 {
            let missing = said.missing(&path);
            lost.push(missing.len() + reissued);
        }
        if round == rounds {
            break;
        }
        let lines = run_and_kill(&path, sync, &mut rng, || {
            // The cut: what the device holds now is all that survives.
            std::fs::copy(&img, &cut).unwrap();
        });
        reissued = said.take(lines);
        drop(mount);
        std::fs::rename(&cut, &img).unwrap();
    }
    Some((lost, said.committed.len()))
}

#[test]
fn power_cuts_lose_nothing_committed() {
    let Some((lost, committed)) = power_cuts("full", 6) else { return };
    eprintln!("power cuts with synchronous=FULL: {committed} committed, rowids missing after each cut (cumulative) {lost:?}");
    assert!(committed > 100);
    assert!(lost.iter().all(|n| *n == 0), "committed observations lost at a power cut: {lost:?}");
}

/// The control: the same cuts with `synchronous=NORMAL` do lose commits, so the emulation
/// really drops unsynced writes.
#[test]
fn power_cut_emulation_catches_unsynced_commits() {
    let Some((lost, committed)) = power_cuts("normal", 4) else { return };
    eprintln!("power cuts with synchronous=NORMAL (control): {committed} committed, rowids missing after each cut (cumulative) {lost:?}");
    assert!(lost.iter().any(|n| *n > 0), "the emulation lost nothing even without fsync: it proves nothing");
}

const SINKS_CHILD_TEST: &str = "buffer::tests::crash::crash_child_two_sinks";

/// The child of the per-sink crash test: appends, and acknowledges for two sinks and
/// dead-letters through the durable calls, printing each only after it resolved:
/// `C id` committed, `M id` MQTT has it, `E id` the MLLP sink has it, `X id` dead-lettered
/// for the MLLP sink.
#[test]
#[ignore = "child process of the crash tests, started by them"]
fn crash_child_two_sinks() {
    let Some(path) = std::env::var_os(CHILD_PATH) else { return };
    let cfg = BufferConfig {
        path: PathBuf::from(path),
        max_bytes: 64 << 20,
        when_full: WhenFull::DropOldest,
        commit_interval_ms: 2,
        replay: Replay::LiveFirst,
    };
    let (buffer, _) = BufferHandle::open_with(&cfg, Durability::Full).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let next = Arc::new(AtomicU64::new(0));
    rt.block_on(async {
        buffer.set_sinks(vec!["mqtt".into(), "epic".into()]).await.unwrap();
        let (mqtt, epic): (Arc<str>, Arc<str>) = ("mqtt".into(), "epic".into());
        let beds = Arc::new(beds(4));
        let mut tasks = Vec::new();
        for t in 0..4u64 {
            let (buffer, beds, next, mqtt, epic) = (buffer.clone(), beds.clone(), next.clone(), mqtt.clone(), epic.clone());
            tasks.push(tokio::spawn(async move {
                use std::io::Write;
                let say = |text: String| {
                    let mut out = std::io::stdout().lock();
                    out.write_all(text.as_bytes()).unwrap();
                    out.flush().unwrap();
                };
                loop {
                    let n = 1 + (next.load(Ordering::Relaxed) + t) % 6;
                    let from = next.fetch_add(n, Ordering::Relaxed);
                    let out = buffer.append(observations(&beds, from, n)).await.unwrap();
                    say(out.rowids.iter().map(|id| format!("C {id}\n")).collect());
                    let m: Vec<RowId> = out.rowids.iter().copied().filter(|id| id % 2 == 0).collect();
                    let e: Vec<RowId> = out.rowids.iter().copied().filter(|id| id % 3 == 0).collect();
                    let x: Vec<RowId> = out.rowids.iter().copied().filter(|id| id % 5 == 0 && id % 3 != 0).collect();
                    buffer.ack_for(mqtt.clone(), m.clone()).await.unwrap();
                    say(m.iter().map(|id| format!("M {id}\n")).collect());
                    buffer.ack_for(epic.clone(), e.clone()).await.unwrap();
                    say(e.iter().map(|id| format!("E {id}\n")).collect());
                    if !x.is_empty() {
                        buffer.dead_letter(epic.clone(), x.clone(), format!("C{}", x[0]), "AR: test".into()).await.unwrap();
                        say(x.iter().map(|id| format!("X {id}\n")).collect());
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
}

#[test]
fn kill_9_with_two_sinks_loses_no_row_a_sink_still_needs_and_forgets_no_acknowledgement() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("buffer.db");
    let mut rng = Rng::seeded();
    let (mut committed, mut mqtt, mut epic, mut dead) = (HashSet::new(), HashSet::new(), HashSet::new(), HashSet::new());
    for round in 0..10 {
        for line in run_and_kill_child(SINKS_CHILD_TEST, &path, "full", &mut rng, || {}) {
            let mut parts = line.split_whitespace();
            let (Some(kind), Some(id)) = (parts.next(), parts.next().and_then(|n| n.parse::<RowId>().ok())) else { continue };
            match kind {
                "C" => assert!(committed.insert(id), "round {round}: rowid {id} issued twice"),
                "M" => drop(mqtt.insert(id)),
                "E" => drop(epic.insert(id)),
                "X" => drop(dead.insert(id)),
                _ => {}
            }
        }
        let cfg = BufferConfig {
            path: path.clone(),
            max_bytes: 64 << 20,
            when_full: WhenFull::DropOldest,
            commit_interval_ms: 2,
            replay: Replay::LiveFirst,
        };
        let (mut store, report) = SqliteStore::open(&cfg).unwrap();
        assert_eq!(report.quarantine, None, "a crash damaged the store");
        store.set_sinks(&["mqtt".to_string(), "epic".to_string()]).unwrap();
        let read = |store: &mut SqliteStore, sink: &str| {
            let mut out = HashSet::new();
            let mut after = 0;
            loop {
                let page = store.read_after_for(Some(sink), after, 10_000).unwrap();
                let Some(last) = page.last() else { return out };
                after = last.rowid;
                out.extend(page.iter().map(|e| e.rowid));
            }
        };
        let (for_mqtt, for_epic) = (read(&mut store, "mqtt"), read(&mut store, "epic"));
        for id in &committed {
            let epic_has = epic.contains(id) || dead.contains(id);
            // A call may have resolved without the child living to say so: rows that were
            // about to be acknowledged may be either way; every other must be exactly right.
            let (m_maybe, e_maybe) = (id % 2 == 0, id % 3 == 0 || id % 5 == 0);
            if mqtt.contains(id) {
                assert!(!for_mqtt.contains(id), "round {round}: row {id} acknowledged by mqtt read again");
            } else if !m_maybe {
                assert!(for_mqtt.contains(id), "round {round}: row {id} lost for mqtt");
            }
            if epic_has {
                assert!(!for_epic.contains(id), "round {round}: row {id} delivered to the MLLP sink read again");
            } else if !e_maybe {
                assert!(for_epic.contains(id), "round {round}: row {id} lost for the MLLP sink");
            }
        }
        assert!(store.dead_lettered() >= dead.len() as u64, "round {round}: dead letters lost");
    }
    eprintln!(
        "kill -9 with two sinks: {} committed, {} / {} acknowledged, {} dead-lettered",
        committed.len(),
        mqtt.len(),
        epic.len(),
        dead.len()
    );
    assert!(committed.len() > 100 && !mqtt.is_empty() && !epic.is_empty() && !dead.is_empty());
}
