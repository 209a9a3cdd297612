//! The waveform values: timing, scale, per-sample marks, chunks and segments.

use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::decimal::Decimal;
use crate::mdc::MdcCode;
use crate::observation::Flags;
use crate::time::Timestamp;

/// Sample timing as a ratio, `samples` samples every `micros` microseconds, so that both
/// device conventions are exact: Nonin sends 75 frames a second (75 per 1 000 000 µs, a period
/// of 13.333… ms that no whole number of µs gives) and IntelliVue states the period in ticks of
/// 125 µs (`NOM_ATTR_TIME_PD_SAMP`: 16 ticks = 2 ms = 500 samples/s).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SamplePeriod {
    pub samples: u32,
    pub micros: u32,
}

impl SamplePeriod {
    /// `n` samples per second.
    pub const fn per_second(n: u32) -> SamplePeriod {
        SamplePeriod { samples: n, micros: 1_000_000 }
    }

    /// One sample every `micros` µs.
    pub const fn from_micros(micros: u32) -> SamplePeriod {
        SamplePeriod { samples: 1, micros }
    }

    /// Neither part zero.
    pub const fn is_valid(&self) -> bool {
        self.samples > 0 && self.micros > 0
    }

    /// Microseconds from the first sample to sample `k` (rounded down).
    pub fn offset_us(&self, k: u64) -> i64 {
        if !self.is_valid() {
            return 0;
        }
        (k as u128 * self.micros as u128 / self.samples as u128).min(i64::MAX as u128) as i64
    }

    /// Samples in `ms` milliseconds, rounded to the nearest (at least 1).
    pub fn samples_in_ms(&self, ms: u32) -> usize {
        if !self.is_valid() {
            return 1;
        }
        let n = (ms as u128 * 1000 * self.samples as u128 * 2 + self.micros as u128) / (2 * self.micros as u128);
        n.clamp(1, u32::MAX as u128) as usize
    }

    /// The period in milliseconds (FHIR `SampledData.period`): exact when it terminates within
    /// six decimals (2, 8, 16, 0.125), else rounded to six (13.333333).
    pub fn period_ms(&self) -> Decimal {
        ratio(self.micros as i128, self.samples as i128 * 1000, 6)
    }

    /// Samples per second (PCD-01 `MDC_ATTR_SAMP_RATE`): 75, 500, 62.5.
    pub fn rate_hz(&self) -> Decimal {
        ratio(self.samples as i128 * 1_000_000, self.micros as i128, 6)
    }
}

/// `num / den` as a decimal: exact if it terminates within `max_decimals`, else rounded half
/// away from zero to that many decimals. Zero for a zero denominator (callers check validity).
pub(crate) fn ratio(num: i128, den: i128, max_decimals: u8) -> Decimal {
    ratio_exp(num, den, 0, max_decimals)
}

/// `num / den × 10^exp` as a decimal with at most `max_decimals` digits after the point.
fn ratio_exp(num: i128, den: i128, exp: i32, max_decimals: u8) -> Decimal {
    if den == 0 {
        return Decimal::from_int(0);
    }
    let (num, den) = if den < 0 { (num.checked_neg().unwrap_or(i128::MAX), -den) } else { (num, den) };
    let max = max_decimals as i32;
    // Digits after the point the result needs: k extra powers of ten on the numerator give
    // exponent exp - k.
    let mut k = 0i32;
    loop {
        let e = exp - k;
        let scaled = num.checked_mul(10i128.pow(k as u32));
        let Some(scaled) = scaled else { break };
        if scaled % den == 0 || -e >= max {
            let q = if scaled % den == 0 {
                scaled / den
            } else {
                // Half away from zero: (|scaled| + den/2) / den with the sign put back.
                let q = (scaled.unsigned_abs() + den.unsigned_abs() / 2) / den.unsigned_abs();
                let q = i128::try_from(q).unwrap_or(i128::MAX);
                if scaled < 0 {
                    -q
                } else {
                    q
                }
            };
            return to_decimal(q, e);
        }
        k += 1;
        if k > 36 {
            break;
        }
    }
    Decimal::from_int(0)
}

