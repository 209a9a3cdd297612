//! What the MLLP end-to-end tests share (`mllp.rs`, `mllp_outage.rs`): the scripted receiver
//! (`medgw_e2e::mllp_receiver`, shared with the Alarm Manager tests), the gateway's
//! configuration with one `[[sink]] kind = "mllp"`, and readers of what arrived. Each test binary uses a part of it.
#![allow(dead_code)]

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use medgw_e2e::*;
use serde_json::Value;

pub use medgw_e2e::mllp_receiver::{has_python_hl7, MllpReceiver as Receiver};

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
