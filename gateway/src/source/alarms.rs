//! A device's alarms in the gateway (docs/alarms.md): its lifecycle tracker fed with the
//! decoder's reports and the connection's liveness, each lifecycle event published on the
//! device's `alarm` topic in the configured format, and the retained summary of what is active
//! (`alarms/active`), republished as a heartbeat so a receiver can tell "no alarms" from "no
//! news".
//!
//! Alarms go to the sink through the same channel as events and retained state, which the MQTT
//! session sends before any observation (live or backlog), so a backlog drain never queues a new
//! alarm behind stored rows. They are not written to the buffer: an alarm event is useful live,
//! and the retained summary carries the state after an outage. While the broker is away they
//! wait in memory (the channel, then the session's event queue); when that is full, the event is
//! dropped, counted ([`AlarmBoard::dropped`], metric `medgw_alarms_dropped_total`) and logged,
//! and the next summary still says what is active.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use medgw_protocols::alarm::{AlarmEvent, AlarmKind, AlarmReport, AlarmTracker, Phase, Priority};
use medgw_protocols::encode::{canonical_alarm, fhir_alarm, pcd04};
use medgw_protocols::nomenclature::Nomenclature;
use medgw_protocols::observation::{uuid_v5, DeviceContext};
use medgw_protocols::Timestamp;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::PayloadFormat;
use crate::sink::mllp::alarms::{AlarmFeed, AlarmMessage};
use crate::sink::mqtt::AuxMessage;

/// How often the active-alarm summary is republished when nothing changes.
pub const HEARTBEAT: Duration = Duration::from_secs(30);

/// One active alarm as the status page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ActiveAlarm {
    pub id: String,
    pub kind: AlarmKind,
    pub priority: Option<Priority>,
    pub text: String,
    /// `namespace:code` of the device (or `medgw:device-disconnected`).
    pub vendor: String,
    /// MDC event code, 0 when unmapped.
    pub code: u32,
    pub started: Timestamp,
    /// The canonical JSON of its latest event: the summary's entry.
    #[serde(skip)]
    canonical: serde_json::Value,
}

/// What is known of a device's alarms outside its task: the status page, the metrics and the
/// heartbeat read it; the device's [`DeviceAlarms`] writes it.
#[derive(Debug, Default)]
pub struct AlarmBoard {
    active: Mutex<Vec<ActiveAlarm>>,
    /// The retained summary's topic.
    topic: String,
    device: String,
    bed: String,
    /// Lifecycle events handed to the sink.
    pub sent: AtomicU64,
    /// Lifecycle events dropped because the sink's queue was full.
    pub dropped: AtomicU64,
}

impl AlarmBoard {
    pub fn new(topic: String, device: &str, bed: &str) -> AlarmBoard {
        AlarmBoard { topic, device: device.to_string(), bed: bed.to_string(), ..Default::default() }
    }

    /// The active alarms, in start order.
    pub fn active(&self) -> Vec<ActiveAlarm> {
        self.active.lock().map(|a| a.clone()).unwrap_or_default()
    }

    /// The summary payload at `now`: `{"device","bed","time","active":[canonical alarm, ...]}`.
    fn summary(&self, active: &[ActiveAlarm], now: Timestamp) -> Vec<u8> {
        let list: Vec<&serde_json::Value> = active.iter().map(|a| &a.canonical).collect();
        let v = serde_json::json!({"device": self.device, "bed": self.bed, "time": now, "active": list});
        serde_json::to_vec(&v).unwrap_or_default()
    }

    /// Publishes the retained summary (under the board's lock, so a heartbeat never overtakes a
    /// newer state). False when the sink's queue was full (the next heartbeat sends it again).
    pub fn publish(&self, aux: &mpsc::Sender<AuxMessage>, now: Timestamp) -> bool {
        let Ok(active) = self.active.lock() else { return false };
        let payload = Bytes::from(self.summary(&active, now));
        aux.try_send(AuxMessage { topic: self.topic.clone(), payload, retain: true, sticky: true }).is_ok()
    }

    fn apply(&self, ev: &AlarmEvent, canonical: serde_json::Value) {
        let Ok(mut active) = self.active.lock() else { return };
        let id = ev.id.to_string();
        match ev.phase {
            Phase::End => active.retain(|a| a.id != id),
            Phase::Start | Phase::Update => {
                let c = &ev.condition;
                let entry = ActiveAlarm {
                    id: id.clone(),
                    kind: c.kind,
                    priority: c.priority,
                    text: c.text.clone(),
                    vendor: format!("{}:{}", c.vendor.namespace, c.vendor.code),
                    code: c.code.0,
                    started: ev.started,
                    canonical,
                };
                match active.iter_mut().find(|a| a.id == id) {
                    Some(a) => *a = entry,
                    None => active.push(entry),
                }
            }
        }
    }
}

