//! Alarms end to end (docs/alarms.md): simulators with injected faults on pseudo-terminals →
//! `medgw run` → a real Mosquitto → a subscriber that checks the lifecycle on the `alarm` topic
//! (start → end, codes, kinds, priorities, reasons), the retained `alarms/active` summary and
//! its heartbeat, and that PCD-04 output passes the ACM validator.

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use medgw_e2e::*;
use serde_json::Value;

/// A minimal HTTP/1.1 GET on loopback: the body.
fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to the status server");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    resp.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()
}

fn config(dir: &Path, port: u16, format: &str, devices: &[(&str, &str, &Path)], http: u16) -> String {
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
format = "{format}"
keep_alive_s = 5

[status]
bind = "127.0.0.1:{http}"

[buffer]
path = "{buffer}"
"#,
        buffer = dir.join("buffer.db").display()
    );
    for (i, (protocol, name, link)) in devices.iter().enumerate() {
        c.push_str(&format!(
            "\n[[device]]\nname = \"{name}\"\nprotocol = \"{protocol}\"\nport = \"{}\"\nbed = \"BED{}\"\npoll_period_ms = 250\n",
            link.display(),
            i + 1
        ));
    }
    c
}

/// The canonical alarm events of `device`, in arrival order.
fn alarms(msgs: &[Received], device: &str) -> Vec<Value> {
    msgs.iter().filter(|m| m.topic.ends_with(&format!("/{device}/alarm"))).map(Received::json).collect()
}

/// The summaries of `device`, in arrival order.
fn summaries(msgs: &[Received], device: &str) -> Vec<Value> {
    msgs.iter().filter(|m| m.topic.ends_with(&format!("/{device}/alarms/active"))).map(Received::json).collect()
}

fn vendor(a: &Value) -> String {
    format!("{}:{}", a["vendor"]["namespace"].as_str().unwrap_or(""), a["vendor"]["code"].as_str().unwrap_or(""))
}

/// The events of the alarm with `vendor` code, as (phase, end reason).
fn lifecycle(events: &[Value], code: &str) -> Vec<(String, Option<String>)> {
    events
        .iter()
        .filter(|a| vendor(a) == code)
        .map(|a| (a["phase"].as_str().unwrap_or("").to_string(), a["end_reason"]["reason"].as_str().map(String::from)))
        .collect()
}

fn has(events: &[Value], code: &str, phase: &str) -> bool {
    events.iter().any(|a| vendor(a) == code && a["phase"] == phase)
}

