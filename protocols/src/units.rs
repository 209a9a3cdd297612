//! Unit conversion between the units that devices send and the units that outputs expect.
//!
//! The canonical observation keeps the device's own unit (decisions.md, "Values and units"); the
//! FHIR encoder converts to the vital-signs profile's unit and records the original. All factors
//! live in this one table with their source. A converted value keeps at least the measurement's
//! resolution (decisions.md, "Values and units": a value keeps its precision): a reading of
//! 5.3 kPa is good to one step of 0.1 kPa = 0.75 mmHg, so it becomes 39.8 mmHg — whole mmHg would
//! be a coarser step than the device measured — and not 39.75 mmHg either.

use crate::decimal::Decimal;
use crate::mdc::{code, unit, MdcCode};

/// `to = from × factor + offset`, rounded so that the result's resolution is no coarser than the
/// source's (see [`resolution_delta`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Conversion {
    pub from: MdcCode,
    pub to: MdcCode,
    /// Restricts the row to one measurement (substance-specific factors such as glucose).
    pub metric: Option<MdcCode>,
    pub factor: f64,
    pub offset: f64,
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
        src: "UCUM mm[Hg]",
    },
    Conversion {
        from: unit::MDC_DIM_MMHG,
        to: unit::MDC_DIM_KILO_PASCAL,
        metric: None,
        factor: PA_PER_MMHG / 1000.0,
        offset: 0.0,
        src: "UCUM mm[Hg]",
    },
    Conversion {
        from: unit::MDC_DIM_FAHR,
        to: unit::MDC_DIM_DEGC,
        metric: None,
        factor: 5.0 / 9.0,
        offset: -32.0 * 5.0 / 9.0,
        src: "UCUM [degF]",
    },
    Conversion { from: unit::MDC_DIM_DEGC, to: unit::MDC_DIM_FAHR, metric: None, factor: 9.0 / 5.0, offset: 32.0, src: "UCUM [degF]" },
    Conversion { from: unit::MDC_DIM_LB, to: unit::MDC_DIM_KILO_G, metric: None, factor: KG_PER_LB, offset: 0.0, src: "UCUM [lb_av]" },
    Conversion {
        from: unit::MDC_DIM_KILO_G,
        to: unit::MDC_DIM_LB,
        metric: None,
        factor: 1.0 / KG_PER_LB,
        offset: 0.0,
        src: "UCUM [lb_av]",
    },
    Conversion { from: unit::MDC_DIM_INCH, to: unit::MDC_DIM_CENTI_M, metric: None, factor: CM_PER_IN, offset: 0.0, src: "UCUM [in_i]" },
    Conversion {
        from: unit::MDC_DIM_CENTI_M,
        to: unit::MDC_DIM_INCH,
        metric: None,
        factor: 1.0 / CM_PER_IN,
        offset: 0.0,
        src: "UCUM [in_i]",
    },
    Conversion {
        from: unit::MDC_DIM_MILLI_MOLE_PER_L,
        to: unit::MDC_DIM_MILLI_G_PER_DL,
        metric: Some(code::MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD),
        factor: MGDL_PER_MMOLL_GLUCOSE,
        offset: 0.0,
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

/// How many decimals a conversion by `factor` adds (negative: removes) so that the converted
/// value's resolution is no coarser than the measurement's: the smallest `k` with
/// `10^-k <= |factor|`. One step of the source is `|factor|` in the target unit, so a source with
/// `d` decimals needs `d + k` decimals in the target.
///
/// Converting to a coarser unit adds a decimal: 1 °F = 0.56 °C, so `100 °F` becomes `37.8 °C`, not
/// `38 °C` (which reads as a 38.0 °C fever threshold crossed); 0.1 kPa = 0.75 mmHg, so `5.3 kPa`
/// becomes `39.8 mmHg`. Converting to a finer unit keeps or removes decimals: 0.1 mmol/L of
/// glucose is 1.8 mg/dL, so `5.5 mmol/L` becomes `99 mg/dL`. The result may claim up to ten times
/// the source's resolution, never less (decimals are whole steps of ten).
pub fn resolution_delta(factor: f64) -> i8 {
    let f = if factor < 0.0 { -factor } else { factor };
    if f == 0.0 || !f.is_finite() {
        return 0;
    }
    // A relative tolerance so that exact powers of ten (factor 0.1, 1000) are not pushed one step
    // further by floating-point error.
    let f = f * (1.0 + 1e-9);
    let mut k: i8 = 0;
    let mut step = 1.0f64;
    if step > f {
        while step > f && k < 18 {
            step /= 10.0;
            k += 1;
        }
    } else {
        while step * 10.0 <= f && k > -18 {
            step *= 10.0;
            k -= 1;
        }
    }
    k
}

impl Conversion {
    pub fn apply(&self, value: Decimal) -> Option<Decimal> {
        let decimals = (value.decimals() as i16 + resolution_delta(self.factor) as i16).clamp(0, 18) as u8;
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
        let m = code::MDC_CONC_AWAY_CO2_ET;
        // 5.3 kPa = 39.75 mmHg; a 0.1 kPa step is 0.75 mmHg, so 0.1 mmHg (whole mmHg is coarser).
        assert_eq!(conv(m, "5.3", unit::MDC_DIM_KILO_PASCAL, unit::MDC_DIM_MMHG), "39.8");
        assert_eq!(conv(m, "5.33", unit::MDC_DIM_KILO_PASCAL, unit::MDC_DIM_MMHG), "39.98");
        assert_eq!(conv(m, "120", unit::MDC_DIM_MMHG, unit::MDC_DIM_KILO_PASCAL), "16.0");
        assert_eq!(conv(m, "16.0", unit::MDC_DIM_KILO_PASCAL, unit::MDC_DIM_MMHG), "120.0");
    }

    #[test]
    fn temperature() {
        let m = code::MDC_TEMP_BODY;
        // 1 °F = 0.56 °C: °C is the coarser unit, so one decimal is added. 100 °F is 37.78 °C and
        // must not read as 38 °C (a fever threshold).
        assert_eq!(conv(m, "100", unit::MDC_DIM_FAHR, unit::MDC_DIM_DEGC), "37.8");
        assert_eq!(conv(m, "99", unit::MDC_DIM_FAHR, unit::MDC_DIM_DEGC), "37.2");
        assert_eq!(conv(m, "98.6", unit::MDC_DIM_FAHR, unit::MDC_DIM_DEGC), "37.00");
        assert_eq!(conv(m, "32", unit::MDC_DIM_FAHR, unit::MDC_DIM_DEGC), "0.0");
        assert_eq!(conv(m, "-40.0", unit::MDC_DIM_FAHR, unit::MDC_DIM_DEGC), "-40.00");
        assert_eq!(conv(m, "100.4", unit::MDC_DIM_FAHR, unit::MDC_DIM_DEGC), "38.00");
        assert_eq!(conv(m, "100.3", unit::MDC_DIM_FAHR, unit::MDC_DIM_DEGC), "37.94");
        // °C to °F is to a finer unit: the decimals stay.
        assert_eq!(conv(m, "37.0", unit::MDC_DIM_DEGC, unit::MDC_DIM_FAHR), "98.6");
        assert_eq!(conv(m, "38", unit::MDC_DIM_DEGC, unit::MDC_DIM_FAHR), "100");
    }

    #[test]
    fn mass_and_length() {
        let m = code::MDC_MASS_BODY_ACTUAL;
        assert_eq!(conv(m, "154.32", unit::MDC_DIM_LB, unit::MDC_DIM_KILO_G), "69.998");
        assert_eq!(conv(m, "154", unit::MDC_DIM_LB, unit::MDC_DIM_KILO_G), "69.9");
        assert_eq!(conv(m, "70.0", unit::MDC_DIM_KILO_G, unit::MDC_DIM_LB), "154.3");
        assert_eq!(conv(code::MDC_LEN_BODY_ACTUAL, "70.0", unit::MDC_DIM_INCH, unit::MDC_DIM_CENTI_M), "177.8");
        assert_eq!(conv(code::MDC_LEN_BODY_ACTUAL, "178", unit::MDC_DIM_CENTI_M, unit::MDC_DIM_INCH), "70.1");
    }

    #[test]
    fn glucose_is_substance_specific() {
        let g = code::MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD;
        assert_eq!(conv(g, "5.5", unit::MDC_DIM_MILLI_MOLE_PER_L, unit::MDC_DIM_MILLI_G_PER_DL), "99");
        // The glucose factor must not apply to another substance.
        assert!(convert(code::MDC_TEMP, d("5.5"), unit::MDC_DIM_MILLI_MOLE_PER_L, unit::MDC_DIM_MILLI_G_PER_DL).is_none());
    }

    /// Every row: one step of the source, converted, is at least one step of the result (never
    /// coarser), and the result is at most ten times finer.
    #[test]
    fn every_conversion_keeps_the_resolution() {
        for c in CONVERSIONS {
            let k = resolution_delta(c.factor) as i32;
            let out_step = 10f64.powi(-k);
            assert!(out_step <= c.factor.abs() * (1.0 + 1e-9), "{:?}", c);
            assert!(out_step * 10.0 > c.factor.abs(), "{:?}", c);
        }
        assert_eq!(resolution_delta(0.1), 1);
        assert_eq!(resolution_delta(1.0), 0);
        assert_eq!(resolution_delta(1000.0), -3);
        assert_eq!(resolution_delta(-0.5), 1);
    }

    #[test]
    fn identity_and_unknown() {
        assert_eq!(conv(code::MDC_RESP_RATE, "12", unit::MDC_DIM_RESP_PER_MIN, unit::MDC_DIM_RESP_PER_MIN), "12");
        assert!(convert(code::MDC_RESP_RATE, d("12"), unit::MDC_DIM_PERCENT, unit::MDC_DIM_MMHG).is_none());
    }
}
