//! The MQTT session as a state machine without I/O or clocks (rumqttc's `MqttState` shape).
//!
//! Everything the sink decides lives here: when to connect and how long to back off, which
//! messages go into the in-flight window, keep-alive, what a PUBACK means for the buffer, the
//! shutdown drain. The driver (`mod.rs`) owns the socket, the channels and the timer; it tells
//! the session what happened (`handle_inbound`, `connected`, `connection_lost`, `push_live`, …,
//! always with the time) and carries out what [`Session::poll`] returns, until it returns
//! `None`; then it sleeps until an event or [`Session::next_wakeup`]. So keep-alive, back-off
//! and drain timing are tested with made-up instants, without tokio (tests below).
//!
//! A message carries a set of rows (`delivery.rs`): one observation per message today; with a
//! grouping rule ([`Session::group_rows`], for HL7 PCD-01) every queued row that belongs with
//! the first goes into the same message, and its PUBACK acknowledges them all.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use medgw_protocols::encode::hl7v2::SetLimits;
use medgw_protocols::nomenclature::Nomenclature;
use medgw_protocols::Timestamp;

use super::aux::{AuxMessage, AuxQueue};
use super::packet::{self, Inbound, OutgoingPublish, Version};
use super::waves::{WaveMessage, WaveQueue};
use super::window::{Carried, Window};
use super::{status_payload, SinkStats};
use crate::buffer::{BufferError, Entry, RowId};
use crate::config::{MqttProtocol, PayloadFormat, Replay};
use crate::sink::outbox::Outbox;
use crate::sink::topics::Topics;
use prepared::{Encoder, Prepared};

/// How long a refused observation waits before it is offered again.
pub const REFUSED_RETRY: Duration = Duration::from_secs(30);
/// How long a shutdown waits for acknowledgements in flight before it disconnects.
pub const DRAIN: Duration = Duration::from_secs(5);
/// The first retry after a failed connection; it doubles up to [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_millis(250);
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Rows one message carries at most (a PCD-01 group of one device at one time is far smaller).
pub const MAX_SET_ROWS: usize = 256;

/// Observation messages encoded ahead of a full window at most (`prepared.rs`): one turn of
/// Mosquitto's default window, a few tens of kilobytes.
const PREPARED_AHEAD: usize = 32;

/// Bytes of PUBLISH packets one round writes at most before it hands them to the driver
/// (issue 20: a window of 1,000 filled in one round held ~700 KB of packets at once).
const WRITE_ROUND_BYTES: usize = 64 * 1024;

/// QoS 0 wave segments written per round at most, so one round's write stays bounded.
const WAVES_PER_ROUND: usize = 64;

/// No buffered row is queued, waiting in the buffer, or encoded ahead of the window: what lets
/// lower-ranked messages (QoS 0 wave segments) take the connection. (A session field borrow,
/// not a method: the publishing round holds the link mutably.)
fn nothing_to_publish(outbox: &Outbox, encoder: &Encoder) -> bool {
    outbox.idle() && encoder.ready() == 0
}

/// What the session needs to know about its configuration.
pub struct SessionConfig {
    pub protocol: MqttProtocol,
    pub keep_alive: Duration,
    pub format: PayloadFormat,
    pub topics: Topics,
    pub gateway: String,
    pub nomenclature: Arc<Nomenclature>,
    pub replay: Replay,
}

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a connection and complete the MQTT handshake with this version; then report
    /// [`Session::connected`] or [`Session::connect_failed`].
    Connect(Version),
    /// Write these bytes (whole packets) and flush; a failure is [`Session::connection_lost`].
    Write(Bytes),
    /// Read up to `limit` rows after row id `after` from the buffer, then report
    /// [`Session::backlog_read`].
    ReadBacklog { after: RowId, limit: usize },
    /// The broker acknowledged these rows: delete them from the buffer.
    Ack(Vec<RowId>),
    /// Drop the connection (and any backlog read under way). `graceful`: the DISCONNECT was
    /// written, close the stream in order.
    Close { graceful: bool },
    /// The sink is done (shutdown).
    Stop,
}

