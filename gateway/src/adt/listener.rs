//! The MLLP listener for the hospital's interface engine: plain TCP, peers by allow list.
//!
//! Messages on one connection are handled in order and each is answered before the next is
//! read (HL7 original-mode acknowledgement). All connections share one [`Receiver`]; the
//! handler fsyncs, so it runs on the blocking pool. TLS is not implemented yet (docs/adt.md).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use medgw_protocols::association::AuditEvent;
use medgw_protocols::encode::mllp;
use medgw_protocols::Timestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::Receiver;
use crate::config::AllowRule;

/// The largest HL7 message accepted; ADT messages are a few kilobytes.
pub const MAX_MESSAGE: usize = 1 << 20;

/// Accepts connections until `shutdown`.
pub async fn serve(listener: TcpListener, allow: Vec<AllowRule>, receiver: Arc<Mutex<Receiver>>, shutdown: CancellationToken) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "ADT listener: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        if !allow.iter().any(|r| r.contains(peer.ip())) {
            tracing::warn!(%peer, "ADT connection refused: the peer is not in adt.allow");
            drop(stream);
            continue;
        }
        tracing::info!(%peer, "ADT feed connected");
        tokio::spawn(connection(stream, peer, receiver.clone(), shutdown.clone()));
    }
}

async fn connection(mut stream: TcpStream, peer: SocketAddr, receiver: Arc<Mutex<Receiver>>, shutdown: CancellationToken) {
    let mut deframer = mllp::Deframer::new(MAX_MESSAGE);
    let mut buf = vec![0u8; 16 * 1024];
    let mut frames = Vec::new();
    loop {
        let n = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = stream.read(&mut buf) => match r {
                Ok(0) | Err(_) => {
                    tracing::info!(%peer, "ADT feed disconnected");
                    return;
                }
                Ok(n) => n,
            },
        };
        deframer.feed(&buf[..n], &mut frames);
        for frame in frames.drain(..) {
            let bytes = match frame {
                mllp::Frame::Message(m) => m,
                mllp::Frame::Rejected(e) => {
                    // Nothing of the message can be acknowledged by id; an oversized one gets
                    // an AE without MSA-2 so the sender sees a refusal rather than silence.
                    tracing::warn!(%peer, reason = e.reason(), "ADT bytes rejected by MLLP framing");
                    if matches!(e, medgw_protocols::Error::TooLong { .. }) {
                        let ack = medgw_protocols::hl7::ack::build(
                            None,
                            medgw_protocols::hl7::AckCode::AE,
                            Some(&medgw_protocols::hl7::AckError {
                                code: medgw_protocols::hl7::ErrorCode::ApplicationInternalError,
                                text: format!("message longer than {MAX_MESSAGE} bytes"),
                                location: None,
                            }),
                            "MEDGW-TOOLONG",
                            "",
                            "",
                            Timestamp::now(),
                        );
                        if stream.write_all(&mllp::frame(ack.as_bytes())).await.is_err() {
                            return;
                        }
                    }
                    continue;
                }
            };
            let r = receiver.clone();
            let handled =
                tokio::task::spawn_blocking(move || r.lock().unwrap_or_else(|p| p.into_inner()).handle(&bytes, Timestamp::now())).await;
            let Ok(handled) = handled else { return };
            if let Some(err) = &handled.error {
                tracing::warn!(%peer, code = handled.code.as_str(), error = %err, "ADT message not accepted");
            }
            for event in &handled.audit {
                log_audit(event);
            }
            if stream.write_all(&mllp::frame(handled.ack.as_bytes())).await.is_err() {
                return;
            }
        }
    }
}

/// Logs an audit event: kind and bed at info; patient identifiers only at debug (style rule).
pub fn log_audit(event: &AuditEvent) {
    let json = serde_json::to_value(event).unwrap_or_default();
    let kind = json.get("kind").and_then(|k| k.as_str()).unwrap_or("?");
    let bed = json.get("bed").and_then(|k| k.as_str()).unwrap_or("");
    tracing::info!(kind, bed, "ADT association event");
    tracing::debug!(event = %json, "ADT association event detail");
}

#[cfg(test)]
mod tests {
    use super::*;
    use medgw_protocols::association::{Associations, BedMap, BedMapping};

    async fn start(allow: &str) -> (SocketAddr, Arc<Mutex<Receiver>>, CancellationToken) {
        let beds = BedMap::new(vec![BedMapping {
            gateway_bed: "icu-3b".into(),
            facility: None,
            point_of_care: "ICU".into(),
            room: "03".into(),
            bed: "B".into(),
        }])
        .unwrap();
        let receiver = Arc::new(Mutex::new(Receiver::new(Associations::new(beds), jiff::tz::TimeZone::UTC, "MEDGW", "", None)));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        tokio::spawn(serve(listener, vec![AllowRule::parse(allow).unwrap()], receiver.clone(), stop.clone()));
        (addr, receiver, stop)
    }

    async fn read_ack(s: &mut TcpStream) -> Option<String> {
        let mut d = mllp::Deframer::new(4096);
        let mut out = Vec::new();
        let mut buf = [0u8; 1024];
        while out.is_empty() {
            let n = tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf)).await.ok()?.ok()?;
            if n == 0 {
                return None;
            }
            d.feed(&buf[..n], &mut out);
        }
        match out.remove(0) {
            mllp::Frame::Message(m) => Some(String::from_utf8(m).unwrap()),
            f => panic!("{f:?}"),
        }
    }

    #[tokio::test]
    async fn acknowledges_each_message_on_a_real_socket() {
        let (addr, receiver, stop) = start("127.0.0.1").await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        let a01 = b"MSH|^~\\&|PAS|STMARY|||20260701101500+0000||ADT^A01|C1|P|2.5\rPID|||4711^^^STMARY^MR\rPV1||I|ICU^03^B\r";
        let a28 = b"MSH|^~\\&|PAS|STMARY|||20260701101500+0000||ADT^A28|C2|P|2.5\rPID|||4711^^^STMARY^MR\r";
        // Two messages in one write, split framing: each gets its own ACK, in order.
        let both = [mllp::frame(a01), mllp::frame(a28)].concat();
        s.write_all(&both[..10]).await.unwrap();
        s.write_all(&both[10..]).await.unwrap();
        let first = read_ack(&mut s).await.unwrap();
        assert!(first.contains("\rMSA|AA|C1\r"), "{first}");
        let second = read_ack(&mut s).await.unwrap();
        assert!(second.contains("\rMSA|AR|C2\rERR||MSH^1^9|201^Unsupported event code"), "{second}");
        let t = Timestamp::parse_rfc3339("2026-07-01T10:15:00Z").unwrap();
        assert!(receiver.lock().unwrap().state().patient_at("icu-3b", t).patient().is_some());
        stop.cancel();
    }

    #[tokio::test]
    async fn refuses_peers_outside_the_allow_list() {
        let (addr, receiver, stop) = start("10.9.9.9").await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        let _ = s
            .write_all(&mllp::frame(
                b"MSH|^~\\&|PAS|STMARY|||20260701101500+0000||ADT^A01|C1|P|2.5\rPID|||4711^^^STMARY^MR\rPV1||I|ICU^03^B\r",
            ))
            .await;
        assert_eq!(read_ack(&mut s).await, None);
        assert!(receiver.lock().unwrap().state().beds().next().is_none());
        stop.cancel();
    }
}
