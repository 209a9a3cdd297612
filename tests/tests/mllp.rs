//! MLLP delivery end to end (issue 15): simulators on pseudo-terminals → `medgw run` with an
//! `[[sink]] kind = "mllp"` beside `[mqtt]` → the scripted receiver `tests/support/mllp_receiver.py`
//! (python-hl7 reads and acknowledges, independent of medgw) and a real Mosquitto broker.
//!
//! Skipped (with a message) where mosquitto or python-hl7 is missing, except in CI.
//! The outages here last seconds; the 10-minute outage is `mllp_outage.rs` (ignored by
//! `cargo test`, run in the background by `scripts/test-all`). Where an outage meets the
//! capacity policy, the buffer's unit tests cover it
//! (`buffer::tests::sinks::a_sink_that_is_down_does_not_hold_the_buffer_beyond_its_capacity`).

mod mllp_common;

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use medgw_e2e::*;
use mllp_common::*;
use serde_json::Value;

#[test]
fn every_observation_reaches_the_engine_as_it_reaches_the_broker() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let sub = Subscriber::start(broker.port, "medgw/v1/#");
    let rx = Receiver::start(dir.path(), "AA", 0);
    let mut sims = [("nonin-df8", "oxi", "250"), ("masimo", "masimo", "1000")]
        .map(|(protocol, name, period)| start_sim(dir.path(), name, protocol, &["--seed", "7", "--period-ms", period]));
    let devices: Vec<(&str, &str, &Path)> = vec![("nonin-df8", "oxi", &sims[0].link), ("masimo", "masimo", &sims[1].link)];
    let mut gw = start_gateway(dir.path(), "gw", &config(dir.path(), broker.port, rx.port, "", &devices));
    std::thread::sleep(Duration::from_secs(6));
    for s in &mut sims {
        s.proc.terminate(Duration::from_secs(5));
    }
    let msgs = sub.wait_quiet(Duration::from_secs(3), Duration::from_secs(30));
    let want = obx_rows(mqtt_hl7(&msgs).iter().map(String::as_str));
    assert!(want.len() >= 10, "too little over MQTT: {}", gw.log());
    wait_until(Duration::from_secs(20), "the engine to have every observation", || {
        obx_rows(rx.accepted().iter().map(String::as_str)).len() >= want.len()
    });
    assert_eq!(gw.terminate(Duration::from_secs(15)), Some(0), "graceful stop: {}", gw.log());
    let got = obx_rows(rx.accepted().iter().map(String::as_str));
    assert_eq!(got, want, "the engine and the broker got the same observations");
    // One ORU^R01 per set, each received once (no resend without a reason), named by MSH-10.
    let received = rx.received();
    let ids: HashSet<&str> = received.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(ids.len(), received.len(), "a message was sent twice: {received:?}");
    assert!(received.iter().all(|r| r.1 == "AA"));
    // Both sinks have every row: the buffer is empty.
    let stats = buffer_stats(dir.path());
    assert_eq!(stats["depth"], 0, "{stats}");
    assert_eq!(stats["dead_lettered"], 0, "{stats}");
}

