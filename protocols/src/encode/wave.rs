//! Encoders for wave segments ([`WaveSegment`]): FHIR R4 `Observation.valueSampledData`,
//! HL7 v2.6 PCD-01 `NA` OBX with its sample-rate and data-range rows, and canonical JSON.
//!
//! The samples are written raw, with the device's scale beside them, in every form:
//! - FHIR R4 `SampledData` (hl7.org/fhir/R4/datatypes.html#SampledData; facts in the project's
//!   hospital-integration.md §3): `origin` (the physical value of raw 0, with the unit), `period`
//!   in ms, `factor`, `lowerLimit`/`upperLimit` (the physical values at the ends of the device's
//!   raw range), `dimensions` 1, `data` the raw values separated by spaces, with `E` for a
//!   sample the device marked invalid or the gateway lost, `L`/`U` for one the device marked
//!   below/above its range. The observation's time is `effectivePeriod` (first sample to the
//!   end of the last sample's period).
//! - PCD-01 (IHE PCD TF-2 waveform OBX as public PCD-01 feeds send it, hospital-integration.md
//!   §3 and its example E3): OBR-7/OBR-8 the start and end of the segment; OBX-2 `NA` with the
//!   samples as physical values separated by `^` (an invalid or lost sample is an empty
//!   component); the child rows `<n>.1` `0^MDC_ATTR_SAMP_RATE^MDC` NM in
//!   `264608^MDC_DIM_PER_SEC^MDC` and `<n>.2` `0^MDC_ATTR_DATA_RANGE^MDC` NR `low^high` in the
//!   wave's unit. NA carries no per-sample flag, so the segment's marks are counted in an NTE.
//! - canonical JSON (docs/waveforms.md): the segment as it is, raw samples, scale, sparse marks.
//!
//! Segment ids are observation ids ([`observation_id`]) over the device key, the metric, the
//! first sample's time and the stream sequence number.

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use serde::Serialize;
use uuid::Uuid;

use super::containment;
use super::fhir::{
    bed_reference, device_reference, patient_reference, CodeableConcept, Coding, Identifier, Reference, ASSOCIATION_SYSTEM, EXT, MDC, UCUM,
};
use super::hl7v2::{code_text, equipment_id, esc, obx8_text, patient_visit, unit_text, PCD01_PROFILE_OID};
use crate::decimal::Decimal;
use crate::nomenclature::Nomenclature;
use crate::observation::{observation_id, DeviceContext, Flags, Location, Patient};
use crate::time::Timestamp;
use crate::wave::{SampleMarks, WaveSegment};

/// The id of a segment: an observation id over device, metric, first-sample time and the
/// stream sequence number.
pub fn segment_id(ctx: &DeviceContext, seg: &WaveSegment) -> Uuid {
    observation_id(&ctx.key(), seg.metric, None, seg.start, Some(seg.seq.min(u32::MAX as u64) as u32), 0)
}

