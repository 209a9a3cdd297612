//! `medgw bench --sink mllp`: the parts of the benchmark that stand in for an interface engine.
//!
//! - [`Receiver`]: an MLLP receiver on loopback, written for the bench (tokio, no HL7 library):
//!   it deframes each message, reads MSH-10, counts the observations (the `OBX` rows with a
//!   value; the MDS/VMD/channel rows of the containment carry none) and the time in OBR-7, and
//!   answers `AA` with MSA-2 = MSH-10, as an engine in original mode does. The time in OBR-7 is
//!   the observation's effective time, which for a device without a clock (Nonin DF8, the
//!   bench's default) is the gateway's receipt of the device's bytes: the latency is measured
//!   from there to the engine's receipt, as the MQTT bench measures it to the subscriber.
//! - [`native_sender`]: the reference — one plain MLLP client that sends ready-made `ORU^R01`
//!   messages (those the receiver got from medgw) to the same receiver with the same number in
//!   flight, as fast as the ACKs come back, so medgw's rate is a ratio taken on the same
//!   machine under the same load. It runs as its own process ([`reference_process`]), as the
//!   gateway does: a sender in the receiver's process would hand its messages over without a
//!   context switch and flatter the reference.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use medgw_protocols::encode::mllp::{self, Deframer, Frame};
use medgw_protocols::time::CivilTime;
use medgw_protocols::Timestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What the receiver reports per message.
#[derive(Debug, Clone)]
pub struct Received {
    pub control_id: String,
    /// Observations in the message (OBX rows with a value).
    pub observations: u32,
    /// Engine receipt minus OBR-7, in ms (`None` when OBR-7 is missing or unreadable).
    pub latency_ms: Option<f64>,
    /// The message as received, for the reference sender (`None` once enough are kept).
    pub message: Option<Arc<[u8]>>,
}

/// The bench's MLLP receiver; stops when `stop` is cancelled.
pub struct Receiver {
    pub port: u16,
}

impl Receiver {
    /// Listens on 127.0.0.1 (any port); every message goes to `tx`. The first `keep` messages
    /// are passed whole (for the reference sender), the rest without their bytes.
    pub async fn start(tx: mpsc::UnboundedSender<Received>, keep: usize, stop: CancellationToken) -> std::io::Result<Receiver> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let kept = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    a = listener.accept() => match a {
                        Ok((s, _)) => {
                            let _ = s.set_nodelay(true);
                            tokio::spawn(serve(s, tx.clone(), kept.clone(), keep, stop.clone()));
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                    },
                    _ = stop.cancelled() => return,
                }
            }
        });
        Ok(Receiver { port })
    }
}

