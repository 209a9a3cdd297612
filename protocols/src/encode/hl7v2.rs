//! HL7 v2.6 `ORU^R01` as IHE PCD-01 (Communicate PCD Data, DEC profile) specifies it.
//!
//! ```text
//! MSH  MSH-3 MEDGW^<gateway EUI-64>^EUI-64, MSH-9 ORU^R01^ORU_R01, MSH-12 2.6,
//!      MSH-21 IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO
//! PID  always: the bound patient (PID-3), or an unidentified one (PID-31 Y, see `patient_visit`)
//! PV1  always: PV1-3 the bed, point of care^room^bed^facility
//! OBR  OBR-3 filler order number <message id>^MEDGW^<gateway EUI-64>^EUI-64,
//!      OBR-4 182777000^monitoring of patient^SCT, OBR-7 observation time
//! OBX  one per value: OBX-3 <MDC code>^<REF_ID>^MDC, OBX-4 MDS.VMD.CHAN.METRIC, OBX-5 value,
//!      OBX-6 <MDC unit>^<REF_ID>^MDC, OBX-8 measurement status, OBX-11 R/P/X, OBX-14 time,
//!      OBX-18 equipment instance id: the device's EUI-64, or one derived from its identity
//! NTE  after an OBX whose flags OBX-8 cannot carry (time quality, unmapped code)
//! ```
//! Values stay in the device's MDC unit: PCD-01 is MDC-native, so nothing is converted.
//! Segments end with CR (HL7 v2 §2.5.4).

use alloc::string::String;
use core::fmt::Write;

use crate::mdc::MdcCode;
use crate::nomenclature::Nomenclature;
use crate::observation::{AbsentReason, DeviceContext, Flags, Observation, Scalar, Status, Value};
use crate::time::Timestamp;

/// The IHE PCD-01 message profile OID (MSH-21 component 3).
pub const PCD01_PROFILE_OID: &str = "1.3.6.1.4.1.19376.1.6.1.1.1";

/// Writes text with the HL7 escape sequences of the default delimiters (§2.7.1). CR and LF are
/// written as the hex escapes of their own bytes (§2.7.3 `\Xdddd...\`): `\X0D\` and `\X0A\`, so
/// a receiver restores the text as it was.
pub fn escape(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '|' => out.push_str("\\F\\"),
            '^' => out.push_str("\\S\\"),
            '&' => out.push_str("\\T\\"),
            '~' => out.push_str("\\R\\"),
            '\\' => out.push_str("\\E\\"),
            '\r' => out.push_str("\\X0D\\"),
            '\n' => out.push_str("\\X0A\\"),
            c => out.push(c),
        }
    }
}

fn esc(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    escape(&mut s, text);
    s
}

/// OBX-8 abnormal flags / measurement status for the flags IHE PCD-01 (TF-2, OBX-8) defines.
fn obx8(flags: Flags, absent: Option<AbsentReason>) -> String {
    let mut v: alloc::vec::Vec<&str> = alloc::vec::Vec::new();
    if absent.is_some() || flags.contains(Flags::UNAVAILABLE) {
        v.push(if flags.contains(Flags::SENSOR_OFF) { "OFF" } else { "NAV" });
    }
    if flags.contains(Flags::INVALID) {
        v.push("INV");
    }
    // A value that is present but questionable (sensor off with a held display value, pulse
    // search, artefact, low perfusion, ...): measurement status QUES, IHE PCD TF-2 OBX-8 (the
    // PCD extension of HL7 table 0078). Not `A`: that says the patient's value is abnormal.
    let questionable = match absent {
        None => Flags::QUESTIONABLE_VALUE,
        // No value: sensor-off is already `OFF`; the device's own quality flags still say QUES.
        Some(_) => Flags::QUESTIONABLE | Flags::ARTIFACT | Flags::OUT_OF_TRACK | Flags::LOW_SIGNAL_QUALITY,
    };
    if flags.intersects(questionable) {
        v.push("QUES");
    }
    if flags.contains(Flags::CALIBRATING) {
        v.push("CAL");
    }
    if flags.contains(Flags::TEST) {
        v.push("TEST");
    }
    if flags.contains(Flags::DEMO) {
        v.push("DEMO");
    }
    if flags.contains(Flags::EARLY_ESTIMATE) {
        v.push("EARLY");
    }
    if flags.contains(Flags::ALARM) {
        v.push("ALACT");
    }
    match absent {
        Some(AbsentReason::PositiveInfinity) => v.push(">"),
        Some(AbsentReason::NegativeInfinity) => v.push("<"),
        _ => {}
    }
    v.dedup();
    v.join("~")
}

