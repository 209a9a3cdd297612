//! The nomenclature in use: the built-in tables of [`crate::mdc`] plus a site's overrides.
//!
//! Missing or mislabelled codes are the most common reason gateways silently drop values. A site
//! fixes them without a new build: the override file (named in the gateway config, TOML) adds or
//! replaces metric and unit rows and maps a device's own codes to MDC. A value whose code is still
//! unknown is never dropped: it is published with its vendor code and the `unmapped` flag.

use alloc::borrow::Cow;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use serde::Deserialize;

use crate::mdc::{self, MdcCode};
use crate::observation::{Flags, Measurement};

/// A measurement row in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricEntry {
    pub code: MdcCode,
    pub ref_id: Cow<'static, str>,
    pub display: Cow<'static, str>,
    pub loinc: Vec<Cow<'static, str>>,
    pub vital_profile: Option<Cow<'static, str>>,
    pub fhir_unit: Option<MdcCode>,
    pub components: Vec<MdcCode>,
    /// `built-in: <source>` or `override`.
    pub src: Cow<'static, str>,
}

/// A unit row in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitEntry {
    pub code: MdcCode,
    pub ref_id: Cow<'static, str>,
    pub ucum: Cow<'static, str>,
    pub display: Cow<'static, str>,
}

/// A device code mapped to MDC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorMap {
    pub metric: MdcCode,
    /// Replaces the unit the decoder assumed, when the site knows better.
    pub unit: Option<MdcCode>,
}

/// The override file's content (TOML in the gateway; any serde format works).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    #[serde(default, rename = "metric")]
    pub metrics: Vec<MetricOverride>,
    #[serde(default, rename = "unit")]
    pub units: Vec<UnitOverride>,
    #[serde(default, rename = "map")]
    pub maps: Vec<MapOverride>,
}

/// A code given either as the combined number or as its reference id.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum CodeRef {
    Number(u32),
    RefId(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricOverride {
    pub code: u32,
    pub ref_id: String,
    pub display: Option<String>,
    #[serde(default)]
    pub loinc: Vec<String>,
    pub vital_profile: Option<String>,
    pub fhir_unit: Option<CodeRef>,
    #[serde(default)]
    pub components: Vec<CodeRef>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitOverride {
    pub code: u32,
    pub ref_id: String,
    pub ucum: String,
    pub display: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapOverride {
    /// The protocol namespace of the device code (`masimo`, `medibus`, `intellivue`, ...).
    pub namespace: String,
    /// The device's code as the decoder reports it (`SPCO`, `0xDC`, `19384`).
    pub code: String,
    pub metric: CodeRef,
    pub unit: Option<CodeRef>,
}

/// A problem in an override file, with the index of the row (0-based within its table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverrideError {
    pub table: &'static str,
    pub index: usize,
    pub message: String,
}

impl core::fmt::Display for OverrideError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "[[{}]] #{}: {}", self.table, self.index + 1, self.message)
    }
}

/// The nomenclature in use by encoders and the normaliser.
#[derive(Debug, Clone)]
pub struct Nomenclature {
    metrics: BTreeMap<MdcCode, MetricEntry>,
    units: BTreeMap<MdcCode, UnitEntry>,
    maps: BTreeMap<(String, String), VendorMap>,
}

impl Default for Nomenclature {
    fn default() -> Self {
        Nomenclature::builtin()
    }
}

impl Nomenclature {
    /// The built-in tables only.
    pub fn builtin() -> Nomenclature {
        let metrics = mdc::METRICS
            .iter()
            .map(|m| {
                (
                    m.code,
                    MetricEntry {
                        code: m.code,
                        ref_id: Cow::Borrowed(m.ref_id),
                        display: Cow::Borrowed(m.display),
                        loinc: m.loinc.iter().map(|l| Cow::Borrowed(*l)).collect(),
                        vital_profile: m.vital_profile.map(Cow::Borrowed),
                        fhir_unit: m.fhir_unit,
                        components: m.components.to_vec(),
                        src: Cow::Borrowed(m.src),
                    },
                )
            })
            .collect();
        let units = mdc::UNITS
            .iter()
            .map(|u| {
                (
                    u.code,
                    UnitEntry {
                        code: u.code,
                        ref_id: Cow::Borrowed(u.ref_id),
                        ucum: Cow::Borrowed(u.ucum),
                        display: Cow::Borrowed(u.display),
                    },
                )
            })
            .collect();
        Nomenclature { metrics, units, maps: BTreeMap::new() }
    }