#[test]
fn ar_dead_letters_with_the_reason_and_the_other_sink_still_gets_everything() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let sub = Subscriber::start(broker.port, "medgw/v1/#");
    let rx = Receiver::start(dir.path(), "AR:Unknown patient", 0);
    let mut sim = start_sim(dir.path(), "oxi", "nonin-df8", &["--seed", "3", "--period-ms", "500"]);
    let devices: Vec<(&str, &str, &Path)> = vec![("nonin-df8", "oxi", &sim.link)];
    let mut gw = start_gateway(dir.path(), "gw", &config(dir.path(), broker.port, rx.port, "", &devices));
    let msgs = sub.wait_for(Duration::from_secs(30), |m| gateway_events(m).iter().filter(|e| e["kind"] == "mllp-dead-letter").count() >= 3);
    sim.proc.terminate(Duration::from_secs(5));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(gw.terminate(Duration::from_secs(15)), Some(0), "graceful stop: {}", gw.log());
    let dead: Vec<Value> = gateway_events(&msgs).into_iter().filter(|e| e["kind"] == "mllp-dead-letter").collect();
    let received = rx.received();
    for e in &dead {
        assert_eq!(e["sink"], "engine", "{e}");
        assert!(e["detail"].as_str().unwrap().contains("AR: ") && e["detail"].as_str().unwrap().contains("Unknown patient"), "{e}");
        let id = e["control_id"].as_str().unwrap();
        // Rejected once: never retried.
        assert_eq!(received.iter().filter(|r| r.0 == id).count(), 1, "{id}: {received:?}");
    }
    // Kept with the reason, shown by `medgw buffer stats`; the broker had them all, so nothing
    // is left buffered.
    let stats = buffer_stats(dir.path());
    assert!(stats["dead_lettered"].as_u64().unwrap() >= dead.len() as u64, "{stats}");
    assert_eq!(stats["depth"], 0, "{stats}");
    let recent = &stats["recent_dead_letters"][0];
    assert_eq!(recent["sink"], "engine");
    assert!(recent["reason"].as_str().unwrap().contains("Unknown patient"), "{stats}");
    assert!(received.iter().any(|r| Some(r.0.as_str()) == recent["control_id"].as_str()), "{stats}");
    let text = Command::new(medgw_bin()).args(["buffer", "stats"]).arg(dir.path().join("buffer.db")).output().unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("Unknown patient"));
    assert!(!mqtt_hl7(&msgs).is_empty());
}

#[test]
fn ae_is_retried_with_the_same_control_id_then_dead_lettered() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let sub = Subscriber::start(broker.port, "medgw/v1/#");
    let rx = Receiver::start(dir.path(), "AE:Database busy", 0);
    let mut sim = start_sim(dir.path(), "oxi", "nonin-df8", &["--seed", "3", "--period-ms", "1000"]);
    let devices: Vec<(&str, &str, &Path)> = vec![("nonin-df8", "oxi", &sim.link)];
    let mut gw = start_gateway(dir.path(), "gw", &config(dir.path(), broker.port, rx.port, "ae_retries = 2", &devices));
    let msgs = sub.wait_for(Duration::from_secs(40), |m| gateway_events(m).iter().any(|e| e["kind"] == "mllp-dead-letter"));
    sim.proc.terminate(Duration::from_secs(5));
    assert_eq!(gw.terminate(Duration::from_secs(15)), Some(0), "graceful stop: {}", gw.log());
    let dead = gateway_events(&msgs).into_iter().find(|e| e["kind"] == "mllp-dead-letter").unwrap();
    let id = dead["control_id"].as_str().unwrap();
    assert!(dead["detail"].as_str().unwrap().contains("AE: ") && dead["detail"].as_str().unwrap().contains("Database busy"), "{dead}");
    // The first send and two retries, each with the same MSH-10.
    let sends = rx.received().iter().filter(|r| r.0 == id).count();
    assert_eq!(sends, 3, "{:?}", rx.received());
    let stats = buffer_stats(dir.path());
    assert!(stats["dead_lettered"].as_u64().unwrap() >= 1, "{stats}");
}

#[test]
fn silence_closes_and_resends_the_same_control_id() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let rx = Receiver::start(dir.path(), "silence,AA", 0);
    let mut sim = start_sim(dir.path(), "oxi", "nonin-df8", &["--seed", "3", "--period-ms", "1000"]);
    let devices: Vec<(&str, &str, &Path)> = vec![("nonin-df8", "oxi", &sim.link)];
    let mut gw = start_gateway(dir.path(), "gw", &config(dir.path(), broker.port, rx.port, "", &devices));
    wait_until(Duration::from_secs(30), "the resend", || rx.received().len() >= 3);
    sim.proc.terminate(Duration::from_secs(5));
    assert_eq!(gw.terminate(Duration::from_secs(15)), Some(0), "graceful stop: {}", gw.log());
    let r = rx.received();
    assert_eq!(r[0].1, "silence");
    assert_eq!(r[1].0, r[0].0, "resent with the same control id: {r:?}");
    assert_eq!((r[1].1.as_str(), r[0].2 < r[1].2), ("AA", true), "on a new connection: {r:?}");
    assert!(gw.log().contains("no ACK in time"), "{}", gw.log());
}

