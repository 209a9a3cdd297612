//! Unit conversion between the units that devices send and the units that outputs expect.
//!
//! The canonical observation keeps the device's own unit (decisions.md, "Values and units"); the
//! FHIR encoder converts to the vital-signs profile's unit and records the original. All factors
//! live in this one table with their source, and each row says how the precision changes: a
//! reading of 5.3 kPa is good to ±0.05 kPa ≈ ±0.4 mmHg, so it becomes 40 mmHg, not 39.75 mmHg.

use crate::decimal::Decimal;
use crate::mdc::{code, unit, MdcCode};

/// `to = from × factor + offset`, rounded to the source's decimals plus `decimals_delta`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Conversion {
    pub from: MdcCode,
    pub to: MdcCode,
    /// Restricts the row to one measurement (substance-specific factors such as glucose).
    pub metric: Option<MdcCode>,
    pub factor: f64,
    pub offset: f64,
    pub decimals_delta: i8,
    pub src: &'static str,
}

/// 1 mm[Hg] = 133.322387415 Pa (UCUM: 13.5951 g/cm³ × g_n × 1 mm; NIST SP 811 B.9).
const PA_PER_MMHG: f64 = 133.322_387_415;
/// 1 [lb_av] = 0.45359237 kg exactly (UCUM; the 1959 international pound).
const KG_PER_LB: f64 = 0.453_592_37;
/// 1 [in_i] = 2.54 cm exactly (UCUM).
const CM_PER_IN: f64 = 2.54;
/// Glucose molar mass 180.156 g/mol: 1 mmol/L = 18.0156 mg/dL (IUPAC atomic weights).
const MGDL_PER_MMOLL_GLUCOSE: f64 = 18.0156;

pub static CONVERSIONS: &[Conversion] = &[
    Conversion {
        from: unit::MDC_DIM_KILO_PASCAL,
        to: unit::MDC_DIM_MMHG,
        metric: None,
        factor: 1000.0 / PA_PER_MMHG,
        offset: 0.0,
        decimals_delta: -1,
        src: "UCUM mm[Hg]",
    },
    Conversion {
        from: unit::MDC_DIM_MMHG,
        to: unit::MDC_DIM_KILO_PASCAL,
        metric: None,
        factor: PA_PER_MMHG / 1000.0,
        offset: 0.0,
        decimals_delta: 1,
        src: "UCUM mm[Hg]",
    },
    Conversion {
        from: unit::MDC_DIM_FAHR,
        to: unit::MDC_DIM_DEGC,
        metric: None,
        factor: 5.0 / 9.0,
        offset: -32.0 * 5.0 / 9.0,
        decimals_delta: 0,
        src: "UCUM [degF]",
    },
    Conversion {
        from: unit::MDC_DIM_DEGC,
        to: unit::MDC_DIM_FAHR,
        metric: None,
        factor: 9.0 / 5.0,
        offset: 32.0,
        decimals_delta: 0,
        src: "UCUM [degF]",
    },
    Conversion {
        from: unit::MDC_DIM_LB,
        to: unit::MDC_DIM_KILO_G,
        metric: None,
        factor: KG_PER_LB,
        offset: 0.0,
        decimals_delta: 0,
        src: "UCUM [lb_av]",
    },
    Conversion {
        from: unit::MDC_DIM_KILO_G,
        to: unit::MDC_DIM_LB,
        metric: None,
        factor: 1.0 / KG_PER_LB,
        offset: 0.0,
        decimals_delta: 0,
        src: "UCUM [lb_av]",
    },
    Conversion {
        from: unit::MDC_DIM_INCH,
        to: unit::MDC_DIM_CENTI_M,
        metric: None,
        factor: CM_PER_IN,
        offset: 0.0,
        decimals_delta: 0,
        src: "UCUM [in_i]",
    },
    Conversion {
        from: unit::MDC_DIM_CENTI_M,
        to: unit::MDC_DIM_INCH,
        metric: None,
        factor: 1.0 / CM_PER_IN,
        offset: 0.0,
        decimals_delta: 0,
        src: "UCUM [in_i]",
    },
    Conversion {
        from: unit::MDC_DIM_MILLI_MOLE_PER_L,
        to: unit::MDC_DIM_MILLI_G_PER_DL,
        metric: Some(code::MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD),
        factor: MGDL_PER_MMOLL_GLUCOSE,
        offset: 0.0,
        decimals_delta: -1,
        src: "glucose molar mass",
    },
];

