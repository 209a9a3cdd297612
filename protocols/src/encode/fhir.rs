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
//!
//! The `Observation` itself is written by hand (`fhir_observation.rs`: it is written once per
//! observation at full speed); the `Device` resource and the references other encoders share
//! are serde types here.

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;

use serde::Serialize;
use uuid::Uuid;

use crate::nomenclature::Nomenclature;
use crate::observation::{DeviceContext, Location, Observation, Patient};

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
/// Prefix of medgw's extension URLs.
pub const EXT: &str = "https://medgw.org/fhir/StructureDefinition/";
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

/// The FHIR logical id of a device's `Device` resource: UUID v5 of its identity key, so every
/// gateway names the same device the same way.
pub fn device_id(ctx: &DeviceContext) -> Uuid {
    // `Uuid::new_v5(NAMESPACE_URL, "urn:medgw:device:{key}")`, hashed without building the
    // name and with the CPU's SHA instructions: every observation refers to its device.
    let mut h = crate::observation::NameHasher::new(&Uuid::NAMESPACE_URL);
    h.update(b"urn:medgw:device:");
    h.update(ctx.key().as_bytes());
    h.finish()
}

/// Encodes an observation as a FHIR R4 `Observation` resource (JSON, no trailing newline).
pub fn observation(obs: &Observation, nom: &Nomenclature) -> String {
    let mut out = Vec::with_capacity(1024);
    write_observation(&mut out, obs, nom);
    String::from_utf8(out).unwrap_or_default()
}

/// Appends the FHIR `Observation` JSON of `obs` to `out`.
pub fn write_observation(out: &mut Vec<u8>, obs: &Observation, nom: &Nomenclature) {
    super::fhir_observation::write(out, obs, nom);
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

/// `subject` of the unassociated form (docs/pcd-01.md): the bed, a `Location` by identifier.
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