/// The MLLP receiver is away for a while (and restarted), then the broker: each time the other
/// sink keeps flowing, the buffer keeps the rows for the one that is down, and once it is back
/// it gets them all.
#[test]
fn one_sink_down_the_other_flows_and_nothing_is_lost_when_it_returns() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start();
    let sub = Subscriber::start(broker.port, "medgw/v1/#");
    let mllp_port = free_port();
    let mut sim = start_sim(dir.path(), "oxi", "nonin-df8", &["--seed", "5", "--period-ms", "250"]);
    let devices: Vec<(&str, &str, &Path)> = vec![("nonin-df8", "oxi", &sim.link)];
    let mut gw = start_gateway(dir.path(), "gw", &config(dir.path(), broker.port, mllp_port, "", &devices));
    // The engine is down: MQTT flows, the buffer keeps rows for the engine.
    let before = sub.wait_for(Duration::from_secs(30), |m| mqtt_hl7(m).len() >= 10);
    assert!(!before.is_empty());
    wait_until(Duration::from_secs(10), "rows kept for the engine", || {
        let s = buffer_stats(dir.path());
        s["depth"].as_u64().unwrap_or(0) >= 10
    });
    // The engine comes up, accepts, goes down again and comes back (a restart).
    let mut rx = Receiver::start(dir.path(), "AA", mllp_port);
    wait_until(Duration::from_secs(20), "the engine to catch up", || rx.received().len() >= 5);
    rx.stop();
    std::thread::sleep(Duration::from_secs(2));
    let rx = Receiver::start(dir.path(), "AA", mllp_port);
    // Now the broker is down: the engine keeps receiving.
    broker.stop();
    let n = rx.received().len();
    wait_until(Duration::from_secs(20), "the engine to receive while the broker is down", || rx.received().len() > n + 4);
    broker.restart();
    std::thread::sleep(Duration::from_secs(2));
    sim.proc.terminate(Duration::from_secs(5));
    let msgs = sub.wait_quiet(Duration::from_secs(4), Duration::from_secs(40));
    // The subscriber misses what the broker got while it was reconnecting (a broker without
    // persistence), so the broker's view is a lower bound; the buffer says the rest: a row
    // leaves it only when both sinks have it, and none was dropped or dead-lettered.
    let want = obx_rows(mqtt_hl7(&msgs).iter().map(String::as_str));
    wait_until(Duration::from_secs(30), "both sinks to have everything", || buffer_stats(dir.path())["depth"] == 0);
    assert_eq!(gw.terminate(Duration::from_secs(15)), Some(0), "graceful stop: {}", gw.log());
    let got = obx_rows(rx.accepted().iter().map(String::as_str));
    assert!(got.is_superset(&want), "the engine lacks {:?}", want.difference(&got).take(5).collect::<Vec<_>>());
    assert!(got.len() >= 40, "{}", got.len());
    let stats = buffer_stats(dir.path());
    assert_eq!(
        (stats["depth"].as_u64(), stats["dropped_total"].as_u64(), stats["dead_lettered"].as_u64()),
        (Some(0), Some(0), Some(0)),
        "{stats}"
    );
}

/// A minimal HTTP/1.1 GET on the status page: (status, body); status 0 when nothing listens.
fn http_get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    // Not listening yet (the gateway is starting): no answer.
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return (0, String::new()) };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let resp = String::from_utf8_lossy(&resp).to_string();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    (head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0), body.to_string())
}

