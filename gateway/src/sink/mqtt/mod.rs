//! The MQTT sink: buffered observations out to the hospital's broker, deleted only when the
//! broker acknowledged them.
//!
//! One task owns the connection and does everything in order — fill the in-flight window,
//! write, read acknowledgements, keep alive — so that no await is ever cancelled half-way
//! through a write and every PUBACK names its rows exactly (see `window.rs`). What to do is
//! decided by a state machine without I/O (`session.rs`); this file is the driver that gives
//! it socket reads, channel messages, backlog reads and the time, and carries out its actions.
//! Packets are encoded and decoded with rumqttc's MQTT 3.1.1 and MQTT 5 codecs (`packet.rs`);
//! MQTT 5 is used where the broker offers it (`protocol = "auto"`), for content types and
//! PUBACK reason codes: a refused publish is an error, not a delivery.

pub mod aux;
pub mod packet;
pub mod session;
pub mod transport;
pub mod waves;
pub mod window;
/// Kept at its old path for callers (`pipeline.rs`); it is protocol-free and lives in `sink/`.
pub use crate::sink::outbox;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use medgw_protocols::encode::{canonical, fhir, hl7v2};
use medgw_protocols::nomenclature::Nomenclature;
use medgw_protocols::observation::Observation;
use medgw_protocols::Timestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::buffer::{BufferHandle, Entry};
use crate::config::{MqttConfig, PayloadFormat, Replay};
use crate::sink::topics::Topics;
pub use aux::AuxMessage;
use packet::{ConnectOptions, Inbound, Version};
use session::{Action, ConnectFailure, Ended, Session, SessionConfig};
use transport::Stream;

/// Upper bounds (ms) of the publish-latency histogram buckets: receipt of the device's bytes
/// to the broker's acknowledgement (a backlog after an outage shows up in the last buckets).
pub const LATENCY_BUCKETS_MS: [u64; 12] = [2, 5, 10, 20, 50, 100, 250, 500, 1000, 5000, 30_000, 300_000];

/// Counters the status page, metrics and the benchmark read.
#[derive(Debug, Default)]
pub struct SinkStats {
    pub connected: AtomicBool,
    pub mqtt5: AtomicBool,
    pub published: AtomicU64,
    pub delivered: AtomicU64,
    pub refused: AtomicU64,
    pub reconnects: AtomicU64,
    pub events_dropped: AtomicU64,
    /// Wave segments written to the broker (QoS 0) or acknowledged by it (QoS 1).
    pub waves_published: AtomicU64,
    /// Wave segments dropped because the wave queue was full (`sink/mqtt/waves.rs`).
    pub waves_dropped: AtomicU64,
    /// Bytes of wave payloads written.
    pub wave_bytes: AtomicU64,
    /// The Receive Maximum the broker announced in its last CONNACK (MQTT 5), 0 when it
    /// announced none (MQTT 3.1.1, or MQTT 5's default of 65,535).
    pub broker_receive_maximum: AtomicU64,
    /// Messages in flight at most on the current connection: the smaller of `max_inflight` and
    /// the broker's Receive Maximum.
    pub in_flight_limit: AtomicU64,
    /// Cumulative counts per bucket of [`LATENCY_BUCKETS_MS`], then +Inf.
    pub latency_buckets: [AtomicU64; 13],
    pub latency_sum_ms: AtomicU64,
    /// Observations delivered per device name.
    pub delivered_by_device: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
}

impl SinkStats {
    fn record_delivery(&self, device: &str, latency_ms: i64) {
        let ms = latency_ms.max(0) as u64;
        self.latency_sum_ms.fetch_add(ms, Ordering::Relaxed);
        let i = LATENCY_BUCKETS_MS.iter().position(|b| ms <= *b).unwrap_or(LATENCY_BUCKETS_MS.len());
        self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
        if let Ok(mut m) = self.delivered_by_device.lock() {
            // No allocation for a device already counted (every delivery but the first).
            match m.get_mut(device) {
                Some(n) => *n += 1,
                None => {
                    m.insert(device.to_string(), 1);
                }
            }
        }
    }
}