/// Republishes `board`'s summary now and every [`HEARTBEAT`] until `stop`
/// (`MEDGW_ALARM_HEARTBEAT_MS` shortens it for tests).
pub async fn heartbeat(board: Arc<AlarmBoard>, aux: mpsc::Sender<AuxMessage>, stop: CancellationToken) {
    let period = std::env::var("MEDGW_ALARM_HEARTBEAT_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
        .unwrap_or(HEARTBEAT);
    let mut tick = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                board.publish(&aux, Timestamp::now());
            }
            _ = stop.cancelled() => return,
        }
    }
}

/// The alarm half of a device's runner.
pub struct DeviceAlarms {
    tracker: AlarmTracker,
    format: PayloadFormat,
    nomenclature: Arc<Nomenclature>,
    board: Arc<AlarmBoard>,
    topic: String,
    aux: mpsc::Sender<AuxMessage>,
    /// The Alarm Managers (MLLP sinks carrying alarms): every event as PCD-04, whatever the
    /// MQTT format.
    sinks: AlarmFeed,
    device: Arc<str>,
    out: Vec<AlarmEvent>,
}

/// What a delivery did: events sent and dropped (MQTT), and events an Alarm Manager's full
/// queue dropped (counted per sink too).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Delivered {
    pub sent: u64,
    pub dropped: u64,
    pub mllp_dropped: u64,
}

impl DeviceAlarms {
    /// `topic`: the device's `alarm` topic; `device_key`: part of every alarm id.
    pub fn new(
        device_key: &str,
        format: PayloadFormat,
        nomenclature: Arc<Nomenclature>,
        board: Arc<AlarmBoard>,
        topic: String,
        aux: mpsc::Sender<AuxMessage>,
    ) -> DeviceAlarms {
        let device = Arc::from(board.device.as_str());
        DeviceAlarms {
            tracker: AlarmTracker::new(device_key),
            format,
            nomenclature,
            board,
            topic,
            aux,
            sinks: AlarmFeed::default(),
            device,
            out: Vec::new(),
        }
    }

    /// Sends every event to these Alarm Managers too (`[[sink]]` with `carries` `"alarms"`).
    pub fn with_alarm_sinks(mut self, sinks: AlarmFeed) -> DeviceAlarms {
        self.sinks = sinks;
        self
    }

    /// A report decoded from the device's bytes received at `now`.
    pub fn report(&mut self, report: &AlarmReport, ctx: &DeviceContext, now: Timestamp) -> Delivered {
        self.tracker.report(report, now, &mut self.out);
        self.deliver(ctx, now)
    }

    /// The device is disconnected or silent: its alarms end with `reason`, the gateway's
    /// `device-disconnected` technical alert starts.
    pub fn disconnected(&mut self, reason: &str, ctx: &DeviceContext, now: Timestamp) -> Delivered {
        self.tracker.disconnected(reason, now, &mut self.out);
        self.deliver(ctx, now)
    }

    /// The device is connected (or sends again): the `device-disconnected` alert ends.
    pub fn connected(&mut self, ctx: &DeviceContext, now: Timestamp) -> Delivered {
        self.tracker.connected(now, &mut self.out);
        self.deliver(ctx, now)
    }

    /// The gateway stops: every active alarm ends (reason `shutdown`), the summary is emptied.
    pub fn shutdown(&mut self, ctx: &DeviceContext, now: Timestamp) -> Delivered {
        self.tracker.shutdown(now, &mut self.out);
        self.deliver(ctx, now)
    }

    /// One event as PCD-04: (MSH-10, the message). The MSH-10 is unique per message and the
    /// same if the same event were encoded again, so MQTT and MLLP receivers see one id.
    fn pcd04(&self, ev: &AlarmEvent, ctx: &DeviceContext, now: Timestamp) -> (String, String) {
        let name = format!("{}|{}|{}", ev.id, ev.phase.ihe(), ev.receipt_time.0);
        let id = uuid_v5(&medgw_protocols::alarm::tracker::id_namespace(), name.as_bytes()).to_string();
        let message = pcd04::oru_r40(ev, ctx, &self.nomenclature, &id, now);
        (id, message)
    }

    /// The payload of one event in the configured format.
    fn encode(&self, ev: &AlarmEvent, ctx: &DeviceContext, now: Timestamp) -> Vec<u8> {
        match self.format {
            PayloadFormat::Hl7v2 => self.pcd04(ev, ctx, now).1.into_bytes(),
            PayloadFormat::Fhir => serde_json::to_vec(&fhir_alarm::communication(ev, ctx, &self.nomenclature)).unwrap_or_default(),
            PayloadFormat::Canonical => canonical_alarm::alarm_string(ev, ctx).into_bytes(),
        }
    }