async fn serve(
    mut s: tokio::net::TcpStream,
    tx: mpsc::UnboundedSender<Received>,
    kept: Arc<std::sync::atomic::AtomicUsize>,
    keep: usize,
    stop: CancellationToken,
) {
    let mut deframer = Deframer::new(4 << 20);
    let mut buf = vec![0u8; 64 * 1024];
    let mut frames = Vec::new();
    let mut out = Vec::new();
    loop {
        let n = tokio::select! {
            r = s.read(&mut buf) => match r { Ok(0) | Err(_) => return, Ok(n) => n },
            _ = stop.cancelled() => return,
        };
        let now = Timestamp::now();
        deframer.feed(&buf[..n], &mut frames);
        for f in frames.drain(..) {
            let Frame::Message(m) = f else { continue };
            let Some(r) = read_message(&m, now) else { continue };
            out.extend_from_slice(&mllp::frame(ack(&r.control_id, now).as_bytes()));
            let whole = kept.fetch_add(1, Ordering::Relaxed) < keep;
            let _ = tx.send(Received { message: whole.then(|| Arc::from(m.as_slice())), ..r });
        }
        // All ACKs of one read in one write.
        if !out.is_empty() {
            if s.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
    }
}

/// MSH-10, the observations and the latency of one message; `None` when it has no MSH-10.
pub fn read_message(m: &[u8], now: Timestamp) -> Option<Received> {
    let text = std::str::from_utf8(m).ok()?;
    let mut control_id = None;
    let mut observations = 0u32;
    let mut latency_ms = None;
    for seg in text.split('\r') {
        let mut fields = seg.split('|');
        match fields.next() {
            Some("MSH") => control_id = seg.split('|').nth(9).map(str::to_string),
            // OBR-7: observation date/time.
            Some("OBR") => latency_ms = fields.nth(6).and_then(parse_hl7_time).map(|t| (now.0 - t.0) as f64),
            Some("OBX") if fields.nth(1).is_some_and(|vt| !vt.is_empty()) => observations += 1,
            _ => {}
        }
    }
    let control_id = control_id.filter(|c| !c.is_empty())?;
    Some(Received { control_id, observations, latency_ms, message: None })
}

/// `YYYYMMDDHHMMSS[.S{1,4}]+0000` (what medgw writes: UTC) as a timestamp.
fn parse_hl7_time(s: &str) -> Option<Timestamp> {
    let s = s.split('^').next()?;
    let (main, _zone) = s.split_at(s.find(['+', '-']).unwrap_or(s.len()));
    let (whole, frac) = main.split_once('.').unwrap_or((main, ""));
    if whole.len() != 14 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| whole[r].parse::<u32>().ok();
    let ms = match frac.len() {
        0 => 0,
        _ => format!("{:0<3}", &frac[..frac.len().min(3)]).parse::<u32>().ok()?,
    };
    CivilTime {
        year: n(0..4)? as u16,
        month: n(4..6)? as u8,
        day: n(6..8)? as u8,
        hour: n(8..10)? as u8,
        minute: n(10..12)? as u8,
        second: n(12..14)? as u8,
        millisecond: ms as u16,
    }
    .to_timestamp()
    .ok()
}

/// An original-mode application accept for `control_id`.
fn ack(control_id: &str, now: Timestamp) -> String {
    format!("MSH|^~\\&|ENGINE|BENCH|MEDGW|BENCH|{}||ACK^R01^ACK|A{control_id}|P|2.6\rMSA|AA|{control_id}\r", now.hl7())
}

/// The reference: sends `messages` (each with its observation count) over and over, on one
/// connection, with at most `window` unacknowledged, for `duration` after a 1 s warm-up;
/// returns (observations acknowledged, messages acknowledged, seconds measured). Each resend
/// of a message carries the same MSH-10; the bench's receiver does not deduplicate.
pub async fn native_sender(port: u16, messages: &[(Arc<[u8]>, u32)], window: usize, duration: Duration) -> anyhow::Result<(u64, u64, f64)> {
    anyhow::ensure!(!messages.is_empty(), "no messages to send");
    let framed: Vec<(Vec<u8>, u32)> = messages.iter().map(|(m, n)| (mllp::frame(m), *n)).collect();
    let s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    s.set_nodelay(true)?;
    let (mut rd, mut wr) = s.into_split();
    let window = window.max(1);
    // The observation counts of the messages in flight, in order (ACKs come back in order).
    let (sent_tx, mut sent_rx) = mpsc::channel::<u32>(window);
    let done = CancellationToken::new();
    let writer = {
        let done = done.clone();
        tokio::spawn(async move {
            for (bytes, n) in framed.iter().cycle() {
                // A slot in the window first: the channel holds as many as may be in flight.
                tokio::select! {
                    r = sent_tx.send(*n) => if r.is_err() { return },
                    _ = done.cancelled() => return,
                }
                if wr.write_all(bytes).await.is_err() {
                    return;
                }
            }
        })
    };
    let mut deframer = Deframer::new(1 << 20);
    let mut buf = vec![0u8; 64 * 1024];
    let mut frames = Vec::new();
    let (mut obs, mut msgs) = (0u64, 0u64);
    let start = tokio::time::Instant::now();
    let warm = start + Duration::from_secs(1);
    let end = warm + duration;
    let mut t0 = None;
    loop {
        let now = tokio::time::Instant::now();
        if now >= end {
            break;
        }
        if now >= warm && t0.is_none() {
            t0 = Some(Instant::now());
        }
        let until = if t0.is_none() { warm } else { end };
        let n = match tokio::time::timeout_at(until, rd.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => n,
            Err(_) => continue,
        };
        deframer.feed(&buf[..n], &mut frames);
        for f in frames.drain(..) {
            let Frame::Message(m) = f else { continue };
            let n = sent_rx.recv().await.unwrap_or(0);
            if t0.is_some() && memchr::memmem::find(&m, b"MSA|AA|").is_some() {
                obs += u64::from(n);
                msgs += 1;
            }
        }
    }
    let secs = t0.map_or(0.0, |t| t.elapsed().as_secs_f64());
    done.cancel();
    drop(sent_rx);
    let _ = writer.await;
    Ok((obs, msgs, secs))
}

/// Runs [`native_sender`] in a child process (`medgw bench --mllp-reference FILE`): the
/// messages go through a file (per message: observations and length as u32 LE, then the
/// bytes), the result comes back as one JSON line on its stdout.
pub async fn reference_process(
    dir: &std::path::Path,
    port: u16,
    messages: &[(Arc<[u8]>, u32)],
    window: u16,
    duration: Duration,
) -> anyhow::Result<(u64, u64, f64)> {
    let path = dir.join("mllp-reference.bin");
    let mut data = Vec::new();
    for (m, n) in messages {
        data.extend_from_slice(&n.to_le_bytes());
        data.extend_from_slice(&(m.len() as u32).to_le_bytes());
        data.extend_from_slice(m);
    }
    std::fs::write(&path, data)?;
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.arg("bench")
        .arg("--mllp-reference")
        .arg(&path)
        .args(["--engine-port", &port.to_string(), "--mllp-in-flight", &window.to_string()])
        .arg("--duration")
        .arg(format!("{}ms", duration.as_millis()))
        .stderr(std::process::Stdio::inherit());
    // The receiver runs on this process's runtime meanwhile.
    let out = tokio::task::spawn_blocking(move || cmd.output()).await??;
    anyhow::ensure!(out.status.success(), "the MLLP reference sender failed: {}", out.status);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let field = |k: &str| v[k].as_f64().ok_or_else(|| anyhow::anyhow!("the reference sender's report lacks {k}"));
    Ok((field("observations")? as u64, field("messages")? as u64, field("seconds")?))
}

/// The child of [`reference_process`].
pub async fn reference_child(o: crate::bench::BenchOptions) -> anyhow::Result<()> {
    let path = o.mllp_reference.ok_or_else(|| anyhow::anyhow!("--mllp-reference FILE"))?;
    let port = o.engine_port.ok_or_else(|| anyhow::anyhow!("--engine-port"))?;
    let data = std::fs::read(&path)?;
    let mut messages = Vec::new();
    let mut rest = data.as_slice();
    while rest.len() >= 8 {
        let n = u32::from_le_bytes(rest[..4].try_into()?);
        let len = u32::from_le_bytes(rest[4..8].try_into()?) as usize;
        anyhow::ensure!(rest.len() >= 8 + len, "{}: truncated", path.display());
        messages.push((Arc::from(&rest[8..8 + len]), n));
        rest = &rest[8 + len..];
    }
    let (observations, msgs, seconds) = native_sender(port, &messages, usize::from(o.mllp_in_flight), o.duration).await?;
    println!("{}", serde_json::json!({"observations": observations, "messages": msgs, "seconds": seconds}));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_control_id_the_observations_and_the_receipt_time() {
        let m = "MSH|^~\\&|MEDGW^1^EUI-64|-|||20261206072239.609+0000||ORU^R01^ORU_R01|abc-1|P|2.6\rPID|1\rOBR|1||abc-1^MEDGW|182777000^monitoring of patient^SCT|||20261206072239.609+0000\rOBX|1||69641^MDS^MDC|1.0.0.0|||||||X\rOBX|2|NM|150456^SAT^MDC|1.1.1.1|94\rOBX|3|NM|149530^PR^MDC|1.1.1.2|71\r";
        let t = parse_hl7_time("20261206072239.609+0000").unwrap();
        let r = read_message(m.as_bytes(), Timestamp(t.0 + 12)).unwrap();
        assert_eq!((r.control_id.as_str(), r.observations, r.latency_ms), ("abc-1", 2, Some(12.0)));
        assert_eq!(parse_hl7_time("20261206072239+0000").map(|x| x.0), Some(t.0 - 609));
        assert!(parse_hl7_time("2026").is_none());
        assert!(read_message(b"PID|1\r", Timestamp(0)).is_none());
        let a = ack("abc-1", Timestamp(0));
        let report = medgw_protocols::hl7::delivery::read_ack(&a).unwrap();
        assert_eq!((report.kind, report.control_id.as_str()), (medgw_protocols::hl7::delivery::AckKind::AA, "abc-1"));
    }
}
