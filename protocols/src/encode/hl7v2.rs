//! HL7 v2.6 `ORU^R01` as IHE PCD-01 (Communicate PCD Data, DEC profile) specifies it.
//!
//! ```text
//! MSH  MSH-3 MEDGW^<gateway EUI-64>^EUI-64, MSH-9 ORU^R01^ORU_R01, MSH-10 the set's id,
//!      MSH-12 2.6, MSH-21 IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO
//! PID  always: the bound patient (PID-3), or an unidentified one (PID-31 Y, see `patient_visit`)
//! PV1  always: PV1-3 the bed, point of care^room^bed^facility
//! OBR  OBR-3 filler order number <message id>^MEDGW^<gateway EUI-64>^EUI-64,
//!      OBR-4 182777000^monitoring of patient^SCT, OBR-7 observation time
//! OBX  the containment tree (`containment`): MDS 1.0.0.0, VMD 1.v.0.0, channel 1.v.c.0 rows
//!      (OBX-3 the MDC device code, no value, OBX-11 X), then per value: OBX-3
//!      <MDC code>^<REF_ID>^MDC, OBX-4 1.v.c.m, OBX-5 value, OBX-6 <MDC unit>^<REF_ID>^MDC,
//!      OBX-8 measurement status, OBX-11 R/P/X, OBX-14 time, OBX-17 method, OBX-20 site;
//!      OBX-18 on every row: the device's EUI-64, or one derived from its identity
//! NTE  after an OBX whose flags OBX-8 cannot carry (time quality, unmapped code)
//! ```
//! One message reports one observation set of one device ([`group_sets`], [`oru_r01_set`]).
//! Values stay in the device's MDC unit: PCD-01 is MDC-native, so nothing is converted.
//! Segments end with CR (HL7 v2 §2.5.4).

use alloc::string::String;
use core::fmt::Write;

use super::containment::{self, DevCode, Vmd};
use crate::mdc::MdcCode;
use crate::nomenclature::Nomenclature;
use crate::observation::{AbsentReason, DeviceContext, Flags, Observation, Reading, Scalar, Status, Value};
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

pub(crate) fn esc(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    escape(&mut s, text);
    s
}