    fn deliver(&mut self, ctx: &DeviceContext, now: Timestamp) -> Delivered {
        let mut d = Delivered::default();
        if self.out.is_empty() {
            return d;
        }
        for ev in std::mem::take(&mut self.out) {
            let payload = Bytes::from(self.encode(&ev, ctx, now));
            self.board.apply(&ev, canonical_alarm::alarm_json(&ev, ctx));
            // Debug only: artifact and perfusion alerts can start and end every few seconds
            // during motion; the broker and the status page carry them.
            tracing::debug!(
                device = %ctx.name,
                alarm = %ev.id,
                phase = ev.phase.ihe(),
                vendor = %format!("{}:{}", ev.condition.vendor.namespace, ev.condition.vendor.code),
                priority = ev.condition.priority.map(|p| p.ihe()).unwrap_or("-"),
                "alarm"
            );
            match self.aux.try_send(AuxMessage { topic: self.topic.clone(), payload, retain: false, sticky: false }) {
                Ok(()) => d.sent += 1,
                Err(_) => d.dropped += 1,
            }
            if !self.sinks.is_empty() {
                let (control_id, er7) = self.pcd04(&ev, ctx, now);
                d.mllp_dropped += self.sinks.send(&AlarmMessage { control_id, er7: Arc::from(er7), device: self.device.clone() });
            }
        }
        self.board.sent.fetch_add(d.sent, Ordering::Relaxed);
        self.board.dropped.fetch_add(d.dropped, Ordering::Relaxed);
        if !self.board.publish(&self.aux, now) {
            tracing::debug!(device = %ctx.name, "alarm summary not queued (sink queue full): the heartbeat sends it");
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use medgw_protocols::alarm::{codes, AlarmCondition, ReportScope};
    use medgw_protocols::mdc::code;
    use medgw_protocols::observation::VendorCode;

    fn spo2_low() -> AlarmCondition {
        AlarmCondition::new(
            codes::MDC_EVT_LO,
            VendorCode::new_static("masimo", "ALARM:0002"),
            code::MDC_PULS_OXIM_SAT_O2,
            AlarmKind::Physiological,
            "SpO2 low",
        )
        .with_priority(Some(Priority::High))
    }

    fn setup(capacity: usize, format: PayloadFormat) -> (DeviceAlarms, Arc<AlarmBoard>, mpsc::Receiver<AuxMessage>, DeviceContext) {
        let (tx, rx) = mpsc::channel(capacity);
        let board = Arc::new(AlarmBoard::new("p/gw/B1/spo2/alarms/active".into(), "spo2", "B1"));
        let ctx = DeviceContext { name: "spo2".into(), protocol: "masimo".into(), ..Default::default() };
        let a = DeviceAlarms::new("k", format, Arc::new(Nomenclature::builtin()), board.clone(), "p/gw/B1/spo2/alarm".into(), tx);
        (a, board, rx, ctx)
    }

    fn drain(rx: &mut mpsc::Receiver<AuxMessage>) -> Vec<AuxMessage> {
        let mut v = Vec::new();
        while let Ok(m) = rx.try_recv() {
            v.push(m);
        }
        v
    }

    #[test]
    fn events_go_out_before_their_summary_and_the_summary_follows_the_state() {
        let (mut a, board, mut rx, ctx) = setup(16, PayloadFormat::Canonical);
        let r = AlarmReport::new(ReportScope::All, vec![spo2_low()]);
        assert_eq!(a.report(&r, &ctx, Timestamp(1_000)), Delivered { sent: 1, dropped: 0, mllp_dropped: 0 });
        let m = drain(&mut rx);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].topic, "p/gw/B1/spo2/alarm");
        assert!(!m[0].retain);
        let ev: serde_json::Value = serde_json::from_slice(&m[0].payload).unwrap();
        assert_eq!(ev["phase"], "start");
        assert_eq!(m[1].topic, "p/gw/B1/spo2/alarms/active");
        assert!(m[1].retain && m[1].sticky);
        let s: serde_json::Value = serde_json::from_slice(&m[1].payload).unwrap();
        assert_eq!(s["active"][0]["id"], ev["id"]);
        assert_eq!(board.active().len(), 1);
        // Disconnect: the alarm ends with the reason, the gateway's alert is the one active.
        a.disconnected("read failed", &ctx, Timestamp(2_000));
        let m = drain(&mut rx);
        assert_eq!(m.len(), 3);
        let end: serde_json::Value = serde_json::from_slice(&m[0].payload).unwrap();
        assert_eq!(end["phase"], "end");
        assert_eq!(end["end_reason"]["reason"], "disconnected");
        let active = board.active();
        assert_eq!(active.len(), 1);
        assert_eq!(active[0].vendor, "medgw:device-disconnected");
        assert_eq!(active[0].kind, AlarmKind::Technical);
        a.connected(&ctx, Timestamp(3_000));
        let m = drain(&mut rx);
        let s: serde_json::Value = serde_json::from_slice(&m.last().unwrap().payload).unwrap();
        assert_eq!(s["active"], serde_json::json!([]));
        assert!(board.active().is_empty());
    }

