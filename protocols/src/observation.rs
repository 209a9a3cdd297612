//! The canonical observation: one value from one device, with who, where, when and how good.
//!
//! Layers, in the order data flows:
//! - a decoder turns bytes into [`Measurement`]s: what the device said, in its own unit and time;
//! - the gateway resolves the device's time, attaches the [`DeviceContext`] (identity, bed,
//!   patient) and the receipt time, which makes an [`Observation`] with its deterministic id;
//! - encoders (`crate::encode`) are pure functions of an `Observation` and the nomenclature.
//!
//! The context is shared (`Arc`) because every observation of a device has the same one, and
//! the [`Reading`] half is what the durable buffer stores (postcard, tens of bytes).

use alloc::borrow::Cow;
use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::decimal::Decimal;
use crate::mdc::MdcCode;
use crate::time::{DeviceTime, Timestamp};

pub use crate::quality::{AbsentReason, Flags, Status};

mod components;
pub use components::Components;

/// A number or the reason there is none; the members of compound values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scalar {
    Numeric(Decimal),
    Absent(AbsentReason),
}

/// One member of a compound value (systolic, diastolic, mean of a blood pressure).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    pub metric: MdcCode,
    pub value: Scalar,
}

/// A chunk of a sampled waveform (e.g. the pleth): samples in device units, evenly spaced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waveform {
    /// Sampling period in microseconds (75 Hz Nonin pleth: 13333).
    pub period_us: u32,
    pub samples: Vec<i32>,
}

/// An enumerated (coded) value, e.g. a device state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enumeration {
    pub code: Option<MdcCode>,
    pub text: String,
}

/// The value of an observation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Value {
    Numeric(Decimal),
    Absent(AbsentReason),
    /// The members in order; one is stored inline (see [`Components`]).
    Compound(Components),
    Enumeration(Enumeration),
    Waveform(Waveform),
}

impl Value {
    pub fn numeric(&self) -> Option<Decimal> {
        match self {
            Value::Numeric(d) => Some(*d),
            _ => None,
        }
    }

    pub fn absent_reason(&self) -> Option<AbsentReason> {
        match self {
            Value::Absent(r) => Some(*r),
            _ => None,
        }
    }
}

impl From<Scalar> for Value {
    fn from(s: Scalar) -> Value {
        match s {
            Scalar::Numeric(d) => Value::Numeric(d),
            Scalar::Absent(r) => Value::Absent(r),
        }
    }
}

/// A device's own code for a measurement that it sends, kept beside the MDC code so that an
/// unmapped or mislabelled code can be seen and fixed through the nomenclature override.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VendorCode {
    /// The protocol's namespace for the code: `masimo`, `medibus`, `intellivue`, ...
    pub namespace: Cow<'static, str>,
    pub code: Cow<'static, str>,
}

impl VendorCode {
    /// A code whose namespace and code are both known when medgw is built, for a `static`
    /// that measurements then point at ([`Measurement::with_static_vendor`]).
    pub const fn new_static(namespace: &'static str, code: &'static str) -> VendorCode {
        VendorCode { namespace: Cow::Borrowed(namespace), code: Cow::Borrowed(code) }
    }
}

/// A measurement's vendor code: a reference to a `static` one when the decoder knows the code
/// in advance (every GATT code), so that a measurement carrying it costs no allocation;
/// otherwise (a number the device sent, formatted at run time) a boxed one. Either way it
/// reads as a [`VendorCode`] (`Deref`), and equality is the code's, not where it lives.
///
/// Two words (`Option<VendorRef>`), where an inline `VendorCode` would be six and the box
/// alone was one: a `Measurement` is moved several times per reading, and its size showed in
/// the decoders' throughput.
#[derive(Clone, Debug)]
pub enum VendorRef {
    Static(&'static VendorCode),
    Owned(Box<VendorCode>),
}

impl VendorRef {
    /// The code by value, as a [`Reading`] stores it (a static code's text stays borrowed).
    pub fn into_owned(self) -> VendorCode {
        match self {
            VendorRef::Static(v) => v.clone(),
            VendorRef::Owned(v) => *v,
        }
    }
}

impl core::ops::Deref for VendorRef {
    type Target = VendorCode;
    fn deref(&self) -> &VendorCode {
        match self {
            VendorRef::Static(v) => v,
            VendorRef::Owned(v) => v,
        }
    }
}

impl PartialEq for VendorRef {
    fn eq(&self, other: &VendorRef) -> bool {
        **self == **other
    }
}

impl Eq for VendorRef {}

impl From<&'static VendorCode> for VendorRef {
    fn from(v: &'static VendorCode) -> VendorRef {
        VendorRef::Static(v)
    }
}

