//! The acceptance for MLLP (issue 15): the interface engine is down for 10 minutes while
//! simulated devices keep sending through `medgw run`; MQTT keeps flowing meanwhile; when the
//! engine is back it gets every observation, none lost, and a duplicate only as a resend with
//! the same MSH-10.
//!
//! Ignored by `cargo test` (it lasts the outage and more): `scripts/test-all` starts it in the
//! background as soon as the test binaries are built and waits for it at the end. Run it alone:
//!   cargo test -p medgw-e2e --test mllp_outage -- --ignored --nocapture
//! `MEDGW_MLLP_OUTAGE_S` sets the outage in seconds (default 600). It prints its figures.

mod mllp_common;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use medgw_e2e::*;
use mllp_common::*;

/// Observations per distinct MSH-10 (OBX rows with a value; the containment rows carry none),
/// summed: a message resent with the same MSH-10 counts once, a row sent again in another
/// message counts twice.
fn observations_by_control_id<'a>(messages: impl IntoIterator<Item = &'a str>) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for m in messages {
        let id = m.split('\r').next().and_then(|msh| msh.split('|').nth(9)).unwrap_or("").to_string();
        let n = m.split('\r').filter(|s| s.starts_with("OBX|") && s.split('|').nth(2).is_some_and(|t| !t.is_empty())).count();
        out.insert(id, n);
    }
    out
}

fn accepted_observations(rx: &Receiver) -> usize {
    observations_by_control_id(rx.accepted().iter().map(String::as_str)).values().sum()
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map(|s| s.lines().count()).unwrap_or(0)
}

#[test]
#[ignore = "lasts the outage (MEDGW_MLLP_OUTAGE_S, default 600 s): scripts/test-all runs it in the background"]
fn a_ten_minute_engine_outage_loses_nothing_while_mqtt_keeps_flowing() {
    if skip() {
        return;
    }
    let outage = Duration::from_secs(std::env::var("MEDGW_MLLP_OUTAGE_S").ok().and_then(|s| s.parse().ok()).unwrap_or(600));
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let sub = Subscriber::start(broker.port, "medgw/v1/+/+/+/obs");
    let mut rx = Receiver::start(dir.path(), "AA", 0);
    let port = rx.port;
    let mut sims = [("nonin-df8", "oxi", "250"), ("masimo", "masimo", "1000")]
        .map(|(protocol, name, period)| start_sim(dir.path(), name, protocol, &["--seed", "11", "--period-ms", period]));
    let devices: Vec<(&str, &str, &Path)> = vec![("nonin-df8", "oxi", &sims[0].link), ("masimo", "masimo", &sims[1].link)];
    let accept_log = dir.path().join("accepted.log");
    let mut gw =
        start_gateway_env(dir.path(), "gw", &config(dir.path(), broker.port, port, "", &devices), &[("MEDGW_ACCEPT_LOG", &accept_log)]);
    wait_until(Duration::from_secs(30), "the engine to receive", || accepted_observations(&rx) >= 20);

    // The engine goes away for the outage; the devices keep sending.
    let engine_before = accepted_observations(&rx);
    rx.stop();
    let (accepted_at_down, mqtt_at_down) = (lines(&accept_log), mqtt_hl7(&sub.snapshot()).len());
    std::thread::sleep(outage);
    let (accepted_at_return, mqtt_at_return) = (lines(&accept_log), mqtt_hl7(&sub.snapshot()).len());
    let during = accepted_at_return - accepted_at_down;
    assert!(during as f64 >= outage.as_secs_f64() * 5.0, "the devices sent only {during} observations during the outage");
    assert!(mqtt_at_return > mqtt_at_down + outage.as_secs() as usize, "MQTT stopped flowing while the engine was down");
    let depth = buffer_stats(dir.path())["depth"].as_u64().unwrap_or(0);
    assert!(depth as usize >= during / 2, "the buffer should keep the engine's rows: depth {depth}, {during} accepted meanwhile");

    // It comes back on the same port: everything accepted so far reaches it.
    let rx = Receiver::start(dir.path(), "AA", port);
    let back = Instant::now();
    wait_until(outage.max(Duration::from_secs(120)), "the engine to catch up", || accepted_observations(&rx) >= accepted_at_return);
    let drained = back.elapsed();
    let delivered_after = accepted_observations(&rx) - engine_before;
    std::thread::sleep(Duration::from_secs(5));
    for s in &mut sims {
        s.proc.terminate(Duration::from_secs(5));
    }
    wait_until(Duration::from_secs(120), "both sinks to have every row", || buffer_stats(dir.path())["depth"] == 0);
    let msgs = sub.wait_quiet(Duration::from_secs(3), Duration::from_secs(30));
    assert_eq!(gw.terminate(Duration::from_secs(15)), Some(0), "graceful stop: {}", gw.log());

    // Every accepted observation reached the engine once (by distinct MSH-10), and the broker.
    let accepted = lines(&accept_log);
    let engine = observations_by_control_id(rx.accepted().iter().map(String::as_str));
    let mqtt = observations_by_control_id(mqtt_hl7(&msgs).iter().map(String::as_str));
    assert_eq!(engine.values().sum::<usize>(), accepted, "observations at the engine (distinct MSH-10) vs accepted by the gateway");
    assert_eq!(mqtt.values().sum::<usize>(), accepted, "observations at the broker (distinct MSH-10) vs accepted by the gateway");
    // Duplicates only as resends: a control id received twice is the same message.
    let received = rx.received();
    let resends = received.len() - received.iter().map(|r| r.0.as_str()).collect::<std::collections::HashSet<_>>().len();
    let stats = buffer_stats(dir.path());
    assert_eq!((stats["dropped_total"].as_u64(), stats["dead_lettered"].as_u64()), (Some(0), Some(0)), "{stats}");
    eprintln!(
        "MLLP outage: {:.0} s down; {during} observations accepted during the outage ({} MQTT messages meanwhile); \
         {} observations at the engine after its return, caught up in {:.1} s; {accepted} accepted in all, \
         {} at the engine and at the broker; {resends} resends (same MSH-10); {} messages received in all",
        outage.as_secs_f64(),
        mqtt_at_return - mqtt_at_down,
        delivered_after,
        drained.as_secs_f64(),
        accepted,
        received.len()
    );
}
