//! HL7 FHIR R4 `Observation` and `Device` resources.
//!
//! An observation whose metric has a LOINC vital sign is written to the R4 vital-signs profile
//! (hl7.org/fhir/R4/vitalsigns.html) when a patient is bound: `category` vital-signs, a LOINC
//! coding, a UCUM `valueQuantity` in the profile's unit, `effectiveDateTime`, `subject` and the
//! profile in `meta.profile`. Without a patient (medgw never guesses one, decisions.md) it takes
//! the unassociated form instead: the bed as subject, a `meta.tag`, no vital-signs category and
//! no LOINC coding (`unassociated`, docs/pcd-01.md). Blood pressure is the panel 85354-9 with
//! systolic/diastolic(/mean) components. A value the device did not give is a `dataAbsentReason`,
//! never a number. The MDC code is always a second coding (system `urn:iso:std:iso:11073:10101`).
//!
//! medgw-specific facts travel in extensions under `https://medgw.org/fhir/StructureDefinition/`:
//! `observation-flag` (one `valueCode` per quality flag), `time-source` (`device` or `gateway`),
//! `device-time` (the device's own time when the gateway's was used) and `original-value` (the
//! device's value and unit when the encoder converted it).

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;

use serde::Serialize;
use uuid::Uuid;

use crate::decimal::Decimal;
use crate::mdc::MdcCode;
use crate::nomenclature::Nomenclature;
use crate::observation::{AbsentReason, DeviceContext, Flags, Location, Observation, Patient, Scalar, Status, Value};
use crate::time::Rfc3339;
use crate::units;

/// Code system URIs.
pub const LOINC: &str = "http://loinc.org";
pub const MDC: &str = "urn:iso:std:iso:11073:10101";
pub const UCUM: &str = "http://unitsofmeasure.org";
pub const OBSERVATION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
pub const DATA_ABSENT_REASON: &str = "http://terminology.hl7.org/CodeSystem/data-absent-reason";
/// The base vital-signs profile every specific vital-sign profile derives from.
pub const VITAL_SIGNS_PROFILE: &str = "http://hl7.org/fhir/StructureDefinition/vitalsigns";
/// IEEE EUI-64 as an identifier system, as the HL7 PHD IG writes device system ids.
pub const EUI64_SYSTEM: &str = "urn:oid:1.2.840.10004.1.1.1.0.0.1.0.0.1.2680";
/// The EUI-64 medgw derives for a device that has none (locally administered; docs/pcd-01.md).
pub const DERIVED_EUI64_SYSTEM: &str = "https://medgw.org/fhir/NamingSystem/derived-eui64";
/// The URL of medgw's extension `name`, a constant: each observation carries one or more
/// extensions, and formatting their URLs was part of the per-observation cost (issue 20).
macro_rules! ext_url {
    ($name:literal) => {
        concat!("https://medgw.org/fhir/StructureDefinition/", $name)
    };
}

/// Prefix of medgw's extension URLs.
pub const EXT: &str = ext_url!("");
const EXT_TIME_SOURCE: &str = ext_url!("time-source");
const EXT_DEVICE_TIME: &str = ext_url!("device-time");
const EXT_OBSERVATION_FLAG: &str = ext_url!("observation-flag");
const EXT_ORIGINAL_VALUE: &str = ext_url!("original-value");
/// Namespace for vendor codes that are not mapped to MDC.
pub const VENDOR_SYSTEM_PREFIX: &str = "https://medgw.org/fhir/CodeSystem/vendor-";
/// Measurement status of a value, with the codes of IHE PCD TF-2 OBX-8 (`QUES` questionable).
/// R4 `Observation.interpretation` binds extensibly to ObservationInterpretation, which has no
/// code for a questionable measurement (its codes judge the patient's value: `A`, `H`, `L`, ...),
/// so the PCD code is used in medgw's own system.
pub const MEASUREMENT_STATUS_SYSTEM: &str = "https://medgw.org/fhir/CodeSystem/measurement-status";

#[derive(Serialize)]
pub(crate) struct Coding<'a> {
    pub(crate) system: Cow<'a, str>,
    pub(crate) code: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) display: Option<Cow<'a, str>>,
}

#[derive(Serialize)]
pub(crate) struct CodeableConcept<'a> {
    pub(crate) coding: Vec<Coding<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) text: Option<Cow<'a, str>>,
}

