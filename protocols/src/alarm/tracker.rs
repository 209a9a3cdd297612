//! The alarm lifecycle per device: successive reports in, `start` / `update` / `end` out.
//!
//! Sans-IO like the decoders: the caller passes the receipt time. Guarantees (tested, including
//! by a property test in `tests/alarms.rs`):
//! - every `start` is followed by exactly one `end` with the same id, and nothing after it;
//! - no `end` or `update` without a `start`;
//! - a condition's id is stable from its start to its end; the same condition raised again
//!   after its end gets a new id.
//!
//! A condition is identified within the device by its vendor code and source metric. An
//! `update` is sent when the priority, state, inactivation, text, kind, code or limits change;
//! a new triggering value alone is not an update (a desaturation would otherwise send one per
//! second), but the latest value is carried by the next event.
//!
//! The gateway's own technical alert for a lost device ([`AlarmTracker::disconnected`]) is an
//! alarm of this tracker too (vendor namespace `medgw`, code `device-disconnected`): it starts
//! when the connection is lost, after the device's alarms are ended with the reason, and ends
//! when the device is connected again or the gateway stops.

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;

use uuid::Uuid;

use super::{AlarmCondition, AlarmKind, AlarmReport, AlarmState, EndReason, Phase, Priority};
use crate::mdc::MdcCode;
use crate::observation::{uuid_v5, VendorCode};
use crate::time::{DeviceTime, Timestamp};

/// The namespace of medgw alarm ids: UUID v5 of the URL `urn:medgw:alarm`.
pub fn id_namespace() -> Uuid {
    uuid_v5(&Uuid::NAMESPACE_URL, b"urn:medgw:alarm")
}

/// The vendor namespace of alerts the gateway raises itself.
pub const GATEWAY_NAMESPACE: &str = "medgw";
/// The code of the gateway's "device disconnected" technical alert.
pub const DEVICE_DISCONNECTED: &str = "device-disconnected";

/// One lifecycle event of one alarm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlarmEvent {
    /// Stable from `start` to `end`.
    pub id: Uuid,
    pub phase: Phase,
    /// The condition as last reported; with `end`, its state is [`AlarmState::Inactive`].
    pub condition: AlarmCondition,
    /// Receipt time of the report that started the alarm.
    pub started: Timestamp,
    /// Receipt time of what caused this event (report, disconnect, shutdown).
    pub receipt_time: Timestamp,
    /// The device's time of the report, when it sends one.
    pub device_time: Option<DeviceTime>,
    /// Set with `end` only.
    pub end_reason: Option<EndReason>,
}

#[derive(Clone, Debug)]
struct Active {
    id: Uuid,
    condition: AlarmCondition,
    started: Timestamp,
}

fn same_key(a: &AlarmCondition, b: &AlarmCondition) -> bool {
    a.vendor == b.vendor && a.source == b.source
}

/// Whether `b` differs from `a` in what an `update` reports.
fn changed(a: &AlarmCondition, b: &AlarmCondition) -> bool {
    a.priority != b.priority
        || a.state != b.state
        || a.inactivation != b.inactivation
        || a.text != b.text
        || a.kind != b.kind
        || a.code != b.code
        || a.limits != b.limits
        || a.device_priority != b.device_priority
}

/// The alarm lifecycle of one device.
#[derive(Clone, Debug)]
pub struct AlarmTracker {
    device_key: String,
    /// In start order, so output is deterministic.
    active: Vec<Active>,
    /// Alarms started by this tracker: part of the id, so a condition that ends and starts
    /// again within one millisecond still gets a new id.
    started: u64,
}

impl AlarmTracker {
    /// `device_key` is the device's identity key (`DeviceContext::key`): part of every id.
    pub fn new(device_key: impl Into<String>) -> AlarmTracker {
        AlarmTracker { device_key: device_key.into(), active: Vec::new(), started: 0 }
    }

    /// The alarms active now, in start order: the "active alarms" summary.
    pub fn active(&self) -> impl Iterator<Item = (Uuid, &AlarmCondition, Timestamp)> {
        self.active.iter().map(|a| (a.id, &a.condition, a.started))
    }

    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    fn new_id(&mut self, c: &AlarmCondition, now: Timestamp) -> Uuid {
        use core::fmt::Write;
        self.started += 1;
        let mut name = String::with_capacity(self.device_key.len() + 48);
        let _ = write!(name, "{}|{}:{}|{}|{}|{}", self.device_key, c.vendor.namespace, c.vendor.code, c.source.0, now.0, self.started);
        uuid_v5(&id_namespace(), name.as_bytes())
    }