/// Flags that OBX-8 does not carry and that go into an NTE after the OBX.
const NTE_FLAGS: Flags = Flags(
    Flags::CLOCK_SKEW.0
        | Flags::NO_DEVICE_CLOCK.0
        | Flags::ZONE_ASSUMED.0
        | Flags::CLOCK_NOT_SET.0
        | Flags::UNMAPPED.0
        | Flags::LOW_PERFUSION.0
        | Flags::MARGINAL_PERFUSION.0
        | Flags::PULSE_SEARCH.0
        | Flags::LOW_BATTERY.0
        | Flags::FROM_STORAGE.0
        | Flags::TIME_CORRECTED.0
        | Flags::OUT_OF_RANGE.0
        | Flags::SENSOR_OFF.0
        | Flags::ARTIFACT.0
        | Flags::OUT_OF_TRACK.0,
);

/// OBX-18: the DEC profile identifies equipment by EUI-64 (HL7 table 0301 `EUI-64`), written
/// `<EUI-64>^^<EUI-64>^EUI-64` as PCD-01 examples do. A device without one gets the id derived
/// from its identity key ([`DeviceContext::eui64`]); component 2 (namespace) then says `MEDGW`
/// assigned it, as GE's B40 names itself where it builds an id from its MAC.
fn equipment_id(ctx: &DeviceContext) -> String {
    match ctx.eui64() {
        (e, false) => alloc::format!("{e}^^{e}^EUI-64"),
        (e, true) => alloc::format!("{e}^MEDGW^{e}^EUI-64"),
    }
}

/// PID and PV1, always: the bed (PV1-3) must reach the receiver whether or not a patient is
/// bound, and HL7 v2.6 ORU_R01 carries PV1 only after a PID.
///
/// Without a bound patient medgw never guesses one (decisions.md). v2.6 requires PID-3, so the
/// PID is the one vendor feeds send for an unidentified patient: a temporary identifier — the
/// bed, `site/unit[/room]/bed`, assigned by `MEDGW`, type `ANON` (table 0203, anonymous
/// identifier) — with PID-31 Identity Unknown Indicator `Y`, and PV1-2 patient class `U`
/// (unknown). PID-5 is required: the gateway knows no name, so an empty name of type `U`
/// (unspecified, table 0200), bound or not.
fn patient_visit(m: &mut String, ctx: &DeviceContext) {
    let loc = &ctx.location;
    let adt = ctx.patient.as_ref().and_then(|p| p.adt.as_deref());
    let class = match &ctx.patient {
        Some(p) => {
            match adt {
                // Associated by the ADT feed: PID-3 and PID-5 as the feed sent them.
                Some(a) => {
                    let name = a.name.as_ref().map(xpn).unwrap_or_else(|| String::from("^^^^^^U"));
                    let _ = write!(m, "PID|||{}||{name}\r", cx(&a.identifier));
                }
                None => {
                    let _ = write!(m, "PID|||{}^^^{}^MR||^^^^^^U\r", esc(&p.id), esc(p.system.as_deref().unwrap_or("")));
                }
            }
            "I"
        }
        None => {
            let mut bed = alloc::format!("{}/{}/", loc.site, loc.unit);
            if let Some(room) = &loc.room {
                bed.push_str(room);
                bed.push('/');
            }
            bed.push_str(&loc.bed);
            // PID-31 is the 26th field after PID-5.
            let _ = write!(m, "PID|||{}^^^MEDGW^ANON||^^^^^^U||||||||||||||||||||||||||Y\r", esc(&bed));
            "U"
        }
    };
    match adt.and_then(|a| a.location.as_ref()) {
        Some(pl) => {
            let _ = write!(m, "PV1||{class}|{}", pl_field(pl));
        }
        None => {
            let _ = write!(
                m,
                "PV1||{class}|{}^{}^{}^{}",
                esc(&loc.unit),
                esc(loc.room.as_deref().unwrap_or("")),
                esc(&loc.bed),
                esc(&loc.site)
            );
        }
    }
    if let Some(visit) = adt.and_then(|a| a.visit.as_ref()) {
        // PV1-19 is the 16th field after PV1-3.
        let _ = write!(m, "||||||||||||||||{}", cx(visit));
    }
    m.push('\r');
}

/// A subcomponent: escaped, `&` included.
fn hd(h: &crate::hl7::Hd) -> String {
    let mut s = esc(&h.namespace);
    if !h.universal_id.is_empty() || !h.universal_id_type.is_empty() {
        let _ = write!(s, "&{}&{}", esc(&h.universal_id), esc(&h.universal_id_type));
    }
    s
}

/// CX as received: `id ^ ^ ^ assigning authority (HD) ^ identifier type`.
fn cx(c: &crate::hl7::Cx) -> String {
    alloc::format!("{}^^^{}^{}", esc(&c.id), hd(&c.assigning_authority), esc(&c.id_type))
}