/// A FHIR `Quantity`. `system` and `code` only where the unit has a UCUM code (R4 qty-3: a code
/// needs its system); a unit without one is named in `unit` only.
#[derive(Serialize)]
struct Quantity<'a> {
    value: Decimal,
    #[serde(skip_serializing_if = "Option::is_none")]
    unit: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<Cow<'a, str>>,
}

#[derive(Serialize)]
pub(crate) struct Identifier<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) r#type: Option<CodeableConcept<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) system: Option<Cow<'a, str>>,
    pub(crate) value: Cow<'a, str>,
}

#[derive(Serialize)]
pub(crate) struct Reference<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<String>,
    /// The resource type referred to, for a reference by identifier (R4 `Reference.type`).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    r#type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    identifier: Option<Identifier<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    display: Option<String>,
}

#[derive(Serialize)]
struct Meta {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    profile: Vec<Cow<'static, str>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tag: Vec<Coding<'static>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Extension<'a> {
    url: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_date_time: Option<Shown<Rfc3339>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_quantity: Option<Quantity<'a>>,
}

/// A value serialised as the JSON string of its `Display` form, written straight into the
/// output (serde_json's `collect_str`) instead of into a `String` first.
struct Shown<T>(T);

impl<T: core::fmt::Display> Serialize for Shown<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SampledData {
    origin: OriginQuantity,
    /// Milliseconds between samples.
    period: Decimal,
    dimensions: u32,
    data: String,
}

#[derive(Serialize)]
struct OriginQuantity {
    value: Decimal,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ObsComponent<'a> {
    code: CodeableConcept<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_quantity: Option<Quantity<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_absent_reason: Option<CodeableConcept<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    extension: Vec<Extension<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FhirObservation<'a> {
    resource_type: &'static str,
    id: Shown<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<Meta>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    extension: Vec<Extension<'a>>,
    identifier: Vec<Identifier<'a>>,
    status: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    category: Vec<CodeableConcept<'a>>,
    code: CodeableConcept<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<Reference<'a>>,
    /// The visit (PV1-19) of a patient associated by the ADT feed, by identifier.
    #[serde(skip_serializing_if = "Option::is_none")]
    encounter: Option<Reference<'a>>,
    effective_date_time: Shown<Rfc3339>,
    issued: Shown<Rfc3339>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_quantity: Option<Quantity<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_codeable_concept: Option<CodeableConcept<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_sampled_data: Option<SampledData>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_absent_reason: Option<CodeableConcept<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    interpretation: Vec<CodeableConcept<'a>>,
    device: Reference<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    component: Vec<ObsComponent<'a>>,
}

/// The FHIR logical id of a device's `Device` resource: UUID v5 of its identity key, so every
/// gateway names the same device the same way.
pub fn device_id(ctx: &DeviceContext) -> Uuid {
    // `Uuid::new_v5(NAMESPACE_URL, "urn:medgw:device:{key}")`, hashed without building the
    // name and with the CPU's SHA instructions: every observation refers to its device.
    use sha1::{Digest, Sha1};
    let mut h = Sha1::new();
    h.update(Uuid::NAMESPACE_URL.as_bytes());
    h.update(b"urn:medgw:device:");
    h.update(ctx.key().as_bytes());
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_sha1_bytes(bytes).into_uuid()
}

fn data_absent(reason: AbsentReason) -> CodeableConcept<'static> {
    // http://terminology.hl7.org/CodeSystem/data-absent-reason (R4).
    let code = match reason {
        AbsentReason::Unavailable => "unknown",
        AbsentReason::NotANumber => "not-a-number",
        AbsentReason::PositiveInfinity => "positive-infinity",
        AbsentReason::NegativeInfinity => "negative-infinity",
        AbsentReason::NotAtThisResolution | AbsentReason::Reserved | AbsentReason::Error => "error",
    };
    CodeableConcept {
        coding: alloc::vec![Coding { system: Cow::Borrowed(DATA_ABSENT_REASON), code: Cow::Borrowed(code), display: None }],
        text: None,
    }
}

