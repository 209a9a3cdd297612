//! Protocol sessions across gateway restarts and connection floods, end to end: the real
//! `medgw run` against a simulated IntelliVue on a pseudo-terminal, stopped with SIGTERM and
//! started again; a device server that connects and closes thousands of times, with the
//! gateway's log counted.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use medgw_e2e::*;
use serde_json::Value;

fn config(dir: &Path, mqtt: u16, http: u16, device: &str) -> String {
    format!(
        r#"
[gateway]
id = "gw-sessions"
site = "HOSP"
unit = "ICU"
timezone = "UTC"

[mqtt]
host = "127.0.0.1"
port = {mqtt}
format = "canonical"
keep_alive_s = 5

[buffer]
path = "{buffer}"

[status]
bind = "127.0.0.1:{http}"

[[device]]
bed = "BED1"
{device}
"#,
        buffer = dir.join("buffer.db").display()
    )
}

/// GET `path` from the status server: the JSON body.
fn get_json(port: u16, path: &str) -> Option<Value> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    serde_json::from_str(resp.split_once("\r\n\r\n")?.1).ok()
}

/// The device's entry in `/api/devices`, once `pred` holds for it (or the last one seen).
fn wait_device(http: u16, name: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    let mut last = Value::Null;
    while start.elapsed() < timeout {
        if let Some(Value::Array(devs)) = get_json(http, "/api/devices") {
            if let Some(d) = devs.into_iter().find(|d| d["name"] == name) {
                if pred(&d) {
                    return d;
                }
                last = d;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    last
}

fn obs_ids(sub: &Subscriber, device: &str) -> std::collections::HashSet<String> {
    sub.snapshot()
        .iter()
        .filter(|m| m.topic.ends_with(&format!("/{device}/obs")))
        .filter_map(|m| m.json()["id"].as_str().map(String::from))
        .collect()
}

#[test]
fn an_intellivue_association_is_released_on_sigterm_so_a_restart_resumes_at_once() {
    if missing("mosquitto") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let sub = Subscriber::start(broker.port, "medgw/v1/#");
    // The monitor keeps an association whose client vanished for 30 s (a real one: ~51 s) and
    // refuses new ones meanwhile.
    let mon = start_sim(dir.path(), "mon", "intellivue", &["--session-timeout", "30s"]);
    let http = free_port();
    let device = format!("name = \"monitor\"\nprotocol = \"intellivue\"\nport = \"{}\"\npoll_period_ms = 1000", mon.link.display());
    let cfg = config(dir.path(), broker.port, http, &device);

    let mut gw = start_gateway(dir.path(), "gw", &cfg);
    let d = wait_device(http, "monitor", Duration::from_secs(15), |d| d["session"] == "associated" && d["observations"].as_u64() > Some(0));
    assert_eq!(d["session"], "associated", "{d}\n{}", gw.log());
    assert_eq!(d["state"], "connected");
    sub.wait_for(Duration::from_secs(10), |_| !obs_ids(&sub, "monitor").is_empty());

    // SIGTERM: the gateway releases the association before it exits.
    let t = Instant::now();
    assert_eq!(gw.terminate(Duration::from_secs(15)), Some(0), "{}", gw.log());
    assert!(t.elapsed() < Duration::from_secs(10), "the release wait is bounded");
    assert!(gw.log().contains("released"), "the monitor answered the release: {}", gw.log());

    // Started again: observations resume within seconds, not after the monitor's 30 s.
    let before = obs_ids(&sub, "monitor").len();
    let restarted = Instant::now();
    let mut gw = start_gateway(dir.path(), "gw2", &cfg);
    sub.wait_for(Duration::from_secs(8), |_| obs_ids(&sub, "monitor").len() >= before + 10);
    let resumed = obs_ids(&sub, "monitor").len();
    assert!(
        resumed >= before + 10,
        "observations did not resume within 8 s of the restart ({before} → {resumed}, {:?}):\n{}",
        restarted.elapsed(),
        gw.log()
    );
    assert!(!gw.log().contains("association-refused"), "{}", gw.log());

    // Killed without a chance to release: the next gateway is refused, and the status says so
    // instead of a bare "connected".
    gw.kill9();
    let mut gw = start_gateway(dir.path(), "gw3", &cfg);
    let d = wait_device(http, "monitor", Duration::from_secs(10), |d| d["session"] == "refused");
    assert_eq!(d["session"], "refused", "{d}\n{}", gw.log());
    assert_eq!(d["state"], "connected", "the port is open; the association is not");
    gw.terminate(Duration::from_secs(15));
}

#[test]
fn thousands_of_reconnects_write_a_bounded_number_of_warnings() {
    if missing("mosquitto") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let http = free_port();
    let listen = format!("127.0.0.1:{}", free_port());
    let device = format!("name = \"flappy\"\nprotocol = \"nonin-df8\"\nlisten = \"{listen}\"\nallow = [\"127.0.0.1\"]");
    let cfg = config(dir.path(), broker.port, http, &device);
    let mut gw = start_gateway(dir.path(), "gw", &cfg);
    wait_for_port(listen.rsplit(':').next().unwrap().parse().unwrap(), Duration::from_secs(10));
    // A device server in a connect-and-close loop (paced a little, so that the gateway takes
    // most connections instead of dropping them at the hand-over, which it also logs).
    for _ in 0..3000 {
        if let Ok(s) = TcpStream::connect(&listen) {
            drop(s);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let d = wait_device(http, "flappy", Duration::from_secs(10), |d| d["reconnects"].as_u64() >= Some(1000));
    let reconnects = d["reconnects"].as_u64().unwrap_or(0);
    assert!(reconnects >= 300, "the gateway saw the reconnects: {d}");
    gw.terminate(Duration::from_secs(15));
    let log = gw.log();
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("WARN")).collect();
    // The first disconnection (and the first of each cause) at once; the rest counted.
    assert!(warnings.len() <= 5, "{reconnects} reconnects wrote {} warnings:\n{}", warnings.len(), warnings.join("\n"));
    assert!(log.contains("repeated log lines not written"), "the counts come out at shutdown: {log}");
    let infos = log.lines().filter(|l| l.contains("device event") && l.contains("flappy")).count();
    assert!(infos <= 10, "{infos} event lines for {reconnects} reconnects");
}
