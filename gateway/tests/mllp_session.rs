//! The sans-IO MLLP delivery session (`medgw_protocols::hl7::delivery`) against an independent
//! receiver: `tests/support/mllp_receiver.py` (python-hl7 reads the messages and writes the
//! ACKs), over real loopback sockets, driven by a thin tokio loop in the shape of the sink task
//! (`gateway/src/sink/mllp/`).
//! Each test checks what the session reported and what the receiver logged it received.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use medgw_protocols::hl7::delivery::{AckKind, AckMode, Action, CloseReason, DeadLetter, DeliveryConfig, DeliverySession};
use medgw_protocols::time::Timestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The scripted receiver, killed when dropped.
struct Receiver {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Receiver {
    /// Starts the receiver with a script (see the script's doc); `None` (test skipped) where
    /// python-hl7 is missing, except in CI, where `.ci/run` installs it.
    fn start(script: &str) -> Option<Receiver> {
        Receiver::start_on(script, 0)
    }

    /// As [`Receiver::start`], on this port (0: any free one).
    fn start_on(script: &str, port: u16) -> Option<Receiver> {
        let has_hl7 = Command::new("python3").args(["-c", "import hl7"]).output().map(|o| o.status.success()).unwrap_or(false);
        if !has_hl7 {
            assert!(std::env::var_os("CI").is_none(), "python-hl7 must be installed in CI (tests/validators/requirements.txt)");
            eprintln!("SKIPPED: python3 with python-hl7 is not installed (`.ci/run` installs tests/validators/requirements.txt)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("received.log");
        let script_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/support/mllp_receiver.py");
        let mut child = Command::new("python3")
            .arg(script_path)
            .args(["--script", script, "--port", &port.to_string(), "--log"])
            .arg(&log)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the receiver");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().strip_prefix("PORT ").and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("receiver said {line:?}"));
        Some(Receiver { child, port, log, _dir: dir })
    }

    /// (MSH-10, MSH-9, answer, connection number) of every message received, in order.
    fn received(&self) -> Vec<(String, String, String, u32)> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (f[0].to_string(), f[1].to_string(), f[2].to_string(), f[3].parse().unwrap())
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

/// A PCD-01-like ORU^R01 (MSH-15 NE, MSH-16 AL as medgw's encoder writes them).
fn message(id: &str) -> Vec<u8> {
    format!("MSH|^~\\&|MEDGW^0012345678ABCDEF^EUI-64|HOSP|||20261125101500+0000||ORU^R01^ORU_R01|{id}|P|2.6|||NE|AL||UNICODE UTF-8\rPID|||BED1^^^HOSP^ANON\rOBR|1||{id}\rOBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.0.1.1|97|262688^MDC_DIM_PERCENT^MDC|||||R\r")
        .into_bytes()
}

fn fast(config: DeliveryConfig) -> DeliveryConfig {
    DeliveryConfig { ack_timeout_ms: 500, retry_backoff_min_ms: 50, retry_backoff_max_ms: 200, ..config }
}

#[derive(Debug, Default)]
struct Outcome {
    acked: Vec<(u32, String, u32)>,
    dead: Vec<DeadLetter<u32>>,
    closes: Vec<CloseReason>,
    retries: u32,
}

/// The loop a sink task runs: carry out the session's actions, feed it what the socket says,
/// wake it at `next_wakeup`. Returns when every message is acknowledged or dead-lettered.
async fn deliver(port: u16, config: DeliveryConfig, ids: &[&str]) -> Outcome {
    let mut s: DeliverySession<u32> = DeliverySession::new(config);
    let mut actions = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        s.offer(message(id), i as u32, Timestamp::now(), &mut actions).unwrap();
    }
    let mut conn: Option<TcpStream> = None;
    let mut outcome = Outcome::default();
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        assert!(tokio::time::Instant::now() < deadline, "not delivered in 30 s: {outcome:?}");
        while !actions.is_empty() {
            for a in std::mem::take(&mut actions) {
                match a {
                    Action::Connect => match TcpStream::connect(("127.0.0.1", port)).await {
                        Ok(c) => {
                            conn = Some(c);
                            s.connected(Timestamp::now(), &mut actions);
                        }
                        Err(_) => s.connect_failed(Timestamp::now(), &mut actions),
                    },
                    Action::Write(bytes) => {
                        let ok = match conn.as_mut() {
                            Some(c) => c.write_all(&bytes).await.is_ok(),
                            None => false,
                        };
                        if !ok {
                            conn = None;
                            s.disconnected(Timestamp::now(), &mut actions);
                        }
                    }
                    Action::Close(reason) => {
                        conn = None;
                        outcome.closes.push(reason);
                    }
                    Action::Acked { tag, control_id, sends } => outcome.acked.push((tag, control_id, sends)),
                    Action::DeadLettered(d) => outcome.dead.push(d),
                    Action::RetryScheduled { .. } => outcome.retries += 1,
                    Action::Ignored(_) => {}
                }
            }
        }
        if s.is_idle() {
            break;
        }
        let wait =
            s.next_wakeup().map(|t| Duration::from_millis((t.0 - Timestamp::now().0).max(0) as u64)).unwrap_or(Duration::from_secs(1));
        match conn.as_mut() {
            Some(c) => tokio::select! {
                r = c.read(&mut buf) => match r {
                    Ok(n) if n > 0 => s.handle_inbound(&buf[..n], Timestamp::now(), &mut actions),
                    _ => {
                        conn = None;
                        s.disconnected(Timestamp::now(), &mut actions);
                    }
                },
                _ = tokio::time::sleep(wait) => s.poll(Timestamp::now(), &mut actions),
            },
            None => {
                tokio::time::sleep(wait).await;
                s.poll(Timestamp::now(), &mut actions);
            }
        }
    }
    outcome
}

#[tokio::test]
async fn aa_delivers_each_message_once_in_order() {
    let Some(r) = Receiver::start("AA") else { return };
    let o = deliver(r.port, fast(DeliveryConfig::default()), &["M1", "M2", "M3"]).await;
    assert_eq!(o.acked, [(0, "M1".into(), 1), (1, "M2".into(), 1), (2, "M3".into(), 1)]);
    assert!(o.dead.is_empty() && o.closes.is_empty(), "{o:?}");
    let ids: Vec<String> = r.received().into_iter().map(|x| x.0).collect();
    assert_eq!(ids, ["M1", "M2", "M3"]);
}

#[tokio::test]
async fn ar_dead_letters_with_the_receivers_reason() {
    let Some(r) = Receiver::start("AR:Patient not registered,AA") else { return };
    let o = deliver(r.port, fast(DeliveryConfig::default()), &["M1", "M2"]).await;
    let [d] = &o.dead[..] else { panic!("{o:?}") };
    assert_eq!((d.tag, d.control_id.as_str(), d.kind, d.sends), (0, "M1", AckKind::AR, 1));
    assert_eq!(d.reason, "AR: 204 Unknown key identifier at PID-3: Patient not registered");
    assert_eq!(o.acked, [(1, "M2".into(), 1)], "the next message is not held back");
    assert_eq!(r.received().len(), 2, "never resent: {:?}", r.received());
}

#[tokio::test]
async fn ae_is_retried_then_dead_lettered() {
    let Some(r) = Receiver::start("AE:Database busy,AE:Database busy,AE:Database busy,AA") else { return };
    let o = deliver(r.port, fast(DeliveryConfig { ae_retries: 2, ..DeliveryConfig::default() }), &["M1", "M2"]).await;
    let [d] = &o.dead[..] else { panic!("{o:?}") };
    assert_eq!((d.control_id.as_str(), d.kind, d.sends), ("M1", AckKind::AE, 3));
    assert!(d.reason.ends_with("Database busy"), "{}", d.reason);
    assert_eq!(o.retries, 2);
    assert_eq!(o.acked, [(1, "M2".into(), 1)]);
    let ids: Vec<String> = r.received().into_iter().map(|x| x.0).collect();
    assert_eq!(ids, ["M1", "M1", "M1", "M2"], "the same control id each time, M2 only after M1 is settled");
}

#[tokio::test]
async fn silence_closes_and_resends_with_the_same_control_id() {
    let Some(r) = Receiver::start("silence,AA") else { return };
    let o = deliver(r.port, fast(DeliveryConfig::default()), &["M1", "M2"]).await;
    assert_eq!(o.closes, [CloseReason::AckTimeout { control_id: "M1".into() }]);
    assert_eq!(o.acked, [(0, "M1".into(), 2), (1, "M2".into(), 1)]);
    let got = r.received();
    assert_eq!(got.iter().map(|x| (x.0.as_str(), x.3)).collect::<Vec<_>>(), [("M1", 1), ("M1", 2), ("M2", 2)], "{got:?}");
}

#[tokio::test]
async fn a_receiver_that_closes_mid_message_or_mid_ack_gets_the_message_again() {
    let Some(r) = Receiver::start("close,partial,AA") else { return };
    let o = deliver(r.port, fast(DeliveryConfig::default()), &["M1"]).await;
    assert_eq!(o.acked, [(0, "M1".into(), 3)], "{o:?}");
    let got = r.received();
    assert_eq!(
        got.iter().map(|x| (x.0.as_str(), x.2.as_str(), x.3)).collect::<Vec<_>>(),
        [("M1", "close", 1), ("M1", "partial", 2), ("M1", "AA", 3)]
    );
}

#[tokio::test]
async fn enhanced_mode_commit_then_application_ack() {
    let Some(r) = Receiver::start("CA+AA") else { return };
    let o = deliver(r.port, fast(DeliveryConfig { ack_mode: AckMode::Enhanced, ..DeliveryConfig::default() }), &["M1", "M2"]).await;
    assert_eq!(o.acked, [(0, "M1".into(), 1), (1, "M2".into(), 1)], "{o:?}");
    // The receiver's application ACKs asked for a commit ACK (MSH-15 AL): medgw sent CA for each.
    // The last one may still be on its way when the session is done.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got = r.received();
    let commits: Vec<&str> = got.iter().filter(|x| x.1.starts_with("ACK")).map(|x| x.2.as_str()).collect();
    assert!(!commits.is_empty() && commits.iter().all(|c| *c == "CA"), "{got:?}");
}

#[tokio::test]
async fn an_engine_that_is_down_at_first_gets_everything_when_it_comes_back() {
    // Only to see whether python-hl7 is here; this receiver is not used.
    let Some(probe) = Receiver::start("AA") else { return };
    drop(probe);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // The engine starts 600 ms after the gateway began trying (refused connections meanwhile).
    let engine = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(600));
        Receiver::start_on("AA", port).unwrap()
    });
    let o = deliver(port, fast(DeliveryConfig::default()), &["M1", "M2"]).await;
    let r = engine.join().unwrap();
    assert_eq!(o.acked, [(0, "M1".into(), 1), (1, "M2".into(), 1)], "{o:?}");
    let ids: Vec<String> = r.received().into_iter().map(|x| x.0).collect();
    assert_eq!(ids, ["M1", "M2"]);
}
