//! FHIR R4 form of an alarm event: a `Communication` with category `alert`.
//!
//! R4 has no alarm resource (DeviceAlert arrives in R6). Of the two R4 candidates, medgw uses
//! `Communication` (as the BIH-CEI T-CABS IG profiles ventilator alarms for R4: category
//! `alert`, `sender` the Device) rather than `DetectedIssue`, whose meaning is a clinical issue
//! with a patient's actions (drug interactions, duplicate therapy) and whose `patient` would be
//! required for a physiological alarm that medgw may not be able to attribute. Layout:
//!
//! ```text
//! identifier    urn:uuid:<alarm id>            the same for start, updates and end
//! status        in-progress (start, update) | completed (end)
//! category      communication-category#alert, and medgw alert-type#physiological|technical|advisory
//! priority      PH stat, PM asap, PL urgent, PN routine (request-priority is ordinal only; the
//!               exact IHE priority is in extension alarm-priority); absent when the device gives none
//! subject       the bound Patient; none without one (R4 allows only Patient|Group): the bed is
//!               then in `about` and meta.tag says `unassociated`
//! about         the bed (Location, by identifier) when no patient is bound
//! sender        the Device (Device/<id> as in the Observation output)
//! sent          when the gateway received what caused the event
//! reasonCode    the MDC event code (urn:iso:std:iso:11073:10101), or the vendor code
//! payload       the alarm text; the triggering value with its unit, when known
//! extension     alarm-phase, alarm-state, alarm-inactivation, alarm-priority, alarm-source,
//!               alarm-started, alarm-end-reason (medgw's, under https://medgw.org/fhir/StructureDefinition/)
//! ```
//!
//! The triggering value is not a separate Observation reference: the value already reaches the
//! receiver as an Observation with its own id, and linking the two is left to a later change.

use alloc::string::String;
use alloc::vec::Vec;

use serde_json::{json, Value as Json};

use super::fhir::{device_id, ASSOCIATION_SYSTEM, BED_SYSTEM, EXT, MDC, VENDOR_SYSTEM_PREFIX};
use crate::alarm::{codes, AlarmEvent, AlarmKind, EndReason, Phase, Priority};
use crate::nomenclature::Nomenclature;
use crate::observation::DeviceContext;

pub const COMMUNICATION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/communication-category";
/// medgw's code system for the IHE ACM alert type.
pub const ALERT_TYPE_SYSTEM: &str = "https://medgw.org/fhir/CodeSystem/alert-type";

fn request_priority(p: Priority) -> &'static str {
    match p {
        Priority::High => "stat",
        Priority::Medium => "asap",
        Priority::Low => "urgent",
        Priority::NoAlarm => "routine",
    }
}

fn kind_code(k: AlarmKind) -> &'static str {
    match k {
        AlarmKind::Physiological => "physiological",
        AlarmKind::Technical => "technical",
        AlarmKind::Advisory => "advisory",
    }
}

