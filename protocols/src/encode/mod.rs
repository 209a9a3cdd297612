//! Encoders: pure functions of an observation and the nomenclature (decisions.md, "Outputs").
//!
//! - [`canonical`]: the compact JSON form for logs, debugging and `medgw decode`
//!   (docs/canonical-json.md).
//! - [`fhir`]: HL7 FHIR R4 `Observation` (vital-signs profiles where they apply) and `Device`.
//! - [`hl7v2`]: HL7 v2.6 `ORU^R01` per IHE PCD-01, and [`mllp`] framing.
//! - [`wave`]: wave segments as FHIR `valueSampledData`, PCD-01 `NA` and canonical JSON.
//! - Alarms ([`crate::alarm::AlarmEvent`]): [`pcd04`] (`ORU^R40` per IHE PCD-04),
//!   [`fhir_alarm`] (FHIR R4 `Communication`), [`canonical_alarm`] (JSON).

pub mod canonical;
pub mod canonical_alarm;
pub mod containment;
pub mod fhir;
pub mod fhir_alarm;
mod fhir_observation;
pub mod hl7v2;
pub mod mllp;
pub mod pcd04;
pub mod wave;

/// Appends the JSON of `value` to `out` (streaming with `std`, through a temporary without).
pub(crate) fn append_json<T: serde::Serialize>(out: &mut alloc::vec::Vec<u8>, value: &T) {
    // Every type the encoders write serialises infallibly into memory.
    #[cfg(feature = "std")]
    let _ = serde_json::to_writer(out, value);
    #[cfg(not(feature = "std"))]
    if let Ok(v) = serde_json::to_vec(value) {
        out.extend_from_slice(&v);
    }
}
