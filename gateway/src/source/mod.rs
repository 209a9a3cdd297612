//! Sources: where device bytes come from (serial ports, device servers over TCP, Bluetooth LE).
//! A source owns its port and its reconnect loop; [`DeviceRunner`] is what every source shares —
//! decode, normalise, commit to the buffer, hand over live, and answer the device — so all
//! transports behave alike.

pub mod alarms;
pub mod backoff;
pub mod ble;
pub mod connection;
pub mod error;
pub mod listen;
pub mod liveness;
pub mod network;
pub mod rfc2217;
pub mod serial;
pub mod tcp;
pub mod waves;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use medgw_protocols::decode::{Decoder, DecoderOptions, Event as DecodeEvent};
use medgw_protocols::encode::fhir;
use medgw_protocols::nomenclature::Nomenclature;
use medgw_protocols::observation::{DeviceContext, Flags, Location, Observation};
use medgw_protocols::Timestamp;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::buffer::BufferHandle;
use crate::config::{Config, DeviceConfig, DeviceProtocol, WhenFull};
use crate::events::{Event, EventKind, NoisyLineLimiter, RejectionWindow};
use crate::log_limit::{self, LogLimiter};
use crate::normalize::Normalizer;
use crate::sink::mqtt::AuxMessage;
use crate::sink::topics::Topics;

pub use self::error::SourceError;

/// The pipeline endpoints a source writes into.
#[derive(Clone)]
pub struct PipelineLink {
    pub buffer: BufferHandle,
    /// Committed rows to every sink, in memory (`buffer/live.rs`), handed over by the buffer.
    pub live: crate::buffer::live::LiveHandOver,
    pub aux: mpsc::Sender<AuxMessage>,
    pub topics: Topics,
    /// Waveform segments to the sink (`[waves]`); `None`: waves are not published.
    pub waves: Option<waves::WaveLink>,
    pub when_full: WhenFull,
    pub shutdown: CancellationToken,
    /// The queues of the MLLP sinks carrying alarms (PCD-04 to an Alarm Manager); empty: none.
    pub alarm_sinks: crate::sink::mllp::alarms::AlarmFeed,
}

/// Connection state of a device, for the status page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceState {
    Connecting,
    Connected,
    Silent,
    Disconnected,
}

/// What the status page and metrics show about a device.
#[derive(Debug)]
pub struct DeviceStatus {
    pub name: String,
    pub protocol: String,
    pub port: String,
    pub bed: String,
    pub state: Mutex<DeviceState>,
    pub last_data: Mutex<Option<Timestamp>>,
    /// The latest observation per metric (for display: canonical form).
    pub latest: Mutex<Vec<Observation>>,
    pub observations: AtomicU64,
    pub rejected: AtomicU64,
    /// Rejected frames by reason (`bad-checksum`, `truncated`, ...), for metrics.
    pub rejected_by_reason: Mutex<std::collections::BTreeMap<&'static str, u64>>,
    pub gaps: AtomicU64,
    pub reconnects: AtomicU64,
    /// The protocol session's state (IntelliVue: `associating`, `associated`, `refused`, ...)
    /// for protocols that have one: the port can be open while the device refuses to talk.
    pub session: Mutex<Option<&'static str>>,
    /// The device's active alarms and alarm counters (`alarms.rs`).
    pub alarms: Arc<alarms::AlarmBoard>,
    /// The device's last wave segment, for the status page's live trace.
    pub wave: waves::LiveWave,
}

impl DeviceStatus {
    fn new(cfg: &DeviceConfig) -> DeviceStatus {
        DeviceStatus {
            name: cfg.name.clone(),
            protocol: cfg.protocol.name().to_string(),
            port: cfg.source.port_name(),
            bed: cfg.bed.clone(),
            state: Mutex::new(DeviceState::Connecting),
            last_data: Mutex::new(None),
            latest: Mutex::new(Vec::new()),
            observations: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            rejected_by_reason: Mutex::new(Default::default()),
            gaps: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            session: Mutex::new(None),
            alarms: Arc::new(alarms::AlarmBoard::default()),
            wave: Default::default(),
        }
    }