/// Why a connection attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectFailure {
    /// The broker does not speak MQTT 5 (falls back to 3.1.1 with `protocol = "auto"`).
    UnsupportedVersion,
    Other(String),
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The broker closed it, said DISCONNECT, or stopped answering pings: retried soon.
    Lost(String),
    /// An error (socket, packet, buffer): retried with growing back-off.
    Failed(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting { until: Instant },
    Connecting,
    Connected,
    Stopped,
}

/// What one connection knows; gone with the connection.
#[derive(Debug)]
struct Link {
    window: Window,
    last_sent: Instant,
    ping_sent: Option<Instant>,
    closing: Option<Instant>,
    rescan_at: Option<Instant>,
    /// A backlog read is under way.
    reading: bool,
}

/// The publishing side of the MQTT sink, across connections.
pub struct Session {
    cfg: SessionConfig,
    stats: Arc<SinkStats>,
    outbox: Outbox,
    aux: AuxQueue,
    /// Waveform segments: below events and observations, bounded, not buffered (`waves.rs`).
    waves: WaveQueue,
    version: Version,
    state: State,
    link: Option<Link>,
    backoff: Duration,
    attempts: u64,
    shutdown: bool,
    live_closed: bool,
    /// Observation messages, encoded when the window has room or ahead of it (`prepared.rs`).
    encoder: Encoder,
    actions: VecDeque<Action>,
    wbuf: BytesMut,
    /// Acknowledged rows, handed to the buffer once per batch of PUBACKs.
    acked: Vec<RowId>,
}

impl Session {
    /// A session that connects at the first [`Session::poll`]; the retained `online` status is
    /// the first message of every connection.
    pub fn new(cfg: SessionConfig, stats: Arc<SinkStats>, now: Instant) -> Session {
        let mut aux = AuxQueue::default();
        let status = AuxMessage { topic: cfg.topics.status(), payload: status_payload(&cfg.gateway, "online"), retain: true, sticky: true };
        aux.push(status, &stats);
        let version = match cfg.protocol {
            MqttProtocol::V311 => Version::V311,
            _ => Version::V5,
        };
        Session {
            outbox: Outbox::new(cfg.replay),
            cfg,
            stats,
            aux,
            waves: WaveQueue::default(),
            version,
            state: State::Waiting { until: now },
            link: None,
            backoff: MIN_BACKOFF,
            attempts: 0,
            shutdown: false,
            live_closed: false,
            encoder: Encoder::default(),
            actions: VecDeque::new(),
            wbuf: BytesMut::with_capacity(64 * 1024),
            acked: Vec::new(),
        }
    }

    /// Publishes each PCD-01 observation set (consecutive queued rows of one device at one
    /// effective time, within `limits`: [`medgw_protocols::encode::hl7v2::group_sets`]) as one message. Only HL7 v2 has a
    /// message for several observations (one ORU^R01); JSON formats publish one observation per
    /// message whatever is set here.
    pub fn group_rows(&mut self, limits: SetLimits) {
        self.encoder.group_rows(limits);
    }

    /// Carries waveform segments in a queue of `capacity` segments at `qos` (0 or 1).
    pub fn carry_waves(&mut self, capacity: usize, qos: u8) {
        self.waves = WaveQueue::new(capacity, qos);
    }

    /// Carries durable waveform segments (QoS 1): at most `capacity` read ahead from the buffer;
    /// the stored ids the broker acknowledged go to `acks`.
    pub fn carry_durable_waves(&mut self, capacity: usize, acks: super::waves::WaveAcks) {
        self.waves = WaveQueue::durable(capacity, acks);
    }

    /// Whether the driver should hand over another wave segment now.
    pub fn wants_wave(&self) -> bool {
        self.waves.has_room()
    }

    /// A waveform segment to publish when nothing of higher priority is waiting; the oldest
    /// queued segment is dropped (and counted) when the queue is full.
    pub fn push_wave(&mut self, m: WaveMessage, now: Instant) {
        self.waves.push(m, &self.stats, now);
    }

    /// Wave segments waiting.
    pub fn waves_queued(&self) -> usize {
        self.waves.len()
    }

