//! Network-attached serial ports end to end, loopback only: simulated device servers in each
//! mode (the gateway connects over raw TCP; the device server connects to the gateway; RFC 2217
//! through the real ser2net serving a pseudo-terminal) → `medgw run` → a real Mosquitto → a
//! subscriber that checks every observation. Faults: a device server that closes and reopens,
//! one that goes silent without closing (half-open), one that sends garbage, and a peer outside
//! the allow list.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use medgw_e2e::*;
use medgw_protocols::sim::{self, SimOptions};
use medgw_protocols::Timestamp;
use serde_json::value::RawValue;
use serde_json::Value;

/// A simulator behind a simulated device server: `medgw simulate --tcp|--connect ...`.
struct NetSim {
    proc: Proc,
    /// The first stdout line: the bound address (`--tcp`) or the address it connects to.
    addr: String,
    sent: PathBuf,
}

impl NetSim {
    fn sent(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.sent).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }
}

fn start_net_sim(dir: &Path, name: &str, protocol: &str, mode: &[&str], extra: &[&str]) -> NetSim {
    let sent = dir.join(format!("{name}.sent.jsonl"));
    let stderr = dir.join(format!("{name}.sim.log"));
    let mut child = Command::new(medgw_bin())
        .args(["simulate", "--device", protocol])
        .args(mode)
        .arg("--sent")
        .arg(&sent)
        .args(extra)
        .env("MEDGW_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).expect("log file"))
        .spawn()
        .expect("start medgw simulate");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut first).expect("simulator prints its address");
    let addr = first.trim().to_string();
    assert!(addr.parse::<SocketAddr>().is_ok(), "the first stdout line is an address: {addr:?}");
    NetSim { proc: Proc { child, name: name.into(), stderr }, addr, sent }
}

fn gateway_config(dir: &Path, port: u16, devices: &str) -> String {
    format!(
        r#"
[gateway]
id = "gw-test"
site = "HOSP"
unit = "ICU"
timezone = "UTC"

[mqtt]
host = "127.0.0.1"
port = {port}
format = "canonical"
keep_alive_s = 5

[buffer]
path = "{buffer}"
replay = "ordered"

[status]
enabled = false
{devices}"#,
        buffer = dir.join("buffer.db").display()
    )
}

fn device(name: &str, protocol: &str, bed: &str, source: &str, extra: &str) -> String {
    format!("\n[[device]]\nname = \"{name}\"\nprotocol = \"{protocol}\"\nbed = \"{bed}\"\n{source}\n{extra}\n")
}

fn raw_value(payload: &[u8]) -> Option<String> {
    let m: HashMap<String, Box<RawValue>> = serde_json::from_slice(payload).ok()?;
    m.get("value").map(|v| v.get().to_string())
}

fn observations<'a>(msgs: &'a [Received], device: &str) -> Vec<&'a Received> {
    msgs.iter().filter(|m| m.topic.ends_with(&format!("/{device}/obs"))).collect()
}

fn events(msgs: &[Received], device: &str) -> Vec<Value> {
    msgs.iter().filter(|m| m.topic.ends_with(&format!("/{device}/events"))).map(|m| m.json()).collect()
}

fn kinds(msgs: &[Received], device: &str) -> Vec<String> {
    events(msgs, device).iter().map(|e| e["kind"].as_str().unwrap_or("").to_string()).collect()
}

type Row = (u64, Option<String>, u64);

fn received_rows(received: &[&Received]) -> Vec<Row> {
    let mut seen = std::collections::HashSet::new();
    received
        .iter()
        .filter(|m| seen.insert(m.json()["id"].as_str().unwrap_or_default().to_string()))
        .map(|m| {
            let j = m.json();
            (j["code"].as_u64().unwrap_or(0), raw_value(&m.payload).filter(|v| v != "null"), j["unit_code"].as_u64().unwrap_or(0))
        })
        .collect()
}

fn sent_row(s: &Value) -> Row {
    (s["metric"].as_u64().unwrap_or(0), s["value"].as_str().map(String::from), s["unit"].as_u64().unwrap_or(0))
}