    pub fn session(&self) -> Option<&'static str> {
        self.session.lock().ok().and_then(|g| *g)
    }

    pub fn set_state(&self, s: DeviceState) {
        if let Ok(mut g) = self.state.lock() {
            *g = s;
        }
    }

    pub fn state(&self) -> DeviceState {
        self.state.lock().map(|g| *g).unwrap_or(DeviceState::Disconnected)
    }
}

/// The accept log: with `MEDGW_ACCEPT_LOG=FILE`, the id of every observation is appended to
/// FILE once its batch is durable. The crash tests compare it with what the broker delivered
/// (every accepted id must arrive); an engineer can use it to audit a suspected loss.
fn accept_log() -> Option<&'static Mutex<std::fs::File>> {
    static LOG: std::sync::OnceLock<Option<Mutex<std::fs::File>>> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let path = std::env::var_os("MEDGW_ACCEPT_LOG")?;
        std::fs::OpenOptions::new().create(true).append(true).open(path).ok().map(Mutex::new)
    })
    .as_ref()
}

/// Why a source stops.
#[derive(Debug, PartialEq, Eq)]
pub enum Stop {
    Shutdown,
}

/// The per-device half of the pipeline that does not depend on the transport.
///
/// A device has one decoder per input stream: a serial device one (its byte stream), a
/// Bluetooth device one per GATT characteristic it is read through (each characteristic's
/// values go to their own decoder, see [`DeviceRunner::feed_values`]).
pub struct DeviceRunner {
    pub cfg: DeviceConfig,
    decoders: Vec<Box<dyn Decoder>>,
    normalizer: Normalizer,
    link: PipelineLink,
    rejections: RejectionWindow,
    /// Repeating log lines of this device, by (warning, cause): a device that reconnects in a
    /// loop logs its first `disconnected` and then one line a minute with the count.
    log_limit: Mutex<LogLimiter<(bool, String)>>,
    noisy: NoisyLineLimiter,
    pub status: Arc<DeviceStatus>,
    events: Vec<DecodeEvent>,
    full_announced: bool,
    /// The last observation id per metric: devices that re-report an unchanged reading on
    /// every poll (IntelliVue NIBP, MEDIBUS) would otherwise publish the same observation, with
    /// the same id, again and again.
    last_ids: crate::int_hash::IntMap<(medgw_protocols::MdcCode, Option<medgw_protocols::observation::VendorCode>), uuid::Uuid>,
    /// The alarm lifecycle and its delivery; behind a lock because liveness events reach it
    /// through [`DeviceRunner::event`], which takes `&self`.
    alarms: Mutex<alarms::DeviceAlarms>,
    /// The device's waves, when they are published (`[waves]`, the device's `waves` key).
    waves: Option<waves::DeviceWaves>,
}

impl DeviceRunner {
    /// The runner of a configured device, with its decoders: the protocol's, or for a
    /// Bluetooth device one per GATT characteristic ([`ble::decoders`]). It cannot fail: the
    /// protocol and zone were resolved when the configuration was read.
    pub fn new(config: &Config, cfg: &DeviceConfig, nomenclature: Arc<Nomenclature>, link: PipelineLink) -> DeviceRunner {
        let decoders = match cfg.protocol {
            DeviceProtocol::Stream(info) => vec![(info.make)(&DecoderOptions {
                poll_period_ms: cfg.poll_period_ms,
                listen_only: cfg.listen_only,
                max_frame_rate: cfg.max_frame_rate,
                waves: cfg.wave_poll.clone(),
            })],
            DeviceProtocol::Ble => ble::decoders(),
        };
        DeviceRunner::build(config, cfg, nomenclature, link, decoders)
    }