/// XPN as received: `family ^ given ^ middle ^ suffix ^ prefix`.
fn xpn(n: &crate::hl7::Xpn) -> String {
    alloc::format!("{}^{}^{}^{}^{}", esc(&n.family), esc(&n.given), esc(&n.middle), esc(&n.suffix), esc(&n.prefix))
}

/// PL as received: `point of care ^ room ^ bed ^ facility (HD) ^ ^ ^ building ^ floor`.
fn pl_field(p: &crate::hl7::Pl) -> String {
    let mut s = alloc::format!("{}^{}^{}^{}", esc(&p.point_of_care), esc(&p.room), esc(&p.bed), hd(&p.facility));
    if !p.building.is_empty() || !p.floor.is_empty() {
        let _ = write!(s, "^^^{}^{}", esc(&p.building), esc(&p.floor));
    }
    s
}

fn code_field(nom: &Nomenclature, code: MdcCode, vendor: Option<&crate::observation::VendorCode>) -> String {
    if code.is_unmapped() {
        // Not an MDC code: the vendor's, in a local coding system (HL7 table 0396 "99zzz").
        return match vendor {
            Some(v) => alloc::format!("{}^{}^99MEDGW", esc(&v.code), esc(&v.namespace)),
            None => String::from("0^UNMAPPED^99MEDGW"),
        };
    }
    match nom.metric(code) {
        Some(m) => alloc::format!("{}^{}^MDC", code.0, esc(&m.ref_id)),
        None => alloc::format!("{}^^MDC", code.0),
    }
}

/// OBX-6. A unit with no MDC code (code 0, "not mapped") is left empty: `0^^MDC` would name a
/// unit that does not exist, and OBX-6 is optional (HL7 v2.6 §7.4.2.6).
fn unit_field(nom: &Nomenclature, unit: MdcCode) -> String {
    if unit.is_unmapped() {
        return String::new();
    }
    match nom.unit(unit) {
        Some(u) => alloc::format!("{}^{}^MDC", unit.0, esc(&u.ref_id)),
        None => alloc::format!("{}^^MDC", unit.0),
    }
}

struct ObxWriter<'a> {
    out: &'a mut String,
    set_id: u32,
    time: String,
    equipment: String,
}

impl ObxWriter<'_> {
    #[allow(clippy::too_many_arguments)]
    fn obx(&mut self, value_type: &str, code: &str, hierarchy: &str, value: &str, unit: &str, obx8: &str, status: &str, time: &str) {
        self.set_id += 1;
        let _ = write!(
            self.out,
            "OBX|{}|{}|{}|{}|{}|{}||{}|||{}|||{}||||{}\r",
            self.set_id, value_type, code, hierarchy, value, unit, obx8, status, time, self.equipment
        );
    }
}

fn result_status(status: Status, absent: bool) -> &'static str {
    // HL7 table 0085: R = results entered, not verified (what PCD-01 devices send);
    // P = preliminary; X = results cannot be obtained for this observation.
    match (absent, status) {
        (true, _) => "X",
        (false, Status::Final) => "R",
        (false, Status::Preliminary) => "P",
    }
}