    fn end(a: Active, reason: EndReason, now: Timestamp, device_time: Option<DeviceTime>, out: &mut Vec<AlarmEvent>) {
        let mut condition = a.condition;
        condition.state = AlarmState::Inactive;
        out.push(AlarmEvent {
            id: a.id,
            phase: Phase::End,
            condition,
            started: a.started,
            receipt_time: now,
            device_time,
            end_reason: Some(reason),
        });
    }

    fn is_gateway(c: &AlarmCondition) -> bool {
        c.vendor.namespace == GATEWAY_NAMESPACE
    }

    /// A report from the device, received at `now`. Ends come first (what cleared), then starts
    /// and updates in the report's order. A condition listed twice counts once (the first).
    pub fn report(&mut self, report: &AlarmReport, now: Timestamp, out: &mut Vec<AlarmEvent>) {
        let listed = |a: &Active| report.conditions.iter().any(|c| same_key(c, &a.condition));
        let mut i = 0;
        while i < self.active.len() {
            let a = &self.active[i];
            if !Self::is_gateway(&a.condition) && report.scope.covers(a.condition.kind) && !listed(a) {
                let a = self.active.remove(i);
                Self::end(a, EndReason::Cleared, now, report.device_time, out);
            } else {
                i += 1;
            }
        }
        for (n, c) in report.conditions.iter().enumerate() {
            if report.conditions[..n].iter().any(|p| same_key(p, c)) || Self::is_gateway(c) {
                continue;
            }
            match self.active.iter_mut().find(|a| same_key(&a.condition, c)) {
                Some(a) => {
                    let update = changed(&a.condition, c);
                    a.condition = c.clone();
                    if update {
                        out.push(AlarmEvent {
                            id: a.id,
                            phase: Phase::Update,
                            condition: c.clone(),
                            started: a.started,
                            receipt_time: now,
                            device_time: report.device_time,
                            end_reason: None,
                        });
                    }
                }
                None => {
                    let id = self.new_id(c, now);
                    self.active.push(Active { id, condition: c.clone(), started: now });
                    out.push(AlarmEvent {
                        id,
                        phase: Phase::Start,
                        condition: c.clone(),
                        started: now,
                        receipt_time: now,
                        device_time: report.device_time,
                        end_reason: None,
                    });
                }
            }
        }
    }

    /// The connection to the device was lost (`reason`: why). Every alarm of the device ends
    /// with [`EndReason::Disconnected`], then the gateway's own technical alert
    /// `device-disconnected` starts (once, however often this is called).
    pub fn disconnected(&mut self, reason: &str, now: Timestamp, out: &mut Vec<AlarmEvent>) {
        let mut i = 0;
        while i < self.active.len() {
            if Self::is_gateway(&self.active[i].condition) {
                i += 1;
            } else {
                let a = self.active.remove(i);
                Self::end(a, EndReason::Disconnected(String::from(reason)), now, None, out);
            }
        }
        if self.active.iter().any(|a| Self::is_gateway(&a.condition)) {
            return;
        }
        let c = AlarmCondition::new(
            MdcCode::UNMAPPED,
            VendorCode { namespace: Cow::Borrowed(GATEWAY_NAMESPACE), code: Cow::Borrowed(DEVICE_DISCONNECTED) },
            MdcCode::UNMAPPED,
            AlarmKind::Technical,
            alloc::format!("device disconnected: {reason}"),
        )
        .with_priority(Some(Priority::Medium));
        let id = self.new_id(&c, now);
        self.active.push(Active { id, condition: c.clone(), started: now });
        out.push(AlarmEvent {
            id,
            phase: Phase::Start,
            condition: c,
            started: now,
            receipt_time: now,
            device_time: None,
            end_reason: None,
        });
    }

    /// The device is connected again: the gateway's `device-disconnected` alert ends.
    pub fn connected(&mut self, now: Timestamp, out: &mut Vec<AlarmEvent>) {
        if let Some(i) = self.active.iter().position(|a| Self::is_gateway(&a.condition)) {
            let a = self.active.remove(i);
            Self::end(a, EndReason::Cleared, now, None, out);
        }
    }