/// The physical limits of the device's raw range, lower first.
fn limits(seg: &WaveSegment) -> (Decimal, Decimal) {
    let (a, b) = (seg.scale.physical(seg.scale.min_raw), seg.scale.physical(seg.scale.max_raw));
    if a.to_f64() <= b.to_f64() {
        (a, b)
    } else {
        (b, a)
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Extension {
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_unsigned_int: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_boolean: Option<bool>,
}

#[derive(Serialize)]
struct Meta {
    tag: Vec<Coding<'static>>,
}

#[derive(Serialize)]
struct SimpleQuantity<'a> {
    value: Decimal,
    #[serde(skip_serializing_if = "Option::is_none")]
    unit: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<Cow<'a, str>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SampledData<'a> {
    origin: SimpleQuantity<'a>,
    period: Decimal,
    factor: Decimal,
    lower_limit: Decimal,
    upper_limit: Decimal,
    dimensions: u32,
    data: String,
}

#[derive(Serialize)]
struct Period {
    start: String,
    end: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FhirWave<'a> {
    resource_type: &'static str,
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<Meta>,
    extension: Vec<Extension>,
    identifier: Vec<Identifier<'a>>,
    status: &'static str,
    code: CodeableConcept<'a>,
    subject: Reference<'a>,
    effective_period: Period,
    issued: String,
    value_sampled_data: SampledData<'a>,
    device: Reference<'a>,
}

/// The `SampledData.data` string: raw values, or `E`/`L`/`U` where marked.
pub fn sampled_data(seg: &WaveSegment) -> String {
    let mut data = String::with_capacity(seg.samples.len() * 5);
    for (i, s) in seg.samples.iter().enumerate() {
        if i > 0 {
            data.push(' ');
        }
        match seg.mark(i).fhir_code() {
            Some(code) => data.push_str(code),
            None => {
                let _ = write!(data, "{s}");
            }
        }
    }
    data
}

/// Appends the FHIR R4 `Observation` of one segment to `out`; `issued` is when the gateway
/// made it (the segment's close).
pub fn write_fhir(out: &mut Vec<u8>, seg: &WaveSegment, ctx: &DeviceContext, nom: &Nomenclature, issued: Timestamp) {
    let id = segment_id(ctx, seg);
    let entry = nom.metric(seg.metric);
    let mut extension = alloc::vec![
        Extension { url: alloc::format!("{EXT}time-source"), value_code: Some("gateway"), value_unsigned_int: None, value_boolean: None },
        Extension {
            url: alloc::format!("{EXT}wave-sequence"),
            value_code: None,
            value_unsigned_int: Some(seg.seq.min(u32::MAX as u64) as u32),
            value_boolean: None,
        },
    ];
    if seg.after_gap {
        extension.push(Extension {
            url: alloc::format!("{EXT}wave-after-gap"),
            value_code: None,
            value_unsigned_int: None,
            value_boolean: Some(true),
        });
    }
    for n in seg.flags.names() {
        extension.push(Extension {
            url: alloc::format!("{EXT}observation-flag"),
            value_code: Some(n),
            value_unsigned_int: None,
            value_boolean: None,
        });
    }
    let unit = nom.unit(seg.scale.unit);
    let (lower, upper) = limits(seg);
    let o = FhirWave {
        resource_type: "Observation",
        id: alloc::format!("{id}"),
        meta: ctx.patient.is_none().then(|| Meta {
            tag: alloc::vec![Coding {
                system: Cow::Borrowed(ASSOCIATION_SYSTEM),
                code: Cow::Borrowed("unassociated"),
                display: Some(Cow::Borrowed("Not yet associated with a patient")),
            }],
        }),
        extension,
        identifier: alloc::vec![Identifier {
            r#type: None,
            system: Some(Cow::Borrowed("urn:ietf:rfc:3986")),
            value: Cow::Owned(alloc::format!("urn:uuid:{id}"))
        }],
        status: "final",
        code: CodeableConcept {
            coding: alloc::vec![Coding {
                system: Cow::Borrowed(MDC),
                code: Cow::Owned(alloc::format!("{}", seg.metric.0)),
                display: entry.map(|e| Cow::Borrowed(e.ref_id.as_ref())),
            }],
            text: entry.map(|e| Cow::Borrowed(e.display.as_ref())),
        },
        subject: match &ctx.patient {
            Some(p) => patient_reference(p),
            // The unassociated form, as for numerics (docs/pcd-01.md): the bed is the subject.
            None => bed_reference(&ctx.location),
        },
        effective_period: Period { start: alloc::format!("{}", seg.start.rfc3339()), end: alloc::format!("{}", seg.end().rfc3339()) },
        issued: alloc::format!("{}", issued.rfc3339()),
        value_sampled_data: SampledData {
            origin: match unit {
                Some(u) => SimpleQuantity {
                    value: seg.scale.origin(),
                    // Dimensionless units have an empty display, and FHIR forbids empty strings.
                    unit: Some(Cow::Borrowed(if u.display.is_empty() { u.ucum.as_ref() } else { u.display.as_ref() })),
                    system: Some(UCUM),
                    code: Some(Cow::Borrowed(u.ucum.as_ref())),
                },
                None => SimpleQuantity { value: seg.scale.origin(), unit: None, system: None, code: None },
            },
            period: seg.period.period_ms(),
            factor: seg.scale.factor(),
            lower_limit: lower,
            upper_limit: upper,
            dimensions: 1,
            data: sampled_data(seg),
        },
        device: device_reference(ctx),
    };
    super::append_json(out, &o);
}

/// The FHIR R4 `Observation` of one segment (JSON, no trailing newline).
pub fn fhir(seg: &WaveSegment, ctx: &DeviceContext, nom: &Nomenclature, issued: Timestamp) -> String {
    let mut out = Vec::with_capacity(512 + seg.samples.len() * 5);
    write_fhir(&mut out, seg, ctx, nom, issued);
    String::from_utf8(out).unwrap_or_default()
}

/// One segment as an `ORU^R01` (PCD-01) message; `message_id` becomes MSH-10 and OBR-3, `now`
/// MSH-7.
pub fn hl7(seg: &WaveSegment, ctx: &DeviceContext, nom: &Nomenclature, message_id: &str, now: Timestamp) -> String {
    let gw = ctx.gateway_eui64();
    let mut m = String::with_capacity(512 + seg.samples.len() * 6);
    let _ = write!(
        m,
        "MSH|^~\\&|MEDGW^{gw}^EUI-64|{site}|||{now}||ORU^R01^ORU_R01|{id}|P|2.6|||NE|AL||UNICODE UTF-8|||IHE_PCD_001^IHE PCD^{PCD01_PROFILE_OID}^ISO\r",
        site = esc(&ctx.location.site),
        now = now.hl7(),
        id = esc(message_id),
    );
    patient_visit(&mut m, ctx);
    let start = seg.start.hl7();
    let _ = write!(m, "OBR|1||{}^MEDGW^{gw}^EUI-64|182777000^monitoring of patient^SCT|||{start}|{}\r", esc(message_id), seg.end().hl7());
    let mut values = String::with_capacity(seg.samples.len() * 6);
    for (i, s) in seg.samples.iter().enumerate() {
        if i > 0 {
            values.push('^');
        }
        if !seg.mark(i).no_value() {
            let _ = write!(values, "{}", seg.scale.physical(*s));
        }
    }
    let unit = unit_text(nom, seg.scale.unit);
    let equipment = equipment_id(ctx);
    // The PCD-01 containment tree (see [`super::containment`]): MDS, the VMD and channel of the
    // wave's measurement subsystem, then the wave as the channel's metric.
    let mds = containment::mds(&ctx.protocol);
    let vmd = containment::vmd(seg.metric, mds);
    for (n, (dev, sub)) in [(mds, "1.0.0.0"), (vmd.vmd, "1.1.0.0"), (vmd.chan, "1.1.1.0")].into_iter().enumerate() {
        let _ = write!(m, "OBX|{}||{}^{}^MDC|{sub}|||||||X|||||||{equipment}\r", n + 1, dev.code, dev.ref_id);
    }
    let _ = write!(
        m,
        "OBX|4|NA|{}|1.1.1.1|{values}|{unit}||{}|||R|||{start}||||{equipment}\r",
        code_text(nom, seg.metric, None),
        obx8_text(seg.flags, None)
    );
    // The child rows name the equipment too: the DEC profile wants OBX-18 on every OBX.
    let _ = write!(
        m,
        "OBX|5|NM|0^MDC_ATTR_SAMP_RATE^MDC|1.1.1.1.1|{}|264608^MDC_DIM_PER_SEC^MDC|||||R|||{start}||||{equipment}\r",
        seg.period.rate_hz()
    );
    let (lower, upper) = limits(seg);
    let _ = write!(m, "OBX|6|NR|0^MDC_ATTR_DATA_RANGE^MDC|1.1.1.1.2|{lower}^{upper}|{unit}|||||R|||{start}||||{equipment}\r");
    let mut notes = String::new();
    for (mark, name) in [
        (SampleMarks::MISSING, "missing"),
        (SampleMarks::INVALID, "invalid"),
        (SampleMarks::BELOW, "below-range"),
        (SampleMarks::ABOVE, "above-range"),
        (SampleMarks::PACER, "pacer"),
        (SampleMarks::QRS, "qrs"),
        (SampleMarks::DEFIB, "defib"),
    ] {
        let n = seg.marks.iter().filter(|m| m.intersects(mark)).count();
        if n > 0 {
            let _ = write!(notes, " {name}={n}");
        }
    }
    if seg.after_gap {
        notes.push_str(" after-gap");
    }
    if !notes.is_empty() {
        let _ = write!(m, "NTE|1|L|medgw-wave seq={}:{}\r", seg.seq, esc(&notes));
    }
    m
}

#[derive(Serialize)]
struct CanonicalMark {
    index: usize,
    marks: Vec<&'static str>,
}

#[derive(Serialize)]
struct CanonicalScale {
    factor: Decimal,
    origin: Decimal,
    lower_raw: i32,
    upper_raw: i32,
    lower: Decimal,
    upper: Decimal,
    min_raw: i32,
    max_raw: i32,
}

#[derive(Serialize)]
struct CanonicalDevice<'a> {
    key: String,
    name: &'a str,
    protocol: &'a str,
}

#[derive(Serialize)]
struct CanonicalWave<'a> {
    id: Uuid,
    kind: &'static str,
    metric: Option<&'a str>,
    code: u32,
    unit: Option<&'a str>,
    unit_code: u32,
    start: Timestamp,
    end: Timestamp,
    seq: u64,
    after_gap: bool,
    period_ms: Decimal,
    rate_hz: Decimal,
    scale: CanonicalScale,
    flags: Flags,
    samples: &'a [i32],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    marks: Vec<CanonicalMark>,
    device: CanonicalDevice<'a>,
    location: &'a Location,
    #[serde(skip_serializing_if = "Option::is_none")]
    patient: Option<&'a Patient>,
}