    /// A runner with the given decoders (at least one), fed by index with
    /// [`DeviceRunner::feed_values`]; [`DeviceRunner::feed`] feeds the first.
    pub fn with_decoders(
        config: &Config,
        cfg: &DeviceConfig,
        nomenclature: Arc<Nomenclature>,
        link: PipelineLink,
        decoders: Vec<Box<dyn Decoder>>,
    ) -> Result<DeviceRunner, SourceError> {
        if decoders.is_empty() {
            return Err(SourceError::NoDecoder);
        }
        Ok(DeviceRunner::build(config, cfg, nomenclature, link, decoders))
    }

    fn build(
        config: &Config,
        cfg: &DeviceConfig,
        nomenclature: Arc<Nomenclature>,
        link: PipelineLink,
        decoders: Vec<Box<dyn Decoder>>,
    ) -> DeviceRunner {
        let context = DeviceContext {
            gateway: config.gateway.id.clone(),
            name: cfg.name.clone(),
            protocol: cfg.protocol.name().to_string(),
            port: cfg.source.port_name(),
            identity: Default::default(),
            location: Location {
                site: config.gateway.site.clone(),
                unit: config.gateway.unit.clone(),
                room: cfg.room.clone(),
                bed: cfg.bed.clone(),
            },
            patient: cfg.patient.clone(),
            gateway_eui64: config.gateway.eui64,
        };
        let board = Arc::new(alarms::AlarmBoard::new(link.topics.alarm_summary(&context), &cfg.name, &cfg.bed));
        let alarms = alarms::DeviceAlarms::new(
            &context.key(),
            config.mqtt.format,
            nomenclature.clone(),
            board.clone(),
            link.topics.alarm(&context),
            link.aux.clone(),
        )
        .with_alarm_sinks(link.alarm_sinks.clone());
        let waves = link.waves.clone().filter(|_| config.waves_enabled(cfg)).map(|w| {
            let mut ctx = DeviceContext { name: cfg.name.clone(), ..Default::default() };
            ctx.location.bed = cfg.bed.clone();
            waves::DeviceWaves::new(w, link.topics.waves(&ctx), nomenclature.clone())
        });
        DeviceRunner {
            waves,
            cfg: cfg.clone(),
            decoders,
            normalizer: Normalizer::new(context, config.device_zone(cfg), nomenclature),
            link,
            rejections: RejectionWindow::default(),
            log_limit: Mutex::new(LogLimiter::default()),
            noisy: NoisyLineLimiter::default(),
            status: Arc::new(DeviceStatus { alarms: board, ..DeviceStatus::new(cfg) }),
            events: Vec::with_capacity(64),
            full_announced: false,
            last_ids: Default::default(),
            alarms: Mutex::new(alarms),
        }
    }

    /// Attributes this device's readings with the ADT association state of its bed.
    pub fn associate(&mut self, adt: &crate::adt::service::AdtService) {
        let a = crate::normalize::Attributor::new(adt.shared.clone(), adt.receiver.clone(), &self.cfg.bed);
        self.normalizer.set_association(a);
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.link.shutdown.clone()
    }

    pub fn next_wakeup(&self) -> Option<Timestamp> {
        self.decoders.iter().filter_map(|d| d.next_wakeup()).min()
    }

    /// Publishes an event (MQTT, every one) and logs it (rate-limited per kind and cause, see
    /// `crate::log_limit`; rejections are counted per window already).
    pub fn event(&self, e: Event) {
        if e.kind == EventKind::Rejected {
            e.log();
        } else if let Some(suppressed) = self.log_allowed(e.kind.is_warning(), format!("{:?}: {}", e.kind, log_limit::cause(&e.detail))) {
            e.log_repeated(suppressed);
        }
        let topic = self.link.topics.device_events(self.normalizer.context());
        if let Ok(json) = serde_json::to_vec(&e) {
            let _ = self.link.aux.try_send(AuxMessage { topic, payload: Bytes::from(json), retain: false, sticky: false });
        }
        self.alarm_liveness(&e);
    }

