//! The FHIR R4 `Observation` JSON, written field by field.
//!
//! The gateway writes one of these per observation at full speed, and building the resource as a
//! tree of serde structs (a `Vec` per coding list, a `String` per URL and reference, serde's
//! escaping of every key) was the largest part of its work per observation (issue 20). The
//! content and the field order are those the module documentation of [`super::fhir`] describes
//! (R4 `Observation`, vital-signs profile, unassociated form); constants are written as they
//! are, text from devices and configuration is escaped as serde_json escapes it. The subject
//! and device references are the ones the wave encoder writes too (`fhir.rs`), serialised as
//! they are, so that who and what an observation refers to is decided in one place.

use alloc::vec::Vec;

use uuid::Uuid;

use super::fhir::{
    bed_reference, device_reference, patient_reference, ASSOCIATION_SYSTEM, DATA_ABSENT_REASON, EXT, LOINC, MDC, MEASUREMENT_STATUS_SYSTEM,
    OBSERVATION_CATEGORY, UCUM, VENDOR_SYSTEM_PREFIX, VITAL_SIGNS_PROFILE,
};
use crate::decimal::Decimal;
use crate::mdc::MdcCode;
use crate::nomenclature::Nomenclature;
use crate::observation::{AbsentReason, Flags, Observation, Scalar, Status, Value, VendorCode};
use crate::time::Timestamp;
use crate::units;

