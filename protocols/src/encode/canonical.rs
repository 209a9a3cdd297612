//! The canonical JSON form: one self-describing object per observation.
//!
//! For logs, debugging, `medgw decode` and the `canonical` MQTT payload. The schema is in
//! `docs/canonical-json.md`; the field names are a contract, so add fields, never rename them.
//! Values keep their precision (`97.50` stays `97.50`).

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::decimal::Decimal;
use crate::error::Error;
use crate::mdc::MdcCode;
use crate::nomenclature::Nomenclature;
use crate::observation::{
    AbsentReason, Component, DeviceContext, DeviceIdentity, Enumeration, Flags, Location, Observation, Patient, Reading, Scalar, Status,
    Value, VendorCode, Waveform,
};
use crate::time::Timestamp;

#[derive(Serialize, Deserialize)]
struct CanonicalComponent<'a> {
    #[serde(borrow)]
    metric: Option<Cow<'a, str>>,
    code: u32,
    value: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    absent: Option<AbsentReason>,
}

#[derive(Serialize, Deserialize)]
struct CanonicalDevice<'a> {
    key: String,
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    protocol: Cow<'a, str>,
    #[serde(borrow)]
    port: Cow<'a, str>,
    #[serde(flatten, borrow)]
    identity: CanonicalIdentity<'a>,
}

#[derive(Serialize, Deserialize)]
struct CanonicalIdentity<'a> {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[serde(borrow)]
    manufacturer: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[serde(borrow)]
    serial: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    eui64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[serde(borrow)]
    firmware: Option<Cow<'a, str>>,
}

#[derive(Serialize, Deserialize)]
struct Canonical<'a> {
    id: Uuid,
    /// MDC reference id, `null` when the device's code is not mapped.
    #[serde(borrow)]
    metric: Option<Cow<'a, str>>,
    /// Combined 32-bit MDC code, `null` when unmapped.
    code: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[serde(borrow)]
    display: Option<Cow<'a, str>>,
    value: Option<Decimal>,
    #[serde(borrow)]
    unit: Option<Cow<'a, str>>,
    unit_code: u32,
    flags: Flags,
    status: Status,
    device_time: Option<Timestamp>,
    receipt_time: Timestamp,
    effective_time: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    seq: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    absent: Option<AbsentReason>,
    #[serde(skip_serializing_if = "Vec::is_empty", default, borrow)]
    components: Vec<CanonicalComponent<'a>>,
    // Borrowed from the observation when writing (cloning them was an allocation per string per
    // observation, issue 20); owned when parsing.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    waveform: Option<Cow<'a, Waveform>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    enumeration: Option<Cow<'a, Enumeration>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    vendor: Option<Cow<'a, VendorCode>>,
    #[serde(borrow)]
    device: CanonicalDevice<'a>,
    location: Cow<'a, Location>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    patient: Option<Cow<'a, Patient>>,
}

/// Writes `obs` as one canonical JSON object (no trailing newline).
pub fn to_string(obs: &Observation, nom: &Nomenclature) -> String {
    let mut out = Vec::with_capacity(512);
    write(&mut out, obs, nom);
    // serde_json writes UTF-8 only.
    String::from_utf8(out).unwrap_or_default()
}

