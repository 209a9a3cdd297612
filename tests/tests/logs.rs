//! What an operator's log looks like where it is read: colour escapes only on a terminal, and
//! never with `NO_COLOR` (a log redirected to a file or the journal must be plain text).

use std::fs::File;
use std::io::Read as _;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use medgw_e2e::*;

/// A gateway whose broker is not there: it logs warnings (connection refused) at once.
fn config(dir: &Path) -> String {
    format!(
        "[gateway]\nid = \"gw-logs\"\nsite = \"HOSP\"\nunit = \"ICU\"\ntimezone = \"UTC\"\n\n[mqtt]\nhost = \"127.0.0.1\"\nport = {}\n\n[buffer]\npath = \"{}\"\n",
        free_port(),
        dir.join("buffer.db").display()
    )
}

/// Runs `medgw run` for a moment with its stderr on `stderr`, then stops it.
fn run_briefly(dir: &Path, stderr: Stdio, no_color: Option<&str>) {
    let path = dir.join("medgw.toml");
    std::fs::write(&path, config(dir)).unwrap();
    let mut cmd = Command::new(medgw_bin());
    cmd.args(["run", "--config"]).arg(&path).env("MEDGW_LOG", "info").stdout(Stdio::null()).stderr(stderr);
    cmd.env_remove("NO_COLOR");
    if let Some(v) = no_color {
        cmd.env("NO_COLOR", v);
    }
    let mut child = cmd.spawn().expect("start medgw run");
    std::thread::sleep(Duration::from_millis(1500));
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs the gateway with stderr on a pseudo-terminal (as a person at a console sees it) and
/// returns what it wrote there.
fn through_terminal(dir: &Path, no_color: Option<&str>) -> Vec<u8> {
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let slave: OwnedFd = pty.slave;
    let master: OwnedFd = pty.master;
    // Read the master side while the child writes, or a full pty buffer would block it.
    let reader = std::thread::spawn(move || {
        let mut f = File::from(master);
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match f.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
        out
    });
    assert!(nix::unistd::isatty(&slave).unwrap_or(false));
    run_briefly(dir, Stdio::from(slave), no_color);
    // The slave is closed (moved into the child's Stdio and dropped): the master reads EIO.
    reader.join().expect("reader")
}

fn has_escape(bytes: &[u8]) -> bool {
    bytes.contains(&0x1b)
}

#[test]
fn redirected_log_has_no_colour_escapes() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.log");
    run_briefly(dir.path(), Stdio::from(File::create(&log).unwrap()), None);
    let text = std::fs::read(&log).unwrap();
    assert!(String::from_utf8_lossy(&text).contains("WARN"), "the gateway logged nothing: {}", String::from_utf8_lossy(&text));
    assert!(!has_escape(&text), "ANSI escapes in a redirected log:\n{}", String::from_utf8_lossy(&text));
}

#[test]
fn terminal_gets_colour_unless_no_color() {
    let dir = tempfile::tempdir().unwrap();
    let coloured = through_terminal(dir.path(), None);
    assert!(String::from_utf8_lossy(&coloured).contains("WARN"), "nothing on the terminal: {:?}", String::from_utf8_lossy(&coloured));
    assert!(has_escape(&coloured), "a terminal gets colour: {:?}", String::from_utf8_lossy(&coloured));

    let dir = tempfile::tempdir().unwrap();
    let plain = through_terminal(dir.path(), Some("1"));
    assert!(String::from_utf8_lossy(&plain).contains("WARN"), "nothing on the terminal: {:?}", String::from_utf8_lossy(&plain));
    assert!(!has_escape(&plain), "NO_COLOR=1 must turn colour off: {:?}", String::from_utf8_lossy(&plain));
}

/// One thing that happened, one log line: a buffer file found damaged at start-up is moved
/// aside and salvaged, and what was salvaged is logged once (the store logs it where it
/// happens; the start-up path and the event publisher do not repeat it).
#[test]
fn a_quarantine_at_start_up_is_logged_once() {
    let dir = tempfile::tempdir().unwrap();
    // Not a database at all: SQLite says SQLITE_NOTADB, the store quarantines the file.
    std::fs::write(dir.path().join("buffer.db"), vec![0xA5u8; 64 * 1024]).unwrap();
    let log = dir.path().join("stderr.log");
    run_briefly(dir.path(), Stdio::from(File::create(&log).unwrap()), Some("1"));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        std::fs::read_dir(dir.path()).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().contains("quarantine")),
        "the damaged file was moved aside:\n{text}"
    );
    let outcome: Vec<&str> = text.lines().filter(|l| l.contains("salvaged=")).collect();
    assert_eq!(outcome.len(), 1, "the salvage is logged once:\n{text}");
    assert!(outcome[0].contains("ERROR"), "at error level: {}", outcome[0]);
}