/// OBX-8 abnormal flags / measurement status for the flags IHE PCD-01 (TF-2, OBX-8) defines,
/// written straight into the message (`~`-separated, each once).
pub(crate) fn obx8(out: &mut String, flags: Flags, absent: Option<AbsentReason>) {
    let mut first = true;
    let mut put = |out: &mut String, s: &str| {
        if !first {
            out.push('~');
        }
        first = false;
        out.push_str(s);
    };
    if absent.is_some() || flags.contains(Flags::UNAVAILABLE) {
        put(out, if flags.contains(Flags::SENSOR_OFF) { "OFF" } else { "NAV" });
    }
    if flags.contains(Flags::INVALID) {
        put(out, "INV");
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
        put(out, "QUES");
    }
    for (flag, text) in [
        (Flags::CALIBRATING, "CAL"),
        (Flags::TEST, "TEST"),
        (Flags::DEMO, "DEMO"),
        (Flags::EARLY_ESTIMATE, "EARLY"),
        (Flags::ALARM, "ALACT"),
    ] {
        if flags.contains(flag) {
            put(out, text);
        }
    }
    match absent {
        Some(AbsentReason::PositiveInfinity) => put(out, ">"),
        Some(AbsentReason::NegativeInfinity) => put(out, "<"),
        _ => {}
    }
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
pub(crate) fn equipment_id(ctx: &DeviceContext) -> String {
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
pub(crate) fn patient_visit(m: &mut String, ctx: &DeviceContext) {
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
            let bed = loc.path();
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

/// OBX-3 of a metric row, written into the message.
pub(crate) fn code_field(out: &mut String, nom: &Nomenclature, code: MdcCode, vendor: Option<&crate::observation::VendorCode>) {
    if code.is_unmapped() {
        // Not an MDC code: the vendor's, in a local coding system (HL7 table 0396 "99zzz").
        match vendor {
            Some(v) => {
                escape(out, &v.code);
                out.push('^');
                escape(out, &v.namespace);
                out.push_str("^99MEDGW");
            }
            None => out.push_str("0^UNMAPPED^99MEDGW"),
        }
        return;
    }
    let _ = write!(out, "{}^", code.0);
    if let Some(m) = nom.metric(code) {
        escape(out, &m.ref_id);
    }
    out.push_str("^MDC");
}

/// OBX-6. A unit with no MDC code (code 0, "not mapped") is left empty: `0^^MDC` would name a
/// unit that does not exist, and OBX-6 is optional (HL7 v2.6 §7.4.2.6).
pub(crate) fn unit_field(out: &mut String, nom: &Nomenclature, unit: MdcCode) {
    if unit.is_unmapped() {
        return;
    }
    let _ = write!(out, "{}^", unit.0);
    if let Some(u) = nom.unit(unit) {
        escape(out, &u.ref_id);
    }
    out.push_str("^MDC");
}

/// [`obx8`] as a string, for the other ER7 encoders (wave segments, PCD-04).
pub(crate) fn obx8_text(flags: Flags, absent: Option<AbsentReason>) -> String {
    let mut s = String::new();
    obx8(&mut s, flags, absent);
    s
}

/// [`code_field`] as a string, for the other ER7 encoders.
pub(crate) fn code_text(nom: &Nomenclature, code: MdcCode, vendor: Option<&crate::observation::VendorCode>) -> String {
    let mut s = String::new();
    code_field(&mut s, nom, code, vendor);
    s
}

/// [`unit_field`] as a string, for the other ER7 encoders.
pub(crate) fn unit_text(nom: &Nomenclature, unit: MdcCode) -> String {
    let mut s = String::new();
    unit_field(&mut s, nom, unit);
    s
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

/// Writes the OBX rows of one message, numbering OBX-1.
struct ObxWriter<'a> {
    out: &'a mut String,
    set_id: u32,
    /// OBX-18, the same on every row.
    equipment: String,
}

impl ObxWriter<'_> {
    /// A device-description row (MDS, VMD or channel): the device code in OBX-3, no value type
    /// and no value, OBX-11 `X`, and OBX-18, as the DEC examples write them.
    fn description(&mut self, dev: DevCode, (v, c): (u32, u32)) {
        self.set_id += 1;
        let _ = write!(self.out, "OBX|{}||{}^{}^MDC|1.{v}.{c}.0|||||||X|||||||{}\r", self.set_id, dev.code, dev.ref_id, self.equipment);
    }

    /// Starts a metric row, up to OBX-2; OBX-3 follows, then [`Self::sub_id`].
    fn metric_head(&mut self, value_type: &str) {
        self.set_id += 1;
        let _ = write!(self.out, "OBX|{}|{}|", self.set_id, value_type);
    }

    /// OBX-4 after OBX-3.
    fn sub_id(&mut self, (v, c, m): (u32, u32, u32)) {
        let _ = write!(self.out, "|1.{v}.{c}.{m}|");
    }

    /// OBX-8 to OBX-20 of a metric row after its OBX-6.
    fn metric_tail(&mut self, r: &Reading, absent: Option<AbsentReason>, method: Option<&str>, site: Option<&str>) {
        self.out.push_str("||");
        obx8(self.out, r.flags, absent);
        let _ = write!(
            self.out,
            "|||{}|||{}|||{}|{}",
            result_status(r.status, absent.is_some()),
            r.effective_time().hl7(),
            method.unwrap_or(""),
            self.equipment
        );
        if let Some(s) = site {
            self.out.push_str("||");
            self.out.push_str(s);
        }
        self.out.push('\r');
    }
}

/// Writes the metric rows of one observation (a compound: one row per member, in its own
/// channel) and the NTE for flags OBX-8 cannot carry.
fn metric_rows(w: &mut ObxWriter<'_>, nom: &Nomenclature, o: &Observation, v: u32, c: u32, mut m: u32) {
    let r = &o.reading;
    let method = containment::method(r.metric);
    let site = containment::site(r.vendor.as_ref());
    match &r.value {
        Value::Compound(components) => {
            for comp in components.iter() {
                m += 1;
                w.metric_head("NM");
                code_field(w.out, nom, comp.metric, None);
                w.sub_id((v, c, m));
                match comp.value {
                    Scalar::Numeric(d) => {
                        let _ = write!(w.out, "{d}|");
                        unit_field(w.out, nom, r.unit);
                        w.metric_tail(r, None, method, site);
                    }
                    Scalar::Absent(a) => {
                        w.out.push('|');
                        unit_field(w.out, nom, r.unit);
                        w.metric_tail(r, Some(a), method, site);
                    }
                }
            }
        }
        value => {
            m += 1;
            let vt = match value {
                Value::Enumeration(_) => "CWE",
                // PCD-01 waveforms: OBX-2 NA, samples separated by the component separator.
                Value::Waveform(_) => "NA",
                _ => "NM",
            };
            w.metric_head(vt);
            code_field(w.out, nom, r.metric, r.vendor.as_ref());
            w.sub_id((v, c, m));
            let mut absent = None;
            match value {
                Value::Numeric(d) => {
                    let _ = write!(w.out, "{d}");
                }
                Value::Absent(a) => absent = Some(*a),
                Value::Enumeration(e) => match e.code {
                    Some(c) => {
                        let _ = write!(w.out, "{}^", c.0);
                        escape(w.out, &e.text);
                        w.out.push_str("^MDC");
                    }
                    None => {
                        w.out.push('^');
                        escape(w.out, &e.text);
                    }
                },
                Value::Waveform(wave) => {
                    for (i, s) in wave.samples.iter().enumerate() {
                        if i > 0 {
                            w.out.push('^');
                        }
                        let _ = write!(w.out, "{s}");
                    }
                }
                Value::Compound(_) => {}
            }
            w.out.push('|');
            if !matches!(value, Value::Enumeration(_)) {
                unit_field(w.out, nom, r.unit);
            }
            w.metric_tail(r, absent, method, site);
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
        w.out.push_str("NTE|1|L|");
        escape(w.out, &text);
        w.out.push('\r');
    }
}

/// Encodes the observations of one device as an `ORU^R01` message with the PCD-01 containment
/// tree in OBX-4 ([`containment`]): the MDS row `1.0.0.0`; per measurement subsystem a VMD row
/// `1.v.0.0` (in the order the subsystems first appear); in each VMD one channel `1.v.1.0` for
/// its single values and one channel per compound (a blood-pressure panel is one channel with
/// its systolic, diastolic and mean); then the metrics `1.v.c.m`. Every row carries OBX-18.
///
/// `observations` must share one device context (the OBR describes one device): a set from
/// [`group_sets`], or one observation (a set of one). `message_id` becomes MSH-10 and OBR-3
/// ([`set_message_id`] for a set); `now` MSH-7. Returns `None` for an empty batch.
pub fn oru_r01(observations: &[&Observation], nom: &Nomenclature, message_id: &str, now: Timestamp) -> Option<String> {
    let first = observations.first()?;
    let ctx = &first.context;
    let mut m = String::with_capacity(512 + observations.len() * 200);
    // MSH: sending application = medgw on this gateway, identified by the gateway's EUI-64
    // as the DEC profile identifies equipment; sending facility = site.
    let gw = ctx.gateway_eui64();
    m.push_str("MSH|^~\\&|MEDGW^");
    let _ = write!(m, "{gw}^EUI-64|");
    escape(&mut m, &ctx.location.site);
    let _ = write!(m, "|||{}||ORU^R01^ORU_R01|", now.hl7());
    escape(&mut m, message_id);
    let _ = write!(m, "|P|2.6|||NE|AL||UNICODE UTF-8|||IHE_PCD_001^IHE PCD^{PCD01_PROFILE_OID}^ISO\r");
    patient_visit(&mut m, ctx);
    let obr_time = observations.iter().map(|o| o.reading.effective_time()).min().unwrap_or(now);
    m.push_str("OBR|1||");
    escape(&mut m, message_id);
    let _ = write!(m, "^MEDGW^{gw}^EUI-64|182777000^monitoring of patient^SCT|||{}\r", obr_time.hl7());

    let mds = containment::mds(&ctx.protocol);
    let mut w = ObxWriter { out: &mut m, set_id: 0, equipment: equipment_id(ctx) };
    w.set_id += 1;
    let _ = write!(w.out, "OBX|1||{}^{}^MDC|1.0.0.0|||||||X|||||||{}\r", mds.code, mds.ref_id, w.equipment);
    // Each observation's VMD; a VMD's rows are written where it first appears.
    let vmds: alloc::vec::Vec<Vmd> = observations.iter().map(|o| containment::vmd(o.reading.metric, mds)).collect();
    let mut v = 0u32;
    for (i, vmd) in vmds.iter().enumerate() {
        if vmds[..i].contains(vmd) {
            continue;
        }
        v += 1;
        w.description(vmd.vmd, (v, 0));
        let members = || observations.iter().zip(&vmds).skip(i).filter(|(_, x)| *x == vmd).map(|(o, _)| *o);
        let mut c = 0u32;
        if members().any(|o| !matches!(o.reading.value, Value::Compound(_))) {
            c += 1;
            w.description(vmd.chan, (v, c));
            for (n, o) in members().filter(|o| !matches!(o.reading.value, Value::Compound(_))).enumerate() {
                metric_rows(&mut w, nom, o, v, c, n as u32);
            }
        }
        for o in members().filter(|o| matches!(o.reading.value, Value::Compound(_))) {
            c += 1;
            w.description(vmd.chan, (v, c));
            metric_rows(&mut w, nom, o, v, c, 0);
        }
    }
    Some(m)
}

/// Limits on one observation set, so that a high-rate device's messages stay bounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetLimits {
    /// Metric OBX rows at most (a compound counts one per member).
    pub max_metrics: usize,
    /// Estimated message size at most, in bytes (waveform samples count).
    pub max_bytes: usize,
}

impl Default for SetLimits {
    /// 64 metrics, 32 KiB: more than any supported device reports at one instant (an IntelliVue
    /// poll of a fully equipped monitor), well under what MLLP receivers and brokers accept.
    fn default() -> SetLimits {
        SetLimits { max_metrics: 64, max_bytes: 32 * 1024 }
    }
}

/// The rows and estimated bytes one observation adds to a message.
fn weight(o: &Observation) -> (usize, usize) {
    match &o.reading.value {
        Value::Compound(c) => (c.len(), 200 * c.len() + 60),
        Value::Waveform(w) => (1, 200 + 7 * w.samples.len()),
        _ => (1, 200),
    }
}

/// Whether two observations belong to one set: one device (the same context, hence the same
/// identity key, bed and patient) and the same effective time (the device's time, or the
/// receipt time when the gateway's is used: what OBX-14 says).
fn same_set(a: &Observation, b: &Observation) -> bool {
    a.reading.effective_time() == b.reading.effective_time() && (alloc::sync::Arc::ptr_eq(&a.context, &b.context) || a.context == b.context)
}

/// Groups observations into PCD-01 observation sets, one `ORU^R01` each ([`oru_r01_set`]).
///
/// A set is a run of *consecutive* observations of one device with the same effective time
/// (what the device reported for one instant: one Masimo line, one IntelliVue poll answer, one
/// GATT measurement with its members). A set ends where the device or the time changes, where a
/// metric repeats (two readings of one metric at one instant are two sets, so a receiver never
/// files one over the other), and before it would exceed `limits`. An observation alone is a
/// set of one; an observation larger than the limits is a set of its own. Order is kept.
pub fn group_sets<'a, I>(observations: I, limits: SetLimits) -> alloc::vec::Vec<alloc::vec::Vec<&'a Observation>>
where
    I: IntoIterator<Item = &'a Observation>,
{
    let mut sets: alloc::vec::Vec<alloc::vec::Vec<&'a Observation>> = alloc::vec::Vec::new();
    let mut cursor: Option<SetCursor> = None;
    for o in observations {
        let joins = match (sets.last(), cursor.as_mut()) {
            (Some(set), Some(c)) => c.admit(set.iter().copied(), o),
            _ => false,
        };
        match sets.last_mut() {
            Some(set) if joins => set.push(o),
            _ => {
                sets.push(alloc::vec![o]);
                cursor = Some(SetCursor::start(o, limits));
            }
        }
    }
    sets
}

/// [`group_sets`] one observation at a time, for a caller that takes observations from a
/// queue (the MQTT sink groups the rows it is about to send): start a set with its first
/// observation, then ask [`SetCursor::admit`] for each next one, in order, until it says no.
#[derive(Clone, Copy, Debug)]
pub struct SetCursor {
    limits: SetLimits,
    rows: usize,
    bytes: usize,
}

impl SetCursor {
    /// A set that begins with `first`.
    pub fn start(first: &Observation, limits: SetLimits) -> SetCursor {
        let (rows, bytes) = weight(first);
        // The message's own segments (MSH, PID, PV1, OBR, the MDS row) count too.
        SetCursor { limits, rows, bytes: bytes + 600 }
    }

    /// Whether `next` joins `set` (the observations admitted so far, the first included):
    /// same device and time, no metric repeated, within the limits. Counts it when it does.
    pub fn admit<'a>(&mut self, set: impl IntoIterator<Item = &'a Observation>, next: &Observation) -> bool {
        let mut set = set.into_iter();
        let Some(first) = set.next() else { return false };
        let (r, b) = weight(next);
        let repeats = |x: &Observation| x.reading.metric == next.reading.metric && x.reading.vendor == next.reading.vendor;
        let joins = same_set(first, next)
            && self.rows + r <= self.limits.max_metrics
            && self.bytes + b <= self.limits.max_bytes
            && !repeats(first)
            && !set.any(repeats);
        if joins {
            self.rows += r;
            self.bytes += b;
        }
        joins
    }
}

/// MSH-10 (and OBR-3) of a set: deterministic, so a re-sent set has the id it had, and unique
/// per set. A set of one keeps its observation's id (what MSH-10 was before sets); a larger
/// set gets the UUID v5, in the observation-id namespace, of `pcd01-set` followed by its
/// members' ids (16 bytes each, in order). A consumer de-duplicates on MSH-10.
pub fn set_message_id(set: &[&Observation]) -> uuid::Uuid {
    match set {
        [one] => one.reading.id,
        _ => {
            let mut name = alloc::vec::Vec::with_capacity(9 + 16 * set.len());
            name.extend_from_slice(b"pcd01-set");
            for o in set {
                name.extend_from_slice(o.reading.id.as_bytes());
            }
            crate::observation::uuid_v5(&crate::observation::ID_NAMESPACE, &name)
        }
    }
}

/// One observation set as a PCD-01 `ORU^R01`, MSH-10 = [`set_message_id`]. `None` for an empty
/// set.
pub fn oru_r01_set(set: &[&Observation], nom: &Nomenclature, now: Timestamp) -> Option<String> {
    if set.is_empty() {
        return None;
    }
    let id = set_message_id(set);
    let mut buf = uuid::Uuid::encode_buffer();
    oru_r01(set, nom, id.hyphenated().encode_lower(&mut buf), now)
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