/// Every value the simulator sent arrived, once, in order, with its code, unit and exact value.
fn assert_same(sent: &[Value], received: &[&Received], device: &str) {
    let want: Vec<Row> = sent.iter().map(sent_row).collect();
    assert!(!want.is_empty(), "{device}: the simulator sent nothing");
    assert_same_sequence(&received_rows(received), &want, &format!("{device}: every observation once, in order, with (code, value, unit)"));
}

/// Received rows with compound values (NIBP) expanded into their components, which is how the
/// simulator records them.
fn received_rows_expanded(received: &[&Received]) -> Vec<Row> {
    type Raw = HashMap<String, Box<RawValue>>;
    let text = |m: &Raw| m.get("value").map(|v| v.get().to_string()).filter(|v| v != "null");
    let num = |m: &Raw, k: &str| m.get(k).and_then(|v| v.get().parse::<u64>().ok()).unwrap_or(0);
    let mut seen = std::collections::HashSet::new();
    let mut rows = Vec::new();
    for m in received {
        let Ok(o) = serde_json::from_slice::<Raw>(&m.payload) else { continue };
        if !seen.insert(o.get("id").map(|v| v.get().to_string()).unwrap_or_default()) {
            continue;
        }
        let components: Vec<Raw> = o.get("components").and_then(|c| serde_json::from_str(c.get()).ok()).unwrap_or_default();
        if components.is_empty() {
            rows.push((num(&o, "code"), text(&o), num(&o, "unit_code")));
        } else {
            rows.extend(components.iter().map(|c| (num(c, "code"), text(c), num(&o, "unit_code"))));
        }
    }
    rows
}

/// As [`assert_same`] for a device with a clock that re-reports a reading (an IntelliVue re-sends
/// the last NIBP with every poll, and is polled more than once within a second of its clock):
/// the same value of a metric at the same device time is one reading with one id, published
/// once; the subscriber's view is de-duplicated by id.
fn assert_same_readings(sent: &[Value], received: &[&Received], device: &str) {
    let mut seen = std::collections::HashSet::new();
    let want: Vec<Row> = sent
        .iter()
        .filter(|s| seen.insert((s["metric"].to_string(), s["device_time"].to_string(), s["value"].to_string(), s["seq"].to_string())))
        .map(sent_row)
        .collect();
    assert!(!want.is_empty(), "{device}: the simulator sent nothing");
    assert_same_sequence(
        &received_rows_expanded(received),
        &want,
        &format!("{device}: every reading once, in order, with (code, value, unit)"),
    );
}

fn span_ms(e: &Value) -> i64 {
    let p = |s: &Value| Timestamp::parse_rfc3339(s.as_str().unwrap_or_default()).map(|t| t.0).unwrap_or(0);
    p(&e["span"]["end"]) - p(&e["span"]["start"])
}