/// The `Communication` JSON of one alarm event.
pub fn communication(ev: &AlarmEvent, ctx: &DeviceContext, nom: &Nomenclature) -> Json {
    let c = &ev.condition;
    // FHIR strings are never empty.
    let text = if c.text.trim().is_empty() { alloc::format!("{}:{}", c.vendor.namespace, c.vendor.code) } else { c.text.clone() };
    let reason = if c.is_mapped() {
        let mut coding = json!({"system": MDC, "code": alloc::format!("{}", c.code.0)});
        if let (Some(o), Some(r)) = (coding.as_object_mut(), codes::ref_id(c.code)) {
            o.insert(String::from("display"), json!(r));
        }
        json!({"coding": [coding], "text": text})
    } else {
        json!({"coding": [{"system": alloc::format!("{VENDOR_SYSTEM_PREFIX}{}", c.vendor.namespace), "code": c.vendor.code}], "text": text})
    };
    let mut ext: Vec<Json> = alloc::vec![
        json!({"url": alloc::format!("{EXT}alarm-phase"), "valueCode": ev.phase.ihe()}),
        json!({"url": alloc::format!("{EXT}alarm-state"), "valueCode": c.state.ihe()}),
        json!({"url": alloc::format!("{EXT}alarm-inactivation"), "valueCode": c.inactivation.ihe()}),
        json!({"url": alloc::format!("{EXT}alarm-started"), "valueDateTime": alloc::format!("{}", ev.started.rfc3339())}),
    ];
    if let Some(p) = c.priority {
        ext.push(json!({"url": alloc::format!("{EXT}alarm-priority"), "valueCode": p.ihe()}));
    }
    if !c.source.is_unmapped() {
        let mut coding = json!({"system": MDC, "code": alloc::format!("{}", c.source.0)});
        if let (Some(o), Some(m)) = (coding.as_object_mut(), nom.metric(c.source)) {
            o.insert(String::from("display"), json!(m.ref_id));
        }
        ext.push(json!({"url": alloc::format!("{EXT}alarm-source"), "valueCoding": coding}));
    }
    if let Some(reason) = &ev.end_reason {
        let code = match reason {
            EndReason::Cleared => "cleared",
            EndReason::Disconnected(_) => "disconnected",
            EndReason::Shutdown => "shutdown",
        };
        ext.push(json!({"url": alloc::format!("{EXT}alarm-end-reason"), "valueCode": code}));
    }
    let mut payload = alloc::vec![json!({"contentString": text})];
    if let Some(v) = c.value {
        let unit = nom.unit(c.unit);
        let mut q = json!({"contentString": alloc::format!("value {v}{}", unit.as_ref().map(|u| alloc::format!(" {}", u.ucum)).unwrap_or_default())});
        if let Some(o) = q.as_object_mut() {
            o.insert(
                String::from("extension"),
                json!([{"url": alloc::format!("{EXT}alarm-value"), "valueQuantity": match &unit {
                    Some(u) => json!({"value": v, "unit": u.ucum, "system": super::fhir::UCUM, "code": u.ucum}),
                    None => json!({"value": v}),
                }}]),
            );
        }
        payload.push(q);
    }
    if let Some(EndReason::Disconnected(why)) = &ev.end_reason {
        payload.push(
            json!({"contentString": alloc::format!("ended by medgw: device disconnected ({why}); the device may still be alarming")}),
        );
    }
    if ev.end_reason == Some(EndReason::Shutdown) {
        payload.push(json!({"contentString": "ended by medgw: gateway shut down; the device may still be alarming"}));
    }
    let mut r = json!({
        "resourceType": "Communication",
        "extension": ext,
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": alloc::format!("urn:uuid:{}", ev.id)}],
        "status": if ev.phase == Phase::End { "completed" } else { "in-progress" },
        "category": [
            {"coding": [{"system": COMMUNICATION_CATEGORY, "code": "alert", "display": "Alert"}]},
            {"coding": [{"system": ALERT_TYPE_SYSTEM, "code": kind_code(c.kind)}]}
        ],
        "sender": {"reference": alloc::format!("Device/{}", device_id(ctx))},
        "sent": alloc::format!("{}", ev.receipt_time.rfc3339()),
        "reasonCode": [reason],
        "payload": payload,
    });
    let Some(o) = r.as_object_mut() else { return r };
    if let Some(p) = c.priority {
        o.insert(String::from("priority"), json!(request_priority(p)));
    }
    match &ctx.patient {
        Some(p) => {
            let subject = match &p.system {
                Some(system) => json!({"identifier": {"system": system, "value": p.id}}),
                None => json!({"reference": alloc::format!("Patient/{}", p.id)}),
            };
            o.insert(String::from("subject"), subject);
        }
        None => {
            let bed = ctx.location.path();
            o.insert(
                String::from("about"),
                json!([{"type": "Location", "identifier": {"system": BED_SYSTEM, "value": bed}, "display": bed.replace('/', " ")}]),
            );
            o.insert(
                String::from("meta"),
                json!({"tag": [{"system": ASSOCIATION_SYSTEM, "code": "unassociated", "display": "Not yet associated with a patient"}]}),
            );
        }
    }
    r
}