/// Finds the conversion from `from` to `to` for `metric` (a metric-specific row wins).
pub fn find(metric: MdcCode, from: MdcCode, to: MdcCode) -> Option<&'static Conversion> {
    CONVERSIONS
        .iter()
        .filter(|c| c.from == from && c.to == to)
        .find(|c| c.metric == Some(metric))
        .or_else(|| CONVERSIONS.iter().find(|c| c.from == from && c.to == to && c.metric.is_none()))
}

impl Conversion {
    pub fn apply(&self, value: Decimal) -> Option<Decimal> {
        let decimals = (value.decimals() as i16 + self.decimals_delta as i16).clamp(0, 18) as u8;
        Decimal::from_f64(value.to_f64() * self.factor + self.offset, decimals)
    }
}

/// Converts `value` from unit `from` to unit `to`; `None` when no conversion is known.
pub fn convert(metric: MdcCode, value: Decimal, from: MdcCode, to: MdcCode) -> Option<Decimal> {
    if from == to {
        return Some(value);
    }
    find(metric, from, to)?.apply(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn conv(m: MdcCode, v: &str, from: MdcCode, to: MdcCode) -> alloc::string::String {
        convert(m, d(v), from, to).unwrap().to_string()
    }

    #[test]
    fn pressure() {
        let m = code::MDC_AWAY_CO2_ET;
        // 5.3 kPa = 39.75 mmHg; 0.1 kPa resolution -> whole mmHg.
        assert_eq!(conv(m, "5.3", unit::MDC_DIM_KILO_PASCAL, unit::MDC_DIM_MMHG), "40");
        assert_eq!(conv(m, "5.33", unit::MDC_DIM_KILO_PASCAL, unit::MDC_DIM_MMHG), "40.0");
        assert_eq!(conv(m, "120", unit::MDC_DIM_MMHG, unit::MDC_DIM_KILO_PASCAL), "16.0");
        assert_eq!(conv(m, "16.0", unit::MDC_DIM_KILO_PASCAL, unit::MDC_DIM_MMHG), "120");
    }

    #[test]
    fn temperature() {
        let m = code::MDC_TEMP_BODY;
        assert_eq!(conv(m, "98.6", unit::MDC_DIM_FAHR, unit::MDC_DIM_DEGC), "37.0");
        assert_eq!(conv(m, "32", unit::MDC_DIM_FAHR, unit::MDC_DIM_DEGC), "0");
        assert_eq!(conv(m, "-40.0", unit::MDC_DIM_FAHR, unit::MDC_DIM_DEGC), "-40.0");
        assert_eq!(conv(m, "37.0", unit::MDC_DIM_DEGC, unit::MDC_DIM_FAHR), "98.6");
        assert_eq!(conv(m, "100.4", unit::MDC_DIM_FAHR, unit::MDC_DIM_DEGC), "38.0");
    }

    #[test]
    fn mass_and_length() {
        let m = code::MDC_MASS_BODY_ACTUAL;
        assert_eq!(conv(m, "154.32", unit::MDC_DIM_LB, unit::MDC_DIM_KILO_G), "70.00");
        assert_eq!(conv(m, "70.0", unit::MDC_DIM_KILO_G, unit::MDC_DIM_LB), "154.3");
        assert_eq!(conv(code::MDC_LEN_BODY_ACTUAL, "70.0", unit::MDC_DIM_INCH, unit::MDC_DIM_CENTI_M), "177.8");
    }

    #[test]
    fn glucose_is_substance_specific() {
        let g = code::MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD;
        assert_eq!(conv(g, "5.5", unit::MDC_DIM_MILLI_MOLE_PER_L, unit::MDC_DIM_MILLI_G_PER_DL), "99");
        // The glucose factor must not apply to another substance.
        assert!(convert(code::MDC_TEMP, d("5.5"), unit::MDC_DIM_MILLI_MOLE_PER_L, unit::MDC_DIM_MILLI_G_PER_DL).is_none());
    }

    #[test]
    fn identity_and_unknown() {
        assert_eq!(conv(code::MDC_RESP_RATE, "12", unit::MDC_DIM_RESP_PER_MIN, unit::MDC_DIM_RESP_PER_MIN), "12");
        assert!(convert(code::MDC_RESP_RATE, d("12"), unit::MDC_DIM_PERCENT, unit::MDC_DIM_MMHG).is_none());
    }
}
