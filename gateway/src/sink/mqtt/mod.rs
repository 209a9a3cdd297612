//! The MQTT sink: buffered observations out to the hospital's broker, deleted only when the
//! broker acknowledged them.
//!
//! One task owns the connection and does everything in order — fill the in-flight window,
//! write, read acknowledgements, keep alive — so that no await is ever cancelled half-way
//! through a write and every PUBACK names its row exactly (see `window.rs`). Packets are
//! encoded and decoded with rumqttc's MQTT 3.1.1 and MQTT 5 codecs (`packet.rs`); MQTT 5 is
//! used where the broker offers it (`protocol = "auto"`), for content types and PUBACK reason
//! codes: a refused publish is an error, not a delivery.

pub mod outbox;
pub mod packet;
pub mod transport;
pub mod window;

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use medgw_protocols::encode::{canonical, fhir, hl7v2};
use medgw_protocols::nomenclature::Nomenclature;
use medgw_protocols::observation::{DeviceContext, Observation};
use medgw_protocols::Timestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::buffer::{BufferHandle, Entry};
use crate::config::{MqttConfig, MqttProtocol, PayloadFormat, Replay};
use crate::sink::topics::Topics;
use outbox::Outbox;
use packet::{ConnectOptions, Inbound, OutgoingPublish, Version};
use transport::Stream;
use window::{Carried, Window};

/// A message outside the buffer: gateway status, Device resources, events.
#[derive(Debug, Clone)]
pub struct AuxMessage {
    pub topic: String,
    pub payload: Bytes,
    pub retain: bool,
    /// Retained state (status, Device): a newer message for the same topic replaces a queued
    /// older one, and it is sent again after every reconnect.
    pub sticky: bool,
}

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

/// Events kept for the broker at most while it is unreachable (older ones are counted and
/// dropped; observations are never dropped here — they live in the buffer).
const AUX_CAPACITY: usize = 2048;

/// The queue of non-buffered messages.
#[derive(Debug, Default)]
struct AuxQueue {
    queue: VecDeque<(u64, AuxMessage)>,
    sticky: Vec<AuxMessage>,
    in_flight: Vec<(u64, AuxMessage)>,
    next_id: u64,
}

impl AuxQueue {
    fn push(&mut self, m: AuxMessage, stats: &SinkStats) {
        if m.sticky {
            self.sticky.retain(|s| s.topic != m.topic);
            self.sticky.push(m.clone());
            self.queue.retain(|(_, q)| q.topic != m.topic);
        } else if self.queue.len() >= AUX_CAPACITY {
            self.queue.pop_front();
            stats.events_dropped.fetch_add(1, Ordering::Relaxed);
        }
        self.next_id += 1;
        self.queue.push_back((self.next_id, m));
    }

    fn pop(&mut self) -> Option<(u64, AuxMessage)> {
        let item = self.queue.pop_front()?;
        self.in_flight.push(item.clone());
        Some(item)
    }

    fn acked(&mut self, id: u64) {
        self.in_flight.retain(|(i, _)| *i != id);
    }