    #[test]
    fn every_event_goes_to_the_alarm_managers_as_pcd04_whatever_the_mqtt_format() {
        use crate::sink::mllp::alarms::{AlarmFeed, AlarmSinkStats};
        let (a, _board, mut rx, ctx) = setup(16, PayloadFormat::Canonical);
        let mut feed = AlarmFeed::default();
        let stats = Arc::new(AlarmSinkStats::default());
        let mut am = feed.add(stats.clone());
        let mut a = a.with_alarm_sinks(feed);
        let r = AlarmReport::new(ReportScope::All, vec![spo2_low()]);
        a.report(&r, &ctx, Timestamp(1_000));
        a.shutdown(&ctx, Timestamp(2_000));
        let mqtt: Vec<serde_json::Value> =
            drain(&mut rx).iter().filter(|m| m.topic.ends_with("/alarm")).map(|m| serde_json::from_slice(&m.payload).unwrap()).collect();
        let (start, end) = (am.try_recv().unwrap(), am.try_recv().unwrap());
        assert!(am.try_recv().is_err());
        for (m, phase) in [(&start, "start"), (&end, "end")] {
            assert!(m.er7.starts_with("MSH|") && m.er7.contains("|ORU^R40^ORU_R40|"), "{}", m.er7);
            assert!(m.er7.contains(&format!("|{}|", m.control_id)), "MSH-10 is the control id");
            assert!(m.er7.contains(&format!("68165^MDC_ATTR_EVENT_PHASE^MDC|1.1.1.1.3|{phase}|")), "{}", m.er7);
            assert_eq!(&*m.device, "spo2");
        }
        assert_ne!(start.control_id, end.control_id);
        assert_eq!(mqtt.len(), 2, "MQTT keeps its own format");
        assert_eq!(stats.waiting.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_full_alarm_manager_queue_drops_and_counts_apart_from_mqtt() {
        use crate::sink::mllp::alarms::{AlarmFeed, AlarmSinkStats, QUEUE};
        let (a, board, _rx, ctx) = setup(4 * QUEUE, PayloadFormat::Canonical);
        let mut feed = AlarmFeed::default();
        let stats = Arc::new(AlarmSinkStats::default());
        let _am = feed.add(stats.clone());
        let mut a = a.with_alarm_sinks(feed);
        let r = AlarmReport::new(ReportScope::All, vec![spo2_low()]);
        let mut total = Delivered::default();
        for i in 0..QUEUE as i64 {
            let d = a.report(&r, &ctx, Timestamp(1_000 + 2 * i));
            total.mllp_dropped += d.mllp_dropped;
            let d = a.report(&AlarmReport::new(ReportScope::All, vec![]), &ctx, Timestamp(1_001 + 2 * i));
            total.mllp_dropped += d.mllp_dropped;
        }
        // 2 × QUEUE events: QUEUE wait, QUEUE dropped; MQTT lost none.
        assert_eq!(total.mllp_dropped, QUEUE as u64);
        assert_eq!(stats.dropped.load(Ordering::Relaxed), QUEUE as u64);
        assert_eq!(board.dropped.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let (mut a, board, mut rx, ctx) = setup(1, PayloadFormat::Hl7v2);
        let r = AlarmReport::new(ReportScope::All, vec![spo2_low()]);
        a.report(&r, &ctx, Timestamp(1_000));
        // The start took the only slot; the end finds the queue full.
        let d = a.shutdown(&ctx, Timestamp(2_000));
        assert_eq!(d, Delivered { sent: 0, dropped: 1, mllp_dropped: 0 });
        assert_eq!(board.dropped.load(Ordering::Relaxed), 1);
        assert_eq!(board.sent.load(Ordering::Relaxed), 1);
        let m = drain(&mut rx);
        assert!(String::from_utf8_lossy(&m[0].payload).starts_with("MSH|"));
        // The state is still right for the next heartbeat.
        assert!(board.active().is_empty());
    }
}