/// `q × 10^e`, trimming trailing zeros of a fraction and bringing the exponent into range.
fn to_decimal(mut q: i128, mut e: i32) -> Decimal {
    while e < 0 && q != 0 && q % 10 == 0 {
        q /= 10;
        e += 1;
    }
    if q == 0 {
        return Decimal::from_int(0);
    }
    while e > 0 && q.unsigned_abs() < 100_000_000_000_000_000 {
        q *= 10;
        e -= 1;
    }
    while q.unsigned_abs() > 999_999_999_999_999_999 && e < 18 {
        q /= 10;
        e += 1;
    }
    i64::try_from(q).ok().and_then(|m| i8::try_from(e).ok().and_then(|e| Decimal::new(m, e))).unwrap_or(Decimal::from_int(0))
}

/// The mantissa of `d` at exponent `at` (≤ its own), as i128; `None` if it does not fit.
fn at_exponent(d: Decimal, at: i32) -> Option<i128> {
    let shift = (d.exponent() as i32 - at).clamp(0, 36) as u32;
    (d.mantissa() as i128).checked_mul(10i128.pow(shift))
}

/// The linear map from raw sample values to physical ones, given by two points as devices and
/// PCD-01 state it (IntelliVue `ScaleRangeSpec16`: the absolute values at two scaled values),
/// plus the range of raw values the device can send (PCD-01 `MDC_ATTR_DATA_RANGE`; a sample at
/// the range's end may be saturated, which the device marks, see [`SampleMarks`]).
///
/// Nonin DF2: raw 0–255 is the pleth in device units, dimensionless, the identity map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WaveScale {
    /// The physical unit (MDC), `MDC_DIM_DIMLESS` for a relative signal such as the pleth.
    pub unit: MdcCode,
    pub lower_raw: i32,
    pub upper_raw: i32,
    /// Physical value at `lower_raw` and at `upper_raw`.
    pub lower: Decimal,
    pub upper: Decimal,
    /// Raw values the device can send.
    pub min_raw: i32,
    pub max_raw: i32,
}

impl WaveScale {
    /// Raw values are the physical values (factor 1, origin 0) over `min_raw..=max_raw`.
    pub const fn identity(unit: MdcCode, min_raw: i32, max_raw: i32) -> WaveScale {
        WaveScale {
            unit,
            lower_raw: min_raw,
            upper_raw: max_raw,
            lower: Decimal::from_int(min_raw),
            upper: Decimal::from_int(max_raw),
            min_raw,
            max_raw,
        }
    }

    /// The two points differ, so the map is defined.
    pub fn is_valid(&self) -> bool {
        self.lower_raw != self.upper_raw && self.min_raw <= self.max_raw
    }

    fn common_exp(&self) -> i32 {
        (self.lower.exponent() as i32).min(self.upper.exponent() as i32)
    }

    /// Physical units per raw step (FHIR `factor`): `(upper − lower) / (upper_raw − lower_raw)`,
    /// exact where it terminates within nine decimals.
    pub fn factor(&self) -> Decimal {
        let e = self.common_exp();
        let den = self.upper_raw as i128 - self.lower_raw as i128;
        match (at_exponent(self.upper, e), at_exponent(self.lower, e)) {
            (Some(u), Some(l)) if u.checked_sub(l).is_some() => ratio_exp(u - l, den, e, 9),
            // Decimals 36 orders of magnitude apart: no device sends them; stay finite.
            _ => Decimal::from_f64((self.upper.to_f64() - self.lower.to_f64()) / den as f64, 9).unwrap_or(Decimal::from_int(0)),
        }
    }

    /// Physical value of raw 0 (FHIR `origin`): `lower − factor × lower_raw`, computed from the
    /// two points (not from the rounded factor).
    pub fn origin(&self) -> Decimal {
        self.physical(0)
    }

    /// The physical value of a raw sample, from the two points, at most nine decimals.
    pub fn physical(&self, raw: i32) -> Decimal {
        let e = self.common_exp();
        let den = self.upper_raw as i128 - self.lower_raw as i128;
        // lower + (upper − lower)(raw − lower_raw)/den = (lower·den + (u − l)(raw − lower_raw)) / den
        let exact = (|| {
            let (l, u) = (at_exponent(self.lower, e)?, at_exponent(self.upper, e)?);
            l.checked_mul(den)?.checked_add(u.checked_sub(l)?.checked_mul(raw as i128 - self.lower_raw as i128)?)
        })();
        match exact {
            Some(num) => ratio_exp(num, den, e, 9),
            None => {
                let (l, u) = (self.lower.to_f64(), self.upper.to_f64());
                let v = l + (u - l) * (raw as f64 - self.lower_raw as f64) / den as f64;
                Decimal::from_f64(v, 9).or_else(|| Decimal::from_f64(v, 0)).unwrap_or(Decimal::from_int(0))
            }
        }
    }
}

