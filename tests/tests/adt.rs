//! The ADT feed end to end (issue 14): an independent MLLP client (python-hl7's `MLLPClient`,
//! `tests/validators/mllp-send.py`) sends ADT messages to `medgw run` while simulated
//! oximeters on pseudo-terminals publish through a real Mosquitto broker; each observation must
//! carry the patient of its bed at the reading's effective time.
//!
//! Event times (EVN-6) are set a few seconds ahead of the moment a message is sent, so which
//! readings fall before and after each change does not depend on how fast this machine is.
//! Patient identifiers and names here are invented.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use medgw_e2e::*;
use medgw_protocols::time::Timestamp;
use serde_json::Value;

/// Lead of each event's time over the moment it is sent.
const LEAD_MS: i64 = 3000;

/// `true` (with a message) when python3 with python-hl7 is not installed (`.ci/run` installs it).
fn no_python_hl7() -> bool {
    let ok = Command::new("python3").args(["-c", "import hl7.client"]).output().map(|o| o.status.success()).unwrap_or(false);
    if !ok {
        eprintln!("SKIPPED: python3 with python-hl7 is not installed (`pip install hl7`; `.ci/run` installs it)");
    }
    !ok
}

/// One ACK as the python client parsed it.
#[derive(Debug)]
struct Ack {
    code: String,
    control_id: String,
    error: String,
}

/// Sends `messages` on one MLLP connection with python-hl7 and returns the ACKs.
fn send(port: u16, messages: &[String]) -> Vec<Ack> {
    let script = workspace().join("tests/validators/mllp-send.py");
    let mut child = Command::new("python3")
        .arg(script)
        .args(["127.0.0.1", &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    child.stdin.take().unwrap().write_all(serde_json::to_string(messages).unwrap().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "MLLP client failed: {}", String::from_utf8_lossy(&out.stderr));
    let acks: Vec<Ack> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
            Ack { code: s("ack"), control_id: s("control_id"), error: s("error") }
        })
        .collect();
    assert_eq!(acks.len(), messages.len(), "one ACK per message: {acks:?}");
    acks
}

/// An ADT message with MSH-10 `ctrl`, event time `at`, and `body` (PID, PV1, ... separated by `\r`).
fn adt(event: &str, ctrl: &str, at: Timestamp, body: &str) -> String {
    format!("MSH|^~\\&|PAS|STMARY|MEDGW|ICU|{t}||ADT^{event}^ADT_A01|{ctrl}|P|2.5\rEVN|{event}|{t}||||{t}\r{body}", t = at.hl7())
}

fn pid(mrn: &str, name: &str) -> String {
    format!("PID|||{mrn}^^^STMARY&2.16.840.1.113883.3.999&ISO^MR||{name}\r")
}

/// The gateway's beds as the feed spells them.
fn loc(bed: &str) -> &'static str {
    match bed {
        "BED1" => "ICU^01^A^STMARY",
        "BED2" => "ICU^02^B^STMARY",
        _ => "WARD^9^9^STMARY",
    }
}

fn pv1(now: &str, prior: &str, visit: &str) -> String {
    format!("PV1||I|{}|||{}|||||||||||||{visit}^^^STMARY^VN\r", loc(now), if prior.is_empty() { "" } else { loc(prior) })
}

fn config(dir: &Path, mqtt: u16, adt: u16, http: u16, devices: &[(&str, &str, &Path, &str)]) -> String {
    let devices: Vec<_> = devices.iter().map(|(n, b, l, e)| (*n, "nonin-df8", *b, *l, *e)).collect();
    config_with(dir, mqtt, adt, http, &devices)
}