/// Everything the sink needs.
pub struct SinkParams {
    pub config: MqttConfig,
    /// Built by [`transport::tls_config`] before the gateway starts: a TLS set-up that cannot
    /// be built stops `medgw run` with an error instead of leaving a sink that never sends.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub gateway: String,
    pub replay: Replay,
    pub buffer: BufferHandle,
    pub nomenclature: Arc<Nomenclature>,
    pub live: mpsc::Receiver<Entry>,
    /// Set by sources when the live channel was full (rows left for the backlog).
    pub live_overflow: Arc<AtomicBool>,
    pub aux: mpsc::Receiver<AuxMessage>,
    /// Waveform segments (`[waves]`), and the queue's capacity and QoS.
    pub waves: Option<(mpsc::Receiver<waves::WaveMessage>, crate::config::WavesConfig)>,
    /// Durable waves: where the stored ids the broker acknowledged go (`sink/durable_waves.rs`).
    pub wave_acks: Option<waves::WaveAcks>,
    pub shutdown: CancellationToken,
    pub stats: Arc<SinkStats>,
}

fn status_payload(gateway: &str, state: &str) -> Bytes {
    Bytes::from(
        serde_json::json!({"gateway": gateway, "state": state, "version": env!("CARGO_PKG_VERSION"), "time": Timestamp::now().rfc3339().to_string()}).to_string(),
    )
}

/// Encodes an observation in the configured payload format.
pub fn encode(obs: &Observation, format: PayloadFormat, nom: &Nomenclature, out: &mut Vec<u8>) {
    match format {
        PayloadFormat::Fhir => fhir::write_observation(out, obs, nom),
        PayloadFormat::Canonical => canonical::write(out, obs, nom),
        PayloadFormat::Hl7v2 => encode_hl7_set(&[obs], nom, out),
    }
}

/// Encodes a PCD-01 observation set (observations of one device at one time, from the
/// session's grouping) as one HL7 v2 ORU^R01; MSH-10 is `hl7v2::set_message_id` (the
/// observation's id for a set of one).
pub fn encode_hl7_set(obs: &[&Observation], nom: &Nomenclature, out: &mut Vec<u8>) {
    if let Some(m) = hl7v2::oru_r01_set(obs, nom, Timestamp::now()) {
        out.extend_from_slice(m.as_bytes());
    }
}

/// The connection the driver holds for the session.
struct Connection {
    stream: Box<dyn Stream>,
    rbuf: BytesMut,
}

/// A backlog read under way; aborted if the connection ends first.
struct BacklogRead(tokio::task::JoinHandle<(crate::buffer::RowId, usize, Result<Vec<Entry>, crate::buffer::BufferError>)>);