    /// A lost or silent device is a technical alert of the device (and ends its alarms with
    /// the reason); it ends when the device is connected or sends again.
    fn alarm_liveness(&self, e: &Event) {
        let now = Timestamp::now();
        let ctx = self.normalizer.context_at(now);
        let Ok(mut alarms) = self.alarms.lock() else { return };
        let d = match e.kind {
            EventKind::Disconnected => alarms.disconnected(&e.detail, &ctx, now),
            EventKind::Silent => alarms.disconnected(&format!("silent: {}", e.detail), &ctx, now),
            EventKind::Connected | EventKind::Resumed => alarms.connected(&ctx, now),
            _ => return,
        };
        drop(alarms);
        self.alarms_dropped(d);
    }

    /// An alarm report the decoders produced from bytes received at `now`.
    fn alarm_report(&self, report: &medgw_protocols::alarm::AlarmReport, now: Timestamp) {
        // The patient of the bed when the device reported it (ADT), as for readings.
        let ctx = self.normalizer.context_at(now);
        let d = match self.alarms.lock() {
            Ok(mut a) => a.report(report, &ctx, now),
            Err(_) => return,
        };
        self.alarms_dropped(d);
    }

    /// The gateway stops: every active alarm of the device ends (reason `shutdown`) and the
    /// retained summary is emptied. Called once the connection loop is done.
    pub fn alarms_shutdown(&self) {
        let now = Timestamp::now();
        let ctx = self.normalizer.context_at(now);
        let d = match self.alarms.lock() {
            Ok(mut a) => a.shutdown(&ctx, now),
            Err(_) => return,
        };
        self.alarms_dropped(d);
    }

    fn alarms_dropped(&self, d: alarms::Delivered) {
        if d.mllp_dropped > 0 {
            if let Some(suppressed) = self.log_allowed(true, "alarm manager queue full".into()) {
                tracing::warn!(
                    device = %self.cfg.name,
                    dropped = d.mllp_dropped,
                    suppressed,
                    "alarm events dropped for an Alarm Manager: its queue is full (it is away or slow)"
                );
            }
        }
        if d.dropped > 0 {
            if let Some(suppressed) = self.log_allowed(true, "alarm queue full".into()) {
                tracing::warn!(
                    device = %self.cfg.name,
                    dropped = d.dropped,
                    suppressed,
                    "alarm events dropped: the sink's queue is full (the broker is away or slow); the retained summary carries the state"
                );
            }
        }
    }

    pub fn device_event(&self, kind: EventKind, detail: impl Into<String>) -> Event {
        Event::device(kind, &self.cfg.name, &self.cfg.bed, detail)
    }

    /// Publishes the device's FHIR Device resource (retained).
    pub fn publish_device(&self) {
        let ctx = self.normalizer.context();
        let _ = self.link.aux.try_send(AuxMessage {
            topic: self.link.topics.device(ctx),
            payload: Bytes::from(fhir::device(ctx)),
            retain: true,
            sticky: true,
        });
    }

    /// The connection opened.
    pub async fn start(&mut self, now: Timestamp) -> Result<Vec<Vec<u8>>, Stop> {
        self.events.clear();
        let mut events = std::mem::take(&mut self.events);
        for d in &mut self.decoders {
            d.start(now, &mut events);
        }
        let r = self.process(&mut events, now).await;
        self.events = events;
        r
    }

    /// Bytes arrived at `now`.
    pub async fn feed(&mut self, bytes: &[u8], now: Timestamp) -> Result<Vec<Vec<u8>>, Stop> {
        let mut events = std::mem::take(&mut self.events);
        events.clear();
        self.decoders[0].feed(bytes, now, &mut events);
        let r = self.process(&mut events, now).await;
        self.events = events;
        r
    }

    /// Whole values that arrived at `now`, each for the decoder at its index (a Bluetooth
    /// device: one GATT characteristic value each), with quality flags the transport knows and
    /// the value does not say (a record fetched from the device's storage). Everything they
    /// decode to is committed as one batch.
    pub async fn feed_values(&mut self, values: &[(usize, &[u8], Flags)], now: Timestamp) -> Result<Vec<Vec<u8>>, Stop> {
        let mut events = std::mem::take(&mut self.events);
        events.clear();
        for (index, value, flags) in values {
            let Some(decoder) = self.decoders.get_mut(*index) else { continue };
            let first = events.len();
            decoder.feed(value, now, &mut events);
            if !flags.is_empty() {
                for e in &mut events[first..] {
                    if let DecodeEvent::Measurement(m) = e {
                        m.flags |= *flags;
                    }
                }
            }
        }
        let r = self.process(&mut events, now).await;
        self.events = events;
        r
    }