#[test]
fn raw_tcp_in_both_directions_delivers_every_observation() {
    if missing("mosquitto") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let sub = Subscriber::start(broker.port, "medgw/v1/#");
    // The gateway connects to these (device servers in TCP-server mode).
    let oxi = start_net_sim(dir.path(), "oxi", "nonin-df8", &["--tcp", "127.0.0.1:0"], &["--seed", "3", "--period-ms", "250"]);
    let monitor = start_net_sim(dir.path(), "monitor", "intellivue", &["--tcp", "127.0.0.1:0"], &["--seed", "4"]);
    // These connect to the gateway (TCP-client mode), both to one listen address, told apart by
    // their own addresses.
    let listen = format!("127.0.0.1:{}", free_port());
    let devices = [
        device("oxi", "nonin-df8", "BED1", &format!("port = \"tcp://{}\"", oxi.addr), ""),
        device("monitor", "intellivue", "BED2", &format!("port = \"tcp://{}\"", monitor.addr), "poll_period_ms = 1000"),
        device("masimo", "masimo", "BED3", &format!("listen = \"{listen}\"\nallow = [\"127.0.0.2\"]"), ""),
        device("vent", "medibus", "BED4", &format!("listen = \"{listen}\"\nallow = [\"127.0.0.3/32\"]"), "poll_period_ms = 250"),
    ]
    .concat();
    let mut gw = start_gateway(dir.path(), "gw", &gateway_config(dir.path(), broker.port, &devices));
    let masimo = start_net_sim(
        dir.path(),
        "masimo",
        "masimo",
        &["--connect", &listen, "--from", "127.0.0.2"],
        &["--seed", "5", "--period-ms", "1000"],
    );
    let vent = start_net_sim(
        dir.path(),
        "vent",
        "medibus",
        &["--connect", &listen, "--from", "127.0.0.3"],
        &["--seed", "6", "--period-ms", "250"],
    );
    // A peer that belongs to neither device on the shared listen address.
    std::thread::sleep(Duration::from_secs(2));
    let refused = std::net::TcpStream::connect(&listen).map(|mut s| {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut b = [0u8; 8];
        s.read(&mut b).ok()
    });
    std::thread::sleep(Duration::from_secs(7));
    let mut sims = [oxi, monitor, masimo, vent];
    for s in &mut sims {
        s.proc.terminate(Duration::from_secs(5));
    }
    let msgs = sub.wait_quiet(Duration::from_secs(3), Duration::from_secs(30));
    assert_eq!(gw.terminate(Duration::from_secs(15)), Some(0), "graceful stop: {}", gw.log());
    for (s, name) in sims.iter().zip(["oxi", "monitor", "masimo", "vent"]) {
        if name == "monitor" {
            assert_same_readings(&s.sent(), &observations(&msgs, name), name);
        } else {
            assert_same(&s.sent(), &observations(&msgs, name), name);
        }
    }
    // The IntelliVue association and MEDIBUS polling ran over the sockets.
    assert!(
        events(&msgs, "monitor").iter().any(|e| e["kind"] == "session" && e["detail"] == "associated"),
        "{:?}",
        events(&msgs, "monitor")
    );
    let connected =
        |d: &str| events(&msgs, d).into_iter().find(|e| e["kind"] == "connected").unwrap_or_else(|| panic!("{d}: no connected event"));
    assert!(connected("oxi")["detail"].as_str().unwrap().contains(&format!("tcp://{}", sims[0].addr)));
    assert!(connected("masimo")["detail"].as_str().unwrap().contains("127.0.0.2:"), "{}", connected("masimo"));
    assert!(connected("vent")["detail"].as_str().unwrap().contains("127.0.0.3:"), "{}", connected("vent"));
    let port = observations(&msgs, "vent")[0].json()["device"]["port"].clone();
    assert_eq!(port, format!("listen://{listen}"));
    // The stranger was closed at once, logged and published as a gateway event (the listen
    // address serves two devices).
    assert_eq!(refused.ok().flatten(), Some(0), "the refused connection is closed");
    let log = gw.log();
    assert!(log.contains("connection refused") && log.contains("127.0.0.1:"), "{log}");
    let gw_events: Vec<Value> = msgs.iter().filter(|m| m.topic == "medgw/v1/gw-test/events").map(Received::json).collect();
    assert!(
        gw_events.iter().any(|e| e["kind"] == "connection-refused" && e["detail"].as_str().unwrap_or("").contains("127.0.0.1:")),
        "{gw_events:?}"
    );
}

/// The pseudo-terminal a `--pty --link` simulator made.
fn pty_path(link: &Path) -> PathBuf {
    std::fs::canonicalize(link).expect("the link points at a pty")
}