/// The code of a metric: its LOINC codings (if any), then the MDC coding; an unmapped metric is
/// coded in the vendor's namespace so the receiver still sees what the device said.
fn code_of<'a>(nom: &'a Nomenclature, metric: MdcCode, vendor: Option<&'a crate::observation::VendorCode>) -> CodeableConcept<'a> {
    let mut coding = Vec::new();
    if metric.is_unmapped() {
        if let Some(v) = vendor {
            coding.push(Coding {
                system: Cow::Owned(alloc::format!("{VENDOR_SYSTEM_PREFIX}{}", v.namespace)),
                code: Cow::Borrowed(v.code.as_ref()),
                display: None,
            });
        }
        return CodeableConcept { coding, text: vendor.map(|v| Cow::Owned(alloc::format!("{} {}", v.namespace, v.code))) };
    }
    let entry = nom.metric(metric);
    if let Some(e) = entry {
        for l in &e.loinc {
            coding.push(Coding { system: Cow::Borrowed(LOINC), code: Cow::Borrowed(l.as_ref()), display: None });
        }
    }
    coding.push(Coding {
        system: Cow::Borrowed(MDC),
        code: Cow::Owned(String::from(crate::decimal::digits(&mut [0; 20], u64::from(metric.0)))),
        display: entry.map(|e| Cow::Borrowed(e.ref_id.as_ref())),
    });
    CodeableConcept { coding, text: entry.map(|e| Cow::Borrowed(e.display.as_ref())) }
}

/// A quantity in the unit FHIR output expects for `metric` (converting when needed), plus the
/// `original-value` extension when a conversion happened.
///
/// A unit medgw has no UCUM code for (a vendor's unit, an IntelliVue private unit) still carries
/// the value: R4 obs-6 allows `dataAbsentReason` only when there is no value, and the canonical
/// and HL7 outputs carry the number too. Such a quantity has no `system`/`code` (none is known),
/// and `unit` names the MDC unit code where there is one.
fn quantity<'a>(nom: &'a Nomenclature, metric: MdcCode, value: Decimal, unit: MdcCode) -> (Quantity<'a>, Option<Extension<'a>>) {
    let target = nom.metric(metric).and_then(|m| m.fhir_unit).unwrap_or(unit);
    let (value_out, unit_out, converted) = match units::convert(metric, value, unit, target) {
        Some(v) if target != unit => (v, target, true),
        _ => (value, unit, false),
    };
    let q = |v: Decimal, u: MdcCode| -> Quantity<'a> {
        match nom.unit(u) {
            Some(e) => {
                // Dimensionless units have an empty display, and FHIR forbids empty strings.
                let unit = if e.display.is_empty() { &e.ucum } else { &e.display };
                Quantity {
                    value: v,
                    unit: Some(Cow::Borrowed(unit.as_ref())),
                    system: Some(UCUM),
                    code: Some(Cow::Borrowed(e.ucum.as_ref())),
                }
            }
            None if u.is_unmapped() => Quantity { value: v, unit: None, system: None, code: None },
            None => Quantity { value: v, unit: Some(Cow::Owned(alloc::format!("MDC unit {}", u.0))), system: None, code: None },
        }
    };
    let out = q(value_out, unit_out);
    let ext = converted.then(|| Extension {
        url: EXT_ORIGINAL_VALUE,
        value_code: None,
        value_date_time: None,
        value_quantity: Some(q(value, unit)),
    });
    (out, ext)
}

fn flag_extensions<'a>(flags: Flags) -> Vec<Extension<'a>> {
    flags
        .names()
        .map(|n| Extension { url: EXT_OBSERVATION_FLAG, value_code: Some(n), value_date_time: None, value_quantity: None })
        .collect()
}

/// Encodes an observation as a FHIR R4 `Observation` resource (JSON, no trailing newline).
pub fn observation(obs: &Observation, nom: &Nomenclature) -> String {
    let mut out = Vec::with_capacity(1024);
    write_observation(&mut out, obs, nom);
    String::from_utf8(out).unwrap_or_default()
}