    /// The gateway stops: every alarm ends with [`EndReason::Shutdown`].
    pub fn shutdown(&mut self, now: Timestamp, out: &mut Vec<AlarmEvent>) {
        for a in core::mem::take(&mut self.active) {
            Self::end(a, EndReason::Shutdown, now, None, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alarm::{codes, ReportScope};
    use crate::mdc::code;
    use crate::Decimal;

    fn spo2_low(priority: Priority) -> AlarmCondition {
        AlarmCondition::new(
            codes::MDC_EVT_LO,
            VendorCode::new_static("masimo", "ALARM:0002"),
            code::MDC_PULS_OXIM_SAT_O2,
            AlarmKind::Physiological,
            "SpO2 low",
        )
        .with_priority(Some(priority))
    }

    fn sensor_off() -> AlarmCondition {
        AlarmCondition::new(
            MdcCode::UNMAPPED,
            VendorCode::new_static("masimo", "EXC:000020"),
            MdcCode::UNMAPPED,
            AlarmKind::Technical,
            "Sensor Off",
        )
    }

    fn report(scope: ReportScope, c: &[AlarmCondition]) -> AlarmReport {
        AlarmReport::new(scope, c.to_vec())
    }

    fn phases(ev: &[AlarmEvent]) -> Vec<(Phase, &str)> {
        ev.iter().map(|e| (e.phase, e.condition.vendor.code.as_ref())).collect()
    }

    #[test]
    fn start_update_end_with_one_id() {
        let mut t = AlarmTracker::new("cfg:gw:bed1");
        let mut out = Vec::new();
        t.report(&report(ReportScope::All, &[spo2_low(Priority::Medium)]), Timestamp(1000), &mut out);
        // Same condition, new value only: no event.
        let mut v = spo2_low(Priority::Medium);
        v.value = Some(Decimal::from_int(84));
        t.report(&report(ReportScope::All, &[v]), Timestamp(2000), &mut out);
        t.report(&report(ReportScope::All, &[spo2_low(Priority::High)]), Timestamp(3000), &mut out);
        t.report(&report(ReportScope::All, &[]), Timestamp(4000), &mut out);
        assert_eq!(phases(&out), [(Phase::Start, "ALARM:0002"), (Phase::Update, "ALARM:0002"), (Phase::End, "ALARM:0002")]);
        assert!(out.iter().all(|e| e.id == out[0].id && e.started == Timestamp(1000)));
        assert_eq!(out[1].condition.priority, Some(Priority::High));
        assert_eq!(out[2].end_reason, Some(EndReason::Cleared));
        assert_eq!(out[2].condition.state, AlarmState::Inactive);
        assert!(t.is_empty());
        // Raised again: a new id.
        t.report(&report(ReportScope::All, &[spo2_low(Priority::High)]), Timestamp(5000), &mut out);
        assert_ne!(out[3].id, out[0].id);
    }

    #[test]
    fn a_scoped_report_ends_only_its_own_kind() {
        let mut t = AlarmTracker::new("k");
        let mut out = Vec::new();
        t.report(&report(ReportScope::All, &[spo2_low(Priority::High), sensor_off()]), Timestamp(0), &mut out);
        t.report(&report(ReportScope::Technical, &[]), Timestamp(1), &mut out);
        assert_eq!(phases(&out[2..]), [(Phase::End, "EXC:000020")]);
        t.report(&report(ReportScope::Physiological, &[]), Timestamp(2), &mut out);
        assert_eq!(phases(&out[3..]), [(Phase::End, "ALARM:0002")]);
    }

    #[test]
    fn disconnect_ends_with_a_reason_and_raises_the_gateway_alert_once() {
        let mut t = AlarmTracker::new("k");
        let mut out = Vec::new();
        t.report(&report(ReportScope::All, &[spo2_low(Priority::High)]), Timestamp(0), &mut out);
        t.disconnected("silent", Timestamp(10), &mut out);
        t.disconnected("silent", Timestamp(20), &mut out);
        assert_eq!(phases(&out), [(Phase::Start, "ALARM:0002"), (Phase::End, "ALARM:0002"), (Phase::Start, DEVICE_DISCONNECTED)]);
        assert_eq!(out[1].end_reason, Some(EndReason::Disconnected("silent".into())));
        assert_eq!(out[2].condition.kind, AlarmKind::Technical);
        // A report does not end the gateway's alert; connecting does.
        t.report(&report(ReportScope::All, &[]), Timestamp(30), &mut out);
        assert_eq!(out.len(), 3);
        t.connected(Timestamp(40), &mut out);
        assert_eq!(phases(&out[3..]), [(Phase::End, DEVICE_DISCONNECTED)]);
        assert_eq!(out[3].id, out[2].id);
    }

    #[test]
    fn shutdown_ends_everything() {
        let mut t = AlarmTracker::new("k");
        let mut out = Vec::new();
        t.report(&report(ReportScope::All, &[spo2_low(Priority::High), sensor_off()]), Timestamp(0), &mut out);
        out.clear();
        t.shutdown(Timestamp(5), &mut out);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|e| e.phase == Phase::End && e.end_reason == Some(EndReason::Shutdown)));
        assert!(t.is_empty());
    }

    #[test]
    fn ids_are_deterministic() {
        let run = || {
            let mut t = AlarmTracker::new("k");
            let mut out = Vec::new();
            t.report(&report(ReportScope::All, &[spo2_low(Priority::High)]), Timestamp(7), &mut out);
            out[0].id
        };
        assert_eq!(run(), run());
        assert_eq!(run().get_version_num(), 5);
    }
}