impl From<VendorCode> for VendorRef {
    fn from(v: VendorCode) -> VendorRef {
        VendorRef::Owned(Box::new(v))
    }
}

/// What a device said about one metric, before the gateway adds context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Measurement {
    /// The MDC code, or [`MdcCode::UNMAPPED`] when only the vendor code is known.
    pub metric: MdcCode,
    /// A reference, not inline: a `Measurement` is moved several times per reading, and an
    /// inline `VendorCode` made every measurement 40 bytes larger, which showed in the
    /// decoders' throughput (see [`VendorRef`]).
    pub vendor: Option<VendorRef>,
    pub value: Value,
    /// MDC unit code (partition 4), the device's own unit.
    pub unit: MdcCode,
    pub device_time: Option<DeviceTime>,
    /// The device's own sequence number for this reading, when it has one.
    pub seq: Option<u32>,
    pub flags: Flags,
    pub status: Status,
}

impl Measurement {
    /// A numeric reading with no time, no sequence number and no flags.
    pub fn numeric(metric: MdcCode, value: Decimal, unit: MdcCode) -> Measurement {
        Measurement {
            metric,
            vendor: None,
            value: Value::Numeric(value),
            unit,
            device_time: None,
            seq: None,
            flags: Flags::NONE,
            status: Status::Final,
        }
    }

    /// "The device reported no value for this metric", with the reason; adds [`Flags::UNAVAILABLE`].
    pub fn absent(metric: MdcCode, reason: AbsentReason, unit: MdcCode) -> Measurement {
        Measurement {
            metric,
            vendor: None,
            value: Value::Absent(reason),
            unit,
            device_time: None,
            seq: None,
            flags: Flags::UNAVAILABLE,
            status: Status::Final,
        }
    }

    pub fn with_flags(mut self, flags: Flags) -> Measurement {
        self.flags |= flags;
        self
    }

    pub fn with_time(mut self, time: Option<DeviceTime>) -> Measurement {
        self.device_time = time;
        self
    }

    pub fn with_seq(mut self, seq: Option<u32>) -> Measurement {
        self.seq = seq;
        self
    }

    /// The device's own code, made at run time (one allocation); a code known in advance is
    /// cheaper as a `static` with [`Self::with_static_vendor`].
    pub fn with_vendor(mut self, namespace: &'static str, code: impl Into<Cow<'static, str>>) -> Measurement {
        self.vendor = Some(VendorCode { namespace: Cow::Borrowed(namespace), code: code.into() }.into());
        self
    }

    /// The device's own code, from a `static` (no allocation).
    pub fn with_static_vendor(mut self, vendor: &'static VendorCode) -> Measurement {
        self.vendor = Some(VendorRef::Static(vendor));
        self
    }
}

/// A 64-bit extended unique identifier (IEEE EUI-64), the PCD-01 device identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Eui64(pub [u8; 8]);

impl fmt::Display for Eui64 {
    /// Sixteen upper-case hex digits, as IHE PCD-01 OBX-18 examples write them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One `write_str` (every encoded observation names its device's EUI-64).
        let mut text = [0u8; 16];
        for (pair, &b) in text.chunks_exact_mut(2).zip(&self.0) {
            pair.copy_from_slice(&crate::wire::medibus::frame::hex2(b));
        }
        f.write_str(core::str::from_utf8(&text).unwrap_or(""))
    }
}

impl core::str::FromStr for Eui64 {
    type Err = crate::Error;
    /// Accepts 16 hex digits, optionally separated by `:` or `-`.
    fn from_str(s: &str) -> Result<Eui64, crate::Error> {
        let mut out = [0u8; 8];
        let mut n = 0;
        let mut half: Option<u8> = None;
        for c in s.bytes() {
            if c == b':' || c == b'-' {
                continue;
            }
            let v = (c as char).to_digit(16).ok_or(crate::Error::BadText { field: "eui64" })? as u8;
            match half.take() {
                None => half = Some(v),
                Some(h) => {
                    if n == 8 {
                        return Err(crate::Error::BadText { field: "eui64" });
                    }
                    out[n] = h << 4 | v;
                    n += 1;
                }
            }
        }
        if n != 8 || half.is_some() {
            return Err(crate::Error::BadText { field: "eui64" });
        }
        Ok(Eui64(out))
    }
}