/// The value of a metric line `name{...sink="engine"} v`.
fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{")) && l.contains("sink=\"engine\""))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn status_metrics_and_readiness_show_the_engine() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let (mllp_port, http) = (free_port(), free_port());
    let mut sim = start_sim(dir.path(), "oxi", "nonin-df8", &["--seed", "5", "--period-ms", "250"]);
    let devices: Vec<(&str, &str, &Path)> = vec![("nonin-df8", "oxi", &sim.link)];
    let cfg = config(dir.path(), broker.port, mllp_port, "", &devices)
        .replace("[buffer]", &format!("[status]\nbind = \"127.0.0.1:{http}\"\n\n[buffer]"));
    let mut gw = start_gateway(dir.path(), "gw", &cfg);
    // The engine is away and observations wait for it: not ready, and the page says why.
    wait_until(Duration::from_secs(30), "readyz to name the engine", || {
        let (code, body) = http_get(http, "/readyz");
        code == 503 && body.contains("MLLP sink engine not connected")
    });
    let (_, body) = http_get(http, "/api/status");
    let st: Value = serde_json::from_str(&body).unwrap();
    let sink = &st["sinks"][0];
    assert_eq!(
        (sink["name"].as_str(), sink["connected"].as_bool(), sink["port"].as_u64()),
        (Some("engine"), Some(false), Some(mllp_port as u64)),
        "{st}"
    );
    assert!(sink["backlog"].as_u64().unwrap() > 0, "{st}");
    let (_, m) = http_get(http, "/metrics");
    assert_eq!(metric(&m, "medgw_mllp_connected"), Some(0), "{m}");
    assert!(metric(&m, "medgw_mllp_backlog").unwrap() > 0, "{m}");
    // It comes: ready, delivered, counted.
    let rx = Receiver::start(dir.path(), "AA", mllp_port);
    wait_until(Duration::from_secs(30), "ready with the engine", || http_get(http, "/readyz").0 == 200);
    wait_until(Duration::from_secs(30), "the engine's acknowledgements counted", || {
        let (_, m) = http_get(http, "/metrics");
        metric(&m, "medgw_mllp_connected") == Some(1) && metric(&m, "medgw_mllp_acked_observations_total").unwrap_or(0) > 0
    });
    let (_, body) = http_get(http, "/api/status");
    let st: Value = serde_json::from_str(&body).unwrap();
    assert!(st["sinks"][0]["acked_messages"].as_u64().unwrap() as usize <= rx.received().len(), "{st}");
    sim.proc.terminate(Duration::from_secs(5));
    assert_eq!(gw.terminate(Duration::from_secs(15)), Some(0), "graceful stop: {}", gw.log());
}

/// TLS with a client certificate, as for MQTT: the engine requires the gateway's certificate
/// (signed by its CA) and the gateway checks the engine's.
#[test]
fn tls_with_a_client_certificate() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(tls) = make_tls(dir.path()) else {
        eprintln!("SKIPPED: openssl is not installed");
        return;
    };
    let broker = Mosquitto::start();
    let args = ["--tls-cert", "--tls-key", "--tls-ca"].map(std::ffi::OsStr::new);
    let extra = [args[0], tls.server_cert.as_os_str(), args[1], tls.server_key.as_os_str(), args[2], tls.ca.as_os_str()];
    let rx = Receiver::start_with(dir.path(), "AA", 0, &extra);
    let mut sim = start_sim(dir.path(), "oxi", "nonin-df8", &["--seed", "3", "--period-ms", "500"]);
    let devices: Vec<(&str, &str, &Path)> = vec![("nonin-df8", "oxi", &sim.link)];
    let sink_tls = format!(
        "[sink.tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"",
        tls.ca.display(),
        tls.client_cert.display(),
        tls.client_key.display()
    );
    let mut gw = start_gateway(dir.path(), "gw", &config(dir.path(), broker.port, rx.port, &sink_tls, &devices));
    wait_until(Duration::from_secs(30), "messages over TLS", || rx.accepted().len() >= 3);
    sim.proc.terminate(Duration::from_secs(5));
    assert_eq!(gw.terminate(Duration::from_secs(15)), Some(0), "graceful stop: {}", gw.log());
    assert!(rx.accepted().iter().all(|m| m.starts_with("MSH|")));
    // Without the client certificate the engine refuses the handshake: nothing is accepted.
    let dir2 = tempfile::tempdir().unwrap();
    let rx2 = Receiver::start_with(dir2.path(), "AA", 0, &extra);
    let mut sim2 = start_sim(dir2.path(), "oxi", "nonin-df8", &["--seed", "3", "--period-ms", "500"]);
    let devices2: Vec<(&str, &str, &Path)> = vec![("nonin-df8", "oxi", &sim2.link)];
    let no_cert = format!("[sink.tls]\nca = \"{}\"", tls.ca.display());
    let mut gw2 = start_gateway(dir2.path(), "gw", &config(dir2.path(), broker.port, rx2.port, &no_cert, &devices2));
    std::thread::sleep(Duration::from_secs(5));
    sim2.proc.terminate(Duration::from_secs(5));
    assert_eq!(gw2.terminate(Duration::from_secs(15)), Some(0), "graceful stop: {}", gw2.log());
    assert!(rx2.accepted().is_empty(), "{:?}", rx2.accepted());
    assert!(
        gw2.log().contains("cannot connect to the MLLP receiver") || gw2.log().contains("the connection to the MLLP receiver failed"),
        "{}",
        gw2.log()
    );
}

