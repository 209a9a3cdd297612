//! The daemon end to end: simulators on pseudo-terminals → `medgw run` (real serial path,
//! buffer, sink) → a real Mosquitto broker → a subscriber that checks every observation.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use medgw_e2e::*;
use serde_json::value::RawValue;
use serde_json::Value;

fn config(dir: &Path, port: u16, devices: &[(&str, &str, &Path)], extra_mqtt: &str, extra_device: &str) -> String {
    let mut c = format!(
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
{extra_mqtt}

[buffer]
path = "{buffer}"
replay = "ordered"
"#,
        buffer = dir.join("buffer.db").display()
    );
    for (i, (protocol, name, link)) in devices.iter().enumerate() {
        c.push_str(&format!(
            "\n[[device]]\nname = \"{name}\"\nprotocol = \"{protocol}\"\nport = \"{}\"\nbed = \"BED{}\"\n{extra_device}\n",
            link.display(),
            i + 1
        ));
    }
    c
}

/// The raw JSON text of a canonical observation's `value` (keeps `97.50` as written).
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

/// Every value a simulator sent arrived, once, in order, with its code, unit and exact value.
fn assert_same(sent: &[Value], received: &[&Received], device: &str) {
    let mut seen = std::collections::HashSet::new();
    let got: Vec<(u64, Option<String>, u64)> = received
        .iter()
        .filter(|m| seen.insert(m.json()["id"].as_str().unwrap_or_default().to_string()))
        .map(|m| {
            let j = m.json();
            (j["code"].as_u64().unwrap_or(0), raw_value(&m.payload).filter(|v| v != "null"), j["unit_code"].as_u64().unwrap_or(0))
        })
        .collect();
    let want: Vec<(u64, Option<String>, u64)> = sent
        .iter()
        .map(|s| (s["metric"].as_u64().unwrap_or(0), s["value"].as_str().map(String::from), s["unit"].as_u64().unwrap_or(0)))
        .collect();
    assert!(!want.is_empty(), "{device}: the simulator sent nothing");
    assert_same_sequence(&got, &want, &format!("{device}: every observation once, in order, with (code, value, unit)"));
}

#[test]
fn every_observation_arrives_in_order_with_its_code_unit_and_value() {
    if missing("mosquitto") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let sub = Subscriber::start(broker.port, "medgw/v1/#");
    // Masimo writes one line per second with a whole-second time stamp: a faster rate would be
    // the same reading re-reported, which the gateway rightly publishes once.
    let sims = [("nonin-df8", "oxi", "250"), ("masimo", "masimo", "1000"), ("medibus", "vent", "250")]
        .map(|(protocol, name, period)| start_sim(dir.path(), name, protocol, &["--seed", "7", "--period-ms", period]));
    let devices: Vec<(&str, &str, &Path)> =
        vec![("nonin-df8", "oxi", &sims[0].link), ("masimo", "masimo", &sims[1].link), ("medibus", "vent", &sims[2].link)];
    let mut gw = start_gateway(dir.path(), "gw", &config(dir.path(), broker.port, &devices, "", "poll_period_ms = 250"));
    std::thread::sleep(Duration::from_secs(8));
    // Stop the devices first, so that everything they sent has reached the gateway.
    let mut sims = sims;
    for s in &mut sims {
        s.proc.terminate(Duration::from_secs(5));
    }
    let msgs = sub.wait_quiet(Duration::from_secs(3), Duration::from_secs(30));
    assert_eq!(gw.terminate(Duration::from_secs(15)), Some(0), "graceful stop: {}", gw.log());
    for (s, name) in sims.iter().zip(["oxi", "masimo", "vent"]) {
        assert_same(&s.sent(), &observations(&msgs, name), name);
    }
    // Retained device resources and the gateway status with its Last Will contract.
    let status: Vec<Value> = msgs.iter().filter(|m| m.topic == "medgw/v1/gw-test/status").map(Received::json).collect();
    assert!(status.iter().any(|s| s["state"] == "online"), "{status:?}");
    assert!(msgs.iter().any(|m| m.topic == "medgw/v1/gw-test/BED1/oxi/device" && m.json()["resourceType"] == "Device"));
    let log = gw.log();
    assert!(!log.contains("MRN") && !log.contains("password"), "no patient data or secrets in logs");
}