impl Eui64 {
    /// A stable, locally administered EUI-64 for an identity that has none (docs/pcd-01.md):
    /// the first 8 octets of SHA-1(`"medgw-eui64|"` + `key`), with the IEEE 802 U/L bit
    /// (0x02 of the first octet) set, so it cannot be an IEEE-assigned id, and the I/G bit
    /// (0x01) cleared, so it is an individual address. 62 free bits: two different keys give
    /// the same id with probability 2^-62 — not impossible, so `medgw check-config` verifies
    /// that the ids of the configured gateway and devices are distinct.
    pub fn derived(key: &str) -> Eui64 {
        use sha1::{Digest, Sha1};
        let mut h = Sha1::new();
        h.update(b"medgw-eui64|");
        h.update(key.as_bytes());
        let digest = h.finalize();
        let mut out = [0u8; 8];
        out.copy_from_slice(&digest[..8]);
        out[0] = (out[0] | 0x02) & !0x01;
        Eui64(out)
    }

    /// Whether the U/L bit says "locally administered" (not assigned by the IEEE).
    pub fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }
}

/// What a device says about itself. Fields the device has not told are `None`.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DeviceIdentity {
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub eui64: Option<Eui64>,
    pub firmware: Option<String>,
}

impl DeviceIdentity {
    /// Takes every field that `update` knows; returns whether anything changed.
    pub fn merge(&mut self, update: &DeviceIdentity) -> bool {
        let mut changed = false;
        fn take<T: Clone + PartialEq>(dst: &mut Option<T>, src: &Option<T>, changed: &mut bool) {
            if let Some(v) = src {
                if dst.as_ref() != Some(v) {
                    *dst = Some(v.clone());
                    *changed = true;
                }
            }
        }
        take(&mut self.manufacturer, &update.manufacturer, &mut changed);
        take(&mut self.model, &update.model, &mut changed);
        take(&mut self.serial, &update.serial, &mut changed);
        take(&mut self.eui64, &update.eui64, &mut changed);
        take(&mut self.firmware, &update.firmware, &mut changed);
        changed
    }
}

/// Where the device is: from configuration, never from the device (decisions.md).
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Location {
    pub site: String,
    pub unit: String,
    pub room: Option<String>,
    pub bed: String,
}

impl Location {
    /// `site/unit[/room]/bed`: the bed's identifier where no patient is bound (FHIR `Location`
    /// identifier value, HL7 unidentified-patient PID-3; docs/pcd-01.md).
    pub fn path(&self) -> String {
        let mut bed = alloc::format!("{}/{}/", self.site, self.unit);
        if let Some(room) = &self.room {
            bed.push_str(room);
            bed.push('/');
        }
        bed.push_str(&self.bed);
        bed
    }
}

/// A patient bound by configuration: identifier and its assigning authority / FHIR system.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Patient {
    pub id: String,
    /// Identifier system (FHIR `identifier.system`) or HL7 assigning authority.
    pub system: Option<String>,
    /// What the hospital's ADT feed said, for a patient associated by it (docs/adt.md); absent
    /// for a configured binding. The HL7 output repeats these fields as received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adt: Option<Box<AdtFields>>,
}

impl Patient {
    /// A patient bound by configuration.
    pub fn configured(id: impl Into<String>, system: Option<String>) -> Patient {
        Patient { id: id.into(), system, adt: None }
    }
}

/// PID-3 (the identifier the association is keyed on), PID-5, PV1-3 (the bed as the feed
/// spells it) and PV1-19 (the visit), as the ADT feed sent them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdtFields {
    pub identifier: crate::hl7::Cx,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<crate::hl7::Xpn>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<crate::hl7::Pl>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visit: Option<crate::hl7::Cx>,
}

impl AdtFields {
    /// The FHIR `identifier.system` for an HL7 assigning authority: `urn:oid:` for an ISO OID,
    /// the universal id itself for a URI or UUID, else the namespace as the hospital names it.
    pub fn system_of(cx: &crate::hl7::Cx) -> Option<String> {
        let hd = &cx.assigning_authority;
        match hd.universal_id_type.as_str() {
            "ISO" if !hd.universal_id.is_empty() => Some(alloc::format!("urn:oid:{}", hd.universal_id)),
            "URI" if !hd.universal_id.is_empty() => Some(hd.universal_id.clone()),
            "UUID" if !hd.universal_id.is_empty() => Some(alloc::format!("urn:uuid:{}", hd.universal_id)),
            _ if !hd.namespace.is_empty() => Some(hd.namespace.clone()),
            _ => None,
        }
    }
}