/// Appends the FHIR `Observation` JSON of `obs` to `out`.
pub fn write_observation(out: &mut Vec<u8>, obs: &Observation, nom: &Nomenclature) {
    let r = &obs.reading;
    let ctx = &obs.context;
    let entry = if r.metric.is_unmapped() { None } else { nom.metric(r.metric) };
    let vital = entry.and_then(|e| e.vital_profile.as_ref());
    let mut extension = Vec::new();
    let from_gateway = r.device_time.is_none() || r.flags.intersects(Flags::TIME_FROM_GATEWAY);
    extension.push(Extension {
        url: EXT_TIME_SOURCE,
        value_code: Some(if from_gateway { "gateway" } else { "device" }),
        value_date_time: None,
        value_quantity: None,
    });
    if let (true, Some(t)) = (from_gateway, r.device_time) {
        extension.push(Extension {
            url: EXT_DEVICE_TIME,
            value_code: None,
            value_date_time: Some(Shown(t.rfc3339())),
            value_quantity: None,
        });
    }
    extension.extend(flag_extensions(r.flags));
    let mut urn = [0u8; 45];
    urn[..9].copy_from_slice(b"urn:uuid:");
    r.id.hyphenated().encode_lower(&mut urn[9..]);

    let mut o = FhirObservation {
        resource_type: "Observation",
        id: Shown(r.id),
        meta: None,
        extension,
        identifier: alloc::vec![Identifier {
            r#type: None,
            system: Some(Cow::Borrowed("urn:ietf:rfc:3986")),
            value: Cow::Borrowed(core::str::from_utf8(&urn).unwrap_or_default())
        }],
        status: match r.status {
            Status::Final => "final",
            Status::Preliminary => "preliminary",
        },
        category: Vec::new(),
        code: code_of(nom, r.metric, r.vendor.as_ref()),
        subject: ctx.patient.as_ref().map(patient_reference),
        encounter: ctx.patient.as_ref().and_then(|p| p.adt.as_ref()).and_then(|a| a.visit.as_ref()).map(|v| Reference {
            reference: None,
            r#type: Some("Encounter"),
            identifier: Some(Identifier {
                r#type: None,
                system: crate::observation::AdtFields::system_of(v).map(Cow::Owned),
                value: Cow::Borrowed(&v.id),
            }),
            display: None,
        }),
        effective_date_time: Shown(r.effective_time().rfc3339()),
        issued: Shown(r.receipt_time.rfc3339()),
        value_quantity: None,
        value_codeable_concept: None,
        value_sampled_data: None,
        data_absent_reason: None,
        interpretation: Vec::new(),
        device: device_reference(ctx),
        component: Vec::new(),
    };
    if vital.is_some() && ctx.patient.is_some() {
        o.category.push(CodeableConcept {
            coding: alloc::vec![Coding {
                system: Cow::Borrowed(OBSERVATION_CATEGORY),
                code: Cow::Borrowed("vital-signs"),
                display: Some(Cow::Borrowed("Vital Signs"))
            }],
            text: None,
        });
        if let (Some(profile), Some(_)) = (vital, &ctx.patient) {
            o.meta = Some(Meta {
                profile: alloc::vec![Cow::Borrowed(VITAL_SIGNS_PROFILE), Cow::Owned(String::from(profile.as_ref()))],
                tag: Vec::new(),
            });
        }
    }
    match &r.value {
        Value::Numeric(d) => {
            let (q, ext) = quantity(nom, r.metric, *d, r.unit);
            o.value_quantity = Some(q);
            o.extension.extend(ext);
        }
        Value::Absent(a) => o.data_absent_reason = Some(data_absent(*a)),
        Value::Compound(components) => {
            for c in components {
                let mut comp = ObsComponent {
                    code: code_of(nom, c.metric, None),
                    value_quantity: None,
                    data_absent_reason: None,
                    extension: Vec::new(),
                };
                match c.value {
                    Scalar::Numeric(d) => {
                        let (q, ext) = quantity(nom, c.metric, d, r.unit);
                        comp.value_quantity = Some(q);
                        comp.extension.extend(ext);
                    }
                    Scalar::Absent(a) => comp.data_absent_reason = Some(data_absent(a)),
                }
                o.component.push(comp);
            }
        }
        Value::Enumeration(e) => {
            let mut coding = Vec::new();
            if let Some(c) = e.code {
                coding.push(Coding { system: Cow::Borrowed(MDC), code: Cow::Owned(alloc::format!("{}", c.0)), display: None });
            }
            o.value_codeable_concept = Some(CodeableConcept { coding, text: Some(Cow::Borrowed(&e.text)) });
        }
        Value::Waveform(w) => {
            let mut data = String::with_capacity(w.samples.len() * 4);
            for (i, s) in w.samples.iter().enumerate() {
                if i > 0 {
                    data.push(' ');
                }
                data.push_str(itoa(*s).as_str());
            }
            o.value_sampled_data = Some(SampledData {
                origin: OriginQuantity { value: Decimal::from_int(0) },
                // period_us / 1000 as an exact decimal in ms.
                period: Decimal::new(w.period_us as i64, -3).unwrap_or(Decimal::from_int(0)),
                dimensions: 1,
                data,
            });
        }
    }
    if o.data_absent_reason.is_none() && r.flags.intersects(Flags::QUESTIONABLE_VALUE) {
        o.interpretation.push(questionable(r.flags));
    }
    if ctx.patient.is_none() {
        unassociated(&mut o, ctx);
    }
    super::append_json(out, &o);
}