    /// The built-in tables with `overrides` applied. Every problem is reported, not just the
    /// first, so an engineer fixes the file in one pass.
    pub fn with_overrides(overrides: &Overrides) -> Result<Nomenclature, Vec<OverrideError>> {
        let mut nom = Nomenclature::builtin();
        let mut errors = Vec::new();
        // Units first: metric rows may name them.
        for (index, u) in overrides.units.iter().enumerate() {
            let err = |message: String| OverrideError { table: "unit", index, message };
            let code = MdcCode(u.code);
            if code.partition() != MdcCode::PART_DIM {
                errors.push(err(alloc::format!("code {} is in partition {}, units are in partition 4 (DIM)", u.code, code.partition())));
                continue;
            }
            if u.ucum.trim().is_empty() || u.ucum.contains(char::is_whitespace) {
                errors.push(err(alloc::format!("ucum {:?} is not a UCUM code", u.ucum)));
                continue;
            }
            nom.units.insert(
                code,
                UnitEntry {
                    code,
                    ref_id: Cow::Owned(u.ref_id.clone()),
                    ucum: Cow::Owned(u.ucum.clone()),
                    display: Cow::Owned(u.display.clone().unwrap_or_else(|| u.ucum.clone())),
                },
            );
        }
        for (index, m) in overrides.metrics.iter().enumerate() {
            let err = |message: String| OverrideError { table: "metric", index, message };
            let code = MdcCode(m.code);
            if code.partition() != MdcCode::PART_SCADA {
                errors.push(err(alloc::format!(
                    "code {} is in partition {}, measurements are in partition 2 (SCADA): combined code = 131072 + term",
                    m.code,
                    code.partition()
                )));
                continue;
            }
            if !m.ref_id.starts_with("MDC_") {
                errors.push(err(alloc::format!("ref_id {:?} should start with MDC_", m.ref_id)));
            }
            if let Some(bad) = m.loinc.iter().find(|l| !loinc_ok(l)) {
                errors.push(err(alloc::format!("loinc {bad:?} has a wrong check digit or form (NNNNN-C)")));
                continue;
            }
            let fhir_unit = match &m.fhir_unit {
                None => None,
                Some(r) => match nom.resolve_unit(r) {
                    Some(u) => Some(u),
                    None => {
                        errors.push(err(alloc::format!("fhir_unit {r:?} is not a known unit: add it as a [[unit]] row")));
                        continue;
                    }
                },
            };
            let mut components = Vec::new();
            for c in &m.components {
                match nom.resolve_metric(c) {
                    Some(code) => components.push(code),
                    None => errors.push(err(alloc::format!("component {c:?} is not a known metric"))),
                }
            }
            let previous = nom.metrics.get(&code).cloned();
            nom.metrics.insert(
                code,
                MetricEntry {
                    code,
                    ref_id: Cow::Owned(m.ref_id.clone()),
                    display: Cow::Owned(
                        m.display
                            .clone()
                            .or_else(|| previous.as_ref().map(|p| p.display.clone().into_owned()))
                            .unwrap_or_else(|| m.ref_id.clone()),
                    ),
                    loinc: m.loinc.iter().map(|l| Cow::Owned(l.clone())).collect(),
                    vital_profile: m.vital_profile.clone().map(Cow::Owned),
                    fhir_unit,
                    components,
                    src: Cow::Borrowed("override"),
                },
            );
        }
        for (index, m) in overrides.maps.iter().enumerate() {
            let err = |message: String| OverrideError { table: "map", index, message };
            let Some(metric) = nom.resolve_metric(&m.metric) else {
                errors.push(err(alloc::format!("metric {:?} is not a known metric: add it as a [[metric]] row", m.metric)));
                continue;
            };
            let unit = match &m.unit {
                None => None,
                Some(r) => match nom.resolve_unit(r) {
                    Some(u) => Some(u),
                    None => {
                        errors.push(err(alloc::format!("unit {r:?} is not a known unit")));
                        continue;
                    }
                },
            };
            nom.maps.insert((m.namespace.clone(), m.code.clone()), VendorMap { metric, unit });
        }
        if errors.is_empty() {
            Ok(nom)
        } else {
            Err(errors)
        }
    }