    /// The protocol version of the current (or next) connection.
    pub fn version(&self) -> Version {
        self.version
    }

    pub fn is_connected(&self) -> bool {
        self.state == State::Connected
    }

    /// Whether the driver should hand over live rows now. While disconnected they are taken
    /// and dropped (the backlog finds them), so sources never wait on the channel.
    pub fn wants_live(&self) -> bool {
        match self.state {
            State::Connected => self.link.as_ref().is_some_and(|l| l.closing.is_none()) && self.outbox.wants_live(),
            State::Waiting { .. } => true,
            State::Connecting | State::Stopped => false,
        }
    }

    /// Whether the driver should take status and event messages now.
    pub fn wants_aux(&self) -> bool {
        self.state == State::Connected && self.link.as_ref().is_some_and(|l| l.closing.is_none())
    }

    /// Work is pending that the live-overflow flag may concern: the driver looks at the flag
    /// every 200 ms meanwhile.
    pub fn busy(&self) -> bool {
        self.link.as_ref().is_some_and(|l| l.ping_sent.is_some() || l.closing.is_some() || l.rescan_at.is_some())
            || (self.state == State::Connected && !nothing_to_publish(&self.outbox, &self.encoder))
    }

    /// When [`Session::poll`] has something to do without any event (a retry, a ping, a
    /// keep-alive or drain timeout, a refused row's retry).
    pub fn next_wakeup(&self) -> Option<Instant> {
        match self.state {
            State::Waiting { until } => Some(until),
            State::Connecting | State::Stopped => None,
            State::Connected => {
                let l = self.link.as_ref()?;
                let half = self.cfg.keep_alive / 2;
                let ping = match l.ping_sent {
                    None => l.last_sent + half,
                    Some(at) => at + self.cfg.keep_alive,
                };
                // QoS 0 wave segments left over from a round (at most WAVES_PER_ROUND each): at once.
                let waves = (self.waves.qos() == 0
                    && self.waves.len() > 0
                    && l.window.has_room()
                    && (nothing_to_publish(&self.outbox, &self.encoder) || l.closing.is_some()))
                .then_some(l.last_sent);
                [Some(ping), l.closing.map(|c| c + DRAIN), l.rescan_at, waves].into_iter().flatten().min()
            }
        }
    }

    /// A row the pipeline just committed.
    pub fn push_live(&mut self, e: Entry) {
        if self.wants_live() && self.state == State::Connected {
            self.outbox.push_live(e);
        } else {
            self.outbox.live_overflowed();
        }
    }

    /// Sources left rows to the backlog (the live channel was full).
    pub fn live_overflowed(&mut self) {
        self.outbox.live_overflowed();
    }

    /// The live channel closed (every source stopped): drain and disconnect, as on shutdown,
    /// once connected.
    pub fn live_closed(&mut self, now: Instant) {
        self.live_closed = true;
        if let Some(l) = self.link.as_mut() {
            l.closing.get_or_insert(now);
        }
    }

    pub fn push_aux(&mut self, m: AuxMessage) {
        self.aux.push(m, &self.stats);
    }

    /// Shutdown: wait up to [`DRAIN`] for acknowledgements in flight, then disconnect; stop at
    /// once when not connected.
    pub fn shutdown(&mut self, now: Instant) {
        self.shutdown = true;
        if let Some(l) = self.link.as_mut() {
            l.closing.get_or_insert(now);
        }
    }

    /// The handshake succeeded; `limit` is the in-flight window (our maximum and the broker's
    /// Receive Maximum, whichever is lower).
    pub fn connected(&mut self, limit: u16, now: Instant) {
        if self.state != State::Connecting {
            return;
        }
        self.state = State::Connected;
        self.link =
            Some(Link { window: Window::new(limit), last_sent: now, ping_sent: None, closing: None, rescan_at: None, reading: false });
        self.stats.connected.store(true, Ordering::Relaxed);
        self.stats.mqtt5.store(self.version == Version::V5, Ordering::Relaxed);
    }