/// Appends the FHIR `Observation` JSON of `obs` to `out`.
pub fn write(out: &mut Vec<u8>, obs: &Observation, nom: &Nomenclature) {
    let r = &obs.reading;
    let ctx = &obs.context;
    let entry = if r.metric.is_unmapped() { None } else { nom.metric(r.metric) };
    let vital = entry.and_then(|e| e.vital_profile.as_ref());
    // Without a bound patient: the unassociated form (docs/pcd-01.md): the bed as subject, a
    // tag, no profile, no vital-signs category and no LOINC codings.
    let associated = ctx.patient.is_some();
    let from_gateway = r.device_time.is_none() || r.flags.intersects(Flags::TIME_FROM_GATEWAY);
    // The unit conversion decides an extension, which is written before the value.
    let numeric = match &r.value {
        Value::Numeric(d) => Some(QuantityOut::of(nom, r.metric, *d, r.unit)),
        _ => None,
    };

    out.extend_from_slice(b"{\"resourceType\":\"Observation\",\"id\":\"");
    uuid(out, r.id);
    out.push(b'"');
    match (associated, vital) {
        (true, Some(profile)) => {
            out.extend_from_slice(b",\"meta\":{\"profile\":[");
            text(out, VITAL_SIGNS_PROFILE);
            out.push(b',');
            text(out, profile);
            out.extend_from_slice(b"]}");
        }
        (true, None) => {}
        (false, _) => {
            out.extend_from_slice(b",\"meta\":{\"tag\":[");
            coding(out, ASSOCIATION_SYSTEM, "unassociated", Some("Not yet associated with a patient"));
            out.extend_from_slice(b"]}");
        }
    }

    out.extend_from_slice(b",\"extension\":[{\"url\":\"");
    out.extend_from_slice(EXT.as_bytes());
    out.extend_from_slice(b"time-source\",\"valueCode\":\"");
    out.extend_from_slice(if from_gateway { b"gateway\"}" } else { b"device\"}" });
    if let (true, Some(t)) = (from_gateway, r.device_time) {
        out.extend_from_slice(b",{\"url\":\"");
        out.extend_from_slice(EXT.as_bytes());
        out.extend_from_slice(b"device-time\",\"valueDateTime\":");
        time(out, t);
        out.push(b'}');
    }
    flag_extensions(out, r.flags);
    if let Some(q) = &numeric {
        q.original_extension(out, nom);
    }
    out.push(b']');

    out.extend_from_slice(b",\"identifier\":[{\"system\":\"urn:ietf:rfc:3986\",\"value\":\"urn:uuid:");
    uuid(out, r.id);
    out.extend_from_slice(b"\"}],\"status\":\"");
    out.extend_from_slice(match r.status {
        Status::Final => b"final\"",
        Status::Preliminary => b"preliminary\"",
    });
    if associated && vital.is_some() {
        out.extend_from_slice(b",\"category\":[{\"coding\":[");
        coding(out, OBSERVATION_CATEGORY, "vital-signs", Some("Vital Signs"));
        out.extend_from_slice(b"]}]");
    }
    out.extend_from_slice(b",\"code\":");
    code(out, nom, r.metric, r.vendor.as_ref(), associated);

    match &ctx.patient {
        Some(p) => {
            out.extend_from_slice(b",\"subject\":");
            super::append_json(out, &patient_reference(p));
            if let Some(v) = p.adt.as_ref().and_then(|a| a.visit.as_ref()) {
                // The visit (PV1-19) of a patient associated by the ADT feed, by identifier.
                out.extend_from_slice(b",\"encounter\":{\"type\":\"Encounter\",\"identifier\":{");
                if let Some(system) = crate::observation::AdtFields::system_of(v) {
                    out.extend_from_slice(b"\"system\":");
                    text(out, &system);
                    out.push(b',');
                }
                out.extend_from_slice(b"\"value\":");
                text(out, &v.id);
                out.extend_from_slice(b"}}");
            }
        }
        None => {
            out.extend_from_slice(b",\"subject\":");
            super::append_json(out, &bed_reference(&ctx.location));
        }
    }
    out.extend_from_slice(b",\"effectiveDateTime\":");
    time(out, r.effective_time());
    out.extend_from_slice(b",\"issued\":");
    time(out, r.receipt_time);

    match &r.value {
        Value::Numeric(_) => {
            if let Some(q) = &numeric {
                out.extend_from_slice(b",\"valueQuantity\":");
                q.write(out, nom);
            }
        }
        Value::Enumeration(e) => {
            out.extend_from_slice(b",\"valueCodeableConcept\":{\"coding\":[");
            if let Some(c) = e.code {
                out.extend_from_slice(b"{\"system\":\"");
                out.extend_from_slice(MDC.as_bytes());
                out.extend_from_slice(b"\",\"code\":\"");
                out.extend_from_slice(crate::decimal::digits(&mut [0; 20], u64::from(c.0)).as_bytes());
                out.extend_from_slice(b"\"}");
            }
            out.extend_from_slice(b"],\"text\":");
            text(out, &e.text);
            out.push(b'}');
        }
        Value::Waveform(w) => {
            // period_us / 1000 as an exact decimal in ms.
            let period = Decimal::new(w.period_us as i64, -3).unwrap_or(Decimal::from_int(0));
            out.extend_from_slice(b",\"valueSampledData\":{\"origin\":{\"value\":0},\"period\":");
            decimal(out, period);
            out.extend_from_slice(b",\"dimensions\":1,\"data\":\"");
            for (i, s) in w.samples.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                if *s < 0 {
                    out.push(b'-');
                }
                out.extend_from_slice(crate::decimal::digits(&mut [0; 20], u64::from(s.unsigned_abs())).as_bytes());
            }
            out.extend_from_slice(b"\"}");
        }
        Value::Absent(a) => {
            out.extend_from_slice(b",\"dataAbsentReason\":");
            data_absent(out, *a);
        }
        Value::Compound(_) => {}
    }
    if !matches!(r.value, Value::Absent(_)) && r.flags.intersects(Flags::QUESTIONABLE_VALUE) {
        out.extend_from_slice(b",\"interpretation\":[");
        questionable(out, r.flags);
        out.push(b']');
    }

    out.extend_from_slice(b",\"device\":");
    super::append_json(out, &device_reference(ctx));

    if let Value::Compound(components) = &r.value {
        if !components.is_empty() {
            out.extend_from_slice(b",\"component\":[");
            for (i, c) in components.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"code\":");
                code(out, nom, c.metric, None, associated);
                match c.value {
                    Scalar::Numeric(d) => {
                        let q = QuantityOut::of(nom, c.metric, d, r.unit);
                        out.extend_from_slice(b",\"valueQuantity\":");
                        q.write(out, nom);
                        if q.converted() {
                            out.extend_from_slice(b",\"extension\":[");
                            q.original(out, nom);
                            out.push(b']');
                        }
                    }
                    Scalar::Absent(a) => {
                        out.extend_from_slice(b",\"dataAbsentReason\":");
                        data_absent(out, a);
                    }
                }
                out.push(b'}');
            }
            out.push(b']');
        }
    }
    out.push(b'}');
}