/// Enhanced acknowledgement mode (HL7 v2.5 §2.9.3): the engine answers each message with a
/// commit accept (CA), then with an application ACK of its own that asks for a commit ACK back.
/// PCD-01 messages ask for an application ACK (MSH-16 `AL`), so CA alone delivers nothing: the
/// application ACK decides — AA delivers, AR dead-letters with its text — and each application
/// ACK gets the gateway's CA.
#[test]
fn enhanced_mode_waits_for_the_application_ack_and_answers_it_with_a_commit_ack() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let sub = Subscriber::start(broker.port, "medgw/v1/#");
    let rx = Receiver::start(dir.path(), "CA+AA,CA+AA,CA+AR:Unknown patient,CA+AA", 0);
    let mut sim = start_sim(dir.path(), "oxi", "nonin-df8", &["--seed", "9", "--period-ms", "500"]);
    let devices: Vec<(&str, &str, &Path)> = vec![("nonin-df8", "oxi", &sim.link)];
    let mut gw = start_gateway(dir.path(), "gw", &config(dir.path(), broker.port, rx.port, "ack_mode = \"enhanced\"", &devices));
    std::thread::sleep(Duration::from_secs(5));
    sim.proc.terminate(Duration::from_secs(5));
    let msgs = sub.wait_quiet(Duration::from_secs(3), Duration::from_secs(30));
    let dead: Vec<Value> = gateway_events(&msgs).into_iter().filter(|e| e["kind"] == "mllp-dead-letter").collect();
    wait_until(Duration::from_secs(20), "every message answered", || buffer_stats(dir.path())["depth"] == 0);
    assert_eq!(gw.terminate(Duration::from_secs(15)), Some(0), "graceful stop: {}", gw.log());
    let received = rx.received();
    assert!(received.len() >= 5, "{received:?}");
    // Each message sent once: neither the CA nor the wait for the application ACK made the
    // gateway resend.
    let ids: HashSet<&str> = received.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(ids.len(), received.len(), "a message was sent twice: {received:?}");
    // The third message's CA was not taken as delivery: its application AR dead-lettered it.
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["control_id"].as_str(), Some(received[2].0.as_str()), "{dead:?}");
    assert!(dead[0]["detail"].as_str().unwrap().contains("AR: ") && dead[0]["detail"].as_str().unwrap().contains("Unknown patient"));
    // Every application ACK (AA or AR) asked for a commit ACK, and got CA.
    assert_eq!(rx.commit_acks(), vec!["CA".to_string(); received.len()], "{:?}", rx.commit_acks());
    // The others delivered: the engine accepted what the broker got, less the dead letter.
    // Kept as dead letters: the rows of that one message (a set may hold several).
    let stats = buffer_stats(dir.path());
    let kept = stats["recent_dead_letters"].as_array().unwrap();
    assert!(!kept.is_empty() && kept.iter().all(|d| d["control_id"] == dead[0]["control_id"]), "{stats}");
    assert_eq!(stats["dead_lettered"].as_u64(), Some(kept.len() as u64), "{stats}");
    let want = obx_rows(mqtt_hl7(&msgs).iter().map(String::as_str));
    let got = obx_rows(rx.accepted().iter().map(String::as_str));
    assert!(got.is_subset(&want), "the engine has rows the broker lacks");
    assert_eq!(rx.accepted().len(), received.len() - 1, "all but the rejected message accepted");
}