    /// The connection attempt failed.
    pub fn connect_failed(&mut self, failure: ConnectFailure, now: Instant) {
        if self.state != State::Connecting {
            return;
        }
        self.forget_connection();
        match failure {
            ConnectFailure::UnsupportedVersion if self.cfg.protocol == MqttProtocol::Auto && self.version == Version::V5 => {
                tracing::info!("broker does not speak MQTT 5; using MQTT 3.1.1");
                self.version = Version::V311;
                self.state = State::Waiting { until: now };
            }
            other => {
                let error = match other {
                    ConnectFailure::UnsupportedVersion => "broker does not support MQTT 5".to_string(),
                    ConnectFailure::Other(e) => e,
                };
                tracing::warn!(%error, retry_in_ms = self.backoff.as_millis() as u64, "cannot connect to the MQTT broker");
                self.retry_later(now);
            }
        }
    }

    /// The connection ended (reported by the driver, or found by the session itself).
    pub fn connection_lost(&mut self, end: Ended, now: Instant) {
        if self.state != State::Connected {
            return;
        }
        self.flush_acks();
        self.forget_connection();
        self.actions.push_back(Action::Close { graceful: false });
        match end {
            Ended::Lost(reason) => {
                if !self.shutdown {
                    tracing::warn!(%reason, "MQTT connection lost; buffering until it is back");
                }
                self.backoff = MIN_BACKOFF;
            }
            Ended::Failed(error) => {
                if !self.shutdown {
                    tracing::warn!(%error, retry_in_ms = self.backoff.as_millis() as u64, "MQTT connection failed; buffering until it is back");
                }
            }
        }
        self.retry_later(now);
    }

    /// A backlog read finished.
    pub fn backlog_read(&mut self, after: RowId, limit: usize, result: Result<Vec<Entry>, BufferError>, now: Instant) {
        let Some(l) = self.link.as_mut().filter(|l| l.reading) else { return };
        l.reading = false;
        match result {
            Ok(entries) => self.outbox.backlog_read(after, entries, limit),
            Err(e) => self.connection_lost(Ended::Failed(format!("buffer: {e}")), now),
        }
    }

    /// A backlog read was lost without an answer (its task failed); it is asked again.
    pub fn backlog_abandoned(&mut self) {
        if let Some(l) = self.link.as_mut() {
            l.reading = false;
        }
    }

    /// A packet from the broker.
    pub fn handle_inbound(&mut self, packet: Inbound, now: Instant) {
        let Some(l) = self.link.as_mut() else { return };
        match packet {
            Inbound::PubAck { pkid, delivered, reason } => match l.window.release(pkid) {
                Some(Carried::Rows(d)) if delivered => {
                    d.acked(&mut self.outbox, &mut self.acked);
                    let n = d.rows.len() as u64;
                    self.stats.delivered.fetch_add(n, Ordering::Relaxed);
                    let latency = Timestamp::now().0 - d.receipt;
                    for _ in 0..n {
                        self.stats.record_delivery(&d.device, latency);
                    }
                }
                Some(Carried::Rows(d)) => {
                    self.stats.refused.fetch_add(d.rows.len() as u64, Ordering::Relaxed);
                    tracing::error!(rows = ?d.rows.as_slice(), %reason, "broker refused an observation; it stays buffered and is retried");
                    d.refused(&mut self.outbox);
                    l.rescan_at = l.rescan_at.or(Some(now + REFUSED_RETRY));
                }
                Some(Carried::Wave(id)) => {
                    if delivered {
                        self.stats.waves_published.fetch_add(1, Ordering::Relaxed);
                    } else {
                        tracing::debug!(%reason, "broker refused a wave segment");
                    }
                    self.waves.acked(id);
                }
                Some(Carried::Aux(id)) => {
                    if !delivered {
                        tracing::warn!(%reason, "broker refused a status or event message");
                    }
                    self.aux.acked(id);
                }
                None => tracing::debug!(pkid, "PUBACK for an unknown packet id"),
            },
            Inbound::PingResp => l.ping_sent = None,
            Inbound::Disconnect { reason } => self.connection_lost(Ended::Lost(format!("broker disconnected: {reason}")), now),
            Inbound::ConnAck { .. } | Inbound::Other(_) => {}
        }
    }