/// A quantity in the unit FHIR output expects for its metric (converting when needed), and the
/// device's own value and unit for the `original-value` extension when a conversion happened.
///
/// A unit medgw has no UCUM code for (a vendor's unit, an IntelliVue private unit) still carries
/// the value: R4 obs-6 allows `dataAbsentReason` only when there is no value, and the canonical
/// and HL7 outputs carry the number too. Such a quantity has no `system`/`code` (none is known),
/// and `unit` names the MDC unit code where there is one.
struct QuantityOut {
    value: Decimal,
    unit: MdcCode,
    device: Option<(Decimal, MdcCode)>,
}

impl QuantityOut {
    fn of(nom: &Nomenclature, metric: MdcCode, value: Decimal, unit: MdcCode) -> QuantityOut {
        let target = nom.metric(metric).and_then(|m| m.fhir_unit).unwrap_or(unit);
        match units::convert(metric, value, unit, target) {
            Some(v) if target != unit => QuantityOut { value: v, unit: target, device: Some((value, unit)) },
            _ => QuantityOut { value, unit, device: None },
        }
    }

    fn converted(&self) -> bool {
        self.device.is_some()
    }

    fn write(&self, out: &mut Vec<u8>, nom: &Nomenclature) {
        quantity(out, nom, self.value, self.unit);
    }

    /// The `original-value` extension, when converted.
    fn original(&self, out: &mut Vec<u8>, nom: &Nomenclature) {
        if let Some((value, unit)) = self.device {
            out.extend_from_slice(b"{\"url\":\"");
            out.extend_from_slice(EXT.as_bytes());
            out.extend_from_slice(b"original-value\",\"valueQuantity\":");
            quantity(out, nom, value, unit);
            out.push(b'}');
        }
    }

    /// [`QuantityOut::original`] as a further member of an extension list.
    fn original_extension(&self, out: &mut Vec<u8>, nom: &Nomenclature) {
        if self.converted() {
            out.push(b',');
            self.original(out, nom);
        }
    }
}

/// A FHIR `Quantity`. `system` and `code` only where the unit has a UCUM code (R4 qty-3: a code
/// needs its system); a unit without one is named in `unit` only.
fn quantity(out: &mut Vec<u8>, nom: &Nomenclature, value: Decimal, unit: MdcCode) {
    out.extend_from_slice(b"{\"value\":");
    decimal(out, value);
    match nom.unit(unit) {
        Some(e) => {
            // Dimensionless units have an empty display, and FHIR forbids empty strings.
            let shown = if e.display.is_empty() { &e.ucum } else { &e.display };
            out.extend_from_slice(b",\"unit\":");
            text(out, shown);
            out.extend_from_slice(b",\"system\":\"");
            out.extend_from_slice(UCUM.as_bytes());
            out.extend_from_slice(b"\",\"code\":");
            text(out, &e.ucum);
        }
        None if unit.is_unmapped() => {}
        None => {
            out.extend_from_slice(b",\"unit\":\"MDC unit ");
            out.extend_from_slice(crate::decimal::digits(&mut [0; 20], u64::from(unit.0)).as_bytes());
            out.push(b'"');
        }
    }
    out.push(b'}');
}

/// The code of a metric: its LOINC codings (if any, and only for an associated observation),
/// then the MDC coding; an unmapped metric is coded in the vendor's namespace so the receiver
/// still sees what the device said.
fn code(out: &mut Vec<u8>, nom: &Nomenclature, metric: MdcCode, vendor: Option<&VendorCode>, associated: bool) {
    out.extend_from_slice(b"{\"coding\":[");
    if metric.is_unmapped() {
        if let Some(v) = vendor {
            out.extend_from_slice(b"{\"system\":");
            let mut system = alloc::string::String::with_capacity(VENDOR_SYSTEM_PREFIX.len() + v.namespace.len());
            system.push_str(VENDOR_SYSTEM_PREFIX);
            system.push_str(&v.namespace);
            text(out, &system);
            out.extend_from_slice(b",\"code\":");
            text(out, &v.code);
            out.extend_from_slice(b"}],\"text\":");
            let mut shown = alloc::string::String::with_capacity(v.namespace.len() + 1 + v.code.len());
            shown.push_str(&v.namespace);
            shown.push(' ');
            shown.push_str(&v.code);
            text(out, &shown);
            out.push(b'}');
        } else {
            out.extend_from_slice(b"]}");
        }
        return;
    }
    let entry = nom.metric(metric);
    let mut first = true;
    if let (Some(e), true) = (entry, associated) {
        for l in &e.loinc {
            if !first {
                out.push(b',');
            }
            first = false;
            coding(out, LOINC, l, None);
        }
    }
    if !first {
        out.push(b',');
    }
    out.extend_from_slice(b"{\"system\":\"");
    out.extend_from_slice(MDC.as_bytes());
    out.extend_from_slice(b"\",\"code\":\"");
    out.extend_from_slice(crate::decimal::digits(&mut [0; 20], u64::from(metric.0)).as_bytes());
    out.push(b'"');
    if let Some(e) = entry {
        out.extend_from_slice(b",\"display\":");
        text(out, &e.ref_id);
    }
    out.extend_from_slice(b"}]");
    if let Some(e) = entry {
        out.extend_from_slice(b",\"text\":");
        text(out, &e.display);
    }
    out.push(b'}');
}