    fn resolve_metric(&self, r: &CodeRef) -> Option<MdcCode> {
        match r {
            CodeRef::Number(n) => self.metrics.get(&MdcCode(*n)).map(|m| m.code),
            CodeRef::RefId(s) => self.metrics.values().find(|m| m.ref_id == s.as_str()).map(|m| m.code),
        }
    }

    fn resolve_unit(&self, r: &CodeRef) -> Option<MdcCode> {
        match r {
            CodeRef::Number(n) => self.units.get(&MdcCode(*n)).map(|u| u.code),
            CodeRef::RefId(s) => self.units.values().find(|u| u.ref_id == s.as_str()).map(|u| u.code),
        }
    }

    pub fn metric(&self, code: MdcCode) -> Option<&MetricEntry> {
        self.metrics.get(&code)
    }

    pub fn unit(&self, code: MdcCode) -> Option<&UnitEntry> {
        self.units.get(&code)
    }

    pub fn metrics(&self) -> impl Iterator<Item = &MetricEntry> {
        self.metrics.values()
    }

    pub fn units(&self) -> impl Iterator<Item = &UnitEntry> {
        self.units.values()
    }

    /// The component metric whose member code `member` belongs to, if any (e.g. NIBP for
    /// NIBP systolic).
    pub fn compound_of(&self, member: MdcCode) -> Option<&MetricEntry> {
        self.metrics.values().find(|m| m.components.contains(&member))
    }

    /// Applies vendor-code maps: a measurement the decoder could not map (or that the site
    /// remapped) gets its MDC code (and unit, where the map says). Returns whether it changed.
    pub fn apply(&self, m: &mut Measurement) -> bool {
        let Some(v) = &m.vendor else { return false };
        let Some(map) = self.maps.get(&(String::from(v.namespace.as_ref()), String::from(v.code.as_ref()))) else {
            return false;
        };
        m.metric = map.metric;
        if let Some(u) = map.unit {
            m.unit = u;
        }
        m.flags = crate::observation::Flags(m.flags.0 & !Flags::UNMAPPED.0);
        true
    }
}