/// Everything about the source of an observation that is the same for all its observations.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DeviceContext {
    /// The gateway's configured id.
    pub gateway: String,
    /// The device's configured name, unique within the gateway.
    pub name: String,
    pub protocol: String,
    /// Where the device is attached (`/dev/ttyUSB0`, a BLE address, `tcp://host:port`): where it
    /// is, not who it is.
    pub port: String,
    pub identity: DeviceIdentity,
    pub location: Location,
    pub patient: Option<Patient>,
    /// The gateway's own EUI-64 when configured (`gateway.eui64`); otherwise it is derived
    /// from the gateway id ([`DeviceContext::gateway_eui64`]). Not serialised when absent, so
    /// the stored contexts of earlier versions read back unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_eui64: Option<Eui64>,
}

/// `parts` joined with `:` into a String of the exact size (the key is built for every Device
/// resource and canonical observation: without `core::fmt`).
fn colon_joined(parts: &[&str]) -> String {
    let mut s = String::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push_str(p);
    }
    s
}

impl DeviceContext {
    /// The device's identity key (decisions.md, "Identity"): what the device says about itself
    /// when it says it (EUI-64, else manufacturer + model + serial), otherwise gateway + name.
    /// Stable when the device moves to another port or gateway.
    pub fn key(&self) -> String {
        let id = &self.identity;
        if let Some(eui) = id.eui64 {
            return alloc::format!("eui64:{eui}");
        }
        if let Some(serial) = &id.serial {
            return colon_joined(&["sn", id.manufacturer.as_deref().unwrap_or(&self.protocol), id.model.as_deref().unwrap_or(""), serial]);
        }
        colon_joined(&["cfg", &self.gateway, &self.name])
    }

    /// The device's EUI-64 for PCD-01 (OBX-18): its own when it has one, otherwise
    /// [`Eui64::derived`] from its identity key. The flag says whether it was derived.
    pub fn eui64(&self) -> (Eui64, bool) {
        match self.identity.eui64 {
            Some(e) => (e, false),
            None => (Eui64::derived(&self.key()), true),
        }
    }

    /// The gateway's EUI-64 (PCD-01 MSH-3, OBR-3): configured, or derived from `gw:<id>`.
    pub fn gateway_eui64(&self) -> Eui64 {
        self.gateway_eui64.unwrap_or_else(|| gateway_eui64(&self.gateway))
    }
}

/// The EUI-64 derived for a gateway id (a key no device key can equal: those start with
/// `eui64:`, `sn:` or `cfg:`).
pub fn gateway_eui64(gateway_id: &str) -> Eui64 {
    Eui64::derived(&alloc::format!("gw:{gateway_id}"))
}

/// The namespace of medgw observation ids: UUID v5 of the URL `urn:medgw:observation`
/// (`7878266e-ad47-55aa-9457-7248703f9c17`, precomputed: it is hashed for every observation).
pub const ID_NAMESPACE: Uuid =
    Uuid::from_bytes([0x78, 0x78, 0x26, 0x6e, 0xad, 0x47, 0x55, 0xaa, 0x94, 0x57, 0x72, 0x48, 0x70, 0x3f, 0x9c, 0x17]);

/// The namespace of medgw observation ids (see [`ID_NAMESPACE`]).
pub fn id_namespace() -> Uuid {
    ID_NAMESPACE
}

/// The deterministic observation id (decisions.md): UUID v5 over the device identity key, the
/// metric (MDC code, or the vendor code when unmapped), the observation time in ms and the
/// device's sequence number. The same reading decoded twice, by any gateway, gets the same id.
///
/// `occurrence` tells apart different readings that the device gave the same metric, time and
/// (absent) sequence number: two frames of a clock-less oximeter read in one chunk share the
/// receipt millisecond. It is 0 for the first, and then not written, so ids of ordinary
/// readings do not depend on it.
pub fn observation_id(
    device_key: &str,
    metric: MdcCode,
    vendor: Option<&VendorCode>,
    time: Timestamp,
    seq: Option<u32>,
    occurrence: u32,
) -> Uuid {
    // The name `key|metric|time|seq[|#occurrence]` is hashed piece by piece as it would be
    // written: one id per observation at full speed made a String and `core::fmt` a measurable
    // share of the gateway's work (issue 20). Pinned against the written form in the tests.
    let mut h = NameHasher::new(&ID_NAMESPACE);
    let mut digits = [0u8; 20];
    h.update(device_key.as_bytes());
    h.update(b"|");
    match (metric.is_unmapped(), vendor) {
        (true, Some(v)) => {
            h.update(v.namespace.as_bytes());
            h.update(b":");
            h.update(v.code.as_bytes());
        }
        _ => h.update(crate::decimal::digits(&mut digits, u64::from(metric.0)).as_bytes()),
    }
    h.update(b"|");
    if time.0 < 0 {
        h.update(b"-");
    }
    h.update(crate::decimal::digits(&mut digits, time.0.unsigned_abs()).as_bytes());
    h.update(b"|");
    if let Some(s) = seq {
        h.update(crate::decimal::digits(&mut digits, u64::from(s)).as_bytes());
    }
    if occurrence > 0 {
        h.update(b"|#");
        h.update(crate::decimal::digits(&mut digits, u64::from(occurrence)).as_bytes());
    }
    h.finish()
}