    /// The next thing to do at `now`; call until `None`.
    pub fn poll(&mut self, now: Instant) -> Option<Action> {
        if let Some(a) = self.actions.pop_front() {
            return Some(a);
        }
        match self.state {
            State::Stopped => None,
            State::Waiting { .. } | State::Connecting if self.shutdown => {
                self.waves.abandon(&self.stats);
                self.state = State::Stopped;
                Some(Action::Stop)
            }
            State::Waiting { until } if now >= until => {
                if self.attempts > 0 {
                    self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                }
                self.attempts += 1;
                self.state = State::Connecting;
                Some(Action::Connect(self.version))
            }
            State::Waiting { .. } | State::Connecting => None,
            State::Connected => {
                if let Err(e) = self.step(now) {
                    self.connection_lost(Ended::Failed(e.to_string()), now);
                }
                self.actions.pop_front()
            }
        }
    }

    /// One round on a connection: acks out, backlog in, window filled, keep-alive, drain.
    fn step(&mut self, now: Instant) -> Result<(), packet::PacketError> {
        self.flush_acks();
        let version = self.version;
        let l = self.link.as_mut().expect("connected");
        if l.rescan_at.is_some_and(|t| t <= now) {
            l.rescan_at = None;
            self.outbox.rescan();
        }
        // The backlog, when the outbox wants it: read apart, so live data and acknowledgements
        // keep flowing while the buffer answers.
        if l.closing.is_none() && !l.reading {
            if let Some((after, limit)) = self.outbox.backlog_request() {
                l.reading = true;
                self.actions.push_back(Action::ReadBacklog { after, limit });
            }
        }
        // Fill the window: retained state and events first, then observations.
        // At most WRITE_ROUND_BYTES per write: a large window (Receive Maximum 1000) is filled
        // over several rounds, so the first messages reach the broker while the next are encoded
        // and the write buffer stays small.
        while l.closing.is_none() && l.window.has_room() && self.wbuf.len() < WRITE_ROUND_BYTES {
            if let Some((id, m)) = self.aux.pop() {
                let pkid = l.window.take(Carried::Aux(id)).expect("room checked");
                // Alarm events are in the sink's format; status, events and summaries are JSON.
                let content_type = if Topics::is_alarm(&m.topic) { self.cfg.format.content_type() } else { "application/json" };
                let out = OutgoingPublish {
                    pkid,
                    topic: m.topic,
                    payload: m.payload,
                    retain: m.retain,
                    content_type: Some(content_type),
                    dup: false,
                };
                packet::encode_publish(version, out, &mut self.wbuf)?;
                continue;
            }
            let Some(Prepared { topic, payload, delivery }) = self.encoder.next(&mut self.outbox, &self.cfg) else {
                // Nothing buffered is ready nor being read (a backlog drains before any wave
                // segment): a wave segment (QoS 1) may take the free id.
                if self.waves.qos() == 1 && nothing_to_publish(&self.outbox, &self.encoder) {
                    if let Some((id, w)) = self.waves.pop() {
                        publish_wave(version, &mut l.window, &self.stats, &mut self.wbuf, id, w)?;
                        continue;
                    }
                }
                break;
            };
            let n = delivery.rows.len() as u64;
            let pkid = l.window.take(Carried::Rows(delivery)).expect("room checked");
            let out =
                OutgoingPublish { pkid, topic, payload, retain: false, content_type: Some(self.cfg.format.content_type()), dup: false };
            packet::encode_publish(version, out, &mut self.wbuf)?;
            self.stats.published.fetch_add(n, Ordering::Relaxed);
        }
        // Shutdown: segments the devices closed last still go out within the drain (QoS 1 ones
        // take the ids acknowledgements free); what is left when it ends is counted.
        if l.closing.is_some() && self.waves.qos() == 1 {
            while l.window.has_room() {
                let Some((id, w)) = self.waves.pop() else { break };
                publish_wave(version, &mut l.window, &self.stats, &mut self.wbuf, id, w)?;
            }
        }
        // QoS 0 wave segments, only when the window has room, i.e. nothing buffered was waiting
        // for it (waves rank below observations and events); a bounded number per round.
        if self.waves.qos() == 0 && l.window.has_room() && (nothing_to_publish(&self.outbox, &self.encoder) || l.closing.is_some()) {
            for _ in 0..WAVES_PER_ROUND {
                let Some((_, w)) = self.waves.pop() else { break };
                self.stats.wave_bytes.fetch_add(w.payload.len() as u64, Ordering::Relaxed);
                self.stats.waves_published.fetch_add(1, Ordering::Relaxed);
                packet::encode_publish_at_most_once(version, w.topic, w.payload, w.content_type, &mut self.wbuf)?;
            }
        }
        // Every source stopped before this connection: what is queued went out above, now close.
        if self.live_closed {
            l.closing.get_or_insert(now);
        }
        // Keep-alive (MQTT §3.1.2.10: a control packet within the keep-alive interval).
        if l.ping_sent.is_none() && now.saturating_duration_since(l.last_sent) >= self.cfg.keep_alive / 2 {
            packet::encode_ping(version, &mut self.wbuf)?;
            l.ping_sent = Some(now);
        }
        if !self.wbuf.is_empty() {
            self.actions.push_back(Action::Write(self.wbuf.split().freeze()));
            l.last_sent = now;
        } else if l.closing.is_none() && !l.window.has_room() {
            // Nothing to write this round and the window is full: encode the next messages
            // now, while waiting for PUBACKs, rather than after them (`prepared.rs`). Only on
            // a round without a write, so that a write never waits for this.
            self.encoder.prepare_ahead(&mut self.outbox, &self.cfg, usize::from(l.window.limit()).min(PREPARED_AHEAD));
        }
        if l.ping_sent.is_some_and(|at| now.saturating_duration_since(at) >= self.cfg.keep_alive) {
            self.connection_lost(Ended::Lost("no PINGRESP within the keep-alive interval".into()), now);
            return Ok(());
        }
        if let Some(since) = l.closing {
            if (l.window.is_empty() && self.waves.len() == 0) || now.saturating_duration_since(since) >= DRAIN {
                self.waves.abandon(&self.stats);
                packet::encode_disconnect(version, &mut self.wbuf)?;
                self.actions.push_back(Action::Write(self.wbuf.split().freeze()));
                self.actions.push_back(Action::Close { graceful: true });
                self.actions.push_back(Action::Stop);
                self.forget_connection();
                self.state = State::Stopped;
            }
        }
        Ok(())
    }