    /// After a reconnect: unacknowledged events go out again, and all retained state.
    fn connection_lost(&mut self) {
        let lost: Vec<(u64, AuxMessage)> = self.in_flight.drain(..).filter(|(_, m)| !m.sticky).collect();
        for item in lost.into_iter().rev() {
            self.queue.push_front(item);
        }
        self.queue.retain(|(_, m)| !m.sticky);
        for m in self.sticky.clone() {
            self.next_id += 1;
            self.queue.push_front((self.next_id, m));
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
    pub shutdown: CancellationToken,
    pub stats: Arc<SinkStats>,
}

fn status_payload(gateway: &str, state: &str) -> Bytes {
    Bytes::from(
        serde_json::json!({"gateway": gateway, "state": state, "version": env!("CARGO_PKG_VERSION"), "time": Timestamp::now().rfc3339().to_string()}).to_string(),
    )
}

/// The observation topic and the shared device name of each device, so that publishing does
/// not format a topic per message (a measurable share of the sink's time at full speed).
#[derive(Default)]
struct TopicCache {
    /// Device name → (bed, topic, name). The bed is checked because buffered observations
    /// from before a configuration change may carry another bed for the same device name.
    by_device: HashMap<String, (String, String, Arc<str>)>,
}

impl TopicCache {
    fn get(&mut self, topics: &Topics, ctx: &DeviceContext) -> (String, Arc<str>) {
        match self.by_device.get(ctx.name.as_str()) {
            Some((bed, topic, name)) if *bed == ctx.location.bed => (topic.clone(), name.clone()),
            _ => {
                let (topic, name) = (topics.observations(ctx), Arc::<str>::from(ctx.name.as_str()));
                // Bounded: one entry per configured device, plus renamed ones from the backlog.
                if self.by_device.len() >= 4096 {
                    self.by_device.clear();
                }
                self.by_device.insert(ctx.name.clone(), (ctx.location.bed.clone(), topic.clone(), name.clone()));
                (topic, name)
            }
        }
    }
}

/// Packet ids are small distinct integers: hashing them with SipHash (the default) is wasted
/// work on every publish and acknowledgement.
#[derive(Default)]
struct PacketIdHasher(u64);

impl Hasher for PacketIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }

    fn write_u16(&mut self, n: u16) {
        // Spread over the high bits too: hashbrown takes its control byte from the top 7 bits.
        self.0 = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Encodes an observation in the configured payload format.
pub fn encode(obs: &Observation, format: PayloadFormat, nom: &Nomenclature, out: &mut Vec<u8>) {
    match format {
        PayloadFormat::Fhir => fhir::write_observation(out, obs, nom),
        PayloadFormat::Canonical => canonical::write(out, obs, nom),
        PayloadFormat::Hl7v2 => {
            let id = obs.reading.id.to_string();
            if let Some(m) = hl7v2::oru_r01(&[obs], nom, &id, Timestamp::now()) {
                out.extend_from_slice(m.as_bytes());
            }
        }
    }
}

/// Runs the sink until shutdown, reconnecting with back-off. On shutdown it waits a little for
/// acknowledgements in flight, then says goodbye (the status goes to offline).
pub async fn run(mut p: SinkParams) {
    let topics = Topics::new(&p.config.topic_prefix, &p.gateway);
    let tls = p.tls.take();
    let mut outbox = Outbox::new(p.replay);
    let mut aux = AuxQueue::default();
    aux.push(AuxMessage { topic: topics.status(), payload: status_payload(&p.gateway, "online"), retain: true, sticky: true }, &p.stats);
    let mut backoff = Duration::from_millis(250);
    let mut version = match p.config.protocol {
        MqttProtocol::V311 => Version::V311,
        _ => Version::V5,
    };
    let mut first = true;
    while !p.shutdown.is_cancelled() {
        if !first {
            p.stats.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        first = false;
        let result = session(&mut p, &topics, tls.as_ref(), version, &mut outbox, &mut aux).await;
        p.stats.connected.store(false, Ordering::Relaxed);
        outbox.connection_lost();
        aux.connection_lost();
        match result {
            Ok(SessionEnd::Shutdown) => break,
            Ok(SessionEnd::Lost(reason)) => {
                tracing::warn!(%reason, "MQTT connection lost; buffering until it is back");
                backoff = Duration::from_millis(250);
            }
            Err(SessionError::UnsupportedVersion) if p.config.protocol == MqttProtocol::Auto && version == Version::V5 => {
                tracing::info!("broker does not speak MQTT 5; using MQTT 3.1.1");
                version = Version::V311;
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot connect to the MQTT broker");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = p.shutdown.cancelled() => break,
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
        // Keep draining the live channel while disconnected, so sources never block on it;
        // the rows are in the buffer and the backlog finds them.
        while p.live.try_recv().is_ok() {
            outbox.live_overflowed();
        }
    }
}

enum SessionEnd {
    Shutdown,
    Lost(String),
}

#[derive(Debug, thiserror::Error)]
enum SessionError {
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
    #[error("buffer: {0}")]
    Buffer(#[from] crate::buffer::BufferError),
}

async fn read_packet(stream: &mut Box<dyn Stream>, version: Version, rbuf: &mut BytesMut) -> Result<Option<Inbound>, SessionError> {
    loop {
        if let Some(p) = packet::decode(version, rbuf)? {
            return Ok(Some(p));
        }
        if stream.read_buf(rbuf).await? == 0 {
            return Ok(None);
        }
    }
}

/// One connection: connect, publish until the connection ends or shutdown.
async fn session(
    p: &mut SinkParams,
    topics: &Topics,
    tls: Option<&Arc<rustls::ClientConfig>>,
    version: Version,
    outbox: &mut Outbox,
    aux: &mut AuxQueue,
) -> Result<SessionEnd, SessionError> {
    let shutdown = p.shutdown.clone();
    let (stream, limit) = tokio::select! {
        r = open(p, topics, tls, version) => r?,
        _ = shutdown.cancelled() => return Ok(SessionEnd::Shutdown),
    };
    publish_loop(p, topics, version, stream, limit, outbox, aux).await
}

/// Connects and completes the MQTT handshake; returns the stream and the in-flight limit.
async fn open(
    p: &SinkParams,
    topics: &Topics,
    tls: Option<&Arc<rustls::ClientConfig>>,
    version: Version,
) -> Result<(Box<dyn Stream>, u16), SessionError> {
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
        Err(_) => return Err(SessionError::NoConnAck(timeout)),
        // Mosquitto closes the socket on an MQTT 5 CONNECT when it is configured for 3.1.1 only.
        Ok(Ok(None)) if version == Version::V5 => return Err(SessionError::UnsupportedVersion),
        Ok(Ok(None)) => return Err(SessionError::Refused("connection closed before CONNACK".into())),
        Ok(Err(SessionError::Packet(_))) if version == Version::V5 => return Err(SessionError::UnsupportedVersion),
        Ok(r) => r?,
    };
    let receive_maximum = match connack {
        Some(Inbound::ConnAck { accepted: true, receive_maximum, .. }) => receive_maximum,
        Some(Inbound::ConnAck { unsupported_version: true, .. }) if version == Version::V5 => return Err(SessionError::UnsupportedVersion),
        Some(Inbound::ConnAck { reason, .. }) => return Err(SessionError::Refused(reason)),
        other => return Err(SessionError::Refused(format!("expected CONNACK, got {other:?}"))),
    };
    let limit = receive_maximum.map_or(cfg.max_inflight, |r| r.min(cfg.max_inflight));
    if !rbuf.is_empty() {
        return Err(SessionError::Refused("broker sent data before the session started".into()));
    }
    tracing::info!(host = %cfg.host, port = cfg.port, mqtt5 = version == Version::V5, in_flight = limit, "connected to the MQTT broker");
    Ok((stream, limit))
}

/// A backlog read under way; aborted if the session ends first.
struct BacklogRead(tokio::task::JoinHandle<(crate::buffer::RowId, usize, Result<Vec<Entry>, crate::buffer::BufferError>)>);

impl Drop for BacklogRead {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How long a refused observation waits before it is offered again.
const REFUSED_RETRY: Duration = Duration::from_secs(30);

async fn publish_loop(
    p: &mut SinkParams,
    topics: &Topics,
    version: Version,
    mut stream: Box<dyn Stream>,
    limit: u16,
    outbox: &mut Outbox,
    aux: &mut AuxQueue,
) -> Result<SessionEnd, SessionError> {
    let cfg = &p.config;
    let mut wbuf = BytesMut::with_capacity(64 * 1024);
    let mut rbuf = BytesMut::with_capacity(8 * 1024);
    let mut window = Window::new(limit);
    // Receipt time and device of each observation in flight, for latency and per-device counts.
    let mut in_flight_meta: HashMap<u16, (i64, Arc<str>), BuildHasherDefault<PacketIdHasher>> =
        HashMap::with_capacity_and_hasher(limit as usize, Default::default());
    let mut topic_cache = TopicCache::default();
    p.stats.connected.store(true, Ordering::Relaxed);
    p.stats.mqtt5.store(version == Version::V5, Ordering::Relaxed);
    let mut rescan_at: Option<Instant> = None;
    let mut backlog_read: Option<BacklogRead> = None;

    let keep_alive = Duration::from_secs(cfg.keep_alive_s as u64);
    let mut last_sent = Instant::now();
    let mut ping_outstanding: Option<Instant> = None;
    let mut payload_hint = 512;
    // Acknowledged rows, handed to the buffer once per batch of PUBACKs read.
    let mut acked: Vec<crate::buffer::RowId> = Vec::with_capacity(limit as usize);
    let mut closing: Option<Instant> = None;
    loop {
        if rescan_at.is_some_and(|t| t <= Instant::now()) {
            rescan_at = None;
            outbox.rescan();
        }
        // 1. The backlog, when the outbox wants it: read in its own task, so live data and
        //    acknowledgements keep flowing while the buffer thread answers.
        if closing.is_none() && backlog_read.is_none() {
            if let Some((after, limit)) = outbox.backlog_request() {
                let buffer = p.buffer.clone();
                backlog_read = Some(BacklogRead(tokio::spawn(async move { (after, limit, buffer.read_after(after, limit).await) })));
            }
        }
        // 2. Fill the window: retained state and events first, then observations.
        while closing.is_none() && window.has_room() {
            if let Some((id, m)) = aux.pop() {
                let Some(pkid) = window.take(Carried::Aux(id)) else { break };
                let out = OutgoingPublish {
                    pkid,
                    topic: m.topic,
                    payload: m.payload,
                    retain: m.retain,
                    content_type: Some("application/json"),
                    dup: false,
                };
                packet::encode_publish(version, out, &mut wbuf)?;
                continue;
            }
            let Some(entry) = outbox.next_entry() else { break };
            let Some(pkid) = window.take(Carried::Row(entry.rowid)) else { break };
            let (topic, device) = topic_cache.get(topics, &entry.observation.context);
            in_flight_meta.insert(pkid, (entry.observation.reading.receipt_time.0, device));
            let mut payload = Vec::with_capacity(payload_hint);
            encode(&entry.observation, cfg.format, &p.nomenclature, &mut payload);
            payload_hint = payload_hint.max(payload.len() + 64);
            let out = OutgoingPublish {
                pkid,
                topic,
                payload: Bytes::from(payload),
                retain: false,
                content_type: Some(cfg.format.content_type()),
                dup: false,
            };
            packet::encode_publish(version, out, &mut wbuf)?;
            p.stats.published.fetch_add(1, Ordering::Relaxed);
        }
        // 3. Keep-alive (MQTT §3.1.2.10: a control packet within the keep-alive interval).
        if ping_outstanding.is_none() && last_sent.elapsed() >= keep_alive / 2 {
            packet::encode_ping(version, &mut wbuf)?;
            ping_outstanding = Some(Instant::now());
        }
        if !wbuf.is_empty() {
            stream.write_all(&wbuf).await?;
            stream.flush().await?;
            wbuf.clear();
            last_sent = Instant::now();
        }
        if let Some(since) = ping_outstanding {
            if since.elapsed() > keep_alive {
                return Ok(SessionEnd::Lost("no PINGRESP within the keep-alive interval".into()));
            }
        }
        if let Some(since) = closing {
            if window.is_empty() || since.elapsed() > Duration::from_secs(5) {
                packet::encode_disconnect(version, &mut wbuf)?;
                let _ = stream.write_all(&wbuf).await;
                let _ = stream.shutdown().await;
                return Ok(SessionEnd::Shutdown);
            }
        }
        // 4. Wait for the broker, new data or a timer. Only cancel-safe futures are raced here
        //    (`read_buf` into a buffer, channel receives, sleeps); writes happen above.
        let next_ping = last_sent + keep_alive / 2;
        let wants_live = closing.is_none() && outbox.wants_live();
        tokio::select! {
            biased;
            n = stream.read_buf(&mut rbuf) => {
                if n? == 0 {
                    return Ok(SessionEnd::Lost("broker closed the connection".into()));
                }
                while let Some(inbound) = packet::decode(version, &mut rbuf)? {
                    match inbound {
                        Inbound::PubAck { pkid, delivered, reason } => match window.release(pkid) {
                            Some(Carried::Row(row)) if delivered => {
                                outbox.acked(row);
                                acked.push(row);
                                p.stats.delivered.fetch_add(1, Ordering::Relaxed);
                                if let Some((receipt, device)) = in_flight_meta.remove(&pkid) {
                                    p.stats.record_delivery(&device, Timestamp::now().0 - receipt);
                                }
                            }
                            Some(Carried::Row(row)) => {
                                p.stats.refused.fetch_add(1, Ordering::Relaxed);
                                tracing::error!(row, %reason, "broker refused an observation; it stays buffered and is retried");
                                outbox.refused(row);
                                rescan_at = rescan_at.or(Some(Instant::now() + REFUSED_RETRY));
                            }
                            Some(Carried::Aux(id)) => {
                                if !delivered {
                                    tracing::warn!(%reason, "broker refused a status or event message");
                                }
                                aux.acked(id);
                            }
                            None => tracing::debug!(pkid, "PUBACK for an unknown packet id"),
                        },
                        Inbound::PingResp => ping_outstanding = None,
                        Inbound::Disconnect { reason } => return Ok(SessionEnd::Lost(format!("broker disconnected: {reason}"))),
                        Inbound::ConnAck { .. } | Inbound::Other(_) => {}
                    }
                }
                if !acked.is_empty() {
                    p.buffer.ack(std::mem::replace(&mut acked, Vec::with_capacity(limit as usize)));
                }
            }
            Some(a) = p.aux.recv(), if closing.is_none() => aux.push(a, &p.stats),
            e = p.live.recv(), if wants_live => match e {
                Some(e) => {
                    outbox.push_live(e);
                    // Take whatever else is ready, up to the outbox's capacity.
                    while outbox.wants_live() {
                        match p.live.try_recv() {
                            Ok(e) => outbox.push_live(e),
                            Err(_) => break,
                        }
                    }
                    if p.live_overflow.swap(false, Ordering::Relaxed) {
                        outbox.live_overflowed();
                    }
                }
                None => closing = closing.or(Some(Instant::now())),
            },
            _ = tokio::time::sleep_until(next_ping), if ping_outstanding.is_none() => {}
            _ = tokio::time::sleep(Duration::from_millis(200)), if ping_outstanding.is_some() || closing.is_some() || rescan_at.is_some() || !outbox.idle() => {
                if p.live_overflow.swap(false, Ordering::Relaxed) {
                    outbox.live_overflowed();
                }
            }
            r = async { backlog_read.as_mut().map(|b| &mut b.0).expect("guarded by is_some").await }, if backlog_read.is_some() => {
                backlog_read = None;
                match r {
                    Ok((after, limit, Ok(entries))) => outbox.backlog_read(after, entries, limit),
                    Ok((_, _, Err(e))) => return Err(e.into()),
                    Err(_) => {}
                }
            }
            _ = p.shutdown.cancelled(), if closing.is_none() => closing = Some(Instant::now()),
        }
    }
}