/// As [`config`], each device with its protocol: (name, protocol, bed, link, extra keys).
fn config_with(dir: &Path, mqtt: u16, adt: u16, http: u16, devices: &[(&str, &str, &str, &Path, &str)]) -> String {
    let mut c = format!(
        r#"
[gateway]
id = "gw-adt"
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
replay = "ordered"

[status]
bind = "127.0.0.1:{http}"
token_file = "{token}"

[adt]
listen = "127.0.0.1:{adt}"
allow = ["127.0.0.1"]
zone = "UTC"
application = "MEDGW"

[[adt.beds]]
gateway_bed = "BED1"
facility = "STMARY"
point_of_care = "ICU"
room = "01"
bed = "A"

[[adt.beds]]
gateway_bed = "BED2"
facility = "STMARY"
point_of_care = "ICU"
room = "02"
bed = "B"
"#,
        buffer = dir.join("buffer.db").display(),
        token = dir.join("token").display(),
    );
    for (name, protocol, bed, link, extra) in devices {
        c.push_str(&format!(
            "\n[[device]]\nname = \"{name}\"\nprotocol = \"{protocol}\"\nport = \"{}\"\nbed = \"{bed}\"\n{extra}\n",
            link.display()
        ));
    }
    c
}

fn token_file(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("token");
    std::fs::write(&path, "adt-status-token-for-the-ward\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// (effective time, patient id or None) of every observation of `device`, in time order.
fn readings(msgs: &[Received], device: &str) -> Vec<(Timestamp, Option<String>, Value)> {
    let mut out: Vec<(Timestamp, Option<String>, Value)> = msgs
        .iter()
        .filter(|m| m.topic.ends_with(&format!("/{device}/obs")))
        .map(|m| {
            let j = m.json();
            let t = Timestamp::parse_rfc3339(j["effective_time"].as_str().expect("effective_time")).unwrap();
            (t, j["patient"]["id"].as_str().map(String::from), j["patient"].clone())
        })
        .collect();
    out.sort_by_key(|r| r.0);
    out
}

/// Every reading of `device` in `[from, until)` carries `who`; and there is at least one.
fn assert_between(msgs: &[Received], device: &str, from: Timestamp, until: Timestamp, who: Option<&str>) {
    let rs = readings(msgs, device);
    let inside: Vec<_> = rs.iter().filter(|r| r.0 >= from && r.0 < until).collect();
    assert!(!inside.is_empty(), "{device}: no reading between {} and {}", from.rfc3339(), until.rfc3339());
    for r in &inside {
        assert_eq!(r.1.as_deref(), who, "{device}: reading at {} (between {} and {})", r.0.rfc3339(), from.rfc3339(), until.rfc3339());
    }
}

fn events(msgs: &[Received]) -> Vec<Value> {
    msgs.iter().filter(|m| m.topic == "medgw/v1/gw-adt/events").map(Received::json).collect()
}

fn has_event(msgs: &[Received], change: &str, bed: Option<&str>) -> bool {
    events(msgs).iter().any(|e| e["change"] == change && bed.is_none_or(|b| e["bed"] == b))
}

/// Waits until `t` has passed by the gateway's clock (the same clock: one machine), plus `extra`.
fn wait_past(t: Timestamp, extra: Duration) {
    let now = Timestamp::now();
    if t.0 > now.0 {
        std::thread::sleep(Duration::from_millis((t.0 - now.0) as u64));
    }
    std::thread::sleep(extra);
}

fn soon() -> Timestamp {
    // Whole seconds: the feed's times are written to the second.
    Timestamp((Timestamp::now().0 + LEAD_MS) / 1000 * 1000 + 1000)
}

/// HTTP GET on the status surface, with or without the token: (status, body).
fn http_get(port: u16, path: &str, token: bool) -> (u16, String) {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = if token { "Authorization: Bearer adt-status-token-for-the-ward\r\n" } else { "" };
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n").unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    (head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0), body.to_string())
}

/// Admit, swap, transfer out while the broker is down (buffered readings published after the
/// transfer keep the patient of the time they were taken), cancel transfer, discharge, cancel
/// discharge; and each refusal gets its documented ACK and changes nothing.
#[test]
fn adt_events_decide_the_patient_of_each_reading_by_its_time() {
    if missing("mosquitto") || no_python_hl7() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    token_file(dir.path());
    let mut broker = Mosquitto::start();
    let sub = Subscriber::start(broker.port, "medgw/v1/#");
    let (adt_port, http) = (free_port(), free_port());
    let s1 = start_sim(dir.path(), "oxi1", "nonin-df8", &["--period-ms", "250"]);
    let s2 = start_sim(dir.path(), "oxi2", "nonin-df8", &["--period-ms", "250"]);
    let devices = [("oxi1", "BED1", s1.link.as_path(), ""), ("oxi2", "BED2", s2.link.as_path(), "")];
    let mut gw = start_gateway(dir.path(), "gw", &config(dir.path(), broker.port, adt_port, http, &devices));
    wait_for_port(adt_port, Duration::from_secs(20));
    let start = Timestamp::now();

    // Admit: P4711Q to BED1, P5822Q to BED2.
    let t1 = soon();
    let acks = send(
        adt_port,
        &[
            adt("A01", "C1", t1, &(pid("P4711Q", "Zyxdoe^Qjane") + &pv1("BED1", "", "V1"))),
            adt("A01", "C2", t1, &(pid("P5822Q", "Zyxroe^Qrick") + &pv1("BED2", "", "V2"))),
        ],
    );
    assert!(acks.iter().all(|a| a.code == "AA"), "{acks:?}");
    assert_eq!((acks[0].control_id.as_str(), acks[1].control_id.as_str()), ("C1", "C2"));
    wait_past(t1, Duration::from_secs(3));

    // Swap (A17): both beds change at one time.
    let t2 = soon();
    let swap =
        format!("{}{}{}{}", pid("P4711Q", "Zyxdoe^Qjane"), pv1("BED1", "", "V1"), pid("P5822Q", "Zyxroe^Qrick"), pv1("BED2", "", "V2"));
    assert_eq!(send(adt_port, &[adt("A17", "C3", t2, &swap)])[0].code, "AA");
    wait_past(t2, Duration::from_secs(3));

    // The broker goes away; readings are buffered. P5822Q (now in BED1) is transferred out to a
    // ward bed this gateway does not have; then the transfer is cancelled.
    broker.stop();
    let broker_down = Timestamp::now();
    std::thread::sleep(Duration::from_secs(1));
    let t3 = soon();
    let out = adt("A02", "C4", t3, &(pid("P5822Q", "Zyxroe^Qrick") + &pv1("WARD", "BED1", "V2")));
    assert_eq!(send(adt_port, &[out])[0].code, "AA");
    wait_past(t3, Duration::from_secs(3));
    let t4 = soon();
    let cancel = adt("A12", "C5", t4, &(pid("P5822Q", "Zyxroe^Qrick") + &pv1("BED1", "WARD", "V2")));
    // A cancel retracts the transfer retroactively: readings normalised before it arrived went
    // out without a patient, those after carry P5822Q again (the `retracted` event says so).
    let c5_sent = Timestamp::now();
    assert_eq!(send(adt_port, &[cancel])[0].code, "AA");
    let c5_done = Timestamp::now();
    wait_past(t4, Duration::from_secs(2));
    broker.restart();

    // Discharge P4711Q (BED2), then cancel the discharge.
    let t5 = soon();
    assert_eq!(send(adt_port, &[adt("A03", "C6", t5, &(pid("P4711Q", "Zyxdoe^Qjane") + &pv1("BED2", "", "V1")))])[0].code, "AA");
    wait_past(t5, Duration::from_secs(3));
    let t6 = soon();
    let c7_sent = Timestamp::now();
    assert_eq!(send(adt_port, &[adt("A13", "C7", t6, &(pid("P4711Q", "Zyxdoe^Qjane") + &pv1("BED2", "", "V1")))])[0].code, "AA");
    let c7_done = Timestamp::now();
    wait_past(t6, Duration::from_secs(3));

    // Refusals: each gets its ACK and changes nothing (P4711Q stays in BED2, P5822Q in BED1).
    let t7 = soon();
    let bad = send(
        adt_port,
        &[
            "this is not HL7".to_string(),
            adt("A01", "C8", t7, &(pid("P9999Q", "X^Y") + &pv1("BED1", "", "V9"))).replace("|2.5\r", "|2.9\r"),
            adt("A28", "C9", t7, &pid("P9999Q", "X^Y")),
            adt("A01", "C10", t7, &(pid("P9999Q", "X^Y") + &pv1("WARD", "", "V9"))),
            adt("A01", "C11", t7, &(pid("P9999Q", "X^Y") + &pv1("BED1", "", "V9"))).replace("|P|2.5\r", "|T|2.5\r"),
            adt("A01", "C12", t7, &("PID|||P9999Q^^^^MR\r".to_string() + &pv1("BED2", "", "V9"))),
        ],
    );
    let codes: Vec<&str> = bad.iter().map(|a| a.code.as_str()).collect();
    assert_eq!(codes, ["AE", "AR", "AR", "AA", "AR", "AE"], "{bad:?}");
    assert!(bad[1].error.contains("203"), "wrong version: {:?}", bad[1]);
    assert!(bad[2].error.contains("201"), "unknown event: {:?}", bad[2]);
    assert!(bad[4].error.contains("202"), "training feed: {:?}", bad[4]);
    assert!(bad[5].error.contains("101"), "no assigning authority: {:?}", bad[5]);
    assert_eq!(bad[3].control_id, "C10", "an unknown location is applied as nothing to do here");
    wait_past(t7, Duration::from_secs(3));

    // The status surface: the association with the token, the state alone without it.
    let (code, body) = http_get(http, "/api/devices", true);
    assert_eq!(code, 200, "{body}");
    let devs: Value = serde_json::from_str(&body).unwrap();
    let dev = |name: &str| devs.as_array().unwrap().iter().find(|d| d["name"] == name).cloned().unwrap();
    assert_eq!(dev("oxi1")["association"]["state"], "associated", "{body}");
    assert_eq!(dev("oxi1")["association"]["patient"]["id"], "P5822Q", "{body}");
    assert_eq!(dev("oxi2")["association"]["patient"]["id"], "P4711Q", "{body}");
    assert_eq!(http_get(http, "/api/devices", false).0, 401, "the association only with the token");
    let (_, metrics) = http_get(http, "/metrics", true);
    assert!(metrics.contains("medgw_adt_unmapped_messages_total{gateway=\"gw-adt\"} 2"), "{metrics}");
    let end = Timestamp::now();

    let _ = s1;
    let _ = s2;
    assert_eq!(gw.terminate(Duration::from_secs(15)), Some(0), "graceful stop with the ADT listener: {}", gw.log());
    let msgs = sub.wait_quiet(Duration::from_secs(3), Duration::from_secs(30));
    // Before the admission: no patient.
    assert_between(&msgs, "oxi1", start, t1, None);
    // Admitted; the patient's identifier, authority and visit as the feed sent them.
    assert_between(&msgs, "oxi1", t1, t2, Some("P4711Q"));
    assert_between(&msgs, "oxi2", t1, t2, Some("P5822Q"));
    let p = readings(&msgs, "oxi1").into_iter().find(|r| r.0 >= t1 && r.0 < t2).unwrap().2;
    assert_eq!(p["system"], "urn:oid:2.16.840.1.113883.3.999", "{p}");
    assert_eq!(p["adt"]["visit"]["id"], "V1", "{p}");
    assert_eq!(p["adt"]["name"]["family"], "Zyxdoe", "{p}");
    // Swapped.
    assert_between(&msgs, "oxi1", t2, t3, Some("P5822Q"));
    assert_between(&msgs, "oxi2", t2, t5, Some("P4711Q"));
    // Taken before the transfer and published after it (the broker was down from
    // `broker_down` until after the transfer was applied): the patient of the time taken.
    assert_between(&msgs, "oxi1", broker_down, t3, Some("P5822Q"));
    // After the transfer out: no patient, until the cancel restored P5822Q.
    assert_between(&msgs, "oxi1", t3, c5_sent, None);
    assert_between(&msgs, "oxi1", c5_done, end, Some("P5822Q"));
    // Discharged, then the discharge cancelled.
    assert_between(&msgs, "oxi2", t5, c7_sent, None);
    assert_between(&msgs, "oxi2", c7_done, end, Some("P4711Q"));
    // The refused messages changed nothing: no P9999Q anywhere.
    assert!(readings(&msgs, "oxi1").iter().chain(readings(&msgs, "oxi2").iter()).all(|r| r.1.as_deref() != Some("P9999Q")));
    // Audit events on the gateway's events topic, without patient data.
    for (change, bed) in [
        ("associated", Some("BED1")),
        ("associated", Some("BED2")),
        ("unassociated", Some("BED1")),
        ("retracted", Some("BED1")),
        ("ended", Some("BED2")),
        ("retracted", Some("BED2")),
        ("unmapped-location", None),
    ] {
        assert!(has_event(&msgs, change, bed), "no {change} event for {bed:?}: {:#?}", events(&msgs));
    }
    let all_events = serde_json::to_string(&events(&msgs)).unwrap();
    for phi in ["P4711Q", "P5822Q", "Zyxdoe", "Zyxroe"] {
        assert!(!all_events.contains(phi), "{phi} in the events: {all_events}");
    }
    // No patient identifiers or names in the log at info level.
    let log = gw.log();
    for phi in ["P4711Q", "P5822Q", "Zyxdoe", "Qjane", "Zyxroe", "Qrick", "P9999Q"] {
        assert!(!log.contains(phi), "{phi} in the log:\n{log}");
    }
}

/// A restart with the feed down keeps every association (state beside the buffer); a manual
/// `patient` on a bed the feed also associates is a conflict: readings carry no patient; a
/// merge (A40) gives later readings the surviving identifier.
#[test]
fn associations_survive_a_restart_conflict_with_a_manual_binding_and_follow_a_merge() {
    if missing("mosquitto") || no_python_hl7() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    token_file(dir.path());
    let broker = Mosquitto::start();
    let sub = Subscriber::start(broker.port, "medgw/v1/#");
    let (adt_port, http) = (free_port(), free_port());
    let s1 = start_sim(dir.path(), "oxi1", "nonin-df8", &["--period-ms", "250"]);
    let s2 = start_sim(dir.path(), "oxi2", "nonin-df8", &["--period-ms", "250"]);
    let devices = [("oxi1", "BED1", s1.link.as_path(), ""), ("oxi2", "BED2", s2.link.as_path(), "patient = { id = \"MRN-MANUAL\" }")];
    let cfg = config(dir.path(), broker.port, adt_port, http, &devices);
    let mut gw = start_gateway(dir.path(), "gw", &cfg);
    wait_for_port(adt_port, Duration::from_secs(20));
    let t0 = Timestamp::now();
    // Before the feed says anything, BED2's configured patient is used.
    std::thread::sleep(Duration::from_secs(3));
    let t1 = soon();
    let acks = send(
        adt_port,
        &[
            adt("A01", "R1", t1, &(pid("P4711Q", "Zyxdoe^Qjane") + &pv1("BED1", "", "V1"))),
            adt("A01", "R2", t1, &(pid("P5822Q", "Zyxroe^Qrick") + &pv1("BED2", "", "V2"))),
        ],
    );
    assert!(acks.iter().all(|a| a.code == "AA"), "{acks:?}");
    wait_past(t1, Duration::from_secs(3));
    assert_eq!(gw.terminate(Duration::from_secs(15)), Some(0), "{}", gw.log());
    assert!(dir.path().join("buffer.db.adt.json").exists(), "the state is kept beside the buffer");
    // Restart; nobody connects to the ADT port (the feed is down).
    let restarted = Timestamp::now();
    let mut gw = start_gateway(dir.path(), "gw", &cfg);
    std::thread::sleep(Duration::from_secs(6));
    let (_, body) = http_get(http, "/api/devices", true);
    assert!(body.contains("\"conflict\""), "BED2 reports the conflict: {body}");
    // The feed comes back with a merge (A40): P4711Q's records become P7777Q's, so readings
    // from then on carry the surviving identifier.
    let merge_sent = Timestamp::now();
    let merge = adt("A40", "R3", soon(), &(pid("P7777Q", "Zyxdoe^Qjane") + "MRG|P4711Q^^^STMARY&2.16.840.1.113883.3.999&ISO^MR\r"));
    assert_eq!(send(adt_port, &[merge])[0].code, "AA");
    let merge_done = Timestamp::now();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(gw.terminate(Duration::from_secs(15)), Some(0), "{}", gw.log());
    let _ = (s1, s2);
    let msgs = sub.wait_quiet(Duration::from_secs(3), Duration::from_secs(30));
    assert_between(&msgs, "oxi1", t1, merge_sent, Some("P4711Q"));
    assert_between(&msgs, "oxi1", restarted, merge_sent, Some("P4711Q"));
    assert_between(&msgs, "oxi1", merge_done, Timestamp::now(), Some("P7777Q"));
    assert!(has_event(&msgs, "merged", Some("BED1")), "{:#?}", events(&msgs));
    assert_between(&msgs, "oxi2", t0, t1, Some("MRN-MANUAL"));
    assert_between(&msgs, "oxi2", t1, Timestamp::now(), None);
    assert!(has_event(&msgs, "manual-conflict", Some("BED2")), "{:#?}", events(&msgs));
    let conflicts = events(&msgs).into_iter().filter(|e| e["kind"] == "association-conflict").count();
    assert!(conflicts >= 2, "the conflict is reported when ADT associates and again at the restart: {conflicts}");
}

/// Issue 14's mismatch rule end to end: a simulated IntelliVue whose patient demographics hold
/// another patient id than the one the ADT feed admitted to its bed. The gateway raises
/// `patient-mismatch` (without either id in the event) and publishes the monitor's readings
/// without a patient from then on.
#[test]
fn an_intellivue_reporting_another_patient_than_the_adt_feed_is_a_mismatch_and_its_readings_carry_no_patient() {
    if missing("mosquitto") || no_python_hl7() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    token_file(dir.path());
    let broker = Mosquitto::start();
    let sub = Subscriber::start(broker.port, "medgw/v1/#");
    let (adt_port, http) = (free_port(), free_port());
    let mon = start_sim(dir.path(), "ivue1", "intellivue", &["--patient-id", "MRN-ZZ-0042"]);
    let devices = [("ivue1", "intellivue", "BED1", mon.link.as_path(), "")];
    let mut gw = start_gateway(dir.path(), "gw", &config_with(dir.path(), broker.port, adt_port, http, &devices));
    wait_for_port(adt_port, Duration::from_secs(20));

    let t1 = soon();
    let acks = send(adt_port, &[adt("A01", "M1", t1, &(pid("P4711Q", "Zyxdoe^Qjane") + &pv1("BED1", "", "V1")))]);
    assert_eq!(acks[0].code, "AA", "{acks:?}");
    // The monitor's demographics are polled every 10 s: the next answer after the admission
    // disagrees with it.
    let msgs = sub.wait_for(Duration::from_secs(40), |m| has_event(m, "patient-mismatch", Some("BED1")));
    assert!(has_event(&msgs, "patient-mismatch", Some("BED1")), "no patient-mismatch event; gateway log:\n{}", gw.log());
    let mismatch_seen = Timestamp::now();
    for e in events(&msgs) {
        let text = e.to_string();
        assert!(!text.contains("MRN-ZZ-0042") && !text.contains("P4711Q"), "no patient id in events: {text}");
    }
    std::thread::sleep(Duration::from_secs(5));
    let msgs = sub.snapshot();
    // Readings taken after the mismatch carry no patient (the admission alone would give them
    // P4711Q: the monitor's readings between the admission and the mismatch do).
    assert_between(&msgs, "ivue1", Timestamp(mismatch_seen.0 + 1000), Timestamp::now(), None);
    let admitted: Vec<_> = readings(&msgs, "ivue1").into_iter().filter(|r| r.1.as_deref() == Some("P4711Q")).collect();
    assert!(!admitted.is_empty(), "before the mismatch the ADT patient was used");
    assert!(admitted.iter().all(|r| r.0 >= t1 && r.0 < mismatch_seen), "only between admission and mismatch");
    gw.terminate(Duration::from_secs(10));
}