/// A name-based UUID, version 5 (RFC 9562 §5.5: SHA-1 of namespace and name, first 16 bytes,
/// version and variant bits set) — the same value as `Uuid::new_v5`, computed with a SHA-1
/// that uses the CPU's SHA instructions.
pub fn uuid_v5(namespace: &Uuid, name: &[u8]) -> Uuid {
    let mut h = NameHasher::new(namespace);
    h.update(name);
    h.finish()
}

/// [`uuid_v5`] of a name given in pieces, hashed as they come (the ids written for every
/// observation, without building their names first).
pub(crate) struct NameHasher(sha1::Sha1);

impl NameHasher {
    pub(crate) fn new(namespace: &Uuid) -> NameHasher {
        use sha1::Digest;
        let mut h = sha1::Sha1::new();
        h.update(namespace.as_bytes());
        NameHasher(h)
    }

    pub(crate) fn update(&mut self, piece: &[u8]) {
        sha1::Digest::update(&mut self.0, piece);
    }

    pub(crate) fn finish(self) -> Uuid {
        let digest = sha1::Digest::finalize(self.0);
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        uuid::Builder::from_sha1_bytes(bytes).into_uuid()
    }
}

/// The context-free half of an observation: what the durable buffer stores.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reading {
    pub id: Uuid,
    pub metric: MdcCode,
    pub vendor: Option<VendorCode>,
    pub value: Value,
    pub unit: MdcCode,
    /// The device's time resolved to UTC, when the device gave one.
    pub device_time: Option<Timestamp>,
    /// When the gateway received the bytes.
    pub receipt_time: Timestamp,
    pub seq: Option<u32>,
    pub flags: Flags,
    pub status: Status,
}

impl Reading {
    /// The time published as FHIR `effectiveDateTime` / OBX-14: the device's time when it is
    /// trustworthy, otherwise the receipt time (decisions.md, "Time"); the flags say which.
    pub fn effective_time(&self) -> Timestamp {
        match self.device_time {
            Some(t) if !self.flags.intersects(Flags::TIME_FROM_GATEWAY) => t,
            _ => self.receipt_time,
        }
    }
}

/// A complete canonical observation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    pub context: Arc<DeviceContext>,
    pub reading: Reading,
}

impl Observation {
    /// Builds the observation from a decoder's measurement. `device_time` is the measurement's
    /// time already resolved to UTC (the caller owns zones and clock-skew judgement);
    /// `time_flags` are the flags of that judgement. Without a device time the observation is
    /// flagged [`Flags::NO_DEVICE_CLOCK`].
    pub fn new(
        context: Arc<DeviceContext>,
        m: Measurement,
        receipt_time: Timestamp,
        device_time: Option<Timestamp>,
        time_flags: Flags,
    ) -> Observation {
        let key = context.key();
        Observation::keyed(context, &key, m, receipt_time, device_time, time_flags, |_| 0)
    }