/// Appends `obs` as one canonical JSON object to `out`.
pub fn write(out: &mut Vec<u8>, obs: &Observation, nom: &Nomenclature) {
    let r = &obs.reading;
    let ctx = &obs.context;
    let metric = (!r.metric.is_unmapped()).then(|| nom.metric(r.metric)).flatten();
    let eui = ctx.identity.eui64.map(|e| alloc::format!("{e}"));
    let (value, absent, components, waveform, enumeration) = match &r.value {
        Value::Numeric(d) => (Some(*d), None, Vec::new(), None, None),
        Value::Absent(a) => (None, Some(*a), Vec::new(), None, None),
        Value::Compound(cs) => (
            None,
            None,
            cs.iter()
                .map(|c| CanonicalComponent {
                    metric: nom.metric(c.metric).map(|m| Cow::Borrowed(m.ref_id.as_ref())),
                    code: c.metric.0,
                    value: match c.value {
                        Scalar::Numeric(d) => Some(d),
                        Scalar::Absent(_) => None,
                    },
                    absent: match c.value {
                        Scalar::Absent(a) => Some(a),
                        Scalar::Numeric(_) => None,
                    },
                })
                .collect(),
            None,
            None,
        ),
        Value::Waveform(w) => (None, None, Vec::new(), Some(Cow::Borrowed(w)), None),
        Value::Enumeration(e) => (None, None, Vec::new(), None, Some(Cow::Borrowed(e))),
    };
    let c = Canonical {
        id: r.id,
        metric: metric.map(|m| Cow::Borrowed(m.ref_id.as_ref())),
        code: (!r.metric.is_unmapped()).then_some(r.metric.0),
        display: metric.map(|m| Cow::Borrowed(m.display.as_ref())),
        value,
        unit: nom.unit(r.unit).map(|u| Cow::Borrowed(u.ucum.as_ref())),
        unit_code: r.unit.0,
        flags: r.flags,
        status: r.status,
        device_time: r.device_time,
        receipt_time: r.receipt_time,
        effective_time: r.effective_time(),
        seq: r.seq,
        absent,
        components,
        waveform,
        enumeration,
        vendor: r.vendor.as_ref().map(Cow::Borrowed),
        device: CanonicalDevice {
            key: ctx.key(),
            name: Cow::Borrowed(&ctx.name),
            protocol: Cow::Borrowed(&ctx.protocol),
            port: Cow::Borrowed(&ctx.port),
            identity: CanonicalIdentity {
                manufacturer: ctx.identity.manufacturer.as_deref().map(Cow::Borrowed),
                model: ctx.identity.model.as_deref().map(Cow::Borrowed),
                serial: ctx.identity.serial.as_deref().map(Cow::Borrowed),
                eui64: eui,
                firmware: ctx.identity.firmware.as_deref().map(Cow::Borrowed),
            },
        },
        location: Cow::Borrowed(&ctx.location),
        patient: ctx.patient.as_ref().map(Cow::Borrowed),
    };
    // Writing to a Vec cannot fail, and every type here serialises infallibly.
    super::append_json(out, &c);
}

/// Reads an observation back from its canonical JSON form (used by `medgw encode` and by tests
/// that feed canonical captures to the other encoders). The id is taken as written.
pub fn parse(json: &str, gateway: &str) -> Result<Observation, Error> {
    let c: Canonical<'_> = serde_json::from_str(json).map_err(|_| Error::BadText { field: "canonical json" })?;
    let value = if !c.components.is_empty() {
        Value::Compound(
            c.components
                .iter()
                .map(|k| Component {
                    metric: MdcCode(k.code),
                    value: match (k.value, k.absent) {
                        (Some(d), _) => Scalar::Numeric(d),
                        (None, a) => Scalar::Absent(a.unwrap_or(AbsentReason::Unavailable)),
                    },
                })
                .collect(),
        )
    } else if let Some(w) = c.waveform {
        Value::Waveform(w.into_owned())
    } else if let Some(e) = c.enumeration {
        Value::Enumeration(e.into_owned())
    } else if let Some(v) = c.value {
        Value::Numeric(v)
    } else {
        Value::Absent(c.absent.unwrap_or(AbsentReason::Unavailable))
    };
    let eui64 = match c.device.identity.eui64 {
        Some(s) => Some(s.parse()?),
        None => None,
    };
    let context = DeviceContext {
        gateway: String::from(gateway),
        name: c.device.name.into_owned(),
        protocol: c.device.protocol.into_owned(),
        port: c.device.port.into_owned(),
        identity: DeviceIdentity {
            manufacturer: c.device.identity.manufacturer.map(Cow::into_owned),
            model: c.device.identity.model.map(Cow::into_owned),
            serial: c.device.identity.serial.map(Cow::into_owned),
            eui64,
            firmware: c.device.identity.firmware.map(Cow::into_owned),
        },
        location: c.location.into_owned(),
        patient: c.patient.map(Cow::into_owned),
        gateway_eui64: None,
    };
    Ok(Observation {
        context: Arc::new(context),
        reading: Reading {
            id: c.id,
            metric: MdcCode(c.code.unwrap_or(0)),
            vendor: c.vendor.map(Cow::into_owned),
            value,
            unit: MdcCode(c.unit_code),
            device_time: c.device_time,
            receipt_time: c.receipt_time,
            seq: c.seq,
            flags: c.flags,
            status: c.status,
        },
    })
}