fn mark_names(m: SampleMarks) -> Vec<&'static str> {
    [
        (SampleMarks::INVALID, "invalid"),
        (SampleMarks::BELOW, "below-range"),
        (SampleMarks::ABOVE, "above-range"),
        (SampleMarks::PACER, "pacer"),
        (SampleMarks::QRS, "qrs"),
        (SampleMarks::DEFIB, "defib"),
        (SampleMarks::MISSING, "missing"),
    ]
    .into_iter()
    .filter(|(b, _)| m.intersects(*b))
    .map(|(_, n)| n)
    .collect()
}

/// Appends the canonical JSON of one segment to `out` (docs/waveforms.md).
pub fn write_canonical(out: &mut Vec<u8>, seg: &WaveSegment, ctx: &DeviceContext, nom: &Nomenclature) {
    let s = &seg.scale;
    let w = CanonicalWave {
        id: segment_id(ctx, seg),
        kind: "wave",
        metric: nom.metric(seg.metric).map(|e| e.ref_id.as_ref()),
        code: seg.metric.0,
        unit: nom.unit(s.unit).map(|u| u.ucum.as_ref()),
        unit_code: s.unit.0,
        start: seg.start,
        end: seg.end(),
        seq: seg.seq,
        after_gap: seg.after_gap,
        period_ms: seg.period.period_ms(),
        rate_hz: seg.period.rate_hz(),
        scale: CanonicalScale {
            factor: s.factor(),
            origin: s.origin(),
            lower_raw: s.lower_raw,
            upper_raw: s.upper_raw,
            lower: s.lower,
            upper: s.upper,
            min_raw: s.min_raw,
            max_raw: s.max_raw,
        },
        flags: seg.flags,
        samples: &seg.samples,
        marks: seg
            .marks
            .iter()
            .enumerate()
            .filter(|(_, m)| !m.is_empty())
            .map(|(index, m)| CanonicalMark { index, marks: mark_names(*m) })
            .collect(),
        device: CanonicalDevice { key: ctx.key(), name: &ctx.name, protocol: &ctx.protocol },
        location: &ctx.location,
        patient: ctx.patient.as_ref(),
    };
    super::append_json(out, &w);
}

/// The canonical JSON of one segment.
pub fn canonical(seg: &WaveSegment, ctx: &DeviceContext, nom: &Nomenclature) -> String {
    let mut out = Vec::with_capacity(256 + seg.samples.len() * 5);
    write_canonical(&mut out, seg, ctx, nom);
    String::from_utf8(out).unwrap_or_default()
}
