//! Alarm events to an Alarm Manager over MLLP (issue 16, item 4): every alarm lifecycle event
//! as IHE PCD-04 `ORU^R40` to each `[[sink]]` with `carries` including `"alarms"`, acknowledged
//! per HL7 by the same sans-IO [`DeliverySession`] that delivers observations.
//!
//! ```text
//!  DeviceAlarms ──try_send──▶ bounded queue ──▶ DeliverySession ──Write──▶ Alarm Manager
//!  (every device)  (full: dropped, counted)      (window, ACK rules, ◀─ACK──┘
//!                                                 time-outs, resends, back-off)
//! ```
//!
//! Alarms are not written to the disk buffer (docs/alarms.md, "Precedence and loss"), so this
//! task has its own connection and its own queue, fed in memory by the devices' trackers: an
//! observation backlog (or an observation held by an AE back-off) on the same receiver never
//! stands in front of an alarm. One queue for all devices, read in order, so each device's
//! events arrive in the order they happened (with `max_in_flight = 1`, the default, strictly).
//! What the ACKs do:
//! - `AA` / `CA`: delivered.
//! - `AR` / `CR`: refused; logged, counted ([`AlarmSinkStats::refused`]) and published as an
//!   `mllp-alarm-refused` gateway event; not kept (there is no dead-letter row for a message
//!   that was never in the buffer).
//! - `AE` / `CE`: resent after the back-off, then, after `ae_retries`, given up: counted
//!   ([`AlarmSinkStats::failed`]) and evented the same way.
//! - No ACK in time, or the connection lost: the session resends the same bytes (same MSH-10)
//!   on the next connection; the receiver can deduplicate.
//!
//! While the Alarm Manager is away, events wait in the queue ([`QUEUE`] events, then each new
//! one is dropped and counted, as on the MQTT path).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use medgw_protocols::hl7::delivery::{Action, DeadLetter, DeliverySession};
use medgw_protocols::Timestamp;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::link::{Link, Opened};
use crate::config::MllpSinkConfig;
use crate::events::{Event, EventKind};
use crate::sink::mqtt::AuxMessage;

/// Alarm events waiting for one Alarm Manager at most; beyond, new events are dropped (counted).
pub const QUEUE: usize = 1024;
/// Messages offered to the session beyond its in-flight window.
const QUEUE_AHEAD: usize = 4;
/// How long shutdown waits for the last events (the `shutdown` ends) to be acknowledged.
const DRAIN: Duration = Duration::from_secs(5);

/// One alarm lifecycle event as PCD-04, on its way to the Alarm Managers.
#[derive(Debug, Clone)]
pub struct AlarmMessage {
    /// MSH-10 (the same for a resend).
    pub control_id: String,
    /// The `ORU^R40` in ER7, segments ended by CR.
    pub er7: Arc<str>,
    /// The configured device name, for logs and events.
    pub device: Arc<str>,
}

/// Counters of one alarm-carrying sink for the status API and metrics.
#[derive(Debug, Default)]
pub struct AlarmSinkStats {
    pub name: String,
    pub connected: AtomicBool,
    /// Events in the queue or with the session (not yet acknowledged or given up).
    pub waiting: AtomicU64,
    /// Messages written, resends included.
    pub sent: AtomicU64,
    /// Events the Alarm Manager accepted (AA, CA).
    pub acked: AtomicU64,
    /// Events refused with AR/CR.
    pub refused: AtomicU64,
    /// Events given up after the AE/CE retries.
    pub failed: AtomicU64,
    /// Events dropped because the queue was full (the Alarm Manager away too long).
    pub dropped: AtomicU64,
    pub reconnects: AtomicU64,
    pub ack_timeouts: AtomicU64,
}

impl AlarmSinkStats {
    /// A snapshot for `/api/status` (`alarm_sinks`).
    pub fn report(&self) -> AlarmSinkReport {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        AlarmSinkReport {
            name: self.name.clone(),
            connected: self.connected.load(Ordering::Relaxed),
            waiting: n(&self.waiting),
            sent: n(&self.sent),
            acked: n(&self.acked),
            refused: n(&self.refused),
            failed: n(&self.failed),
            dropped: n(&self.dropped),
            reconnects: n(&self.reconnects),
            ack_timeouts: n(&self.ack_timeouts),
        }
    }
}

/// [`AlarmSinkStats`] as `/api/status` shows them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AlarmSinkReport {
    pub name: String,
    pub connected: bool,
    pub waiting: u64,
    pub sent: u64,
    pub acked: u64,
    pub refused: u64,
    pub failed: u64,
    pub dropped: u64,
    pub reconnects: u64,
    pub ack_timeouts: u64,
}