#[test]
fn spo2_low_and_sensor_off_start_and_end_and_an_unplugged_device_is_a_technical_alert() {
    if missing("mosquitto") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let sub = Subscriber::start(broker.port, "medgw/v1/#");
    let faults = ["--fault", "2s:spo2-low", "--fault", "5s:spo2-normal", "--fault", "7s:sensor-off", "--fault", "10s:sensor-on"];
    let mut masimo = start_sim(dir.path(), "masimo", "masimo", &[&["--seed", "3", "--period-ms", "1000"][..], &faults[..]].concat());
    let mut vent = start_sim(dir.path(), "vent", "medibus", &[&["--seed", "3", "--period-ms", "250"][..], &faults[..4]].concat());
    let devices: Vec<(&str, &str, &Path)> = vec![("masimo", "masimo", &masimo.link), ("medibus", "vent", &vent.link)];
    let http = free_port();
    let cfg = config(dir.path(), broker.port, "canonical", &devices, http);
    let mut gw = start_gateway_env(dir.path(), "gw", &cfg, &[("MEDGW_ALARM_HEARTBEAT_MS", Path::new("1000"))]);

    // SpO2 below the limit, then cleared; sensor off, then on.
    let msgs = sub.wait_for(Duration::from_secs(40), |m| {
        let a = alarms(m, "masimo");
        let v = alarms(m, "vent");
        has(&a, "masimo:ALARM:0002", "end") && has(&a, "masimo:EXC:000020", "end") && v.iter().any(|e| e["phase"] == "end")
    });
    let a = alarms(&msgs, "masimo");
    assert_eq!(
        lifecycle(&a, "masimo:ALARM:0002"),
        [("start".into(), None), ("end".into(), Some("cleared".into()))],
        "{a:#?}\n{}",
        gw.log()
    );
    let start = a.iter().find(|e| vendor(e) == "masimo:ALARM:0002").unwrap();
    assert_eq!(start["code"], 196670, "MDC_EVT_LO");
    assert_eq!(start["ref_id"], "MDC_EVT_LO");
    assert_eq!(start["source"], 150456, "MDC_PULS_OXIM_SAT_O2");
    assert_eq!(start["kind"], "physiological");
    assert_eq!(start["value"], 85);
    assert_eq!(start["bed"]["bed"], "BED1");
    // Masimo's line carries no priority: none is invented.
    assert_eq!(start["priority"], Value::Null);
    let end = a.iter().find(|e| vendor(e) == "masimo:ALARM:0002" && e["phase"] == "end").unwrap();
    assert_eq!(end["id"], start["id"], "one id from start to end");
    assert_eq!(end["state"], "inactive");
    let off = lifecycle(&a, "masimo:EXC:000020");
    assert_eq!(off, [("start".into(), None), ("end".into(), Some("cleared".into()))], "{a:#?}");
    assert!(a.iter().any(|e| vendor(e) == "masimo:EXC:000020" && e["kind"] == "technical"));
    // MEDIBUS: the current-alarms answer, with the device's own priority byte kept.
    let v = alarms(&msgs, "vent");
    let vs = v.iter().find(|e| e["phase"] == "start" && e["text"] == "SpO2 low").unwrap_or_else(|| panic!("{v:#?}"));
    assert!(vs["device_priority"].is_u64(), "{vs}");
    assert!(v.iter().any(|e| e["phase"] == "end" && e["id"] == vs["id"] && e["end_reason"]["reason"] == "cleared"), "{v:#?}");
    // The retained summary followed: the SpO2 alarm was listed while active, and an empty list came after.
    let s = summaries(&msgs, "masimo");
    let listed = s.iter().position(|s| s["active"].as_array().is_some_and(|l| l.iter().any(|x| x["id"] == start["id"])));
    let listed = listed.unwrap_or_else(|| panic!("summary never listed the alarm: {s:#?}"));
    assert!(s[listed..].iter().any(|s| s["active"] == serde_json::json!([])), "{s:#?}");

    // The device is unplugged: the gateway's technical alert (priority medium) starts.
    masimo.proc.terminate(Duration::from_secs(5));
    let msgs = sub.wait_for(Duration::from_secs(20), |m| has(&alarms(m, "masimo"), "medgw:device-disconnected", "start"));
    let a = alarms(&msgs, "masimo");
    let disc = a.iter().find(|e| vendor(e) == "medgw:device-disconnected").unwrap_or_else(|| panic!("{a:#?}\n{}", gw.log()));
    assert_eq!(disc["kind"], "technical");
    assert_eq!(disc["priority"], "medium");
    assert_eq!(disc["ihe_priority"], "PM");
    // The status API shows it, as a technical alert with its priority and age.
    let devs: Vec<Value> = serde_json::from_str(&http_get(http, "/api/devices")).unwrap();
    let dev = devs.iter().find(|d| d["name"] == "masimo").unwrap();
    let shown = dev["alarms"].as_array().unwrap();
    assert_eq!(shown.len(), 1, "{dev:#}");
    assert_eq!((shown[0]["kind"].as_str(), shown[0]["priority"].as_str()), (Some("technical"), Some("medium")), "{dev:#}");
    assert_eq!(shown[0]["id"], disc["id"]);
    assert!(shown[0]["age_s"].as_f64().unwrap() >= 0.0);
    let metrics = http_get(http, "/metrics");
    assert!(metrics.contains("medgw_device_alarms_active{gateway=\"gw-test\",device=\"masimo\",kind=\"technical\"} 1"), "{metrics}");
    // The heartbeat: the summary lists the alert and is republished with a later time.
    let msgs = sub.wait_for(Duration::from_secs(10), |m| {
        summaries(m, "masimo").iter().filter(|s| s["active"].as_array().is_some_and(|l| l.iter().any(|x| x["id"] == disc["id"]))).count()
            >= 2
    });
    let beats: Vec<Value> = summaries(&msgs, "masimo")
        .into_iter()
        .filter(|s| s["active"].as_array().is_some_and(|l| l.iter().any(|x| x["id"] == disc["id"])))
        .collect();
    assert!(beats.len() >= 2, "{beats:#?}");
    assert!(beats[beats.len() - 1]["time"].as_str() > beats[0]["time"].as_str(), "{beats:#?}");

    // The gateway stops: the alert ends (reason shutdown), the retained summary is empty.
    vent.proc.terminate(Duration::from_secs(5));
    assert_eq!(gw.terminate(Duration::from_secs(15)), Some(0), "graceful stop: {}", gw.log());
    let msgs = sub.wait_for(Duration::from_secs(10), |m| has(&alarms(m, "masimo"), "medgw:device-disconnected", "end"));
    let a = alarms(&msgs, "masimo");
    assert_eq!(lifecycle(&a, "medgw:device-disconnected").last().unwrap(), &("end".to_string(), Some("shutdown".to_string())));
    // Every start got exactly one end.
    for e in a.iter().filter(|e| e["phase"] == "start") {
        assert_eq!(a.iter().filter(|x| x["id"] == e["id"] && x["phase"] == "end").count(), 1, "{e}");
    }
    drop(sub);
    let late = Subscriber::start(broker.port, "medgw/v1/gw-test/BED1/masimo/alarms/active");
    let is_summary = |m: &Received| m.retain && m.topic.ends_with("/masimo/alarms/active");
    let retained = late.wait_for(Duration::from_secs(5), |m| m.iter().any(is_summary));
    let summary = retained.iter().find(|m| is_summary(m)).expect("a retained summary");
    assert_eq!(summary.json()["active"], serde_json::json!([]), "retained summary after stop");
}

