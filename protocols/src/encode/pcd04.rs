//! HL7 v2.6 `ORU^R40^ORU_R40` as IHE PCD-04 (Report Alert, ACM profile) lays it out: one
//! message per alarm event ([`AlarmEvent`]).
//!
//! ```text
//! MSH  MSH-3 MEDGW^<gateway EUI-64>^EUI-64, MSH-9 ORU^R40^ORU_R40, MSH-12 2.6, MSH-15 AL,
//!      MSH-16 NE, MSH-21 IHE_PCD_ACM_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.4.1^ISO
//! PID, PV1  as PCD-01 (the bound patient or an unidentified one; PV1-3 the bed)
//! OBR  OBR-3 <alarm id>^MEDGW^<gateway EUI-64>^EUI-64 (the same for start, updates and end),
//!      OBR-4 196616^MDC_EVT_ALARM^MDC, OBR-7 when the alarm started, OBR-8 when it ended
//! OBX facets, OBX-4 1.1.1.1.<facet>:
//!   .1 alarm identity  ST  <event code>^<REF_ID>^MDC (or <vendor code>^<namespace>^99MEDGW),
//!                          OBX-5 the text, OBX-8 [H|L~]<priority>~<alert type> (facet 1 only),
//!                          OBX-14 time, OBX-18 the device's EUI-64
//!   .2 source / value  NM  <metric>^<REF_ID>^MDC, OBX-5 value, OBX-6 unit, OBX-7 limits low-high
//!                      (or CWE 68480^MDC_ATTR_ALERT_SOURCE^MDC naming the metric when there is
//!                      no value; omitted when the alarm concerns the device as a whole)
//!   .3 68165^MDC_ATTR_EVENT_PHASE            start | update | end
//!   .4 68166^MDC_ATTR_ALARM_STATE            active | latched | inactive
//!   .5 68167^MDC_ATTR_ALARM_INACTIVATION_STATE  enabled | audio-paused | ... | alert-acknowledged
//!   .6 68168^MDC_ATTR_ALARM_PRIORITY         PN | PL | PM | PH   (omitted when the device gives none)
//!   .7 68485^MDC_ATTR_ALERT_TYPE             SP | ST | SA
//! NTE  why the alarm ended, when it ended for another reason than clearing
//! ```
//!
//! Sources (hospital-integration reference §2, §5 E2): the ACM structure and facets (ACM TI
//! example; Schluter 2011 "event and alarm identifiers"), the E2 example message. Attribute
//! numbers differ between vendors (Dräger 68480 ALERT_SOURCE / 68168 PRIORITY, GE 68164 / 68484;
//! receivers are advised to match the REF_ID): medgw writes those of the reference example.
//! MSH-21: two OIDs are seen in the field, `1.3.6.1.4.1.19376.1.6.1.4.1` (GE Mural, a PCD
//! library) and `1.3.6.1.4.1.19376.1.6.4.4` (Dräger reference messages, a pump simulator).
//! medgw sends the first, which follows the scheme of the PCD-01 profile OID
//! (`…1.6.1.1.1`) it already sends; the PCD TF-2 table itself was not read, so
//! [`is_acm_profile`] accepts both.
//!
//! Times: the gateway's receipt time (the device's own alarm time is not resolved to UTC at
//! this layer). Values stay in the device's unit.

use alloc::string::String;
use core::fmt::Write;

use super::hl7v2::{equipment_id, esc, patient_visit, unit_text};
use crate::alarm::{codes, AlarmEvent, EndReason, Phase};
use crate::mdc::MdcCode;
use crate::nomenclature::Nomenclature;
use crate::observation::DeviceContext;
use crate::time::Timestamp;

/// The ACM message profile OID medgw sends (MSH-21 component 3).
pub const ACM_PROFILE_OID: &str = "1.3.6.1.4.1.19376.1.6.1.4.1";
/// The other OID seen in the field for the same profile.
pub const ACM_PROFILE_OID_ALT: &str = "1.3.6.1.4.1.19376.1.6.4.4";

/// Whether an MSH-21 value names the ACM profile: `IHE_PCD_ACM_001` with either OID.
pub fn is_acm_profile(msh21: &str) -> bool {
    let mut c = msh21.split('^');
    let id = c.next().unwrap_or("");
    let oid = c.nth(1).unwrap_or("");
    id == "IHE_PCD_ACM_001" && (oid == ACM_PROFILE_OID || oid == ACM_PROFILE_OID_ALT)
}

fn metric_field(nom: &Nomenclature, code: MdcCode) -> String {
    match nom.metric(code) {
        Some(m) => alloc::format!("{}^{}^MDC", code.0, esc(&m.ref_id)),
        None => alloc::format!("{}^^MDC", code.0),
    }
}