/// A `Coding` with an optional display.
fn coding(out: &mut Vec<u8>, system: &str, code: &str, display: Option<&str>) {
    out.extend_from_slice(b"{\"system\":");
    text(out, system);
    out.extend_from_slice(b",\"code\":");
    text(out, code);
    if let Some(d) = display {
        out.extend_from_slice(b",\"display\":");
        text(out, d);
    }
    out.push(b'}');
}

/// One `observation-flag` extension per quality flag.
fn flag_extensions(out: &mut Vec<u8>, flags: Flags) {
    for name in flags.names() {
        out.extend_from_slice(b",{\"url\":\"");
        out.extend_from_slice(EXT.as_bytes());
        out.extend_from_slice(b"observation-flag\",\"valueCode\":");
        text(out, name);
        out.push(b'}');
    }
}

fn data_absent(out: &mut Vec<u8>, reason: AbsentReason) {
    // http://terminology.hl7.org/CodeSystem/data-absent-reason (R4).
    let code = match reason {
        AbsentReason::Unavailable => "unknown",
        AbsentReason::NotANumber => "not-a-number",
        AbsentReason::PositiveInfinity => "positive-infinity",
        AbsentReason::NegativeInfinity => "negative-infinity",
        AbsentReason::NotAtThisResolution | AbsentReason::Reserved | AbsentReason::Error => "error",
    };
    out.extend_from_slice(b"{\"coding\":[");
    coding(out, DATA_ABSENT_REASON, code, None);
    out.extend_from_slice(b"]}");
}

/// The `interpretation` of a value that is present but questionable (see
/// [`Flags::QUESTIONABLE_VALUE`]): `QUES` as in the HL7 output's OBX-8, with the flags as text.
fn questionable(out: &mut Vec<u8>, flags: Flags) {
    out.extend_from_slice(b"{\"coding\":[");
    coding(out, MEASUREMENT_STATUS_SYSTEM, "QUES", Some("Questionable"));
    out.extend_from_slice(b"],\"text\":\"questionable:");
    for n in Flags(flags.0 & Flags::QUESTIONABLE_VALUE.0).names() {
        // Flag names are lower-case words with hyphens: nothing to escape.
        out.push(b' ');
        out.extend_from_slice(n.as_bytes());
    }
    out.extend_from_slice(b"\"}");
}

/// A JSON string: written as it is when nothing in it needs escaping (constants, codes, most
/// device text), else through serde_json, so that escaping is the same as everywhere else.
fn text(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        super::append_json(out, &s);
    }
}

/// A UUID in its lower-case hyphenated form, unquoted.
fn uuid(out: &mut Vec<u8>, id: Uuid) {
    out.extend_from_slice(id.hyphenated().encode_lower(&mut Uuid::encode_buffer()).as_bytes());
}

/// An RFC 3339 time as a JSON string.
fn time(out: &mut Vec<u8>, t: Timestamp) {
    use core::fmt::Write;
    struct Bytes<'a>(&'a mut Vec<u8>);
    impl Write for Bytes<'_> {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            self.0.extend_from_slice(s.as_bytes());
            Ok(())
        }
    }
    out.push(b'"');
    // Digits and separators only: nothing to escape.
    let _ = write!(Bytes(out), "{}", t.rfc3339());
    out.push(b'"');
}

/// A decimal as a JSON number with its stored digits (`97.50`), as its serde form writes it.
fn decimal(out: &mut Vec<u8>, d: Decimal) {
    let mut buf = [0u8; 40];
    out.extend_from_slice(d.write_to(&mut buf).as_bytes());
}