#[test]
fn unplug_silence_and_garbage_are_events_and_lose_nothing_after() {
    if missing("mosquitto") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let sub = Subscriber::start(broker.port, "medgw/v1/#");
    let unplug = start_sim(dir.path(), "unplug", "nonin-df8", &["--period-ms", "200", "--fault", "2s:unplug=3s"]);
    let silent = start_sim(dir.path(), "silent", "nonin-df8", &["--period-ms", "200", "--fault", "2s:silence=5s"]);
    let garbage = start_sim(
        dir.path(),
        "garbage",
        "masimo",
        &["--period-ms", "200", "--fault", "2s:garbage=300", "--fault", "3s:bad-checksum", "--fault", "4s:truncate"],
    );
    let devices: Vec<(&str, &str, &Path)> =
        vec![("nonin-df8", "unplug", &unplug.link), ("nonin-df8", "silent", &silent.link), ("masimo", "garbage", &garbage.link)];
    let mut gw = start_gateway(dir.path(), "gw", &config(dir.path(), broker.port, &devices, "", "silence_timeout_s = 2"));
    std::thread::sleep(Duration::from_secs(14));
    let msgs = sub.snapshot();
    gw.terminate(Duration::from_secs(15));

    let kinds = |d: &str| events(&msgs, d).iter().map(|e| e["kind"].as_str().unwrap_or("").to_string()).collect::<Vec<_>>();
    let k = kinds("unplug");
    assert!(k.contains(&"disconnected".to_string()) && k.iter().filter(|x| *x == "connected").count() >= 2, "unplug events: {k:?}");
    let after_replug = observations(&msgs, "unplug").len();
    assert!(after_replug > 20, "observations continue after the replug: {after_replug}");
    let ev = events(&msgs, "silent");
    let silent_ev = ev.iter().find(|e| e["kind"] == "silent").unwrap_or_else(|| panic!("no silent event: {ev:?}"));
    assert!(silent_ev["span"]["start"].is_string() && silent_ev["span"]["end"].is_string());
    let resumed = ev.iter().find(|e| e["kind"] == "resumed").unwrap_or_else(|| panic!("no resumed event: {ev:?}"));
    let gap = |e: &Value| {
        let p = |s: &Value| medgw_protocols::Timestamp::parse_rfc3339(s.as_str().unwrap()).unwrap().0;
        p(&e["span"]["end"]) - p(&e["span"]["start"])
    };
    assert!((3000..9000).contains(&gap(resumed)), "the gap covers the 5 s silence: {resumed}");
    let ev = events(&msgs, "garbage");
    let rejected: u64 = ev.iter().filter(|e| e["kind"] == "rejected").map(|e| e["count"].as_u64().unwrap_or(0)).sum();
    assert!(rejected >= 1, "rejections are counted and published: {ev:?}");
    // Good frames around the garbage still arrive.
    assert!(observations(&msgs, "garbage").len() > 20);
}

#[test]
fn a_broker_restart_loses_nothing() {
    if missing("mosquitto") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start();
    let sub = Subscriber::start(broker.port, "medgw/v1/+/+/+/obs");
    let mut sim = start_sim(dir.path(), "oxi", "nonin-df8", &["--period-ms", "100"]);
    let devices: Vec<(&str, &str, &Path)> = vec![("nonin-df8", "oxi", &sim.link)];
    let mut gw = start_gateway(dir.path(), "gw", &config(dir.path(), broker.port, &devices, "", ""));
    std::thread::sleep(Duration::from_secs(3));
    broker.stop();
    std::thread::sleep(Duration::from_secs(4));
    broker.restart();
    std::thread::sleep(Duration::from_secs(3));
    sim.proc.terminate(Duration::from_secs(5));
    let msgs = sub.wait_quiet(Duration::from_secs(3), Duration::from_secs(40));
    gw.terminate(Duration::from_secs(15));
    assert_same(&sim.sent(), &observations(&msgs, "oxi"), "oxi");
}

