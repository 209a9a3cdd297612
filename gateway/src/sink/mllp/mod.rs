//! The MLLP sink: buffered observations out to a hospital interface engine as HL7 v2 (IHE
//! PCD-01 `ORU^R01`, one message per observation set), each deleted from the buffer for this
//! sink only when the engine acknowledged it (issue 15; docs/deployment.md).
//!
//! ```text
//!  buffer ──read_after_for(sink)──▶ Outbox ──set──▶ DeliverySession ──Write──▶ engine
//!    ▲                              (cursor)        (sans-IO: window,   ◀─ACK─┘
//!    ├── ack_for(sink, rows) ◀──────── Acked ──────  ACK rules, time-outs,
//!    └── dead_letter(sink, rows) ◀─── DeadLettered   back-off, resends)
//! ```
//!
//! A thin driver like `mqtt/mod.rs`: every decision is the session's
//! (`medgw_protocols::hl7::delivery`); this task gives it socket reads, the rows and the time,
//! and carries out its actions. Rows come as the MQTT sink's do: handed over live by the
//! sources as soon as they are committed (`buffer/live.rs`, this sink's own queue), and read from
//! the buffer by this sink's own cursor after a start, while the engine was away, or when the
//! live queue overflowed — so a reading goes to the engine as soon as its commit returns, not at
//! a poll. The session keeps what is in flight
//! across reconnects and resends the same bytes (same MSH-10), so the outbox is never rescanned
//! for them. Acknowledgements are recorded in the buffer beside the sending, not before the next
//! message: the rows of every ACK that came while one record was being written go in the next
//! (one transaction, one fsync, however many messages), so the engine's pace, not the disk's,
//! sets the rate. One not yet durable at a crash only means its message is sent again after the
//! restart, with the same MSH-10. A dead letter is made durable before the next message is
//! taken. A row leaves the buffer only when every configured sink has it (`buffer/`).

pub mod alarms;
mod link;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use medgw_protocols::encode::hl7v2::{self, SetLimits};
use medgw_protocols::hl7::delivery::{Action, DeadLetter, DeliverySession};
use medgw_protocols::nomenclature::Nomenclature;
use medgw_protocols::observation::Observation;
use medgw_protocols::Timestamp;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::buffer::live::LiveReceiver;
use crate::buffer::{BufferError, BufferHandle, Entry, RowId};
use crate::config::{MllpSinkConfig, Replay};
use crate::events::{Event, EventKind};
use crate::sink::mqtt::AuxMessage;
use crate::sink::outbox::Outbox;
use link::{Link, Opened};

/// How often the live queue's overflow flag is looked at while there is work pending (it is
/// also looked at with every row handed over), as in the MQTT sink.
pub const OVERFLOW_CHECK: Duration = Duration::from_millis(200);
/// Messages offered to the session beyond its in-flight window, so the next is ready at once.
const QUEUE_AHEAD: usize = 4;
/// Live rows taken from the queue at one wake-up at most.
const LIVE_BATCH: usize = 1024;
/// Rows in one PCD-01 message at most (as the MQTT sink).
const MAX_SET_ROWS: usize = 256;
/// How long shutdown waits for ACKs of messages in flight.
const DRAIN: Duration = Duration::from_secs(5);

/// Counters of one MLLP sink for the status page and metrics.
#[derive(Debug, Default)]
pub struct MllpStats {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub connected: AtomicBool,
    /// Messages written and not yet resolved (ACK awaited or retry scheduled).
    pub in_flight: AtomicU64,
    /// Messages written, resends included.
    pub sent: AtomicU64,
    /// Messages and observations the receiver accepted (AA, or CA as the final ACK).
    pub acked_messages: AtomicU64,
    pub acked_rows: AtomicU64,
    /// ACKs that refused or failed a message: AR/CR and AE/CE (each retry counts).
    pub rejected: AtomicU64,
    /// Messages and observations given up after AR/CR or AE retries (kept as dead letters).
    pub dead_lettered_messages: AtomicU64,
    pub dead_lettered_rows: AtomicU64,
    /// Connections opened after the first.
    pub reconnects: AtomicU64,
    /// Connections closed because no ACK came in time (the message is resent).
    pub ack_timeouts: AtomicU64,
}

impl MllpStats {
    pub fn new(config: &MllpSinkConfig) -> MllpStats {
        MllpStats { name: config.name.clone(), host: config.host.clone(), port: config.port, ..MllpStats::default() }
    }
}

