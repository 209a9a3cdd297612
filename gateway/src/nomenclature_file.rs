//! Loads the site's nomenclature override file (TOML) named by `gateway.nomenclature`.
//!
//! ```toml
//! [[unit]]    # add or correct a unit: code (partition 4), ref_id, ucum
//! [[metric]]  # add or correct a measurement: code (partition 2), ref_id, loinc, fhir_unit, ...
//! [[map]]     # map a device's own code to MDC: namespace, code, metric, unit
//! ```
//! See `config/nomenclature.example.toml` for a commented example.

use std::path::Path;

use medgw_protocols::nomenclature::{Nomenclature, Overrides};

/// Reads and applies the override file; every problem is reported in the error text.
pub fn load(path: &Path) -> Result<Nomenclature, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let overrides: Overrides = toml::from_str(&text).map_err(|e| e.to_string().trim_end().to_string())?;
    Nomenclature::with_overrides(&overrides).map_err(|errs| errs.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))
}