#[test]
fn tls_with_a_client_certificate() {
    if missing("mosquitto") || missing("openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tls = make_tls(dir.path()).unwrap();
    let broker = Mosquitto::start_tls(&tls);
    let mut sim = start_sim(dir.path(), "oxi", "nonin-df8", &["--period-ms", "200"]);
    let devices: Vec<(&str, &str, &Path)> = vec![("nonin-df8", "oxi", &sim.link)];
    let tls_cfg = format!(
        "[mqtt.tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"",
        tls.ca.display(),
        tls.client_cert.display(),
        tls.client_key.display()
    );
    // The broker's certificate is for 127.0.0.1 and localhost.
    let cfg = config(dir.path(), broker.port, &devices, "", "").replace("[buffer]", &format!("{tls_cfg}\n\n[buffer]"));
    let mut gw = start_gateway(dir.path(), "gw", &cfg);
    // Subscribe with the same client certificate (the broker requires one of everybody).
    std::thread::sleep(Duration::from_secs(4));
    sim.proc.terminate(Duration::from_secs(5));
    std::thread::sleep(Duration::from_secs(2));
    gw.terminate(Duration::from_secs(15));
    let log = gw.log();
    assert!(log.contains("connected to the MQTT broker"), "{log}");
    assert!(broker.log().contains("gw-tls") || broker.log().contains("New client connected"), "{}", broker.log());

    // Without a client certificate the broker refuses the gateway, which keeps buffering.
    let cfg = config(dir.path(), broker.port, &devices, "", "")
        .replace("[buffer]", &format!("[mqtt.tls]\nca = \"{}\"\n\n[buffer]", tls.ca.display()))
        .replace("buffer.db", "buffer2.db");
    let mut sim = start_sim(dir.path(), "oxi2", "nonin-df8", &["--period-ms", "200"]);
    let cfg = cfg.replace(&sim.link.display().to_string().replace("oxi2", "oxi"), &sim.link.display().to_string());
    let mut gw = start_gateway(dir.path(), "gw2", &cfg);
    std::thread::sleep(Duration::from_secs(4));
    sim.proc.terminate(Duration::from_secs(5));
    gw.terminate(Duration::from_secs(15));
    let log = gw.log();
    assert!(!log.contains("connected to the MQTT broker") && log.contains("cannot connect"), "{log}");
}

/// What reaches a hospital's HL7 receiver from a device with no EUI-64 and no patient bound:
/// every OBX row names the device by a derived EUI-64 (the same id as the retained FHIR Device
/// carries), MSH-3 names the gateway by its configured EUI-64, and PID/PV1 carry the bed with
/// an unidentified patient (issue 13, items 2 and 3).
#[test]
fn hl7_output_names_equipment_by_eui64_and_carries_the_bed_without_a_patient() {
    if missing("mosquitto") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let sub = Subscriber::start(broker.port, "medgw/v1/#");
    let sim = start_sim(dir.path(), "masimo", "masimo", &["--seed", "7", "--period-ms", "1000"]);
    let devices: Vec<(&str, &str, &Path)> = vec![("masimo", "masimo", &sim.link)];
    let cfg = config(dir.path(), broker.port, &devices, "", "room = \"12\"")
        .replace("timezone = \"UTC\"", "timezone = \"UTC\"\neui64 = \"02-11-22-33-44-55-66-77\"")
        .replace("format = \"canonical\"", "format = \"hl7v2\"");
    let mut gw = start_gateway(dir.path(), "gw", &cfg);
    let msgs = sub.wait_for(Duration::from_secs(30), |m| {
        observations(m, "masimo").len() >= 3 && m.iter().any(|r| r.topic.ends_with("/masimo/device"))
    });
    assert_eq!(gw.terminate(Duration::from_secs(15)), Some(0), "graceful stop: {}", gw.log());
    let device = msgs.iter().rev().find(|m| m.topic.ends_with("/masimo/device")).expect("the retained Device").json();
    assert_eq!(device["identifier"][0]["system"], "https://medgw.org/fhir/NamingSystem/derived-eui64", "{device}");
    let eui = device["identifier"][0]["value"].as_str().unwrap().to_string();
    assert!(eui.len() == 16 && u8::from_str_radix(&eui[..2], 16).unwrap() & 0x03 == 0x02, "locally administered, unicast: {eui}");
    assert!(device["serialNumber"].is_string(), "the Masimo serial is kept in the Device: {device}");
    let obs = observations(&msgs, "masimo");
    let topics: Vec<&str> = msgs.iter().map(|m| m.topic.as_str()).collect();
    assert!(obs.len() >= 3, "{topics:?}\n{}", gw.log());
    let mut text = String::new();
    for m in &obs {
        let msg = String::from_utf8(m.payload.clone()).unwrap();
        let segs: Vec<Vec<&str>> = msg.split('\r').filter(|s| !s.is_empty()).map(|s| s.split('|').collect()).collect();
        assert_eq!(segs[0][2], "MEDGW^0211223344556677^EUI-64", "{msg}");
        let pid = segs.iter().find(|s| s[0] == "PID").unwrap_or_else(|| panic!("no PID: {msg}"));
        assert_eq!((pid[3], pid.get(31).copied()), ("HOSP/ICU/12/BED1^^^MEDGW^ANON", Some("Y")), "{msg}");
        let pv1 = segs.iter().find(|s| s[0] == "PV1").unwrap_or_else(|| panic!("no PV1: {msg}"));
        assert_eq!(pv1[3], "ICU^12^BED1^HOSP", "{msg}");
        let obx: Vec<&Vec<&str>> = segs.iter().filter(|s| s[0] == "OBX").collect();
        assert!(!obx.is_empty(), "{msg}");
        for row in obx {
            assert_eq!(row[18], format!("{eui}^MEDGW^{eui}^EUI-64"), "{msg}");
        }
        text.push_str(&msg.replace('\r', "\n"));
        text.push('\n');
    }
    // One ORU^R01 per observation set (PCD-01): a Masimo line's values (SpO2, PR, PI, ...)
    // travel together, at one time, each metric once; MSH-10 names the set.
    let metric_rows = |msg: &str| -> Vec<(String, String)> {
        msg.split('\r')
            .map(|s| s.split('|').collect::<Vec<_>>())
            .filter(|s| s[0] == "OBX" && !s[2].is_empty())
            .map(|s| (s[3].to_string(), s[14].to_string()))
            .collect()
    };
    let payloads: Vec<String> = obs.iter().map(|m| String::from_utf8(m.payload.clone()).unwrap()).collect();
    assert!(payloads.iter().any(|m| metric_rows(m).len() >= 3), "no message carries a set: {text}");
    for m in &payloads {
        let rows = metric_rows(m);
        assert!(rows.iter().all(|r| r.1 == rows[0].1), "one time per set: {m}");
        let codes: std::collections::BTreeSet<&String> = rows.iter().map(|r| &r.0).collect();
        assert_eq!(codes.len(), rows.len(), "a metric repeated within a set: {m}");
    }
    let ids: std::collections::BTreeSet<&str> = payloads.iter().map(|m| m.split('|').nth(9).unwrap()).collect();
    assert_eq!(ids.len(), payloads.len(), "MSH-10 repeats across sets");
    // And the independent structure check, when hl7apy is installed (tests/validators.rs).
    if std::process::Command::new("python3").args(["-c", "import hl7apy"]).output().is_ok_and(|o| o.status.success()) {
        let file = dir.path().join("received.hl7");
        write(&file, &text);
        let out =
            std::process::Command::new("python3").arg(workspace().join("tests/validators/hl7-validate.py")).arg(&file).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    }
}