#[test]
fn pcd04_alarms_from_the_gateway_pass_the_acm_checks() {
    if missing("mosquitto") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let sub = Subscriber::start(broker.port, "medgw/v1/#");
    let masimo = start_sim(dir.path(), "masimo", "masimo", &["--period-ms", "1000", "--fault", "2s:spo2-low", "--fault", "4s:spo2-normal"]);
    let devices: Vec<(&str, &str, &Path)> = vec![("masimo", "masimo", &masimo.link)];
    let mut gw = start_gateway(dir.path(), "gw", &config(dir.path(), broker.port, "hl7v2", &devices, free_port()));
    let pcd04 = |m: &[Received]| -> Vec<String> {
        m.iter().filter(|m| m.topic.ends_with("/masimo/alarm")).map(|m| String::from_utf8_lossy(&m.payload).into_owned()).collect()
    };
    let msgs = sub.wait_for(Duration::from_secs(30), |m| pcd04(m).iter().any(|p| p.contains("|end|")));
    assert_eq!(gw.terminate(Duration::from_secs(15)), Some(0), "graceful stop: {}", gw.log());
    let messages = pcd04(&msgs);
    assert!(messages.len() >= 2, "{messages:#?}\n{}", gw.log());
    for m in &messages {
        assert!(m.starts_with("MSH|") && m.contains("|ORU^R40^ORU_R40|"), "{m}");
    }
    assert!(messages[0].contains("MDC_ATTR_EVENT_PHASE^MDC|") && messages[0].contains(".3|start|"), "{}", messages[0]);
    assert!(messages[0].contains("196670^MDC_EVT_LO^MDC"), "{}", messages[0]);
    // The summary stays canonical JSON whatever the format.
    assert!(msgs.iter().any(|m| m.topic.ends_with("/masimo/alarms/active") && m.json()["active"].is_array()));
    let has_hl7apy = Command::new("python3").args(["-c", "import hl7apy"]).output().map(|o| o.status.success()).unwrap_or(false);
    if !has_hl7apy {
        eprintln!("SKIPPED: the ACM validator (hl7apy is not installed)");
        return;
    }
    let file = dir.path().join("alarms.hl7");
    let text: String = messages.iter().map(|m| format!("{}\n\n", m.replace('\r', "\n").trim_end())).collect();
    std::fs::write(&file, &text).unwrap();
    let out = Command::new("python3").arg(workspace().join("tests/validators/acm-validate.py")).arg(&file).output().unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{report}\n{text}");
    assert!(report.contains(&format!("{n}/{n} messages valid", n = messages.len())), "{report}");
}