/// The device (PV1-3, the bed) and the observation time (OBR-7) of a PCD-01 message.
fn device_and_time(m: &str) -> (String, String) {
    let field =
        |seg: &str, i: usize| m.split('\r').find(|s| s.starts_with(seg)).and_then(|s| s.split('|').nth(i)).unwrap_or("").to_string();
    (field("PV1|", 3), field("OBR|", 7))
}

/// `max_in_flight = 8` with an engine that takes 300 ms per ACK but reads on meanwhile: the
/// gateway keeps several messages in flight (never more than 8), every observation arrives
/// once, and each device's messages arrive in the order of their readings (as documented: the
/// window keeps the order of first sends; only a resend can come after a later message).
#[test]
fn max_in_flight_above_one_pipelines_and_keeps_each_devices_order() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let sub = Subscriber::start(broker.port, "medgw/v1/#");
    let rx = Receiver::start_with(dir.path(), "AA", 0, &["--ack-delay-ms", "300"].map(std::ffi::OsStr::new));
    let mut sims = [("oxi1", "3"), ("oxi2", "4")]
        .map(|(name, seed)| start_sim(dir.path(), name, "nonin-df8", &["--seed", seed, "--period-ms", "250"]));
    let devices: Vec<(&str, &str, &Path)> = vec![("nonin-df8", "oxi1", &sims[0].link), ("nonin-df8", "oxi2", &sims[1].link)];
    let mut gw = start_gateway(dir.path(), "gw", &config(dir.path(), broker.port, rx.port, "max_in_flight = 8", &devices));
    std::thread::sleep(Duration::from_secs(6));
    for s in &mut sims {
        s.proc.terminate(Duration::from_secs(5));
    }
    let msgs = sub.wait_quiet(Duration::from_secs(3), Duration::from_secs(30));
    let want = obx_rows(mqtt_hl7(&msgs).iter().map(String::as_str));
    wait_until(Duration::from_secs(30), "the engine to have every observation", || {
        obx_rows(rx.accepted().iter().map(String::as_str)).len() >= want.len()
    });
    assert_eq!(gw.terminate(Duration::from_secs(15)), Some(0), "graceful stop: {}", gw.log());
    assert_eq!(obx_rows(rx.accepted().iter().map(String::as_str)), want);
    let received = rx.received();
    let ids: HashSet<&str> = received.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(ids.len(), received.len(), "a message was sent twice");
    // Pipelined: at 300 ms per ACK one at a time could not have kept up; the window was used
    // and never exceeded.
    let outstanding = rx.outstanding();
    let most = outstanding.iter().copied().max().unwrap_or(0);
    assert!(most > 1 && most <= 8, "messages in flight at most: {most} ({outstanding:?})");
    // Per device, in the order of the readings.
    let mut last: std::collections::HashMap<String, String> = Default::default();
    for m in rx.accepted() {
        let (device, time) = device_and_time(&m);
        assert!(!device.is_empty() && time.len() >= 14, "{m}");
        if let Some(before) = last.insert(device.clone(), time.clone()) {
            assert!(before <= time, "{device}: {time} arrived after {before}");
        }
    }
    assert_eq!(last.len(), 2, "{last:?}");
}