/// The PCD-04 message of one alarm event. `message_id` becomes MSH-10; `now` MSH-7.
pub fn oru_r40(ev: &AlarmEvent, ctx: &DeviceContext, nom: &Nomenclature, message_id: &str, now: Timestamp) -> String {
    let c = &ev.condition;
    let mut m = String::with_capacity(1024);
    let gw = ctx.gateway_eui64();
    let _ = write!(
        m,
        "MSH|^~\\&|MEDGW^{gw}^EUI-64|{site}|||{now}||ORU^R40^ORU_R40|{id}|P|2.6|||AL|NE||UNICODE UTF-8|||IHE_PCD_ACM_001^IHE PCD^{ACM_PROFILE_OID}^ISO\r",
        site = esc(&ctx.location.site),
        now = now.hl7(),
        id = esc(message_id),
    );
    patient_visit(&mut m, ctx);
    let end = if ev.phase == Phase::End { alloc::format!("{}", ev.receipt_time.hl7()) } else { String::new() };
    let _ = write!(m, "OBR|1||{}^MEDGW^{gw}^EUI-64|196616^MDC_EVT_ALARM^MDC|||{}|{}\r", ev.id, ev.started.hl7(), end);

    let time = ev.receipt_time.hl7();
    let equipment = equipment_id(ctx);
    let mut set_id = 0u32;
    let mut obx = |m: &mut String, vt: &str, code: &str, facet: u32, value: &str, rest: &str| {
        set_id += 1;
        let _ = write!(m, "OBX|{set_id}|{vt}|{code}|1.1.1.1.{facet}|{value}{rest}\r");
    };

    // .1 identity: the event code, or the vendor code in a local system (table 0396 99zzz).
    let identity = if c.is_mapped() {
        alloc::format!("{}^{}^MDC", c.code.0, codes::ref_id(c.code).unwrap_or(""))
    } else {
        alloc::format!("{}^{}^99MEDGW", esc(&c.vendor.code), esc(&c.vendor.namespace))
    };
    let mut obx8: alloc::vec::Vec<&str> = alloc::vec::Vec::new();
    if c.code == codes::MDC_EVT_HI {
        obx8.push("H");
    } else if c.code == codes::MDC_EVT_LO {
        obx8.push("L");
    }
    if let Some(p) = c.priority {
        obx8.push(p.ihe());
    }
    obx8.push(c.kind.ihe());
    obx(&mut m, "ST", &identity, 1, &esc(&c.text), &alloc::format!("|||{}|||R|||{time}||||{equipment}", obx8.join("~")));

    // .2 source and value.
    if let Some(v) = c.value {
        let limits = match c.limits {
            Some(l) => alloc::format!(
                "{}-{}",
                l.low.map(|d| alloc::format!("{d}")).unwrap_or_default(),
                l.high.map(|d| alloc::format!("{d}")).unwrap_or_default()
            ),
            None => String::new(),
        };
        let source = if c.source.is_unmapped() { String::from("0^UNMAPPED^99MEDGW") } else { metric_field(nom, c.source) };
        obx(&mut m, "NM", &source, 2, &alloc::format!("{v}"), &alloc::format!("|{}|{}||||R", unit_text(nom, c.unit), esc(&limits)));
    } else if !c.source.is_unmapped() {
        obx(&mut m, "CWE", "68480^MDC_ATTR_ALERT_SOURCE^MDC", 2, &metric_field(nom, c.source), "||||||R");
    }
    obx(&mut m, "ST", "68165^MDC_ATTR_EVENT_PHASE^MDC", 3, ev.phase.ihe(), "||||||R");
    obx(&mut m, "ST", "68166^MDC_ATTR_ALARM_STATE^MDC", 4, c.state.ihe(), "||||||R");
    obx(&mut m, "ST", "68167^MDC_ATTR_ALARM_INACTIVATION_STATE^MDC", 5, c.inactivation.ihe(), "||||||R");
    if let Some(p) = c.priority {
        obx(&mut m, "ST", "68168^MDC_ATTR_ALARM_PRIORITY^MDC", 6, p.ihe(), "||||||R");
    }
    obx(&mut m, "ST", "68485^MDC_ATTR_ALERT_TYPE^MDC", 7, c.kind.ihe(), "||||||R");
    match &ev.end_reason {
        Some(EndReason::Disconnected(why)) => {
            let _ = write!(m, "NTE|1||ended by medgw: device disconnected ({}); the device may still be alarming\r", esc(why));
        }
        Some(EndReason::Shutdown) => {
            let _ = write!(m, "NTE|1||ended by medgw: gateway shut down; the device may still be alarming\r");
        }
        _ => {}
    }
    m
}