    fn flush_acks(&mut self) {
        if !self.acked.is_empty() {
            self.actions.push_back(Action::Ack(std::mem::take(&mut self.acked)));
        }
    }

    /// Nothing in flight was delivered: rows and events are offered again next time.
    fn forget_connection(&mut self) {
        self.link = None;
        self.wbuf.clear();
        self.encoder.forget();
        self.stats.connected.store(false, Ordering::Relaxed);
        self.outbox.connection_lost();
        self.aux.connection_lost();
        self.waves.connection_lost();
    }

    fn retry_later(&mut self, now: Instant) {
        if self.shutdown {
            self.waves.abandon(&self.stats);
            self.state = State::Stopped;
            self.actions.push_back(Action::Stop);
            return;
        }
        self.state = State::Waiting { until: now + self.backoff };
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }
}

/// A QoS 1 wave segment into the window (a free packet id, checked by the caller) and the write
/// buffer: live and in the shutdown drain alike.
fn publish_wave(
    version: Version,
    window: &mut Window,
    stats: &SinkStats,
    wbuf: &mut BytesMut,
    id: u64,
    w: WaveMessage,
) -> Result<(), packet::PacketError> {
    let pkid = window.take(Carried::Wave(id)).expect("room checked");
    stats.wave_bytes.fetch_add(w.payload.len() as u64, Ordering::Relaxed);
    let out = OutgoingPublish { pkid, topic: w.topic, payload: w.payload, retain: false, content_type: Some(w.content_type), dup: false };
    packet::encode_publish(version, out, wbuf)
}

mod prepared;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod wave_tests;