/// `device`: the `Device` resource published on `.../device`, with its display name.
pub(crate) fn device_reference(ctx: &DeviceContext) -> Reference<'static> {
    let mut reference = String::with_capacity(43);
    reference.push_str("Device/");
    reference.push_str(device_id(ctx).hyphenated().encode_lower(&mut Uuid::encode_buffer()));
    Reference { reference: Some(reference), r#type: None, identifier: None, display: Some(device_display(ctx)) }
}

/// `subject` for a bound patient: by identifier where its system is known, else `Patient/{id}`.
pub(crate) fn patient_reference(p: &Patient) -> Reference<'_> {
    match &p.system {
        Some(system) => Reference {
            reference: None,
            identifier: Some(Identifier { r#type: None, system: Some(Cow::Borrowed(system)), value: Cow::Borrowed(&p.id) }),
            r#type: None,
            display: None,
        },
        None => Reference { reference: Some(alloc::format!("Patient/{}", p.id)), r#type: None, identifier: None, display: None },
    }
}

/// `subject` of the unassociated form: the bed, a `Location` by identifier ([`unassociated`]).
pub(crate) fn bed_reference(loc: &Location) -> Reference<'static> {
    let bed = loc.path();
    let display = bed.replace('/', " ");
    Reference {
        reference: None,
        r#type: Some("Location"),
        identifier: Some(Identifier { r#type: None, system: Some(Cow::Borrowed(BED_SYSTEM)), value: Cow::Owned(bed) }),
        display: Some(display),
    }
}

/// The tag of an observation that no patient is bound to yet (docs/pcd-01.md).
pub const ASSOCIATION_SYSTEM: &str = "https://medgw.org/fhir/CodeSystem/association";
/// The identifier system of a bed, `site/unit[/room]/bed` from the gateway's configuration.
pub const BED_SYSTEM: &str = "https://medgw.org/fhir/NamingSystem/bed";

/// The form of an observation without a bound patient. R4 requires an observation with a
/// vital-sign code or category to conform to the vital-signs profile, whose `subject` must be a
/// Patient; medgw never guesses one. So: `subject` is the bed (a `Location` by identifier, which
/// base R4 allows), no profile is claimed, `meta.tag` says `unassociated`, and neither the
/// vital-signs category nor any LOINC coding is sent — the MDC coding says what it is. A consumer
/// that later attributes it to a patient adds those (docs/pcd-01.md).
fn unassociated(o: &mut FhirObservation, ctx: &DeviceContext) {
    o.subject = Some(bed_reference(&ctx.location));
    o.meta = Some(Meta {
        profile: Vec::new(),
        tag: alloc::vec![Coding {
            system: Cow::Borrowed(ASSOCIATION_SYSTEM),
            code: Cow::Borrowed("unassociated"),
            display: Some(Cow::Borrowed("Not yet associated with a patient")),
        }],
    });
    o.category.clear();
    o.code.coding.retain(|c| c.system != LOINC);
    for c in &mut o.component {
        c.code.coding.retain(|c| c.system != LOINC);
    }
}

/// The `interpretation` of a value that is present but questionable (see
/// [`Flags::QUESTIONABLE_VALUE`]): `QUES` as in the HL7 output's OBX-8, with the flags as text.
fn questionable(flags: Flags) -> CodeableConcept<'static> {
    let mut text = String::from("questionable:");
    for n in Flags(flags.0 & Flags::QUESTIONABLE_VALUE.0).names() {
        text.push(' ');
        text.push_str(n);
    }
    CodeableConcept {
        coding: alloc::vec![Coding {
            system: Cow::Borrowed(MEASUREMENT_STATUS_SYSTEM),
            code: Cow::Borrowed("QUES"),
            display: Some(Cow::Borrowed("Questionable"))
        }],
        text: Some(Cow::Owned(text)),
    }
}

fn itoa(v: i32) -> heapless::String<12> {
    use core::fmt::Write;
    let mut s = heapless::String::new();
    let _ = write!(s, "{v}");
    s
}

fn device_display(ctx: &DeviceContext) -> String {
    let id = &ctx.identity;
    match (&id.manufacturer, &id.model) {
        (Some(m), Some(model)) => alloc::format!("{m} {model} ({})", ctx.name),
        (Some(m), None) => alloc::format!("{m} ({})", ctx.name),
        (None, Some(model)) => alloc::format!("{model} ({})", ctx.name),
        (None, None) => alloc::format!("{} ({})", ctx.protocol, ctx.name),
    }
}

#[derive(Serialize)]
struct DeviceName<'a> {
    name: Cow<'a, str>,
    r#type: &'static str,
}

#[derive(Serialize)]
struct Version<'a> {
    value: Cow<'a, str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FhirDevice<'a> {
    resource_type: &'static str,
    id: String,
    identifier: Vec<Identifier<'a>>,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    manufacturer: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    serial_number: Option<&'a str>,
    device_name: Vec<DeviceName<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_number: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    version: Vec<Version<'a>>,
    location: Reference<'a>,
}

/// Encodes the FHIR R4 `Device` resource of a device (the retained `.../device` topic).
pub fn device(ctx: &DeviceContext) -> String {
    let id = &ctx.identity;
    let mut identifier = Vec::new();
    match ctx.eui64() {
        (eui, false) => identifier.push(Identifier {
            r#type: None,
            system: Some(Cow::Borrowed(EUI64_SYSTEM)),
            value: Cow::Owned(alloc::format!("{eui}")),
        }),
        // The id PCD-01 OBX-18 carries for a device without an EUI-64: in medgw's own system,
        // so that no one takes it for an IEEE-assigned id (docs/pcd-01.md).
        (eui, true) => identifier.push(Identifier {
            r#type: None,
            system: Some(Cow::Borrowed(DERIVED_EUI64_SYSTEM)),
            value: Cow::Owned(alloc::format!("{eui}")),
        }),
    }
    if let Some(sn) = &id.serial {
        identifier.push(Identifier {
            // v2-0203 "SNO": serial number.
            r#type: Some(CodeableConcept {
                coding: alloc::vec![Coding {
                    system: Cow::Borrowed("http://terminology.hl7.org/CodeSystem/v2-0203"),
                    code: Cow::Borrowed("SNO"),
                    display: None
                }],
                text: None,
            }),
            system: None,
            value: Cow::Borrowed(sn),
        });
    }
    identifier.push(Identifier {
        r#type: None,
        system: Some(Cow::Borrowed("urn:ietf:rfc:3986")),
        value: Cow::Owned(alloc::format!("urn:medgw:device:{}", ctx.key())),
    });
    let mut names = alloc::vec![DeviceName { name: Cow::Borrowed(&ctx.name), r#type: "user-friendly-name" }];
    if let Some(m) = &id.model {
        names.push(DeviceName { name: Cow::Borrowed(m), r#type: "model-name" });
    }
    let loc = &ctx.location;
    let d = FhirDevice {
        resource_type: "Device",
        id: alloc::format!("{}", device_id(ctx)),
        identifier,
        status: "active",
        manufacturer: id.manufacturer.as_deref(),
        serial_number: id.serial.as_deref(),
        device_name: names,
        model_number: id.model.as_deref(),
        version: id.firmware.iter().map(|f| Version { value: Cow::Borrowed(f) }).collect(),
        location: Reference {
            reference: None,
            r#type: None,
            identifier: None,
            display: Some(match &loc.room {
                Some(room) => alloc::format!("{} {} {} {}", loc.site, loc.unit, room, loc.bed),
                None => alloc::format!("{} {} {}", loc.site, loc.unit, loc.bed),
            }),
        },
    };
    serde_json::to_string(&d).unwrap_or_default()
}