/// Per-sample marks the device sent with the data (IntelliVue fixed-value masks, Nonin status
/// bits) or that the gateway set (a sample it knows was lost).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SampleMarks(pub u8);

impl SampleMarks {
    pub const NONE: SampleMarks = SampleMarks(0);
    /// The device says the sample is invalid (FHIR `E`).
    pub const INVALID: SampleMarks = SampleMarks(0x01);
    /// Below the measurable range, saturated low (FHIR `L`).
    pub const BELOW: SampleMarks = SampleMarks(0x02);
    /// Above the measurable range, saturated high (FHIR `U`).
    pub const ABOVE: SampleMarks = SampleMarks(0x04);
    /// A pacemaker pulse was detected at this sample (the value stays valid).
    pub const PACER: SampleMarks = SampleMarks(0x08);
    /// The QRS trigger is around this sample.
    pub const QRS: SampleMarks = SampleMarks(0x10);
    /// A defibrillation marker.
    pub const DEFIB: SampleMarks = SampleMarks(0x20);
    /// Not received: a placeholder for a sample the device sent and the gateway lost, kept so
    /// that the time base stays right (FHIR `E`).
    pub const MISSING: SampleMarks = SampleMarks(0x40);

    pub const fn contains(self, other: SampleMarks) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn intersects(self, other: SampleMarks) -> bool {
        self.0 & other.0 != 0
    }

    pub const fn union(self, other: SampleMarks) -> SampleMarks {
        SampleMarks(self.0 | other.0)
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The sample carries no usable number: invalid or missing.
    pub const fn no_value(self) -> bool {
        self.intersects(SampleMarks(Self::INVALID.0 | Self::MISSING.0))
    }

    /// The FHIR R4 `SampledData.data` code written instead of the number, if any: `E` (error)
    /// for invalid or missing, `L`/`U` for below/above the detection limits.
    pub const fn fhir_code(self) -> Option<&'static str> {
        if self.no_value() {
            Some("E")
        } else if self.intersects(Self::BELOW) {
            Some("L")
        } else if self.intersects(Self::ABOVE) {
            Some("U")
        } else {
            None
        }
    }
}

/// How a chunk continues the previous chunk of the same metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Continuity {
    /// Its first sample follows the previous chunk's last one directly.
    Continuous,
    /// Exactly this many samples were lost just before it (a sequence number or time stamp
    /// says how many).
    Lost(u32),
    /// Samples may have been lost before it, how many is unknown (damaged bytes, a pause, a
    /// reconnect, the first chunk).
    Broken,
}

/// Samples of one metric as a decoder saw them together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaveChunk {
    pub metric: MdcCode,
    pub period: SamplePeriod,
    pub scale: WaveScale,
    /// Time of the first sample: the device's, or the receipt time backed off by the samples'
    /// duration for devices without a clock.
    pub start: Timestamp,
    pub continuity: Continuity,
    /// Quality flags that hold for the chunk as a whole (artifact, the device's "invalid").
    pub flags: Flags,
    /// Raw sample values.
    pub samples: Vec<i32>,
    /// Empty when no sample is marked, else one per sample.
    pub marks: Vec<SampleMarks>,
}

impl WaveChunk {
    /// The marks of sample `i`.
    pub fn mark(&self, i: usize) -> SampleMarks {
        self.marks.get(i).copied().unwrap_or_default()
    }
}

/// A fixed-length piece of one metric's wave: what the gateway publishes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaveSegment {
    pub metric: MdcCode,
    pub period: SamplePeriod,
    pub scale: WaveScale,
    /// Time of the first sample.
    pub start: Timestamp,
    /// Per stream (device and metric), from 0, one more for each segment: a receiver that
    /// misses one sees the jump.
    pub seq: u64,
    /// Samples were lost, or may have been, between the previous segment and this one (the
    /// device's or the link's loss, not the gateway's).
    pub after_gap: bool,
    /// Union of the chunks' flags.
    pub flags: Flags,
    pub samples: Vec<i32>,
    /// Empty when no sample is marked, else one per sample.
    pub marks: Vec<SampleMarks>,
}