/// LOINC form `NNNNN-C` with the mod-10 (Luhn) check digit of the LOINC Users' Guide.
pub fn loinc_ok(code: &str) -> bool {
    let Some((body, check)) = code.split_once('-') else { return false };
    if body.is_empty() || body.len() > 7 || check.len() != 1 || !body.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let Some(check) = check.chars().next().and_then(|c| c.to_digit(10)) else { return false };
    let mut sum = 0;
    for (i, b) in body.bytes().rev().enumerate() {
        let d = (b - b'0') as u32;
        sum += if i % 2 == 0 {
            let dd = d * 2;
            dd / 10 + dd % 10
        } else {
            d
        };
    }
    (10 - sum % 10) % 10 == check
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decimal::Decimal;
    use crate::mdc::{code, unit};

    fn overrides(json: &str) -> Overrides {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn builtin_has_every_required_vital() {
        let n = Nomenclature::builtin();
        for c in [
            code::MDC_PULS_OXIM_SAT_O2,
            code::MDC_PULS_OXIM_PULS_RATE,
            code::MDC_ECG_HEART_RATE,
            code::MDC_PRESS_BLD_NONINV_SYS,
            code::MDC_PRESS_BLD_NONINV_DIA,
            code::MDC_PRESS_BLD_NONINV_MEAN,
            code::MDC_PRESS_BLD_ART_ABP_SYS,
            code::MDC_RESP_RATE,
            code::MDC_TEMP_BODY,
            code::MDC_CONC_AWAY_CO2_ET,
            code::MDC_PULS_OXIM_PERF_REL,
            code::MDC_MASS_BODY_ACTUAL,
            code::MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD,
        ] {
            let m = n.metric(c).unwrap_or_else(|| panic!("{c} missing"));
            let u = m.fhir_unit.and_then(|u| n.unit(u)).unwrap_or_else(|| panic!("{} has no unit", m.ref_id));
            assert!(!u.ucum.is_empty());
        }
        assert_eq!(n.compound_of(code::MDC_PRESS_BLD_NONINV_DIA).map(|m| m.code), Some(code::MDC_PRESS_BLD_NONINV));
    }

    #[test]
    fn overrides_add_correct_and_map() {
        let o = overrides(
            r#"{
            "unit": [{"code": 264256, "ref_id": "MDC_DIM_X_G_PER_DL", "ucum": "g/dL"}],
            "metric": [
                {"code": 150456, "ref_id": "MDC_PULS_OXIM_SAT_O2", "loinc": ["2708-6"], "fhir_unit": "MDC_DIM_PERCENT"},
                {"code": 159764, "ref_id": "MDC_CONC_HB_ART", "display": "SpHb", "loinc": ["718-7"], "fhir_unit": 264256}
            ],
            "map": [{"namespace": "masimo", "code": "SPHB", "metric": "MDC_CONC_HB_ART", "unit": "MDC_DIM_X_G_PER_DL"}]
        }"#,
        );
        let n = Nomenclature::with_overrides(&o).unwrap();
        assert_eq!(n.metric(code::MDC_PULS_OXIM_SAT_O2).unwrap().loinc, alloc::vec![Cow::Borrowed("2708-6")]);
        assert_eq!(n.metric(code::MDC_PULS_OXIM_SAT_O2).unwrap().display, "SpO2", "display kept from the built-in row");
        assert_eq!(n.metric(MdcCode(159764)).unwrap().src, "override");
        let mut m = Measurement::numeric(MdcCode::UNMAPPED, Decimal::new(135, -1).unwrap(), unit::MDC_DIM_DIMLESS)
            .with_vendor("masimo", "SPHB")
            .with_flags(Flags::UNMAPPED);
        assert!(n.apply(&mut m));
        assert_eq!(m.metric, MdcCode(159764));
        assert_eq!(m.unit, MdcCode(264256));
        assert!(!m.flags.contains(Flags::UNMAPPED));
        // An unknown vendor code is left as it is (published unmapped, never dropped).
        let mut other = Measurement::numeric(MdcCode::UNMAPPED, Decimal::from_int(1), unit::MDC_DIM_DIMLESS).with_vendor("masimo", "PVI");
        assert!(!n.apply(&mut other));
        assert!(other.metric.is_unmapped());
    }

    #[test]
    fn every_problem_is_reported() {
        let o = overrides(
            r#"{
            "unit": [{"code": 150456, "ref_id": "MDC_DIM_WRONG", "ucum": "%"}],
            "metric": [
                {"code": 262688, "ref_id": "MDC_X"},
                {"code": 150456, "ref_id": "MDC_PULS_OXIM_SAT_O2", "loinc": ["2708-7"]},
                {"code": 150457, "ref_id": "MDC_Y", "fhir_unit": "MDC_DIM_NOPE"}
            ],
            "map": [{"namespace": "masimo", "code": "SPHB", "metric": "MDC_NOT_THERE"}]
        }"#,
        );
        let errs = Nomenclature::with_overrides(&o).unwrap_err();
        let text: Vec<String> = errs.iter().map(|e| alloc::format!("{e}")).collect();
        assert_eq!(errs.len(), 5, "{text:?}");
        assert!(text[0].starts_with("[[unit]] #1: code 150456 is in partition 2"), "{}", text[0]);
        assert!(text[1].starts_with("[[metric]] #1: code 262688 is in partition 4"), "{}", text[1]);
        assert!(text[2].contains("loinc \"2708-7\""), "{}", text[2]);
        assert!(text[3].contains("fhir_unit"), "{}", text[3]);
        assert!(text[4].starts_with("[[map]] #1"), "{}", text[4]);
        assert!(serde_json::from_str::<Overrides>(r#"{"metrics": []}"#).is_err(), "unknown keys are refused");
    }

    #[test]
    fn loinc_check_digits() {
        for ok in [
            "8867-4", "59408-5", "2708-6", "8310-5", "29463-7", "85354-9", "8480-6", "8462-4", "8478-0", "9279-1", "19891-1", "61006-3",
            "41653-7", "718-7",
        ] {
            assert!(loinc_ok(ok), "{ok}");
        }
        for bad in ["8867-5", "8867", "-4", "88a7-4", "8867-44"] {
            assert!(!loinc_ok(bad), "{bad}");
        }
    }
}