    /// As [`Observation::new`], for a caller that keeps the device's identity key
    /// ([`DeviceContext::key`], the same for all its readings) instead of formatting it for
    /// each reading, and that tells apart readings sharing metric, time and sequence number:
    /// `occurrence` sees the reading and says which one it is (0 for the first; see
    /// [`observation_id`]). The id is hashed once, with the occurrence in it.
    pub fn keyed(
        context: Arc<DeviceContext>,
        key: &str,
        m: Measurement,
        receipt_time: Timestamp,
        device_time: Option<Timestamp>,
        time_flags: Flags,
        occurrence: impl FnOnce(&Reading) -> u32,
    ) -> Observation {
        let mut flags = m.flags | time_flags;
        if device_time.is_none() {
            flags |= Flags::NO_DEVICE_CLOCK;
        }
        if m.metric.is_unmapped() {
            flags |= Flags::UNMAPPED;
        }
        let mut reading = Reading {
            id: Uuid::nil(),
            metric: m.metric,
            vendor: m.vendor.map(VendorRef::into_owned),
            value: m.value,
            unit: m.unit,
            device_time,
            receipt_time,
            seq: m.seq,
            flags,
            status: m.status,
        };
        let n = occurrence(&reading);
        reading.id = observation_id(key, reading.metric, reading.vendor.as_ref(), device_time.unwrap_or(receipt_time), reading.seq, n);
        Observation { context, reading }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mdc::{code, unit};
    use alloc::string::ToString;

    fn ctx() -> Arc<DeviceContext> {
        Arc::new(DeviceContext {
            gateway: "gw1".into(),
            name: "bed4-spo2".into(),
            protocol: "nonin-df8".into(),
            port: "/dev/ttyUSB0".into(),
            identity: DeviceIdentity::default(),
            location: Location { site: "HOSP".into(), unit: "ICU".into(), room: None, bed: "BED4".into() },
            patient: None,
            gateway_eui64: None,
        })
    }

    #[test]
    fn identity_key_prefers_what_the_device_says() {
        let mut c = (*ctx()).clone();
        assert_eq!(c.key(), "cfg:gw1:bed4-spo2");
        c.identity.serial = Some("0000123456".into());
        c.identity.manufacturer = Some("Masimo".into());
        assert_eq!(c.key(), "sn:Masimo::0000123456");
        c.identity.eui64 = Some("00-12-34-56-78-AB-CD-EF".parse().unwrap());
        assert_eq!(c.key(), "eui64:0012345678ABCDEF");
        // Moving the device to another port does not change who it is.
        c.port = "/dev/ttyUSB7".into();
        assert_eq!(c.key(), "eui64:0012345678ABCDEF");
    }

    #[test]
    fn ids_are_deterministic_and_distinguish_inputs() {
        let m = Measurement::numeric(code::MDC_PULS_OXIM_SAT_O2, Decimal::from_int(97), unit::MDC_DIM_PERCENT);
        let t = Timestamp(1_710_498_125_000);
        let a = Observation::new(ctx(), m.clone(), Timestamp(t.0 + 500), Some(t), Flags::NONE);
        let b = Observation::new(ctx(), m.clone(), Timestamp(t.0 + 900), Some(t), Flags::NONE);
        // Same device + metric + device time: same id, whatever the receipt time.
        assert_eq!(a.reading.id, b.reading.id);
        assert_eq!(a.reading.id.get_version_num(), 5);
        let c = Observation::new(ctx(), m.clone(), t, Some(Timestamp(t.0 + 1)), Flags::NONE);
        assert_ne!(a.reading.id, c.reading.id);
        let d = Observation::new(ctx(), m.clone().with_seq(Some(7)), t, Some(t), Flags::NONE);
        assert_ne!(a.reading.id, d.reading.id);
        let mut other = (*ctx()).clone();
        other.name = "bed5-spo2".into();
        let e = Observation::new(Arc::new(other), m, t, Some(t), Flags::NONE);
        assert_ne!(a.reading.id, e.reading.id);
        // Pinned: a change to the id scheme breaks de-duplication downstream, so it must be
        // deliberate. Computed independently with Python: uuid.uuid5(uuid.uuid5(uuid.NAMESPACE_URL,
        // "urn:medgw:observation"), "cfg:gw1:bed4-spo2|150456|1710498125000|").
        assert_eq!(a.reading.id.to_string(), python_uuid5());
    }

    #[test]
    fn the_precomputed_namespace_is_the_uuid5_of_its_url() {
        assert_eq!(ID_NAMESPACE, Uuid::new_v5(&Uuid::NAMESPACE_URL, b"urn:medgw:observation"));
    }

    #[test]
    fn our_uuid_v5_equals_the_uuid_crates_for_every_name_length() {
        // Lengths across SHA-1's 64-byte blocks and its padding boundary (55/56 bytes).
        for len in 0..200usize {
            let name: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            assert_eq!(uuid_v5(&ID_NAMESPACE, &name), Uuid::new_v5(&ID_NAMESPACE, &name), "length {len}");
        }
    }

    #[test]
    fn the_id_hashed_in_pieces_is_the_uuid5_of_the_written_name() {
        // The name as decisions.md writes it: `key|metric|time|seq[|#occurrence]`, the vendor's
        // `namespace:code` in place of the metric when it is unmapped.
        let vendor = VendorCode::new_static("masimo", "SIQ");
        let metrics =
            [(code::MDC_PULS_OXIM_SAT_O2, None), (MdcCode::UNMAPPED, Some(&vendor)), (MdcCode(0), None), (MdcCode(u32::MAX), None)];
        let times = [0i64, 9, 10, -1, -1_710_498_125_001, 1_710_498_125_000, i64::MAX, i64::MIN + 1, i64::MIN];
        for key in ["cfg:gw1:bed4-spo2", "", "eui64:0012345678ABCDEF"] {
            for (metric, v) in metrics {
                for t in times {
                    for seq in [None, Some(0), Some(7), Some(u32::MAX)] {
                        for occurrence in [0, 1, 10, u32::MAX] {
                            let mut name = alloc::format!("{key}|");
                            match (metric.is_unmapped(), v) {
                                (true, Some(v)) => name.push_str(&alloc::format!("{}:{}", v.namespace, v.code)),
                                _ => name.push_str(&metric.0.to_string()),
                            }
                            name.push_str(&alloc::format!("|{t}|"));
                            if let Some(s) = seq {
                                name.push_str(&s.to_string());
                            }
                            if occurrence > 0 {
                                name.push_str(&alloc::format!("|#{occurrence}"));
                            }
                            assert_eq!(
                                observation_id(key, metric, v, Timestamp(t), seq, occurrence),
                                Uuid::new_v5(&ID_NAMESPACE, name.as_bytes()),
                                "{name}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_keyed_observation_has_the_id_of_its_occurrence_and_new_that_of_the_first() {
        let m = Measurement::numeric(code::MDC_PULS_OXIM_SAT_O2, Decimal::from_int(97), unit::MDC_DIM_PERCENT);
        let t = Timestamp(1_710_498_125_000);
        let c = ctx();
        for n in [0u32, 1, 3] {
            let fast = Observation::keyed(c.clone(), &c.key(), m.clone(), t, None, Flags::NONE, |r| {
                assert_eq!(r.receipt_time, t, "the occurrence sees the reading");
                n
            });
            let mut expected = Observation::new(c.clone(), m.clone(), t, None, Flags::NONE);
            expected.reading.id = observation_id(&c.key(), m.metric, None, t, None, n);
            assert_eq!(fast, expected);
        }
    }

    fn python_uuid5() -> String {
        include_str!("../tests/fixtures/observation_id.txt").trim().to_string()
    }

    #[test]
    fn effective_time_follows_time_quality() {
        let m = Measurement::numeric(code::MDC_PULS_OXIM_SAT_O2, Decimal::from_int(97), unit::MDC_DIM_PERCENT);
        let dev = Timestamp(1_000_000);
        let rx = Timestamp(5_000_000);
        let good = Observation::new(ctx(), m.clone(), rx, Some(dev), Flags::NONE);
        assert_eq!(good.reading.effective_time(), dev);
        let skewed = Observation::new(ctx(), m.clone(), rx, Some(dev), Flags::CLOCK_SKEW);
        assert_eq!(skewed.reading.effective_time(), rx);
        let none = Observation::new(ctx(), m, rx, None, Flags::NONE);
        assert_eq!(none.reading.effective_time(), rx);
        assert!(none.reading.flags.contains(Flags::NO_DEVICE_CLOCK));
    }

    #[test]
    fn flags_serialize_as_names_and_bits() {
        let f = Flags::SENSOR_OFF | Flags::ARTIFACT | Flags::CLOCK_SKEW;
        assert_eq!(serde_json::to_string(&f).unwrap(), r#"["sensor-off","artifact","clock-skew"]"#);
        assert_eq!(serde_json::from_str::<Flags>(r#"["artifact","sensor-off","clock-skew"]"#).unwrap(), f);
        assert!(serde_json::from_str::<Flags>(r#"["nonsense"]"#).is_err());
        let names: Vec<&str> = Flags::NAMES.iter().map(|(_, n)| *n).collect();
        for required in ["sensor-off", "artifact", "out-of-track", "low-perfusion", "questionable", "unavailable"] {
            assert!(names.contains(&required), "{required}");
        }
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len(), "duplicate flag names");
    }

    #[test]
    fn reading_is_compact_in_postcard() {
        let m = Measurement::numeric(code::MDC_PULS_OXIM_SAT_O2, Decimal::from_int(97), unit::MDC_DIM_PERCENT);
        let o = Observation::new(ctx(), m, Timestamp(1_710_498_125_300), Some(Timestamp(1_710_498_125_000)), Flags::NONE);
        let bytes = postcard::to_allocvec(&o.reading).unwrap();
        assert!(bytes.len() < 60, "{} bytes", bytes.len());
        assert_eq!(postcard::from_bytes::<Reading>(&bytes).unwrap(), o.reading);
    }

    #[test]
    fn a_static_vendor_code_is_the_same_code_as_a_boxed_one() {
        static SPHB: VendorCode = VendorCode::new_static("masimo", "SPHB");
        let m = Measurement::numeric(MdcCode::UNMAPPED, Decimal::from_int(13), unit::MDC_DIM_DIMLESS);
        let boxed = m.clone().with_vendor("masimo", "SPHB");
        let stat = m.clone().with_static_vendor(&SPHB);
        assert!(matches!(boxed.vendor, Some(VendorRef::Owned(_))));
        assert!(matches!(stat.vendor, Some(VendorRef::Static(_))));
        // Equal where it matters: the measurement, the stored reading and its id.
        assert_eq!(stat, boxed);
        assert_ne!(stat, m.clone().with_vendor("masimo", "PVI"));
        assert_eq!(stat.vendor.as_ref().map(|v| (v.namespace.as_ref(), v.code.as_ref())), Some(("masimo", "SPHB")));
        let t = Timestamp(1_710_498_125_000);
        let a = Observation::new(ctx(), stat, t, None, Flags::NONE);
        let b = Observation::new(ctx(), boxed, t, None, Flags::NONE);
        assert_eq!(a.reading, b.reading);
        assert_eq!(a.reading.vendor, Some(SPHB.clone()));
        assert!(a.reading.flags.contains(Flags::UNMAPPED));
        // The stored form does not know where the code lived.
        assert_eq!(postcard::to_allocvec(&a.reading).unwrap(), postcard::to_allocvec(&b.reading).unwrap());
    }

    #[test]
    fn a_device_without_an_eui64_gets_a_stable_local_one_derived_from_its_identity() {
        let mut c = (*ctx()).clone();
        // Pinned, computed independently with Python:
        // sha1(b"medgw-eui64|cfg:gw1:bed4-spo2").digest()[:8], first octet | 0x02 & ~0x01.
        assert_eq!(c.eui64(), ("02AA5DD715909A20".parse().unwrap(), true));
        assert_eq!(c.gateway_eui64().to_string(), "D603793C114C0D9D");
        c.identity.serial = Some("0000123456".into());
        c.identity.manufacturer = Some("Masimo".into());
        let (masimo, derived) = c.eui64();
        assert!(derived && masimo.is_local() && masimo.0[0] & 0x01 == 0);
        assert_eq!(masimo.to_string(), "5A984031F2526A5B");
        // The same identity on another port or gateway keeps its EUI-64.
        let mut moved = c.clone();
        moved.port = "/dev/ttyUSB9".into();
        moved.gateway = "gw2".into();
        assert_eq!(moved.eui64().0, masimo);
        // A device's own EUI-64 is kept as it is; a configured gateway EUI-64 wins.
        let own: Eui64 = "0012345678ABCDEF".parse().unwrap();
        c.identity.eui64 = Some(own);
        assert_eq!(c.eui64(), (own, false));
        c.gateway_eui64 = Some(own);
        assert_eq!(c.gateway_eui64(), own);
        // Many keys, no collisions, always local and individual.
        let mut seen = alloc::collections::BTreeSet::new();
        for i in 0..5000 {
            let e = Eui64::derived(&alloc::format!("cfg:gw1:dev{i}"));
            assert!(e.is_local() && e.0[0] & 0x01 == 0);
            assert!(seen.insert(e), "collision at {i}");
        }
    }

    #[test]
    fn a_context_without_a_gateway_eui64_serialises_as_before() {
        let json = serde_json::to_string(&*ctx()).unwrap();
        assert!(!json.contains("gateway_eui64"), "{json}");
        let back: DeviceContext = serde_json::from_str(&json).unwrap();
        assert_eq!(back, *ctx());
    }

    #[test]
    fn eui64_text() {
        let e: Eui64 = "0012345678abcdef".parse().unwrap();
        assert_eq!(e.to_string(), "0012345678ABCDEF");
        assert!("0012345678abcde".parse::<Eui64>().is_err());
        assert!("0012345678abcdef00".parse::<Eui64>().is_err());
        assert!("0012345678abcdeg".parse::<Eui64>().is_err());
    }
}