/// The alarm sinks' queues, one clone in every device's alarm half.
#[derive(Clone, Default)]
pub struct AlarmFeed {
    sinks: Vec<(mpsc::Sender<AlarmMessage>, Arc<AlarmSinkStats>)>,
}

impl AlarmFeed {
    /// Whether any sink carries alarms (else nothing is encoded for them).
    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }

    /// Adds a sink; its task reads the returned receiver.
    pub fn add(&mut self, stats: Arc<AlarmSinkStats>) -> mpsc::Receiver<AlarmMessage> {
        let (tx, rx) = mpsc::channel(QUEUE);
        self.sinks.push((tx, stats));
        rx
    }

    /// Queues `m` for every sink without waiting; returns how many sinks had no room (each
    /// counted in its `dropped`).
    pub fn send(&self, m: &AlarmMessage) -> u64 {
        let mut dropped = 0;
        for (tx, stats) in &self.sinks {
            match tx.try_send(m.clone()) {
                Ok(()) => {
                    stats.waiting.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => {
                    stats.dropped.fetch_add(1, Ordering::Relaxed);
                    dropped += 1;
                }
            }
        }
        dropped
    }
}

/// Everything one alarm sink task needs.
pub struct AlarmSinkParams {
    pub config: MllpSinkConfig,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub rx: mpsc::Receiver<AlarmMessage>,
    /// Gateway events (`mllp-alarm-refused`) go out over MQTT.
    pub aux: mpsc::Sender<AuxMessage>,
    pub events_topic: String,
    pub shutdown: CancellationToken,
    pub stats: Arc<AlarmSinkStats>,
}

/// What the session carries back with each outcome.
type Tag = Arc<str>;

/// Runs until shutdown, then sends what is still queued (the devices' `shutdown` ends) for up
/// to [`DRAIN`].
pub async fn run(mut p: AlarmSinkParams) {
    let sink: Arc<str> = Arc::from(p.config.name.as_str());
    let mut session: DeliverySession<Tag> = DeliverySession::new(p.config.delivery());
    let window = usize::from(p.config.max_in_flight.max(1)) + QUEUE_AHEAD;
    let mut link = Link::new(sink.clone(), "the Alarm Manager");
    let mut actions: Vec<Action<Tag>> = Vec::new();
    let mut draining: Option<tokio::time::Instant> = None;
    let mut open = true;
    tracing::info!(sink = %sink, host = %p.config.host, port = p.config.port, "MLLP alarm sink started");
    loop {
        if draining.is_none() && p.shutdown.is_cancelled() {
            draining = Some(tokio::time::Instant::now() + DRAIN);
        }
        while session.in_flight() + session.queued() < window {
            let Ok(m) = p.rx.try_recv() else { break };
            offer(&p, &sink, &mut session, m, &mut actions);
        }
        while !actions.is_empty() {
            for a in std::mem::take(&mut actions) {
                act(&p, &sink, a, &mut session, &mut link, draining, &mut actions).await;
            }
        }
        p.stats.connected.store(link.is_open() && session.is_connected(), Ordering::Relaxed);
        if let Some(until) = draining {
            let done = session.is_idle() && p.rx.is_empty();
            if done || tokio::time::Instant::now() >= until {
                if !done {
                    tracing::warn!(
                        sink = %sink,
                        waiting = p.stats.waiting.load(Ordering::Relaxed),
                        "MLLP alarm sink stopping with alarm events not acknowledged: they are lost (alarms are not buffered)"
                    );
                }
                link.close().await;
                p.stats.connected.store(false, Ordering::Relaxed);
                tracing::info!(sink = %sink, "MLLP alarm sink stopped");
                return;
            }
        }
        let wakeup = session.next_wakeup().map(|t| {
            let ms = (t.0 - Timestamp::now().0).max(0) as u64;
            tokio::time::Instant::now() + Duration::from_millis(ms)
        });
        let deadline = match (wakeup, draining) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let room = session.in_flight() + session.queued() < window;
        tokio::select! {
            biased;
            n = link.read(), if link.is_open() => link.received(n, &mut session, &mut actions),
            m = p.rx.recv(), if open && room => match m {
                Some(m) => offer(&p, &sink, &mut session, m, &mut actions),
                // Every device is gone: only what the session holds is left.
                None => open = false,
            },
            _ = async { tokio::time::sleep_until(deadline.expect("guarded by is_some")).await }, if deadline.is_some() => {
                session.poll(Timestamp::now(), &mut actions);
            }
            _ = p.shutdown.cancelled(), if draining.is_none() => {
                draining = Some(tokio::time::Instant::now() + DRAIN);
            }
        }
    }
}