impl Drop for BacklogRead {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How often the live-overflow flag is looked at while the session has work pending.
const OVERFLOW_CHECK: Duration = Duration::from_millis(200);

/// Runs the sink until shutdown, reconnecting with back-off. On shutdown it waits a little for
/// acknowledgements in flight, then says goodbye (the status goes to offline).
///
/// A thin driver: every decision is [`Session`]'s; this loop waits for whichever comes first —
/// the broker's bytes, a status or event message, a live row, a backlog read, the session's
/// next deadline, shutdown — tells the session, and does what it asks.
pub async fn run(mut p: SinkParams) {
    let topics = Topics::new(&p.config.topic_prefix, &p.gateway);
    let tls = p.tls.take();
    let cfg = SessionConfig {
        protocol: p.config.protocol,
        keep_alive: Duration::from_secs(p.config.keep_alive_s as u64),
        format: p.config.format,
        topics: topics.clone(),
        gateway: p.gateway.clone(),
        nomenclature: p.nomenclature.clone(),
        replay: p.replay,
    };
    let mut session = Session::new(cfg, p.stats.clone(), std::time::Instant::now());
    // HL7 v2: one ORU^R01 per PCD-01 observation set (docs/mqtt.md); JSON stays one per row.
    session.group_rows(medgw_protocols::encode::hl7v2::SetLimits::default());
    let mut wave_rx = match p.waves.take() {
        Some((rx, w)) => {
            match p.wave_acks.take() {
                Some(acks) => session.carry_durable_waves(w.queue, acks),
                None => session.carry_waves(w.queue, w.qos),
            }
            Some(rx)
        }
        None => None,
    };
    let mut conn: Option<Connection> = None;
    let mut backlog: Option<BacklogRead> = None;
    let mut live_open = true;
    let mut shutdown_seen = false;
    loop {
        while let Some(action) = session.poll(std::time::Instant::now()) {
            match action {
                Action::Connect(version) => {
                    let opened = tokio::select! {
                        r = open(&p, &topics, tls.as_ref(), version) => Some(r),
                        _ = p.shutdown.cancelled() => None,
                    };
                    let now = std::time::Instant::now();
                    match opened {
                        None => {
                            shutdown_seen = true;
                            session.shutdown(now);
                        }
                        Some(Ok((stream, limit))) => {
                            conn = Some(Connection { stream, rbuf: BytesMut::with_capacity(8 * 1024) });
                            session.connected(limit, now);
                        }
                        Some(Err(ConnectError::UnsupportedVersion)) => session.connect_failed(ConnectFailure::UnsupportedVersion, now),
                        Some(Err(e)) => session.connect_failed(ConnectFailure::Other(e.to_string()), now),
                    }
                }
                Action::Write(bytes) => {
                    let Some(c) = conn.as_mut() else { continue };
                    let written = async {
                        c.stream.write_all(&bytes).await?;
                        c.stream.flush().await
                    };
                    if let Err(e) = written.await {
                        session.connection_lost(Ended::Failed(e.to_string()), std::time::Instant::now());
                    }
                }
                Action::ReadBacklog { after, limit } => {
                    let buffer = p.buffer.clone();
                    backlog = Some(BacklogRead(tokio::spawn(async move { (after, limit, buffer.read_after(after, limit).await) })));
                }
                Action::Ack(rows) => p.buffer.ack(rows),
                Action::Close { graceful } => {
                    backlog = None;
                    if let Some(mut c) = conn.take() {
                        if graceful {
                            let _ = c.stream.shutdown().await;
                        }
                    }
                }
                Action::Stop => return,
            }
        }
        // Only cancel-safe futures are raced here (`read_buf` into a buffer, channel receives,
        // sleeps, a join handle); writes happen above.
        let wakeup = session.next_wakeup().map(tokio::time::Instant::from_std);
        tokio::select! {
            biased;
            n = async { let c = conn.as_mut().expect("guarded by is_some"); c.stream.read_buf(&mut c.rbuf).await }, if conn.is_some() => {
                let now = std::time::Instant::now();
                match n {
                    Ok(0) => session.connection_lost(Ended::Lost("broker closed the connection".into()), now),
                    Err(e) => session.connection_lost(Ended::Failed(e.to_string()), now),
                    Ok(_) => {
                        let c = conn.as_mut().expect("read from it");
                        loop {
                            match packet::decode(session.version(), &mut c.rbuf) {
                                Ok(Some(inbound)) => session.handle_inbound(inbound, now),
                                Ok(None) => break,
                                Err(e) => {
                                    session.connection_lost(Ended::Failed(e.to_string()), now);
                                    break;
                                }
                            }
                        }
                    }
                }
            }
            Some(a) = p.aux.recv(), if session.wants_aux() => session.push_aux(a),
            // Always taken (the wave queue is bounded and drops its oldest), unless durable and
            // full: then the segments wait in the buffer.
            w = async { wave_rx.as_mut().expect("guarded by is_some").recv().await }, if wave_rx.is_some() && session.wants_wave() => match w {
                Some(w) => {
                    let now = std::time::Instant::now();
                    session.push_wave(w, now);
                    while session.wants_wave() {
                        let Ok(w) = wave_rx.as_mut().expect("checked").try_recv() else { break };
                        session.push_wave(w, now);
                    }
                }
                None => wave_rx = None,
            },
            e = p.live.recv(), if live_open && session.wants_live() => match e {
                Some(e) => {
                    session.push_live(e);
                    // Take whatever else is ready, up to the outbox's capacity.
                    while session.wants_live() {
                        match p.live.try_recv() {
                            Ok(e) => session.push_live(e),
                            Err(_) => break,
                        }
                    }
                    if p.live_overflow.swap(false, Ordering::Relaxed) {
                        session.live_overflowed();
                    }
                }
                None => {
                    live_open = false;
                    session.live_closed(std::time::Instant::now());
                }
            },
            _ = async { tokio::time::sleep_until(wakeup.expect("guarded by is_some")).await }, if wakeup.is_some() => {}
            _ = tokio::time::sleep(OVERFLOW_CHECK), if session.busy() => {
                if p.live_overflow.swap(false, Ordering::Relaxed) {
                    session.live_overflowed();
                }
            }
            r = async { (&mut backlog.as_mut().expect("guarded by is_some").0).await }, if backlog.is_some() => {
                backlog = None;
                match r {
                    Ok((after, limit, result)) => session.backlog_read(after, limit, result, std::time::Instant::now()),
                    Err(e) => {
                        tracing::error!(error = %e, "backlog read task failed; reading again");
                        session.backlog_abandoned();
                    }
                }
            }
            _ = p.shutdown.cancelled(), if !shutdown_seen => {
                shutdown_seen = true;
                // The segments the devices closed as they stopped: sent within the drain.
                while let Some(w) = wave_rx.as_mut().filter(|_| session.wants_wave()).and_then(|rx| rx.try_recv().ok()) {
                    session.push_wave(w, std::time::Instant::now());
                }
                session.shutdown(std::time::Instant::now());
            }
        }
    }
}

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
enum ConnectError {
    #[error(transparent)]
    Transport(#[from] transport::TransportError),
    #[error("broker refused the connection: {0}")]
    Refused(String),
    #[error("broker does not support MQTT 5")]
    UnsupportedVersion,
    #[error("no CONNACK within {0:?}")]
    NoConnAck(Duration),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Packet(#[from] packet::PacketError),
}

async fn read_packet(stream: &mut Box<dyn Stream>, version: Version, rbuf: &mut BytesMut) -> Result<Option<Inbound>, ConnectError> {
    loop {
        if let Some(p) = packet::decode(version, rbuf)? {
            return Ok(Some(p));
        }
        if stream.read_buf(rbuf).await? == 0 {
            return Ok(None);
        }
    }
}

/// Connects and completes the MQTT handshake; returns the stream and the in-flight limit.
async fn open(
    p: &SinkParams,
    topics: &Topics,
    tls: Option<&Arc<rustls::ClientConfig>>,
    version: Version,
) -> Result<(Box<dyn Stream>, u16), ConnectError> {
    let cfg = &p.config;
    let timeout = Duration::from_secs(10);
    let mut stream = transport::connect(&cfg.host, cfg.port, tls, timeout).await?;
    let mut wbuf = BytesMut::with_capacity(64 * 1024);
    let mut rbuf = BytesMut::with_capacity(8 * 1024);
    let connect = ConnectOptions {
        client_id: cfg.client_id.clone(),
        keep_alive_s: cfg.keep_alive_s,
        username: cfg.username.clone(),
        password: cfg.password.as_ref().map(|s| s.expose().to_string()),
        will_topic: topics.status(),
        will_payload: status_payload(&p.gateway, "offline"),
        receive_maximum: cfg.max_inflight,
    };
    packet::encode_connect(version, &connect, &mut wbuf)?;
    stream.write_all(&wbuf).await?;
    wbuf.clear();
    let connack = match tokio::time::timeout(timeout, read_packet(&mut stream, version, &mut rbuf)).await {
        Err(_) => return Err(ConnectError::NoConnAck(timeout)),
        // Mosquitto closes the socket on an MQTT 5 CONNECT when it is configured for 3.1.1 only.
        Ok(Ok(None)) if version == Version::V5 => return Err(ConnectError::UnsupportedVersion),
        Ok(Ok(None)) => return Err(ConnectError::Refused("connection closed before CONNACK".into())),
        Ok(Err(ConnectError::Packet(_))) if version == Version::V5 => return Err(ConnectError::UnsupportedVersion),
        Ok(r) => r?,
    };
    let receive_maximum = match connack {
        Some(Inbound::ConnAck { accepted: true, receive_maximum, .. }) => receive_maximum,
        Some(Inbound::ConnAck { unsupported_version: true, .. }) if version == Version::V5 => return Err(ConnectError::UnsupportedVersion),
        Some(Inbound::ConnAck { reason, .. }) => return Err(ConnectError::Refused(reason)),
        other => return Err(ConnectError::Refused(format!("expected CONNACK, got {other:?}"))),
    };
    let limit = receive_maximum.map_or(cfg.max_inflight, |r| r.min(cfg.max_inflight));
    p.stats.broker_receive_maximum.store(receive_maximum.map_or(0, u64::from), Ordering::Relaxed);
    p.stats.in_flight_limit.store(u64::from(limit), Ordering::Relaxed);
    if let Some(r) = receive_maximum.filter(|r| *r < cfg.max_inflight) {
        // Every message waits for its PUBACK within this window: at a few hundred µs per round
        // trip, a window of 20 caps a gateway at some tens of thousands of messages per second.
        tracing::warn!(
            broker_receive_maximum = r,
            max_inflight = cfg.max_inflight,
            "the broker's Receive Maximum bounds the messages in flight, and so the throughput; raise it on the broker (Mosquitto: max_inflight_messages; docs/deployment.md)"
        );
    }
    if !rbuf.is_empty() {
        return Err(ConnectError::Refused("broker sent data before the session started".into()));
    }
    tracing::info!(host = %cfg.host, port = cfg.port, mqtt5 = version == Version::V5, in_flight = limit, "connected to the MQTT broker");
    Ok((stream, limit))
}