#[test]
fn fhir_alarms_are_communications_from_in_progress_to_completed() {
    if missing("mosquitto") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let sub = Subscriber::start(broker.port, "medgw/v1/#");
    let masimo = start_sim(dir.path(), "masimo", "masimo", &["--period-ms", "1000", "--fault", "2s:spo2-low", "--fault", "4s:spo2-normal"]);
    let devices: Vec<(&str, &str, &Path)> = vec![("masimo", "masimo", &masimo.link)];
    let mut gw = start_gateway(dir.path(), "gw", &config(dir.path(), broker.port, "fhir", &devices, free_port()));
    let fhir = |m: &[Received]| -> Vec<Value> { m.iter().filter(|m| m.topic.ends_with("/masimo/alarm")).map(Received::json).collect() };
    let msgs = sub.wait_for(Duration::from_secs(30), |m| fhir(m).iter().any(|c| c["status"] == "completed"));
    assert_eq!(gw.terminate(Duration::from_secs(15)), Some(0), "graceful stop: {}", gw.log());
    let comms = fhir(&msgs);
    assert!(comms.len() >= 2, "{comms:#?}\n{}", gw.log());
    let (start, end) = (&comms[0], comms.iter().find(|c| c["status"] == "completed").unwrap());
    assert_eq!(start["resourceType"], "Communication");
    assert_eq!(start["status"], "in-progress");
    assert_eq!(start["identifier"], end["identifier"], "one alarm id from start to end");
    assert_eq!(start["reasonCode"][0]["coding"][0]["code"], "196670", "{start:#}");
    let ext = |c: &Value, name: &str| -> Option<String> {
        c["extension"].as_array()?.iter().find(|e| e["url"].as_str().is_some_and(|u| u.ends_with(name))).map(|e| e["valueCode"].to_string())
    };
    assert_eq!(ext(start, "alarm-phase").as_deref(), Some("\"start\""));
    assert_eq!(ext(end, "alarm-phase").as_deref(), Some("\"end\""));
    assert_eq!(ext(end, "alarm-end-reason").as_deref(), Some("\"cleared\""));
}

#[test]
fn a_silent_device_ends_its_alarms_with_the_reason_and_raises_them_again_when_it_resumes() {
    if missing("mosquitto") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let sub = Subscriber::start(broker.port, "medgw/v1/#");
    let masimo = start_sim(dir.path(), "masimo", "masimo", &["--period-ms", "1000", "--fault", "2s:spo2-low", "--fault", "5s:silence=6s"]);
    let devices: Vec<(&str, &str, &Path)> = vec![("masimo", "masimo", &masimo.link)];
    let cfg = config(dir.path(), broker.port, "canonical", &devices, free_port())
        .replace("poll_period_ms = 250\n", "poll_period_ms = 250\nsilence_timeout_s = 2\n");
    let mut gw = start_gateway(dir.path(), "gw", &cfg);
    // Low, silent (the alarm ends: disconnected), data again (the gateway's alert ends, the
    // still-low SpO2 starts a new alarm).
    let msgs = sub.wait_for(Duration::from_secs(40), |m| {
        let a = alarms(m, "masimo");
        has(&a, "medgw:device-disconnected", "end")
            && a.iter().filter(|e| vendor(e) == "masimo:ALARM:0002" && e["phase"] == "start").count() >= 2
    });
    assert_eq!(gw.terminate(Duration::from_secs(15)), Some(0), "graceful stop: {}", gw.log());
    let a = alarms(&msgs, "masimo");
    let low: Vec<&Value> = a.iter().filter(|e| vendor(e) == "masimo:ALARM:0002").collect();
    assert!(low.len() >= 3, "{a:#?}\n{}", gw.log());
    assert_eq!((low[0]["phase"].as_str(), low[1]["phase"].as_str(), low[2]["phase"].as_str()), (Some("start"), Some("end"), Some("start")));
    assert_eq!(low[1]["id"], low[0]["id"]);
    assert_eq!(low[1]["end_reason"]["reason"], "disconnected", "{}", low[1]);
    assert!(low[1]["end_reason"]["detail"].as_str().is_some_and(|d| d.starts_with("silent")), "{}", low[1]);
    assert_ne!(low[2]["id"], low[0]["id"], "raised again: a new id");
    let alert = lifecycle(&a, "medgw:device-disconnected");
    assert_eq!(&alert[..2], &[("start".to_string(), None), ("end".to_string(), Some("cleared".to_string()))], "{a:#?}");
}

