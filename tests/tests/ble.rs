//! Bluetooth without Bluetooth (as on CI): `medgw ble scan` says what is missing and fails;
//! a configured BLE device is reported (log, event, status page) and retried while a serial
//! device beside it — a real simulator on a pseudo-terminal — keeps publishing everything.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use medgw_e2e::*;
use serde_json::Value;

/// A D-Bus address where nothing listens: "no system bus" on any machine.
const NO_BUS: &str = "unix:path=/nonexistent/medgw-test/system_bus_socket";

fn scan(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(medgw_bin());
    cmd.args(["ble", "scan", "--duration", "1s"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run medgw ble scan");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn ble_scan_names_what_is_missing() {
    let (code, err) = scan(&[("DBUS_SYSTEM_BUS_ADDRESS", NO_BUS)]);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("no D-Bus system bus") && err.contains("systemctl start dbus"), "{err}");

    // A system bus without bluetoothd on it (a private bus, so the machine's own is not used).
    let Some(daemon) = which("dbus-daemon") else {
        eprintln!("SKIPPED (second half): `dbus-daemon` is not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("bus");
    let conf = dir.path().join("bus.conf");
    std::fs::write(
        &conf,
        format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>system</type><listen>unix:path={}</listen><auth>EXTERNAL</auth>
<policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/><allow own="*"/><allow user="*"/></policy></busconfig>"#,
            socket.display()
        ),
    )
    .unwrap();
    let mut bus = Command::new(daemon).arg(format!("--config-file={}", conf.display())).arg("--nofork").spawn().expect("dbus-daemon");
    for _ in 0..100 {
        if socket.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, err) = scan(&[("DBUS_SYSTEM_BUS_ADDRESS", &format!("unix:path={}", socket.display()))]);
    let _ = bus.kill();
    let _ = bus.wait();
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("bluetoothd is not running"), "{err}");
}

fn http_get(port: u16, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("status page");
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()
}

#[test]
fn a_ble_device_without_bluetooth_is_reported_and_serial_devices_keep_working() {
    if missing("mosquitto") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let sub = Subscriber::start(broker.port, "medgw/v1/#");
    let mut sim = start_sim(dir.path(), "oxi", "nonin-df8", &["--seed", "5", "--period-ms", "250"]);
    let status_port = free_port();
    let config = format!(
        r#"
[gateway]
id = "gw-ble"
site = "HOSP"
unit = "WARD"
timezone = "UTC"

[mqtt]
host = "127.0.0.1"
port = {port}
format = "canonical"
keep_alive_s = 5

[buffer]
path = "{buffer}"

[status]
bind = "127.0.0.1:{status_port}"

[[device]]
name = "oxi"
protocol = "nonin-df8"
port = "{link}"
bed = "BED1"

[[device]]
name = "cuff"
ble = "C0:FF:EE:00:00:01"
services = ["blood-pressure"]
bed = "BED1"
"#,
        port = broker.port,
        buffer = dir.path().join("buffer.db").display(),
        link = sim.link.display(),
    );
    let mut gw = start_gateway_env(dir.path(), "gw", &config, &[("DBUS_SYSTEM_BUS_ADDRESS", Path::new(NO_BUS))]);
    std::thread::sleep(Duration::from_secs(6));
    let devices: Value = serde_json::from_str(&http_get(status_port, "/api/devices")).expect("status JSON");
    sim.proc.terminate(Duration::from_secs(5));
    let msgs = sub.wait_quiet(Duration::from_secs(3), Duration::from_secs(30));
    assert_eq!(gw.terminate(Duration::from_secs(15)), Some(0), "graceful stop: {}", gw.log());

    // The BLE device: one event that says what is missing, and its state on the status page.
    let cuff: Vec<Value> = msgs.iter().filter(|m| m.topic == "medgw/v1/gw-ble/BED1/cuff/events").map(Received::json).collect();
    let down: Vec<&Value> = cuff.iter().filter(|e| e["kind"] == "disconnected").collect();
    assert_eq!(down.len(), 1, "reported once, not once per retry: {cuff:?}");
    let detail = down[0]["detail"].as_str().unwrap();
    assert!(detail.contains("Bluetooth unavailable") && detail.contains("no D-Bus system bus"), "{detail}");
    let list = devices.as_array().or_else(|| devices["devices"].as_array()).cloned().unwrap_or_default();
    let cuff_state = list.iter().find(|d| d["name"] == "cuff").map(|d| d["state"].clone());
    assert_eq!(cuff_state, Some(Value::from("disconnected")), "{devices}");
    assert_eq!(list.iter().find(|d| d["name"] == "oxi").map(|d| d["state"].clone()), Some(Value::from("connected")), "{devices}");
    let log = gw.log();
    assert!(log.contains("no D-Bus system bus"), "logged: {log}");

    // The serial device beside it: every value once, in order.
    let mut seen = std::collections::HashSet::new();
    let got: Vec<(u64, Option<String>)> = msgs
        .iter()
        .filter(|m| m.topic == "medgw/v1/gw-ble/BED1/oxi/obs")
        .map(Received::json)
        .filter(|j| seen.insert(j["id"].as_str().unwrap_or_default().to_string()))
        .map(|j| (j["code"].as_u64().unwrap_or(0), Some(j["value"].to_string()).filter(|v| v != "null")))
        .collect();
    let want: Vec<(u64, Option<String>)> = sim
        .sent()
        .iter()
        .map(|s| {
            (s["metric"].as_u64().unwrap_or(0), s["value"].as_str().map(|v| v.parse::<f64>().map(|f| f.to_string()).unwrap_or_default()))
        })
        .collect();
    let got: Vec<(u64, Option<String>)> =
        got.into_iter().map(|(c, v)| (c, v.map(|v| v.parse::<f64>().map(|f| f.to_string()).unwrap_or(v)))).collect();
    assert!(want.len() > 10, "the simulator sent {} values", want.len());
    assert_same_sequence(&got, &want, "serial device beside an unavailable BLE device");
}