    /// Something learnt about the device outside its decoders (a Bluetooth device's Device
    /// Information), handled like a decoder's event.
    pub async fn report(&mut self, event: DecodeEvent, now: Timestamp) -> Result<Vec<Vec<u8>>, Stop> {
        let mut events = vec![event];
        self.process(&mut events, now).await
    }

    /// The device context observations are published with (identity, location, patient).
    pub fn context(&self) -> &Arc<DeviceContext> {
        self.normalizer.context()
    }

    /// Asks every decoder for its events with `ask` (a timer, a release, an abort) and handles
    /// them as fed bytes are handled.
    async fn each_decoder(
        &mut self,
        now: Timestamp,
        ask: fn(&mut dyn Decoder, Timestamp, &mut Vec<DecodeEvent>),
    ) -> Result<Vec<Vec<u8>>, Stop> {
        let mut events = std::mem::take(&mut self.events);
        events.clear();
        for d in &mut self.decoders {
            ask(d.as_mut(), now, &mut events);
        }
        let r = self.process(&mut events, now).await;
        self.events = events;
        r
    }

    /// A protocol timer is due.
    pub async fn poll(&mut self, now: Timestamp) -> Result<Vec<Vec<u8>>, Stop> {
        self.each_decoder(now, |d, now, out| d.poll(now, out)).await
    }

    /// The gateway is stopping with the connection open: the requests that end the protocol
    /// session (IntelliVue: release request), if any. See [`DeviceRunner::releasing`].
    pub async fn release(&mut self, now: Timestamp) -> Result<Vec<Vec<u8>>, Stop> {
        self.each_decoder(now, |d, now, out| d.release(now, out)).await
    }

    /// True while a release waits for the device's answer.
    pub fn releasing(&self) -> bool {
        self.decoders.iter().any(|d| d.releasing())
    }

    /// The connection is dropped for an error: the requests that abort the protocol session
    /// (IntelliVue: abort), if any.
    pub async fn abort(&mut self, now: Timestamp) -> Result<Vec<Vec<u8>>, Stop> {
        self.each_decoder(now, |d, now, out| d.abort(now, out)).await
    }

    /// The connection ended (lost, silent, shutdown): the open wave segments are closed and
    /// published; the next segment starts after a gap.
    pub fn end_waves(&mut self) {
        if let Some(waves) = self.waves.as_mut() {
            waves.flush();
            let n = &self.normalizer;
            waves.publish(&|t| n.context_at(t), &self.status.wave, Timestamp::now());
        }
    }

    /// Whether a log line of this device about `cause` is to be written now:
    /// `Some(lines like it counted but not written before it)`. For warnings that can repeat
    /// once per connection or per message.
    pub fn log_allowed(&self, warning: bool, cause: String) -> Option<u64> {
        self.log_limit.lock().ok().and_then(|mut l| l.report((warning, cause), std::time::Instant::now()))
    }

    /// Reports rejections collected since the last call, and the log lines counted but not
    /// written (called periodically).
    pub fn flush_rejections(&mut self) {
        if let Some(e) = self.rejections.take(&self.cfg.name, &self.cfg.bed) {
            self.event(e);
        }
        self.flush_repeated(false);
    }

    /// Writes one summary line per log line counted but not written: those an interval old,
    /// or all of them (`all`, when the device stops).
    pub fn flush_repeated(&self, all: bool) {
        let now = std::time::Instant::now();
        let due = self.log_limit.lock().map(|mut l| if all { l.drain() } else { l.due(now) }).unwrap_or_default();
        for ((warning, cause), suppressed) in due {
            if warning {
                tracing::warn!(device = %self.cfg.name, %cause, suppressed, "repeated log lines not written");
            } else {
                tracing::info!(device = %self.cfg.name, %cause, suppressed, "repeated log lines not written");
            }
        }
    }