/// The OBR-3 (alarm id) and the event phase (facet .3) of a PCD-04 message.
fn pcd04_id_and_phase(er7: &str) -> (String, String) {
    let segs: Vec<Vec<&str>> = er7.split('\r').map(|s| s.split('|').collect()).collect();
    let obr = segs.iter().find(|s| s[0] == "OBR").unwrap_or_else(|| panic!("no OBR: {er7}"));
    let phase = segs.iter().find(|s| s[0] == "OBX" && s.get(3).is_some_and(|f| f.contains("MDC_ATTR_EVENT_PHASE")));
    (obr[3].to_string(), phase.and_then(|s| s.get(5)).unwrap_or(&"").to_string())
}

fn wait_until(timeout: Duration, what: impl Fn() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < timeout {
        if what() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    what()
}

/// A metric's value for `sink`, from `/metrics`.
fn sink_metric(http: u16, name: &str, sink: &str) -> Option<u64> {
    let text = http_get(http, "/metrics");
    let prefix = format!("{name}{{gateway=\"gw-test\",sink=\"{sink}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.trim().parse().ok())
}

#[test]
fn an_alarm_manager_over_mllp_gets_every_event_as_pcd04_waits_for_it_and_a_refusal_is_counted_and_evented() {
    use medgw_e2e::mllp_receiver::{has_python_hl7, MllpReceiver};
    if missing("mosquitto") || !has_python_hl7() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let sub = Subscriber::start(broker.port, "medgw/v1/#");
    let faults = ["--fault", "2s:spo2-low", "--fault", "4s:spo2-normal", "--fault", "14s:sensor-off", "--fault", "17s:sensor-on"];
    let masimo = start_sim(dir.path(), "masimo", "masimo", &[&["--period-ms", "1000"][..], &faults[..]].concat());
    let devices: Vec<(&str, &str, &Path)> = vec![("masimo", "masimo", &masimo.link)];
    let (http, am_port) = (free_port(), free_port());
    let cfg = format!(
        "{}\n[[sink]]\nkind = \"mllp\"\nname = \"am\"\nhost = \"127.0.0.1\"\nport = {am_port}\ncarries = [\"alarms\"]\nretry_backoff_min_s = 1\nretry_backoff_max_s = 1\nack_timeout_s = 5\n",
        config(dir.path(), broker.port, "canonical", &devices, http)
    );
    let mut gw = start_gateway(dir.path(), "gw", &cfg);

    // The Alarm Manager is down: the SpO2 alarm starts and ends, both events wait in memory.
    let msgs = sub.wait_for(Duration::from_secs(30), |m| has(&alarms(m, "masimo"), "masimo:ALARM:0002", "end"));
    assert!(has(&alarms(&msgs, "masimo"), "masimo:ALARM:0002", "end"), "{}", gw.log());
    assert!(
        wait_until(Duration::from_secs(5), || sink_metric(http, "medgw_mllp_alarm_waiting", "am") == Some(2)),
        "{:?}\n{}",
        sink_metric(http, "medgw_mllp_alarm_waiting", "am"),
        gw.log()
    );
    // An alarm-only sink holds no observation in the buffer.
    assert!(!http_get(http, "/metrics").contains("medgw_mllp_backlog"), "an alarm sink is no observation sink");

    // It comes up: the queued start and end arrive, in order, one alarm id, and pass the ACM checks.
    let mut am = MllpReceiver::start(dir.path(), "AA", am_port);
    assert!(wait_until(Duration::from_secs(10), || am.accepted().len() >= 2), "{:?}\n{}", am.received(), gw.log());
    let accepted = am.accepted();
    let (id0, phase0) = pcd04_id_and_phase(&accepted[0]);
    let (id1, phase1) = pcd04_id_and_phase(&accepted[1]);
    assert_eq!((phase0.as_str(), phase1.as_str()), ("start", "end"), "{accepted:#?}");
    assert_eq!(id0, id1, "one alarm from start to end");
    assert!(accepted[0].contains("|ORU^R40^ORU_R40|") && accepted[0].contains("196670^MDC_EVT_LO^MDC"), "{}", accepted[0]);
    // The same MSH-10 is what the MQTT side would carry for the event: unique per event.
    let received = am.received();
    assert!(received.iter().all(|r| r.1 == "AA"), "{received:?}");
    assert!(am.message_types().iter().all(|t| t == "ORU^R40^ORU_R40"), "{:?}", am.message_types());
    assert_eq!(received.iter().map(|r| &r.0).collect::<HashSet<_>>().len(), received.len(), "{received:?}");
    assert!(wait_until(Duration::from_secs(5), || sink_metric(http, "medgw_mllp_alarm_acked_total", "am") == Some(2)));
    assert_eq!(sink_metric(http, "medgw_mllp_alarm_waiting", "am"), Some(0));
    let status: Value = serde_json::from_str(&http_get(http, "/api/status")).unwrap();
    let shown = &status["alarm_sinks"][0];
    assert_eq!(
        (shown["name"].as_str(), shown["connected"].as_bool(), shown["acked"].as_u64()),
        (Some("am"), Some(true), Some(2)),
        "{status:#}"
    );
    assert!(status.get("sinks").is_none(), "an alarm-only sink is not an observation sink: {status:#}");
    if Command::new("python3").args(["-c", "import hl7apy"]).output().map(|o| o.status.success()).unwrap_or(false) {
        let out = Command::new("python3").arg(workspace().join("tests/validators/acm-validate.py")).arg(&am.dump).output().unwrap();
        let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && report.contains("2/2 messages valid"), "{report}");
    } else {
        eprintln!("SKIPPED: the ACM validator (hl7apy is not installed)");
    }

    // Another Alarm Manager refuses the next event (AR): counted and published as a gateway
    // event; the one after is accepted.
    am.stop();
    let second = dir.path().join("am2");
    std::fs::create_dir(&second).unwrap();
    let am = MllpReceiver::start(&second, "AR:Unknown bed,AA", am_port);
    let msgs = sub
        .wait_for(Duration::from_secs(30), |m| m.iter().any(|m| m.topic.ends_with("/events") && m.json()["kind"] == "mllp-alarm-refused"));
    let refused = msgs
        .iter()
        .map(Received::json)
        .find(|e| e["kind"] == "mllp-alarm-refused")
        .unwrap_or_else(|| panic!("{:?}\n{}", am.received(), gw.log()));
    assert_eq!(refused["sink"], "am");
    assert!(refused["detail"].as_str().unwrap().contains("Unknown bed"), "{refused}");
    assert!(wait_until(Duration::from_secs(10), || am.received().iter().any(|r| r.1 == "AA")), "{:?}", am.received());
    let r = am.received();
    let ar = r.iter().position(|x| x.1.starts_with("AR")).unwrap();
    assert_eq!(refused["control_id"], r[ar].0.as_str());
    assert_eq!(sink_metric(http, "medgw_mllp_alarm_refused_total", "am"), Some(1));
    // The refused one was the sensor-off start; its end followed and was accepted.
    let sensor: Vec<(String, String)> = am.accepted().iter().map(|m| pcd04_id_and_phase(m)).collect();
    assert_eq!(sensor.len(), 1, "{sensor:?}");
    assert_eq!(sensor[0].1, "end", "{sensor:?}");
    assert!(am.accepted()[0].contains("EXC"), "{}", am.accepted()[0]);
    assert_eq!(gw.terminate(Duration::from_secs(15)), Some(0), "graceful stop: {}", gw.log());
}

#[test]
fn nonin_intellivue_and_the_sensor_node_report_their_alarms_from_start_to_end_with_codes_and_priorities() {
    if missing("mosquitto") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let sub = Subscriber::start(broker.port, "medgw/v1/#");
    let off_on = ["--fault", "3s:sensor-off", "--fault", "6s:sensor-on"];
    let nonin = start_sim(dir.path(), "oxi", "nonin-df8", &[&["--period-ms", "1000"][..], &off_on[..]].concat());
    let node = start_sim(dir.path(), "node", "medgw-link", &[&["--period-ms", "1000"][..], &off_on[..]].concat());
    let ivue_faults =
        ["4s:spo2-low", "7s:spo2-normal", "9s:sensor-off", "12s:sensor-on", "14s:lead-off", "17s:lead-on"].map(|f| ["--fault", f]).concat();
    let ivue = start_sim(dir.path(), "ivue", "intellivue", &ivue_faults);
    let devices: Vec<(&str, &str, &Path)> =
        vec![("nonin-df8", "oxi", &nonin.link), ("medgw-link", "node", &node.link), ("intellivue", "ivue", &ivue.link)];
    let cfg =
        config(dir.path(), broker.port, "canonical", &devices, free_port()).replace("poll_period_ms = 250\n", "poll_period_ms = 1000\n");
    let mut gw = start_gateway(dir.path(), "gw", &cfg);
    let lead_off = "intellivue:16770:268";
    let msgs = sub.wait_for(Duration::from_secs(60), |m| {
        has(&alarms(m, "oxi"), "nonin:SNSA", "end")
            && has(&alarms(m, "node"), "medgw-link:sensor-off", "end")
            && has(&alarms(m, "ivue"), lead_off, "end")
    });
    assert_eq!(gw.terminate(Duration::from_secs(15)), Some(0), "graceful stop: {}", gw.log());
    let cleared = [("start".to_string(), None), ("end".to_string(), Some("cleared".to_string()))];
    let check = |device: &str, vendor_code: &str| -> Value {
        let a = alarms(&msgs, device);
        assert_eq!(lifecycle(&a, vendor_code), cleared, "{device} {vendor_code}: {a:#?}\n{}", gw.log());
        let start = a.iter().find(|e| vendor(e) == vendor_code).unwrap().clone();
        let end = a.iter().find(|e| vendor(e) == vendor_code && e["phase"] == "end").unwrap();
        assert_eq!(end["id"], start["id"], "one id from start to end");
        start
    };
    // Nonin: the sensor alarm status bit, a technical alert without a priority (none is sent).
    let snsa = check("oxi", "nonin:SNSA");
    assert_eq!((snsa["kind"].as_str(), &snsa["priority"]), (Some("technical"), &Value::Null), "{snsa}");
    // The sensor node: its sensor-off quality flag.
    let node_off = check("node", "medgw-link:sensor-off");
    assert_eq!(node_off["kind"], "technical", "{node_off}");
    // IntelliVue: SpO2 low (high priority, MDC_EVT_LO on SpO2), the sensor INOP (medium,
    // unmapped private term) and leads off (medium, MDC_EVT_LEAD_DISCONN on the heart rate).
    let low = check("ivue", "intellivue:19384:62");
    assert_eq!((low["code"].as_u64(), low["ref_id"].as_str(), low["source"].as_u64()), (Some(196670), Some("MDC_EVT_LO"), Some(150456)));
    assert_eq!(
        (low["kind"].as_str(), low["priority"].as_str(), low["ihe_priority"].as_str()),
        (Some("physiological"), Some("high"), Some("PH"))
    );
    let inop = check("ivue", "intellivue:19384:61601");
    assert_eq!(
        (inop["kind"].as_str(), inop["priority"].as_str(), inop["code"].as_u64()),
        (Some("technical"), Some("medium"), Some(0)),
        "{inop}"
    );
    let leads = check("ivue", lead_off);
    assert_eq!(
        (leads["code"].as_u64(), leads["ref_id"].as_str(), leads["source"].as_u64()),
        (Some(196876), Some("MDC_EVT_LEAD_DISCONN"), Some(147842))
    );
    assert_eq!((leads["kind"].as_str(), leads["ihe_priority"].as_str()), (Some("technical"), Some("PM")), "{leads}");
}
