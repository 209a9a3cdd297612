//! The scripted MLLP receiver (`tests/support/mllp_receiver.py`, python-hl7) as a child process:
//! an interface engine or an Alarm Manager independent of medgw, for tests of MLLP delivery.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::workspace;

/// Whether python3 with python-hl7 is there (else the test skips, except in CI).
pub fn has_python_hl7() -> bool {
    let ok = Command::new("python3").args(["-c", "import hl7"]).output().map(|o| o.status.success()).unwrap_or(false);
    if !ok {
        assert!(std::env::var_os("CI").is_none(), "python-hl7 must be installed in CI (tests/validators/requirements.txt)");
        eprintln!("SKIPPED: python3 with python-hl7 is not installed");
    }
    ok
}

/// The scripted receiver, killed when dropped.
pub struct MllpReceiver {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
    pub dump: PathBuf,
}

impl MllpReceiver {
    /// Starts the receiver on `port` (0: any), logging and dumping into `dir` (appending, so a
    /// restarted receiver keeps one record).
    pub fn start(dir: &Path, script: &str, port: u16) -> MllpReceiver {
        MllpReceiver::start_with(dir, script, port, &[])
    }

    /// As [`MllpReceiver::start`], with more arguments (TLS).
    pub fn start_with(dir: &Path, script: &str, port: u16, extra: &[&std::ffi::OsStr]) -> MllpReceiver {
        let (log, dump) = (dir.join("mllp-received.log"), dir.join("mllp-accepted.hl7"));
        let mut child = Command::new("python3")
            .arg(workspace().join("tests/support/mllp_receiver.py"))
            .args(["--script", script, "--port", &port.to_string(), "--log"])
            .arg(&log)
            .arg("--dump")
            .arg(&dump)
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the receiver");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().strip_prefix("PORT ").and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("receiver said {line:?}"));
        MllpReceiver { child, port, log, dump }
    }

    /// (MSH-10, answer, connection number) of every message received, in order.
    pub fn received(&self) -> Vec<(String, String, u32)> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.contains("\tACK"))
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (f[0].to_string(), f[2].to_string(), f[3].parse().unwrap())
            })
            .collect()
    }

    /// The message type (MSH-9) of every message received, in the order of [`MllpReceiver::received`].
    pub fn message_types(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.contains("\tACK"))
            .map(|l| l.split('\t').nth(1).unwrap_or_default().to_string())
            .collect()
    }

    /// The messages the receiver had read on their connection and not yet answered when it
    /// read each message (itself included), in order: how many the gateway had in flight.
    pub fn outstanding(&self) -> Vec<u32> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.contains("\tACK"))
            .map(|l| l.split('\t').nth(4).and_then(|n| n.parse().ok()).unwrap_or(0))
            .collect()
    }

    /// The commit ACKs the gateway sent back for application ACKs that asked for one (MSA-1).
    pub fn commit_acks(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\tACK"))
            .filter_map(|l| l.split('\t').nth(2).map(str::to_string))
            .collect()
    }

    /// The messages answered AA, as ER7 text with `\r` between segments.
    pub fn accepted(&self) -> Vec<String> {
        std::fs::read_to_string(&self.dump)
            .unwrap_or_default()
            .split("\n\n")
            .filter(|m| !m.trim().is_empty())
            .map(|m| m.trim().replace('\n', "\r"))
            .collect()
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for MllpReceiver {
    fn drop(&mut self) {
        self.stop();
    }
}