/// Offers one event to the session; one it cannot take is given up at once (logged, counted).
fn offer(p: &AlarmSinkParams, sink: &Arc<str>, session: &mut DeliverySession<Tag>, m: AlarmMessage, actions: &mut Vec<Action<Tag>>) {
    if let Err(e) = session.offer(m.er7.as_bytes().to_vec(), m.device.clone(), Timestamp::now(), actions) {
        p.stats.waiting.fetch_sub(1, Ordering::Relaxed);
        p.stats.failed.fetch_add(1, Ordering::Relaxed);
        tracing::error!(sink = %sink, device = %m.device, control_id = %m.control_id, error = %e, "alarm event not sent");
    }
}

async fn act(
    p: &AlarmSinkParams,
    sink: &Arc<str>,
    a: Action<Tag>,
    session: &mut DeliverySession<Tag>,
    link: &mut Link,
    draining: Option<tokio::time::Instant>,
    actions: &mut Vec<Action<Tag>>,
) {
    match a {
        Action::Connect => {
            // Once stopping, the last events (the devices' `shutdown` ends) are still worth a
            // connection: it may take what is left of the drain.
            let left = draining.map(|until| until.saturating_duration_since(tokio::time::Instant::now()));
            if let Opened::Connected { again: true } = link.connect(&p.config, p.tls.as_ref(), left, &p.shutdown, session, actions).await {
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
            tracing::warn!(sink = %sink, ?reason, "no ACK from the Alarm Manager in time: connection closed, the alarm event will be sent again (same control id)");
            link.close().await;
        }
        Action::Acked { tag, control_id, sends } => {
            p.stats.waiting.fetch_sub(1, Ordering::Relaxed);
            p.stats.acked.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(sink = %sink, device = %tag, control_id, sends, "alarm event acknowledged");
        }
        Action::DeadLettered(d) => given_up(p, sink, d),
        Action::RetryScheduled { control_id, retry, reason, .. } => {
            tracing::warn!(sink = %sink, control_id, retry, reason, "the Alarm Manager answered with an error: retrying after the back-off");
        }
        Action::Ignored(why) => tracing::debug!(sink = %sink, ?why, "inbound MLLP frame ignored"),
    }
}

/// An event the Alarm Manager refused (AR/CR) or kept failing (AE/CE after the retries): counted,
/// logged and published as an `mllp-alarm-refused` gateway event (sink, control id, the ACK's
/// text; no patient data beyond what the receiver wrote).
fn given_up(p: &AlarmSinkParams, sink: &Arc<str>, d: DeadLetter<Tag>) {
    use medgw_protocols::hl7::delivery::AckKind;
    p.stats.waiting.fetch_sub(1, Ordering::Relaxed);
    let refused = matches!(d.kind, AckKind::AR | AckKind::CR);
    if refused {
        p.stats.refused.fetch_add(1, Ordering::Relaxed);
    } else {
        p.stats.failed.fetch_add(1, Ordering::Relaxed);
    }
    let e = Event::gateway(
        EventKind::MllpAlarmRefused,
        format!(
            "sink {sink}: alarm event {} of device {} {} after {} sends ({}); not kept (alarms are not buffered)",
            d.control_id,
            d.tag,
            if refused { "refused" } else { "given up" },
            d.sends,
            d.reason
        ),
    )
    .with_count(1)
    .with_sink(sink, &d.control_id);
    e.log();
    if let Ok(json) = serde_json::to_vec(&e) {
        let _ = p.aux.try_send(AuxMessage { topic: p.events_topic.clone(), payload: json.into(), retain: false, sticky: false });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(n: u32) -> AlarmMessage {
        AlarmMessage {
            control_id: format!("c{n}"),
            er7: Arc::from(format!("MSH|^~\\&|||||||ORU^R40^ORU_R40|c{n}|P|2.6\r")),
            device: Arc::from("spo2"),
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_per_sink() {
        let mut feed = AlarmFeed::default();
        assert!(feed.is_empty());
        let stats = Arc::new(AlarmSinkStats::default());
        let mut rx = feed.add(stats.clone());
        for n in 0..QUEUE as u32 {
            assert_eq!(feed.send(&message(n)), 0);
        }
        assert_eq!(feed.send(&message(99_999)), 1);
        assert_eq!(stats.dropped.load(Ordering::Relaxed), 1);
        assert_eq!(stats.waiting.load(Ordering::Relaxed), QUEUE as u64);
        // In order, the first first.
        assert_eq!(rx.try_recv().unwrap().control_id, "c0");
    }
}