fn stty(tty: &Path) -> String {
    let out = Command::new("stty").arg("-F").arg(tty).arg("-a").output().expect("stty");
    assert!(out.status.success(), "stty -F {}: {}", tty.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn has_flag(stty: &str, flag: &str) -> bool {
    stty.split(|c: char| c.is_whitespace() || c == ';').any(|w| w == flag)
}

#[test]
fn rfc2217_through_ser2net_sets_the_remote_port_and_delivers_every_observation() {
    if missing("mosquitto") || missing("ser2net") || missing("stty") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let sub = Subscriber::start(broker.port, "medgw/v1/#");
    let vent = start_sim(dir.path(), "vent", "medibus", &["--seed", "8", "--period-ms", "250"]);
    let monitor = start_sim(dir.path(), "monitor", "intellivue", &["--seed", "9"]);
    let (vent_tty, monitor_tty) = (pty_path(&vent.link), pty_path(&monitor.link));
    // ser2net starts both ports at 9600 8N1, which is neither device's setting.
    let (vent_port, monitor_port) = (free_port(), free_port());
    let trace = |n: &str| dir.path().join(n).display().to_string();
    let yaml = format!(
        "%YAML 1.1\n---\n\
         connection: &vent\n  accepter: telnet(rfc2217),tcp,127.0.0.1,{vent_port}\n  connector: serialdev,{},9600n81,local\n  options:\n    kickolduser: true\n\n\
         connection: &monitor\n  accepter: telnet(rfc2217),tcp,127.0.0.1,{monitor_port}\n  connector: serialdev,{},9600n81,local\n  options:\n    kickolduser: true\n    trace-read: {}\n    trace-write: {}\n",
        vent_tty.display(),
        monitor_tty.display(),
        trace("monitor.from-device"),
        trace("monitor.to-device"),
    );
    write(&dir.path().join("ser2net.yaml"), &yaml);
    let s2n_log = dir.path().join("ser2net.log");
    let ser2net = Command::new(which("ser2net").unwrap())
        .args(["-n", "-d", "-c"])
        .arg(dir.path().join("ser2net.yaml"))
        .arg("-P")
        .arg(dir.path().join("ser2net.pid"))
        .stdout(std::fs::File::create(&s2n_log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ser2net");
    let mut ser2net = Proc { child: ser2net, name: "ser2net".into(), stderr: s2n_log };
    wait_for_port(vent_port, Duration::from_secs(10));
    wait_for_port(monitor_port, Duration::from_secs(10));
    let before = stty(&vent_tty);
    assert!(has_flag(&before, "cs8") && has_flag(&before, "-parenb"), "ser2net opened the pty at 8N1: {before}");
    let devices = [
        device(
            "vent",
            "medibus",
            "BED1",
            &format!("port = \"rfc2217://127.0.0.1:{vent_port}\""),
            "baud = 38400\ndata_bits = 7\nparity = \"even\"\nstop_bits = 2\npoll_period_ms = 250",
        ),
        device("monitor", "intellivue", "BED2", &format!("port = \"rfc2217://127.0.0.1:{monitor_port}\""), "poll_period_ms = 1000"),
    ]
    .concat();
    let mut gw = start_gateway(dir.path(), "gw", &gateway_config(dir.path(), broker.port, &devices));
    sub.wait_for(Duration::from_secs(20), |m| !observations(m, "vent").is_empty() && !observations(m, "monitor").is_empty());
    // The remote ports now have the device entries' settings, read on the pty itself. A Linux
    // pty keeps the speed and the stop bits but forces CS8 and clears PARENB whatever is set
    // (drivers/tty/pty.c, pty_set_termios; `stty -F PTY cs7 parenb` fails the same way), so the
    // data bits and parity are checked in ser2net's RFC 2217 replies instead (the connected
    // event below says "7E2" only when ser2net confirmed each value).
    let vent_now = stty(&vent_tty);
    assert!(vent_now.contains("speed 38400 baud"), "{vent_now}");
    for flag in ["cstopb", "-crtscts", "-ixon"] {
        assert!(has_flag(&vent_now, flag), "{flag} in {vent_now}");
    }
    let monitor_now = stty(&monitor_tty);
    assert!(monitor_now.contains("speed 115200 baud"), "{monitor_now}");
    assert!(has_flag(&monitor_now, "-cstopb"), "{monitor_now}");
    std::thread::sleep(Duration::from_secs(6));
    let mut vent = vent;
    let mut monitor = monitor;
    vent.proc.terminate(Duration::from_secs(5));
    monitor.proc.terminate(Duration::from_secs(5));
    let msgs = sub.wait_quiet(Duration::from_secs(3), Duration::from_secs(30));
    assert_eq!(gw.terminate(Duration::from_secs(15)), Some(0), "graceful stop: {}", gw.log());
    ser2net.terminate(Duration::from_secs(5));
    assert_same(&vent.sent(), &observations(&msgs, "vent"), "vent");
    assert_same_readings(&monitor.sent(), &observations(&msgs, "monitor"), "monitor");
    let connected = events(&msgs, "vent").into_iter().find(|e| e["kind"] == "connected").expect("connected event");
    assert_eq!(connected["detail"], format!("connected to rfc2217://127.0.0.1:{vent_port}, port set to 38400 7E2"));
    // Bytes 0xFF crossed the Telnet connection in both directions (escaped as IAC IAC) and
    // every observation still arrived: the IntelliVue stream has them both ways.
    let from_device = std::fs::read(dir.path().join("monitor.from-device")).unwrap_or_default();
    let to_device = std::fs::read(dir.path().join("monitor.to-device")).unwrap_or_default();
    assert!(from_device.contains(&0xFF), "0xFF from the device ({} bytes traced)", from_device.len());
    assert!(to_device.contains(&0xFF), "0xFF to the device ({} bytes traced)", to_device.len());
}

#[test]
fn a_device_server_that_closes_and_reopens_loses_nothing() {
    if missing("mosquitto") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let sub = Subscriber::start(broker.port, "medgw/v1/#");
    // TCP-server mode: the box goes away for 3 s (nothing listens), then listens again.
    let server =
        start_net_sim(dir.path(), "server", "nonin-df8", &["--tcp", "127.0.0.1:0"], &["--period-ms", "200", "--fault", "2s:unplug=3s"]);
    let listen = format!("127.0.0.1:{}", free_port());
    let devices = [
        device("server", "nonin-df8", "BED1", &format!("port = \"tcp://{}\"", server.addr), ""),
        device("client", "masimo", "BED2", &format!("listen = \"{listen}\"\nallow = [\"127.0.0.0/8\"]"), ""),
    ]
    .concat();
    let mut gw = start_gateway(dir.path(), "gw", &gateway_config(dir.path(), broker.port, &devices));
    // TCP-client mode: the box closes its connection, stays off for 3 s and connects again.
    let client =
        start_net_sim(dir.path(), "client", "masimo", &["--connect", &listen], &["--period-ms", "1000", "--fault", "3s:unplug=3s"]);
    std::thread::sleep(Duration::from_secs(14));
    let mut sims = [server, client];
    for s in &mut sims {
        s.proc.terminate(Duration::from_secs(5));
    }
    let msgs = sub.wait_quiet(Duration::from_secs(3), Duration::from_secs(30));
    gw.terminate(Duration::from_secs(15));
    for (s, name) in sims.iter().zip(["server", "client"]) {
        let k = kinds(&msgs, name);
        let down = k.iter().position(|x| x == "disconnected").unwrap_or_else(|| panic!("{name}: no disconnected event: {k:?}"));
        assert!(k[down..].contains(&"connected".to_string()), "{name}: connected again after the outage: {k:?}");
        let resumed = events(&msgs, name).into_iter().find(|e| e["kind"] == "resumed").unwrap_or_else(|| panic!("{name}: {k:?}"));
        assert!(span_ms(&resumed) >= 2500, "{name}: the gap covers the 3 s outage: {resumed}");
        // Everything the device server sent before and after the outage arrived.
        assert_same(&s.sent(), &observations(&msgs, name), name);
    }
}

/// A device server we control: it accepts, sends frames of a simulated Nonin, then goes quiet
/// without closing — and never closes or reads that socket again (half-open, as when the box's
/// serial side hangs or a NAT forgot the connection). It then serves the next connection.
#[test]
fn a_half_open_device_server_is_found_silent_and_the_gateway_reconnects() {
    if missing("mosquitto") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let sub = Subscriber::start(broker.port, "medgw/v1/#");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let make = sim::find("nonin-df8").unwrap();
    let server = std::thread::spawn(move || {
        let mut device = make(&SimOptions { seed: 11, period_ms: 200, record: true }, Timestamp::now());
        let mut held = Vec::new();
        let mut sent = Vec::new();
        let mut accepted = Vec::new();
        for phase in 0..2 {
            let (mut conn, _) = listener.accept().unwrap();
            accepted.push(Instant::now());
            let until = Instant::now() + Duration::from_secs(3);
            while Instant::now() < until {
                let mut out = Vec::new();
                device.tick(Timestamp::now(), &mut out);
                conn.write_all(&out).unwrap();
                sent.extend(device.take_sent());
                std::thread::sleep(Duration::from_millis(20));
            }
            // Quiet, but open: kept, never read, never closed.
            held.push(conn);
            if phase == 1 {
                break;
            }
        }
        (sent, accepted, held)
    });
    let devices = device("oxi", "nonin-df8", "BED1", &format!("port = \"tcp://{addr}\""), "silence_timeout_s = 2");
    let mut gw = start_gateway(dir.path(), "gw", &gateway_config(dir.path(), broker.port, &devices));
    let (sent, accepted, _held) = server.join().unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let msgs = sub.wait_quiet(Duration::from_secs(2), Duration::from_secs(20));
    gw.terminate(Duration::from_secs(15));
    let k = kinds(&msgs, "oxi");
    // (After the test server stops listening, the gateway finds the second connection silent
    // too and then cannot connect: events after the first resumption are not this test's.)
    assert_eq!(
        k.get(..3),
        Some(&["connected".to_string(), "silent".into(), "resumed".into()][..]),
        "nothing failed: the connection was just silent"
    );
    let silent = events(&msgs, "oxi").into_iter().find(|e| e["kind"] == "silent").unwrap_or_else(|| panic!("no silent event: {k:?}"));
    assert!(span_ms(&silent) >= 1900, "the silent span starts at the last byte: {silent}");
    let resumed = events(&msgs, "oxi").into_iter().find(|e| e["kind"] == "resumed").unwrap_or_else(|| panic!("no resumed event: {k:?}"));
    assert!(span_ms(&resumed) >= 2000, "{resumed}");
    // The gateway reconnected within the silence timeout plus the first back-off.
    let gap = accepted[1] - accepted[0];
    assert!(gap < Duration::from_secs(3 + 2 + 2), "reconnected {gap:?} after the first connection");
    let want: Vec<Value> =
        sent.iter().map(|s| serde_json::json!({"metric": s.metric.0, "value": s.value.map(|v| v.to_string()), "unit": s.unit.0})).collect();
    assert_same(&want, &observations(&msgs, "oxi"), "oxi");
}

#[test]
fn garbage_from_a_device_server_is_rejected_and_everything_else_arrives() {
    if missing("mosquitto") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let sub = Subscriber::start(broker.port, "medgw/v1/#");
    let faults = ["--fault", "2s:garbage=300", "--fault", "3s:bad-checksum", "--fault", "4s:truncate", "--fault", "5s:garbage=50"];
    // Masimo at its real rate: its lines carry whole-second times, so faster lines would be
    // re-reports of one reading.
    let masimo = start_net_sim(dir.path(), "masimo", "masimo", &["--tcp", "127.0.0.1:0", "--period-ms", "1000"], &faults);
    let oxi = start_net_sim(dir.path(), "oxi", "nonin-df8", &["--tcp", "127.0.0.1:0", "--period-ms", "200"], &faults);
    let devices = [
        device("masimo", "masimo", "BED1", &format!("port = \"tcp://{}\"", masimo.addr), ""),
        device("oxi", "nonin-df8", "BED2", &format!("port = \"tcp://{}\"", oxi.addr), ""),
    ]
    .concat();
    let mut gw = start_gateway(dir.path(), "gw", &gateway_config(dir.path(), broker.port, &devices));
    std::thread::sleep(Duration::from_secs(8));
    let mut sims = [masimo, oxi];
    for s in &mut sims {
        s.proc.terminate(Duration::from_secs(5));
    }
    // The rejection report comes every 5 s.
    let msgs = sub.wait_quiet(Duration::from_secs(6), Duration::from_secs(30));
    gw.terminate(Duration::from_secs(15));
    for (s, name) in sims.iter().zip(["masimo", "oxi"]) {
        let rejected: u64 = events(&msgs, name).iter().filter(|e| e["kind"] == "rejected").map(|e| e["count"].as_u64().unwrap_or(0)).sum();
        assert!(rejected >= 1, "{name}: rejections are counted and published: {:?}", events(&msgs, name));
        assert_same(&s.sent(), &observations(&msgs, name), name);
    }
}

/// DF8 frames from a simulated Nonin, for raw clients the test drives itself.
fn df8_frames(seed: u64, n: usize) -> (Vec<u8>, Vec<Value>) {
    let mut device = sim::find("nonin-df8").unwrap()(&SimOptions { seed, period_ms: 100, record: true }, Timestamp(0));
    let mut bytes = Vec::new();
    let mut t = 0;
    let mut sent = Vec::new();
    while sent.len() < n * 2 {
        t += 100;
        device.tick(Timestamp(t), &mut bytes);
        sent.extend(device.take_sent());
    }
    let rows = sent.iter().map(|s| serde_json::json!({"metric": s.metric.0, "value": s.value.map(|v| v.to_string()), "unit": s.unit.0}));
    (bytes, rows.collect())
}

fn wait_for_log(gw: &Proc, needle: &str, count: usize) {
    let start = Instant::now();
    while gw.log().matches(needle).count() < count {
        assert!(start.elapsed() < Duration::from_secs(20), "{needle:?} not logged {count} times: {}", gw.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn connect_from(from: &str, to: &str) -> TcpStream {
    // std connects from the address the kernel chooses: 127.0.0.1 on loopback.
    assert_eq!(from, "127.0.0.1");
    TcpStream::connect(to).expect("connect")
}

#[test]
fn a_tcp_server_source_refuses_strangers_and_takes_the_newest_connection() {
    if missing("mosquitto") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let sub = Subscriber::start(broker.port, "medgw/v1/#");
    let listen = format!("127.0.0.1:{}", free_port());
    let strict = format!("127.0.0.1:{}", free_port());
    let devices = [
        device("oxi", "nonin-df8", "BED1", &format!("listen = \"{listen}\"\nallow = [\"127.0.0.1\"]"), ""),
        device("guarded", "nonin-df8", "BED2", &format!("listen = \"{strict}\"\nallow = [\"10.20.30.0/24\"]"), ""),
    ]
    .concat();
    let mut gw = start_gateway(dir.path(), "gw", &gateway_config(dir.path(), broker.port, &devices));
    // (Not wait_for_port: a probe would be the first refusal, and refusals are reported once a
    // minute per peer.)
    wait_for_log(&gw, "listening for device servers", 2);
    // A peer outside the allow list: closed at once, logged, published on the device's topic.
    let mut stranger = connect_from("127.0.0.1", &strict);
    stranger.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut b = [0u8; 8];
    assert_eq!(stranger.read(&mut b).unwrap_or(usize::MAX), 0, "the gateway closes a refused connection");
    // An allowed device server sends, then a new connection from it takes over (the box
    // rebooted and its old socket is half-open): the old one is closed by the gateway.
    let (frames, rows) = df8_frames(21, 20);
    let half = frames.len() / 2 / 4 * 4;
    let mut first = connect_from("127.0.0.1", &listen);
    first.write_all(&frames[..half]).unwrap();
    sub.wait_for(Duration::from_secs(10), |m| observations(m, "oxi").len() >= rows.len() / 2);
    let mut second = connect_from("127.0.0.1", &listen);
    second.write_all(&frames[half..]).unwrap();
    first.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(first.read(&mut b).unwrap_or(usize::MAX), 0, "the replaced connection is closed");
    let msgs = sub.wait_for(Duration::from_secs(10), |m| observations(m, "oxi").len() >= rows.len());
    std::thread::sleep(Duration::from_secs(1));
    gw.terminate(Duration::from_secs(15));
    drop(second);
    assert_same(&rows, &observations(&msgs, "oxi"), "oxi");
    let ev = events(&msgs, "oxi");
    assert!(
        ev.iter().any(|e| e["kind"] == "connected" && e["detail"].as_str().unwrap_or("").contains("replaces the previous connection")),
        "{ev:?}"
    );
    let guarded = events(&msgs, "guarded");
    let refusal = guarded.iter().find(|e| e["kind"] == "connection-refused").unwrap_or_else(|| panic!("{guarded:?}"));
    let peer = stranger.local_addr().unwrap().to_string();
    assert!(refusal["detail"].as_str().unwrap().contains(&peer), "the event names the peer {peer}: {refusal}");
    let log = gw.log();
    let line = log.lines().find(|l| l.contains("connection refused")).unwrap_or_else(|| panic!("no refusal in the log: {log}"));
    assert!(line.contains("WARN") && line.contains(&peer), "a warning naming the peer: {line}");
}