/// Encodes the observations of one device as an `ORU^R01` message.
///
/// `observations` must share one device context (the OBR describes one device); the caller
/// batches per device. `message_id` becomes MSH-10 and OBR-3; `now` MSH-7. Returns `None` for an
/// empty batch.
pub fn oru_r01(observations: &[&Observation], nom: &Nomenclature, message_id: &str, now: Timestamp) -> Option<String> {
    let first = observations.first()?;
    let ctx = &first.context;
    let mut m = String::with_capacity(256 + observations.len() * 160);
    // MSH: sending application = medgw on this gateway, identified by the gateway's EUI-64
    // as the DEC profile identifies equipment; sending facility = site.
    let gw = ctx.gateway_eui64();
    let _ = write!(
        m,
        "MSH|^~\\&|MEDGW^{gw}^EUI-64|{site}|||{now}||ORU^R01^ORU_R01|{id}|P|2.6|||NE|AL||UNICODE UTF-8|||IHE_PCD_001^IHE PCD^{PCD01_PROFILE_OID}^ISO\r",
        site = esc(&ctx.location.site),
        now = now.hl7(),
        id = esc(message_id),
    );
    patient_visit(&mut m, ctx);
    let obr_time = observations.iter().map(|o| o.reading.effective_time()).min().unwrap_or(now);
    let _ = write!(m, "OBR|1||{}^MEDGW^{gw}^EUI-64|182777000^monitoring of patient^SCT|||{}\r", esc(message_id), obr_time.hl7());

    let mut w = ObxWriter { out: &mut m, set_id: 0, time: String::new(), equipment: equipment_id(ctx) };
    // Containment (OBX-4): MDS 1, VMD 1; scalar metrics in channel 1, each compound in its own
    // channel with its members numbered within it.
    let mut scalar_index = 0u32;
    let mut channel = 1u32;
    for o in observations {
        let r = &o.reading;
        w.time = alloc::format!("{}", r.effective_time().hl7());
        let time = w.time.clone();
        let unit = unit_field(nom, r.unit);
        match &r.value {
            Value::Compound(components) => {
                channel += 1;
                for (i, c) in components.iter().enumerate() {
                    let hierarchy = alloc::format!("1.1.{channel}.{}", i + 1);
                    let code = code_field(nom, c.metric, None);
                    match c.value {
                        Scalar::Numeric(d) => w.obx(
                            "NM",
                            &code,
                            &hierarchy,
                            &alloc::format!("{d}"),
                            &unit,
                            &obx8(r.flags, None),
                            result_status(r.status, false),
                            &time,
                        ),
                        Scalar::Absent(a) => {
                            w.obx("NM", &code, &hierarchy, "", &unit, &obx8(r.flags, Some(a)), result_status(r.status, true), &time)
                        }
                    }
                }
            }
            value => {
                scalar_index += 1;
                let hierarchy = alloc::format!("1.1.1.{scalar_index}");
                let code = code_field(nom, r.metric, r.vendor.as_ref());
                match value {
                    Value::Numeric(d) => w.obx(
                        "NM",
                        &code,
                        &hierarchy,
                        &alloc::format!("{d}"),
                        &unit,
                        &obx8(r.flags, None),
                        result_status(r.status, false),
                        &time,
                    ),
                    Value::Absent(a) => {
                        w.obx("NM", &code, &hierarchy, "", &unit, &obx8(r.flags, Some(*a)), result_status(r.status, true), &time)
                    }
                    Value::Enumeration(e) => {
                        let v = match e.code {
                            Some(c) => alloc::format!("{}^{}^MDC", c.0, esc(&e.text)),
                            None => alloc::format!("^{}", esc(&e.text)),
                        };
                        w.obx("CWE", &code, &hierarchy, &v, "", &obx8(r.flags, None), result_status(r.status, false), &time)
                    }
                    Value::Waveform(wave) => {
                        // PCD-01 waveforms: OBX-2 NA, samples separated by the component separator.
                        let mut v = String::with_capacity(wave.samples.len() * 4);
                        for (i, s) in wave.samples.iter().enumerate() {
                            if i > 0 {
                                v.push('^');
                            }
                            let _ = write!(v, "{s}");
                        }
                        w.obx("NA", &code, &hierarchy, &v, &unit, &obx8(r.flags, None), result_status(r.status, false), &time)
                    }
                    Value::Compound(_) => {}
                }
            }
        }
        let extra = Flags(r.flags.0 & NTE_FLAGS.0);
        if !extra.is_empty() {
            let mut text = String::from("medgw-flags:");
            for n in extra.names() {
                text.push(' ');
                text.push_str(n);
            }
            if let (true, Some(t)) = (r.flags.intersects(Flags::TIME_FROM_GATEWAY), r.device_time) {
                let _ = write!(text, "; device-time {}", t.hl7());
            }
            let _ = write!(w.out, "NTE|1|L|{}\r", esc(&text));
        }
    }
    Some(m)
}

/// A parsed HL7 acknowledgement (`MSA` segment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// MSA-1: AA/AE/AR (original mode) or CA/CE/CR (enhanced mode).
    pub code: String,
    /// MSA-2: the MSH-10 of the acknowledged message.
    pub message_id: String,
}

impl Ack {
    pub fn accepted(&self) -> bool {
        self.code == "AA" || self.code == "CA"
    }
}

/// Parses an ACK message (segments separated by CR) and returns its MSA.
pub fn parse_ack(message: &str) -> Result<Ack, crate::Error> {
    if !message.starts_with("MSH") {
        return Err(crate::Error::BadText { field: "MSH" });
    }
    let field_sep = message.chars().nth(3).ok_or(crate::Error::BadText { field: "MSH" })?;
    let msa = message.split(['\r', '\n']).find(|s| s.starts_with("MSA")).ok_or(crate::Error::BadText { field: "MSA" })?;
    let mut fields = msa.split(field_sep).skip(1);
    let code = fields.next().unwrap_or("");
    let id = fields.next().unwrap_or("");
    if !matches!(code, "AA" | "AE" | "AR" | "CA" | "CE" | "CR") {
        return Err(crate::Error::BadText { field: "MSA-1" });
    }
    Ok(Ack { code: String::from(code), message_id: String::from(id) })
}
