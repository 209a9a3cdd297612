//! The Alarm Manager sink (`medgw::sink::mllp::alarms`) against the independent scripted
//! receiver `tests/support/mllp_receiver.py` (python-hl7), over loopback: an `AE` is retried
//! with the same MSH-10 and then given up (counted, evented); silence closes the connection and
//! the event is resent with the same MSH-10 on the next one.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use medgw::config::{AckMode, Carries, MllpSinkConfig, PayloadFormat};
use medgw::sink::mllp::alarms::{self, AlarmFeed, AlarmMessage, AlarmSinkParams, AlarmSinkStats};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

struct Receiver {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Receiver {
    fn start(script: &str) -> Option<Receiver> {
        let has_hl7 = Command::new("python3").args(["-c", "import hl7"]).output().map(|o| o.status.success()).unwrap_or(false);
        if !has_hl7 {
            assert!(std::env::var_os("CI").is_none(), "python-hl7 must be installed in CI (tests/validators/requirements.txt)");
            eprintln!("SKIPPED: python3 with python-hl7 is not installed");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("received.log");
        let mut child = Command::new("python3")
            .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/support/mllp_receiver.py"))
            .args(["--script", script, "--port", "0", "--log"])
            .arg(&log)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the receiver");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().strip_prefix("PORT ").and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("receiver said {line:?}"));
        Some(Receiver { child, port, log, _dir: dir })
    }

    /// (MSH-10, answer, connection number) of every message received, in order.
    fn received(&self) -> Vec<(String, String, u32)> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (f[0].to_string(), f[2].to_string(), f[3].parse().unwrap())
            })
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An ORU^R40 header as the PCD-04 encoder writes it (MSH-15 AL, MSH-16 NE).
fn event(id: &str) -> AlarmMessage {
    let er7 = format!(
        "MSH|^~\\&|MEDGW^0012345678ABCDEF^EUI-64|HOSP|||20261206101500+0000||ORU^R40^ORU_R40|{id}|P|2.6|||AL|NE||UNICODE UTF-8\rPID|||BED1^^^HOSP^ANON\rOBR|1||{id}\r"
    );
    AlarmMessage { control_id: id.to_string(), er7: Arc::from(er7), device: Arc::from("spo2") }
}

struct Sink {
    feed: AlarmFeed,
    stats: Arc<AlarmSinkStats>,
    events: mpsc::Receiver<medgw::sink::mqtt::AuxMessage>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

fn start(port: u16, ack_timeout_s: u32, ae_retries: u32) -> Sink {
    let config = MllpSinkConfig {
        name: "am".into(),
        host: "127.0.0.1".into(),
        port,
        tls: None,
        format: PayloadFormat::Hl7v2,
        ack_mode: AckMode::Original,
        ack_timeout_s,
        max_in_flight: 1,
        retry_backoff_min_s: 1,
        retry_backoff_max_s: 1,
        ae_retries,
        carries: Carries { observations: false, alarms: true },
    };
    let mut feed = AlarmFeed::default();
    let stats = Arc::new(AlarmSinkStats { name: "am".into(), ..Default::default() });
    let rx = feed.add(stats.clone());
    let (aux, events) = mpsc::channel(16);
    let stop = CancellationToken::new();
    let task = tokio::spawn(alarms::run(AlarmSinkParams {
        config,
        tls: None,
        rx,
        aux,
        events_topic: "medgw/v1/gw/events".into(),
        shutdown: stop.clone(),
        stats: stats.clone(),
    }));
    Sink { feed, stats, events, stop, task }
}

async fn until(what: impl Fn() -> bool) {
    for _ in 0..150 {
        if what() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_error_is_retried_with_the_same_control_id_then_given_up_counted_and_evented() {
    let Some(r) = Receiver::start("AE:database busy,AE:database busy,AA") else { return };
    let mut s = start(r.port, 10, 1);
    assert_eq!(s.feed.send(&event("E1")), 0);
    assert_eq!(s.feed.send(&event("E2")), 0);
    until(|| s.stats.acked.load(Ordering::Relaxed) == 1).await;
    let got = r.received();
    let ids: Vec<(&str, &str)> = got.iter().map(|(id, a, _)| (id.as_str(), a.as_str())).collect();
    // E1 twice (one retry, the same MSH-10), then given up; E2 after it, in order.
    assert_eq!(ids, [("E1", "AE:database busy"), ("E1", "AE:database busy"), ("E2", "AA")], "{got:?}");
    assert_eq!((s.stats.failed.load(Ordering::Relaxed), s.stats.refused.load(Ordering::Relaxed)), (1, 0));
    assert_eq!(s.stats.waiting.load(Ordering::Relaxed), 0);
    let e = s.events.try_recv().expect("a gateway event");
    let e: serde_json::Value = serde_json::from_slice(&e.payload).unwrap();
    assert_eq!((e["kind"].as_str(), e["sink"].as_str(), e["control_id"].as_str()), (Some("mllp-alarm-refused"), Some("am"), Some("E1")));
    assert!(e["detail"].as_str().unwrap().contains("database busy"), "{e}");
    s.stop.cancel();
    s.task.await.unwrap();
}

#[tokio::test]
async fn silence_closes_the_connection_and_the_event_is_resent_with_the_same_control_id() {
    let Some(r) = Receiver::start("silence,AA") else { return };
    let s = start(r.port, 1, 3);
    s.feed.send(&event("S1"));
    until(|| s.stats.acked.load(Ordering::Relaxed) == 1).await;
    let got = r.received();
    assert_eq!(got, [("S1".to_string(), "silence".to_string(), 1), ("S1".to_string(), "AA".to_string(), 2)], "{got:?}");
    assert_eq!(s.stats.ack_timeouts.load(Ordering::Relaxed), 1);
    assert_eq!(s.stats.reconnects.load(Ordering::Relaxed), 1);
    s.stop.cancel();
    s.task.await.unwrap();
}

#[tokio::test]
async fn events_queued_at_shutdown_are_still_sent() {
    let Some(r) = Receiver::start("AA") else { return };
    let s = start(r.port, 10, 3);
    // The devices' `shutdown` ends arrive as the sink is told to stop.
    s.stop.cancel();
    s.feed.send(&event("Z1"));
    s.feed.send(&event("Z2"));
    drop(s.feed);
    tokio::time::timeout(Duration::from_secs(10), s.task).await.expect("stops within the drain").unwrap();
    let ids: Vec<String> = r.received().into_iter().map(|(id, _, _)| id).collect();
    assert_eq!(ids, ["Z1", "Z2"]);
    assert_eq!(s.stats.acked.load(Ordering::Relaxed), 2);
}