    /// Observations are committed to the buffer before anything is sent to the device, so an
    /// acknowledgement to a device (medgw link) always follows the durable write.
    async fn process(&mut self, events: &mut Vec<DecodeEvent>, now: Timestamp) -> Result<Vec<Vec<u8>>, Stop> {
        let mut batch = Vec::new();
        let mut transmit = Vec::new();
        self.normalizer.observe_clock(
            events.iter().filter_map(|e| match e {
                DecodeEvent::Measurement(m) => Some(m),
                _ => None,
            }),
            now,
        );
        for e in events.drain(..) {
            match e {
                DecodeEvent::Measurement(m) => {
                    let o = self.normalizer.judged(m, now);
                    let key = (o.reading.metric, o.reading.vendor.clone());
                    if self.last_ids.get(&key) == Some(&o.reading.id) {
                        // The same reading again (same device, metric, device time, sequence).
                        continue;
                    }
                    self.last_ids.insert(key, o.reading.id);
                    batch.push(o);
                }
                DecodeEvent::Identity(id) => {
                    if self.normalizer.identity(&id) {
                        self.publish_device();
                        let ctx = self.normalizer.context();
                        self.event(self.device_event(EventKind::Identity, format!("identity {}", ctx.key())));
                    }
                }
                DecodeEvent::Rejected { offset, error } => {
                    self.status.rejected.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut m) = self.status.rejected_by_reason.lock() {
                        *m.entry(error.reason()).or_default() += 1;
                    }
                    tracing::debug!(device = %self.cfg.name, offset, %error, "frame rejected");
                    self.rejections.record(now, error.reason());
                }
                DecodeEvent::Transmit(bytes) => {
                    if self.cfg.listen_only {
                        tracing::debug!(device = %self.cfg.name, "listen-only: request not sent");
                    } else {
                        transmit.push(bytes);
                    }
                }
                DecodeEvent::SequenceGap { expected, found } => {
                    self.status.gaps.fetch_add(1, Ordering::Relaxed);
                    let last = self.status.last_data.lock().ok().and_then(|g| *g).unwrap_or(now);
                    self.event(
                        self.device_event(
                            EventKind::SequenceGap,
                            format!(
                                "expected sequence {expected}, got {found}: {} readings lost before the gateway",
                                found.wrapping_sub(expected)
                            ),
                        )
                        .with_span(last, now)
                        .with_count(found.wrapping_sub(expected) as u64),
                    );
                }
                DecodeEvent::Session(s) => self.event(self.device_event(EventKind::Session, s)),
                // Published at once, before the batch's commit: alarms do not wait on the buffer.
                DecodeEvent::Alarms(r) => self.alarm_report(&r, now),
                DecodeEvent::NoisyLine(why) => {
                    if let Some(e) = self.noisy.report(now, why, &self.cfg.name, &self.cfg.bed) {
                        self.event(e);
                    }
                }
                // The device's own patient id (IntelliVue demographics): checked against the
                // bed's ADT patient; a disagreement is a `patient-mismatch` event (published by
                // the ADT receiver) and holds readings from then on back from any patient.
                // Without `[adt]` there is nothing to check it against. Never logged above
                // debug, and then without the id: it identifies a person.
                DecodeEvent::PatientId(id) => match self.normalizer.association() {
                    Some(a) => {
                        if a.device_reported(&id, now).is_some() {
                            tracing::debug!(device = %self.cfg.name, "device-reported patient id judged against the ADT patient");
                        }
                    }
                    None => tracing::debug!(device = %self.cfg.name, "device-reported patient id (no ADT feed to check it against)"),
                },
                DecodeEvent::Wave(w) => match self.waves.as_mut() {
                    Some(waves) => waves.push(&w, &self.cfg.name),
                    None => tracing::trace!(device = %self.cfg.name, samples = w.samples.len(), "waves not published for this device"),
                },
            }
        }
        if let Some(waves) = self.waves.as_mut() {
            waves.idle(now);
            let n = &self.normalizer;
            waves.publish(&|t| n.context_at(t), &self.status.wave, now);
        }
        if let Some(session) = self.decoders.iter().find_map(|d| d.session_state()) {
            if let Ok(mut g) = self.status.session.lock() {
                *g = Some(session);
            }
        }
        if !batch.is_empty() {
            self.commit(batch, now).await?;
        }
        Ok(transmit)
    }

    /// The storage thread hands the batch to the sink once it is durable (live hand-over), and
    /// gives it back for the accept log and the status page.
    async fn commit(&mut self, mut batch: Vec<Observation>, now: Timestamp) -> Result<(), Stop> {
        let n = batch.len() as u64;
        let live = self.link.live.clone();
        let outcome = loop {
            let (result, back) = self.link.buffer.append_with(std::mem::take(&mut batch), Some(live.clone())).await;
            batch = back;
            if batch.is_empty() {
                // Only when the buffer closed with the batch: nothing to offer again.
                tracing::error!(device = %self.cfg.name, observations = n, "the buffer closed: these observations were not accepted");
                return Err(Stop::Shutdown);
            }
            match result {
                Ok(o) if o.refused_full => {
                    // Policy stop-reading: hold this batch and stop reading the device until the
                    // broker drains the buffer. Nothing is deleted.
                    if !self.full_announced {
                        self.full_announced = true;
                        self.event(Event::device(
                            EventKind::BufferFull,
                            &self.cfg.name,
                            &self.cfg.bed,
                            "buffer full: not reading devices until it drains",
                        ));
                    }
                }
                Ok(o) => break o,
                Err(e) => tracing::error!(device = %self.cfg.name, error = %e, "buffer append failed; retrying"),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = self.link.shutdown.cancelled() => {
                    tracing::error!(device = %self.cfg.name, observations = n, "shutdown while the buffer was full: these observations were not accepted");
                    return Err(Stop::Shutdown);
                }
            }
        };
        self.full_announced = false;
        if let Some(log) = accept_log() {
            // Written after the commit returned: every id here was accepted (durable).
            let mut text = String::with_capacity(outcome.rowids.len() * 40);
            for o in &batch {
                text.push_str(&o.reading.id.to_string());
                text.push('\n');
            }
            if let Ok(mut f) = log.lock() {
                use std::io::Write;
                if let Err(e) = f.write_all(text.as_bytes()) {
                    if let Some(suppressed) = self.log_allowed(true, "accept log".into()) {
                        let suppressed = (suppressed > 0).then_some(suppressed);
                        tracing::warn!(device = %self.cfg.name, error = %e, suppressed, "cannot write the accept log (MEDGW_ACCEPT_LOG)");
                    }
                }
            }
        }
        if outcome.dropped > 0 {
            let mut e = Event::gateway(EventKind::BufferDropped, "buffer full: oldest observations deleted (policy drop-oldest)")
                .with_count(outcome.dropped);
            if let Some((a, b)) = outcome.dropped_span {
                e = e.with_span(a, b);
            }
            e.log();
            if let Ok(json) = serde_json::to_vec(&e) {
                let _ = self.link.aux.try_send(AuxMessage {
                    topic: self.link.topics.gateway_events(),
                    payload: Bytes::from(json),
                    retain: false,
                    sticky: false,
                });
            }
        }
        self.status.observations.fetch_add(n, Ordering::Relaxed);
        if let Ok(mut g) = self.status.last_data.lock() {
            *g = Some(now);
        }
        if let Ok(mut latest) = self.status.latest.lock() {
            for observation in batch.into_iter().take(outcome.rowids.len()) {
                latest.retain(|o| o.reading.metric != observation.reading.metric || o.reading.vendor != observation.reading.vendor);
                latest.push(observation);
            }
        }
        Ok(())
    }
}