impl WaveSegment {
    /// The marks of sample `i`.
    pub fn mark(&self, i: usize) -> SampleMarks {
        self.marks.get(i).copied().unwrap_or_default()
    }

    /// Time just after the last sample (start + samples × period).
    pub fn end(&self) -> Timestamp {
        Timestamp(self.start.0.saturating_add(self.period.offset_us(self.samples.len() as u64) / 1000))
    }

    /// Time of the last sample.
    pub fn last_sample_time(&self) -> Timestamp {
        let n = self.samples.len().saturating_sub(1) as u64;
        Timestamp(self.start.0.saturating_add(self.period.offset_us(n) / 1000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mdc::unit;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn periods_are_exact_where_they_can_be() {
        assert_eq!(SamplePeriod::per_second(75).period_ms(), d("13.333333"));
        assert_eq!(SamplePeriod::per_second(75).rate_hz(), d("75"));
        assert_eq!(SamplePeriod::from_micros(2000).period_ms(), d("2"));
        assert_eq!(SamplePeriod::from_micros(16_000).rate_hz(), d("62.5"));
        assert_eq!(SamplePeriod::from_micros(125).period_ms(), d("0.125"));
        assert_eq!(SamplePeriod::per_second(75).samples_in_ms(1000), 75);
        assert_eq!(SamplePeriod::from_micros(16_000).samples_in_ms(1000), 63);
        assert_eq!(SamplePeriod::per_second(75).offset_us(75), 1_000_000);
        assert_eq!(SamplePeriod::per_second(75).offset_us(1), 13_333);
    }

    #[test]
    fn scale_from_two_points() {
        // An IntelliVue-style ECG scale: raw 0..16383 is -40.96..40.955 mV → factor 0.005.
        let s = WaveScale {
            unit: unit::MDC_DIM_DIMLESS,
            lower_raw: 0,
            upper_raw: 16383,
            lower: d("-40.96"),
            upper: d("40.955"),
            min_raw: 0,
            max_raw: 16383,
        };
        assert_eq!(s.factor(), d("0.005"));
        assert_eq!(s.origin(), d("-40.96"));
        assert_eq!(s.physical(8192), d("0"));
        assert_eq!(s.physical(16383), d("40.955"));
        // Identity.
        let i = WaveScale::identity(unit::MDC_DIM_DIMLESS, 0, 255);
        assert_eq!((i.factor(), i.origin(), i.physical(200)), (d("1"), d("0"), d("200")));
        // A factor that does not terminate is rounded to nine decimals; the origin is exact.
        let t = WaveScale { lower_raw: 10, upper_raw: 13, lower: d("1"), upper: d("2"), ..i };
        assert_eq!(t.factor(), d("0.333333333"));
        assert_eq!(t.physical(13), d("2"));
    }

    #[test]
    fn extreme_decimals_do_not_overflow() {
        let big = Decimal::new(999_999_999_999_999_999, 18).unwrap();
        let tiny = Decimal::new(-999_999_999_999_999_999, -18).unwrap();
        for (lower, upper) in [(tiny, big), (big, tiny), (big, big)] {
            let s = WaveScale {
                unit: unit::MDC_DIM_DIMLESS,
                lower_raw: i32::MIN,
                upper_raw: i32::MAX,
                lower,
                upper,
                min_raw: i32::MIN,
                max_raw: i32::MAX,
            };
            let _ = (s.factor(), s.origin(), s.physical(i32::MIN), s.physical(i32::MAX));
        }
        assert_eq!(ratio(i128::MAX, 3, 6), ratio(i128::MAX, 3, 6));
    }

    #[test]
    fn marks_give_fhir_codes() {
        assert_eq!(SampleMarks::NONE.fhir_code(), None);
        assert_eq!(SampleMarks::PACER.fhir_code(), None);
        assert_eq!(SampleMarks::INVALID.fhir_code(), Some("E"));
        assert_eq!(SampleMarks::MISSING.union(SampleMarks::ABOVE).fhir_code(), Some("E"));
        assert_eq!(SampleMarks::BELOW.fhir_code(), Some("L"));
        assert_eq!(SampleMarks::ABOVE.union(SampleMarks::QRS).fhir_code(), Some("U"));
    }
}
