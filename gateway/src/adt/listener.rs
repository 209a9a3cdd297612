//! The MLLP listener for the hospital's interface engine: plain TCP, peers by allow list.
//!
//! Messages on one connection are handled in order and each is answered before the next is
//! read (HL7 original-mode acknowledgement). All connections share one [`Receiver`]; the
//! handler fsyncs, so it runs on the blocking pool. With TLS (`[adt.tls]`) the handshake must
//! finish within [`HANDSHAKE_TIMEOUT`]; the allow list is checked first either way.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use medgw_protocols::association::AuditEvent;
use medgw_protocols::encode::mllp;
use medgw_protocols::Timestamp;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::Receiver;
use crate::config::AllowRule;

/// The largest HL7 message accepted; ADT messages are a few kilobytes.
pub const MAX_MESSAGE: usize = 1 << 20;

/// A peer that does not complete the TLS handshake in this time is dropped.
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Accepts connections until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    allow: Vec<AllowRule>,
    tls: Option<Arc<rustls::ServerConfig>>,
    receiver: Arc<Mutex<Receiver>>,
    shutdown: CancellationToken,
) {
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
        let (receiver, shutdown) = (receiver.clone(), shutdown.clone());
        match &tls {
            None => {
                tracing::info!(%peer, "ADT feed connected");
                tokio::spawn(connection(stream, peer, receiver, shutdown));
            }
            Some(cfg) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(cfg.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            tracing::info!(%peer, "ADT feed connected (TLS)");
                            connection(tls, peer, receiver, shutdown).await;
                        }
                        Ok(Err(e)) => tracing::warn!(%peer, error = %e, "ADT connection refused: TLS handshake failed"),
                        Err(_) => tracing::warn!(%peer, "ADT connection refused: TLS handshake timed out"),
                    }
                });
            }
        }
    }
}

async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    peer: SocketAddr,
    receiver: Arc<Mutex<Receiver>>,
    shutdown: CancellationToken,
) {
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
            if stream.write_all(&mllp::frame(handled.ack.as_bytes())).await.is_err() {
                return;
            }
        }
    }
}

/// Logs an audit event: kind and bed at info; patient identifiers only at debug (style rule).
/// Called by the pipeline for every audit event it publishes.
pub fn log_audit(event: &AuditEvent) {
    let json = serde_json::to_value(event).unwrap_or_default();
    let kind = json.get("kind").and_then(|k| k.as_str()).unwrap_or("?");
    let bed = json.get("bed").and_then(|k| k.as_str()).unwrap_or("");
    // A location is not a patient identifier: the unmapped one is named at info.
    let location = json.get("location").and_then(|k| k.as_str()).unwrap_or("");
    tracing::info!(kind, bed, location, "ADT association event");
    tracing::debug!(event = %json, "ADT association event detail");
}

#[cfg(test)]
mod tests {
    use super::*;
    use medgw_protocols::association::{Associations, BedMap, BedMapping};
    use tokio::net::TcpStream;

    async fn start(allow: &str) -> (SocketAddr, Arc<Mutex<Receiver>>, CancellationToken) {
        start_with(allow, None).await
    }

    async fn start_with(allow: &str, tls: Option<Arc<rustls::ServerConfig>>) -> (SocketAddr, Arc<Mutex<Receiver>>, CancellationToken) {
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
        tokio::spawn(serve(listener, vec![AllowRule::parse(allow).unwrap()], tls, receiver.clone(), stop.clone()));
        (addr, receiver, stop)
    }

    /// Reads ACKs from one connection. The deframer and frames already read are kept between
    /// calls: two ACKs can arrive in one read, and the second must not be lost with the first.
    #[derive(Default)]
    struct Acks {
        deframer: Option<mllp::Deframer>,
        frames: std::collections::VecDeque<mllp::Frame>,
    }

    impl Acks {
        /// The next ACK, or `None` when the peer closes (or stalls) first; bytes outside MLLP
        /// frames (a TLS alert to a plain client) are not an ACK.
        async fn next<S: AsyncRead + Unpin>(&mut self, s: &mut S) -> Option<String> {
            let d = self.deframer.get_or_insert_with(|| mllp::Deframer::new(4096));
            let mut buf = [0u8; 1024];
            loop {
                while let Some(f) = self.frames.pop_front() {
                    if let mllp::Frame::Message(m) = f {
                        return Some(String::from_utf8(m).unwrap());
                    }
                }
                let n = tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf)).await.ok()?.ok()?;
                if n == 0 {
                    return None;
                }
                let mut out = Vec::new();
                d.feed(&buf[..n], &mut out);
                self.frames.extend(out);
            }
        }
    }

    /// The next ACK on a connection that is read for one ACK only.
    async fn read_ack<S: AsyncRead + Unpin>(s: &mut S) -> Option<String> {
        Acks::default().next(s).await
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
        let mut acks = Acks::default();
        let first = acks.next(&mut s).await.unwrap();
        assert!(first.contains("\rMSA|AA|C1\r"), "{first}");
        let second = acks.next(&mut s).await.unwrap();
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

    #[cfg(feature = "tools")]
    #[tokio::test]
    async fn tls_with_client_certificates() {
        let dir = std::env::temp_dir().join(format!("medgw-adt-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pki = crate::pki::generate(&dir, "interface-engine").unwrap();
        let settings =
            super::super::tls::TlsSettings { cert: pki.server_cert.clone(), key: pki.server_key.clone(), client_ca: Some(pki.ca.clone()) };
        let (addr, _receiver, stop) = start_with("127.0.0.1", Some(super::super::tls::server_config(&settings).unwrap())).await;

        let mut roots = rustls::RootCertStore::empty();
        for c in crate::sink::mqtt::transport::read_certs(crate::sink::mqtt::transport::TlsFile::Ca, &pki.ca).unwrap() {
            roots.add(c).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client = |with_cert: bool| {
            let b = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots.clone());
            let cfg = if with_cert {
                let chain =
                    crate::sink::mqtt::transport::read_certs(crate::sink::mqtt::transport::TlsFile::Cert, &pki.client_cert).unwrap();
                let key = crate::sink::mqtt::transport::read_key(&pki.client_key).unwrap();
                b.with_client_auth_cert(chain, key).unwrap()
            } else {
                b.with_no_client_auth()
            };
            tokio_rustls::TlsConnector::from(Arc::new(cfg))
        };
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let a01 = mllp::frame(b"MSH|^~\\&|PAS|STMARY|||20260701101500+0000||ADT^A01|T1|P|2.5\rPID|||4711^^^STMARY^MR\rPV1||I|ICU^03^B\r");

        let mut s = client(true).connect(name.clone(), TcpStream::connect(addr).await.unwrap()).await.unwrap();
        s.write_all(&a01).await.unwrap();
        let ack = read_ack(&mut s).await.unwrap();
        assert!(ack.contains("\rMSA|AA|T1\r"), "{ack}");

        // Without a client certificate the handshake fails and nothing is acknowledged.
        let refused = match client(false).connect(name, TcpStream::connect(addr).await.unwrap()).await {
            Err(_) => true,
            Ok(mut s) => {
                let _ = s.write_all(&a01).await;
                read_ack(&mut s).await.is_none()
            }
        };
        assert!(refused);
        // Plain MLLP to the TLS port gets no ACK either.
        let mut plain = TcpStream::connect(addr).await.unwrap();
        plain.write_all(&a01).await.unwrap();
        assert_eq!(read_ack(&mut plain).await, None);
        stop.cancel();
        std::fs::remove_dir_all(dir).unwrap();
    }
}