/// Everything one MLLP sink needs.
pub struct MllpParams {
    pub config: MllpSinkConfig,
    /// This sink's queue of rows committed and handed over live (`buffer/live.rs`).
    pub live: LiveReceiver,
    /// [`OVERFLOW_CHECK`]; tests stretch it to show that no poll is needed.
    pub overflow_check: Duration,
    /// Built before the gateway starts (as for MQTT): unusable TLS files stop `medgw run`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub replay: Replay,
    pub buffer: BufferHandle,
    pub nomenclature: Arc<Nomenclature>,
    /// Gateway events (`mllp-dead-letter`) go out over MQTT.
    pub aux: mpsc::Sender<AuxMessage>,
    pub events_topic: String,
    pub shutdown: CancellationToken,
    pub stats: Arc<MllpStats>,
}

/// A backlog read under way.
struct BacklogRead(tokio::task::JoinHandle<(RowId, usize, Result<Vec<Entry>, BufferError>)>);

impl Drop for BacklogRead {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A write of acknowledged rows to the buffer under way: how many rows, and its outcome.
type AckWrite = tokio::task::JoinHandle<(usize, Result<(), BufferError>)>;

/// Runs the sink until shutdown; then waits up to [`DRAIN`] for the ACKs of what is in flight.
pub async fn run(mut p: MllpParams) {
    let sink: Arc<str> = Arc::from(p.config.name.as_str());
    let mut session: DeliverySession<Vec<RowId>> = DeliverySession::new(p.config.delivery());
    let window = usize::from(p.config.max_in_flight.max(1)) + QUEUE_AHEAD;
    let mut outbox = Outbox::new(p.replay);
    let mut link = Link::new(sink.clone(), "the MLLP receiver");
    let mut backlog: Option<BacklogRead> = None;
    let mut actions: Vec<Action<Vec<RowId>>> = Vec::new();
    // Rows the engine acknowledged, not yet handed to the buffer; the write under way.
    let mut acked: Vec<RowId> = Vec::new();
    let mut ack_write: Option<AckWrite> = None;
    let mut draining: Option<tokio::time::Instant> = None;
    let mut live_open = true;
    let mut overflow_check = tokio::time::interval_at(tokio::time::Instant::now() + p.overflow_check, p.overflow_check);
    overflow_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!(sink = %sink, host = %p.config.host, port = p.config.port, "MLLP sink started");
    loop {
        if p.live.overflow.swap(false, Ordering::Relaxed) {
            // Some committed rows did not fit in the live queue: the backlog cursor finds them.
            outbox.live_overflowed();
        }
        // First what the session asked for (an ACK just read may have released the next
        // message, which is written before anything new is encoded: with one in flight that is
        // the round trip), then offer what fits in the window (not while draining: only what is
        // in flight matters), then what that asked for.
        for refill in [false, true] {
            if refill && draining.is_none() {
                while session.in_flight() + session.queued() < window {
                    let Some(set) = next_set(&mut outbox) else { break };
                    offer(&p, &sink, &mut session, &mut outbox, set, &mut actions).await;
                }
            }
            while !actions.is_empty() {
                for a in std::mem::take(&mut actions) {
                    act(&p, &sink, a, &mut session, &mut outbox, &mut link, &mut acked, &mut actions).await;
                }
            }
        }
        p.stats.in_flight.store(session.in_flight() as u64, Ordering::Relaxed);
        p.stats.connected.store(link.is_open() && session.is_connected(), Ordering::Relaxed);
        if let Some(until) = draining {
            if session.in_flight() == 0 || tokio::time::Instant::now() >= until {
                if session.in_flight() > 0 {
                    tracing::warn!(sink = %sink, in_flight = session.in_flight(), "MLLP sink stopping with messages unacknowledged: they stay buffered and are sent again at the next start");
                }
                link.close().await;
                // Every acknowledgement recorded before the buffer closes.
                if let Some(w) = ack_write.take() {
                    ack_written(&sink, w.await);
                }
                if !acked.is_empty() {
                    let r = p.buffer.ack_for(sink.clone(), std::mem::take(&mut acked)).await;
                    ack_written(&sink, Ok((0, r)));
                }
                p.stats.connected.store(false, Ordering::Relaxed);
                tracing::info!(sink = %sink, "MLLP sink stopped");
                return;
            }
        }
        if backlog.is_none() && draining.is_none() {
            if let Some((after, limit)) = outbox.backlog_request() {
                let (buffer, sink) = (p.buffer.clone(), sink.clone());
                backlog = Some(BacklogRead(tokio::spawn(async move { (after, limit, buffer.read_after_for(sink, after, limit).await) })));
            }
        }
        if ack_write.is_none() && !acked.is_empty() {
            let (buffer, sink, rows) = (p.buffer.clone(), sink.clone(), std::mem::take(&mut acked));
            ack_write = Some(tokio::spawn(async move { (rows.len(), buffer.ack_for(sink, rows).await) }));
        }
        let wakeup = session.next_wakeup().map(|t| {
            let ms = (t.0 - Timestamp::now().0).max(0) as u64;
            tokio::time::Instant::now() + Duration::from_millis(ms)
        });
        let deadline = match (wakeup, draining) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        tokio::select! {
            biased;
            n = link.read(), if link.is_open() => link.received(n, &mut session, &mut actions),
            r = async { ack_write.as_mut().expect("guarded by is_some").await }, if ack_write.is_some() => {
                ack_write = None;
                ack_written(&sink, r);
            }
            r = async { (&mut backlog.as_mut().expect("guarded by is_some").0).await }, if backlog.is_some() => {
                backlog = None;
                match r {
                    Ok((after, limit, Ok(entries))) => outbox.backlog_read(after, entries, limit),
                    Ok((_, _, Err(e))) => tracing::error!(sink = %sink, error = %e, "MLLP sink: buffer read failed; trying again"),
                    Err(e) => tracing::error!(sink = %sink, error = %e, "MLLP sink: backlog read task failed; reading again"),
                }
            }
            _ = async { tokio::time::sleep_until(deadline.expect("guarded by is_some")).await }, if deadline.is_some() => {
                session.poll(Timestamp::now(), &mut actions);
            }
            // Rows just committed. Taken while the engine is reachable (or nothing waits for
            // it, so the first row opens the connection); while it is away they are left to the
            // backlog cursor, which reads them in order once it is back, as the MQTT sink does.
            e = p.live.rows.recv(), if live_open && draining.is_none() && outbox.wants_live() => match e {
                Some(e) => {
                    let take = session.is_connected() || session.is_idle();
                    for e in std::iter::once(e).chain(std::iter::from_fn(|| p.live.rows.try_recv().ok())).take(LIVE_BATCH) {
                        if take && outbox.wants_live() {
                            outbox.push_live(e);
                        } else {
                            outbox.live_overflowed();
                        }
                    }
                }
                None => live_open = false,
            },
            // A safety net only: the flag is looked at on every turn of this loop.
            _ = overflow_check.tick(), if !outbox.idle() || !session.is_idle() => {}
            _ = p.shutdown.cancelled(), if draining.is_none() => {
                draining = Some(tokio::time::Instant::now() + DRAIN);
                backlog = None;
            }
        }
    }
}

/// The next PCD-01 set from the outbox: the first row and the rows queued right behind it of
/// the same device and time.
fn next_set(outbox: &mut Outbox) -> Option<Vec<Entry>> {
    let first = outbox.next_entry()?;
    let mut cursor = hl7v2::SetCursor::start(&first.observation, SetLimits::default());
    let mut set = vec![first];
    while set.len() < MAX_SET_ROWS {
        let taken = {
            let obs: Vec<&Observation> = set.iter().map(|e| &e.observation).collect();
            outbox.next_if(|e| cursor.admit(obs.iter().copied(), &e.observation))
        };
        match taken {
            Some(e) => set.push(e),
            None => break,
        }
    }
    Some(set)
}

/// Encodes a set and offers it to the session. A set that cannot be made into a message the
/// session takes is dead-lettered at once (it never would be).
async fn offer(
    p: &MllpParams,
    sink: &Arc<str>,
    session: &mut DeliverySession<Vec<RowId>>,
    outbox: &mut Outbox,
    set: Vec<Entry>,
    actions: &mut Vec<Action<Vec<RowId>>>,
) {
    let rows: Vec<RowId> = set.iter().map(|e| e.rowid).collect();
    let obs: Vec<&Observation> = set.iter().map(|e| &e.observation).collect();
    let control_id = hl7v2::set_message_id(&obs).to_string();
    let problem = match hl7v2::oru_r01_set(&obs, &p.nomenclature, Timestamp::now()) {
        None => "the set could not be encoded as an ORU^R01".to_string(),
        Some(message) => match session.offer(message.into_bytes(), rows.clone(), Timestamp::now(), actions) {
            Ok(()) => return,
            Err(medgw_protocols::hl7::delivery::OfferError::DuplicateControlId(id)) => {
                // Already with the session (cannot happen while the outbox skips rows in
                // flight): leave the rows to be read again.
                tracing::error!(sink = %sink, control_id = %id, "set offered twice; left in the buffer");
                for r in rows {
                    outbox.refused(r);
                }
                return;
            }
            Err(e) => e.to_string(),
        },
    };
    let d = DeadLetter {
        tag: rows,
        control_id,
        kind: medgw_protocols::hl7::delivery::AckKind::AR,
        reason: format!("not sent: {problem}"),
        sends: 0,
    };
    dead_letter(p, sink, outbox, d).await;
}

/// Carries out one action of the session.
#[allow(clippy::too_many_arguments)]
async fn act(
    p: &MllpParams,
    sink: &Arc<str>,
    a: Action<Vec<RowId>>,
    session: &mut DeliverySession<Vec<RowId>>,
    outbox: &mut Outbox,
    link: &mut Link,
    acked: &mut Vec<RowId>,
    actions: &mut Vec<Action<Vec<RowId>>>,
) {
    match a {
        Action::Connect => {
            if let Opened::Connected { again: true } = link.connect(&p.config, p.tls.as_ref(), None, &p.shutdown, session, actions).await {
                p.stats.reconnects.fetch_add(1, Ordering::Relaxed);
            }
        }
        Action::Write(bytes) => {
            if link.write(&bytes, session, actions).await {
                p.stats.sent.fetch_add(1, Ordering::Relaxed);
            }
        }
        Action::Close(reason) => {
            p.stats.ack_timeouts.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(sink = %sink, ?reason, "no ACK in time: connection closed, the message will be sent again (same control id)");
            link.close().await;
        }
        Action::Acked { tag, control_id, sends } => {
            for &r in &tag {
                outbox.acked(r);
            }
            p.stats.acked_messages.fetch_add(1, Ordering::Relaxed);
            p.stats.acked_rows.fetch_add(tag.len() as u64, Ordering::Relaxed);
            tracing::debug!(sink = %sink, control_id, sends, rows = tag.len(), "message acknowledged");
            acked.extend(tag);
        }
        Action::DeadLettered(d) => {
            p.stats.rejected.fetch_add(1, Ordering::Relaxed);
            dead_letter(p, sink, outbox, d).await;
        }
        Action::RetryScheduled { control_id, retry, reason, .. } => {
            p.stats.rejected.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(sink = %sink, control_id, retry, reason, "the receiver answered with an error: retrying after the back-off");
        }
        Action::Ignored(why) => tracing::debug!(sink = %sink, ?why, "inbound MLLP frame ignored"),
    }
}

/// Logs a failed write of acknowledged rows.
fn ack_written(sink: &Arc<str>, r: Result<(usize, Result<(), BufferError>), tokio::task::JoinError>) {
    match r {
        Ok((_, Ok(()))) => {}
        // Not lost: the rows stay and are sent again after a restart (same control id).
        Ok((rows, Err(e))) => tracing::warn!(sink = %sink, rows, error = %e, "acknowledgement not recorded in the buffer"),
        Err(e) => tracing::warn!(sink = %sink, error = %e, "acknowledgement write task failed"),
    }
}

/// Keeps a refused message's rows in the dead-letter table (this sink is done with them), counts
/// it and publishes a `mllp-dead-letter` gateway event (sink, control id, reason; no patient data
/// beyond what the receiver wrote in its ACK text).
async fn dead_letter(p: &MllpParams, sink: &Arc<str>, outbox: &mut Outbox, d: DeadLetter<Vec<RowId>>) {
    for &r in &d.tag {
        outbox.acked(r);
    }
    let rows = d.tag.len() as u64;
    p.stats.dead_lettered_messages.fetch_add(1, Ordering::Relaxed);
    p.stats.dead_lettered_rows.fetch_add(rows, Ordering::Relaxed);
    if let Err(e) = p.buffer.dead_letter(sink.clone(), d.tag, d.control_id.clone(), d.reason.clone()).await {
        tracing::error!(sink = %sink, control_id = %d.control_id, error = %e, "dead letter not recorded in the buffer; it will be sent again after a restart");
    }
    let e = Event::gateway(
        EventKind::MllpDeadLetter,
        format!("sink {sink}: message {} refused after {} sends ({}); kept as a dead letter", d.control_id, d.sends, d.reason),
    )
    .with_count(rows)
    .with_sink(sink, &d.control_id);
    e.log();
    if let Ok(json) = serde_json::to_vec(&e) {
        let _ = p.aux.try_send(AuxMessage { topic: p.events_topic.clone(), payload: json.into(), retain: false, sticky: false });
    }
}

/// The names the buffer tracks delivery by: the MQTT sink first, then each `[[sink]]`.
pub fn sink_names(config: &crate::config::Config) -> Vec<String> {
    let mut names = vec![crate::sink::MQTT_SINK.to_string()];
    for s in &config.sinks {
        match s {
            // A sink carrying alarms only never reads the buffer: rows do not wait for it.
            crate::config::SinkConfig::Mllp(m) if m.carries.observations => names.push(m.name.clone()),
            crate::config::SinkConfig::Mllp(_) => {}
        }
    }
    names
}

/// Per-sink counters by name, for the status page.
pub type MllpSinks = Vec<Arc<MllpStats>>;

#[cfg(all(test, feature = "tools"))]
mod tests;
