//! What the MLLP end-to-end tests share (`mllp.rs`, `mllp_outage.rs`): the scripted receiver
//! `tests/support/mllp_receiver.py` as a process, the gateway's configuration with one
//! `[[sink]] kind = "mllp"`, and readers of what arrived. Each test binary uses a part of it.
#![allow(dead_code)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use medgw_e2e::*;
use serde_json::Value;

/// The scripted receiver, killed when dropped.
pub struct Receiver {
    child: Child,
    pub port: u16,
    log: PathBuf,
    dump: PathBuf,
}

pub fn has_python_hl7() -> bool {
    let ok = Command::new("python3").args(["-c", "import hl7"]).output().map(|o| o.status.success()).unwrap_or(false);
    if !ok {
        assert!(std::env::var_os("CI").is_none(), "python-hl7 must be installed in CI (tests/validators/requirements.txt)");
        eprintln!("SKIPPED: python3 with python-hl7 is not installed");
    }
    ok
}

impl Receiver {
    /// Starts the receiver on `port` (0: any), logging and dumping into `dir` (appending, so a
    /// restarted receiver keeps one record).
    pub fn start(dir: &Path, script: &str, port: u16) -> Receiver {
        Receiver::start_with(dir, script, port, &[])
    }

    /// As [`Receiver::start`], with more arguments (TLS).
    pub fn start_with(dir: &Path, script: &str, port: u16, extra: &[&std::ffi::OsStr]) -> Receiver {
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
        Receiver { child, port, log, dump }
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

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn config(dir: &Path, mqtt_port: u16, mllp_port: u16, sink_extra: &str, sims: &[(&str, &str, &Path)]) -> String {
    let mut c = format!(
        r#"
[gateway]
id = "gw-mllp"
site = "HOSP"
unit = "ICU"
timezone = "UTC"

[mqtt]
host = "127.0.0.1"
port = {mqtt_port}
format = "hl7v2"
keep_alive_s = 5

[buffer]
path = "{buffer}"

[[sink]]
kind = "mllp"
name = "engine"
host = "127.0.0.1"
port = {mllp_port}
ack_timeout_s = 2
retry_backoff_min_s = 1
retry_backoff_max_s = 2
{sink_extra}
"#,
        buffer = dir.join("buffer.db").display()
    );
    for (i, (protocol, name, link)) in sims.iter().enumerate() {
        c.push_str(&format!(
            "\n[[device]]\nname = \"{name}\"\nprotocol = \"{protocol}\"\nport = \"{}\"\nbed = \"BED{}\"\n",
            link.display(),
            i + 1
        ));
    }
    c
}

/// The observations of HL7 v2 messages, as their numeric OBX rows (OBX-3 code, OBX-5 value,
/// OBX-6 unit, OBX-14 time): a message groups a set, and how rows were grouped may differ
/// between the sinks (each groups what it has queued), the observations may not.
pub fn obx_rows<'a>(messages: impl IntoIterator<Item = &'a str>) -> HashSet<(String, String, String, String)> {
    let mut out = HashSet::new();
    for m in messages {
        for seg in m.split('\r').filter(|s| s.starts_with("OBX|")) {
            let f: Vec<&str> = seg.split('|').collect();
            if f.get(2) == Some(&"NM") {
                let g = |i: usize| f.get(i).copied().unwrap_or("").to_string();
                out.insert((g(3), g(5), g(6), g(14)));
            }
        }
    }
    out
}

pub fn mqtt_hl7(msgs: &[Received]) -> Vec<String> {
    msgs.iter().filter(|m| m.topic.ends_with("/obs")).map(|m| String::from_utf8_lossy(&m.payload).to_string()).collect()
}

pub fn gateway_events(msgs: &[Received]) -> Vec<Value> {
    msgs.iter().filter(|m| m.topic == "medgw/v1/gw-mllp/events").map(Received::json).collect()
}

pub fn buffer_stats(dir: &Path) -> Value {
    let out = Command::new(medgw_bin()).args(["buffer", "stats", "--json"]).arg(dir.join("buffer.db")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

pub fn wait_until(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn skip() -> bool {
    missing("mosquitto") || !has_python_hl7()
}
