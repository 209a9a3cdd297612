//! IEEE 11073-20601 SFLOAT-Type (16 bit) and FLOAT-Type (32 bit).
//!
//! ```text
//! SFLOAT: | exponent: i4 | mantissa: i12 |      FLOAT: | exponent: i8 | mantissa: i24 |
//!           bits 15..12    bits 11..0                    bits 31..24    bits 23..0
//! value = mantissa × 10^exponent
//! ```
//! Special values (IEEE 11073-20601 §F.8; same values in the Bluetooth GATT specifications and
//! the IntelliVue Data Export FLOAT-Type): mantissa 0x7FF/0x7FFFFF NaN, 0x800/0x800000 NRes
//! (not at this resolution), 0x7FE/0x7FFFFE +INF, 0x802/0x800002 −INF, 0x801/0x800001 reserved.
//! They are tested before the generic formula: read as numbers they would be 2047, −2048, ...
//!
//! Byte order is the transport's: little-endian on Bluetooth, big-endian on IntelliVue. These
//! functions take the assembled integer.

use crate::decimal::Decimal;
use crate::quality::AbsentReason;

/// A decoded 11073 float: a number with its precision, or one of the special values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FloatValue {
    Number(Decimal),
    NaN,
    NRes,
    PositiveInfinity,
    NegativeInfinity,
    Reserved,
}

impl FloatValue {
    /// The number, or why there is none.
    pub fn to_result(self) -> Result<Decimal, AbsentReason> {
        match self {
            FloatValue::Number(d) => Ok(d),
            FloatValue::NaN => Err(AbsentReason::NotANumber),
            FloatValue::NRes => Err(AbsentReason::NotAtThisResolution),
            FloatValue::PositiveInfinity => Err(AbsentReason::PositiveInfinity),
            FloatValue::NegativeInfinity => Err(AbsentReason::NegativeInfinity),
            FloatValue::Reserved => Err(AbsentReason::Reserved),
        }
    }

    pub fn number(self) -> Option<Decimal> {
        self.to_result().ok()
    }
}

/// Sign-extends the low `bits` bits of `v`.
const fn sign_extend(v: u32, bits: u32) -> i32 {
    let shift = 32 - bits;
    ((v << shift) as i32) >> shift
}

/// Decodes an SFLOAT-Type.
pub fn sfloat(raw: u16) -> FloatValue {
    let mantissa = raw & 0x0FFF;
    match mantissa {
        0x07FF => return FloatValue::NaN,
        0x0800 => return FloatValue::NRes,
        0x07FE => return FloatValue::PositiveInfinity,
        0x0802 => return FloatValue::NegativeInfinity,
        0x0801 => return FloatValue::Reserved,
        _ => {}
    }
    let m = sign_extend(mantissa as u32, 12);
    let e = sign_extend((raw >> 12) as u32, 4);
    // |m| < 2^11 and |e| <= 8: always within Decimal's range.
    match Decimal::new(m as i64, e as i8) {
        Some(d) => FloatValue::Number(d),
        None => FloatValue::Reserved,
    }
}

/// Decodes a FLOAT-Type.
pub fn float(raw: u32) -> FloatValue {
    let mantissa = raw & 0x00FF_FFFF;
    match mantissa {
        0x007F_FFFF => return FloatValue::NaN,
        0x0080_0000 => return FloatValue::NRes,
        0x007F_FFFE => return FloatValue::PositiveInfinity,
        0x0080_0002 => return FloatValue::NegativeInfinity,
        0x0080_0001 => return FloatValue::Reserved,
        _ => {}
    }
    let m = sign_extend(mantissa, 24);
    let e = (raw >> 24) as u8 as i8;
    // An exponent beyond ±18 has no meaning for a vital sign and does not fit a Decimal: report
    // it as reserved rather than invent a value.
    match Decimal::new(m as i64, e) {
        Some(d) => FloatValue::Number(d),
        None => FloatValue::Reserved,
    }
}

/// Encodes a decimal as SFLOAT-Type; `None` when it does not fit (mantissa beyond ±2045 after
/// dropping trailing zeros, or exponent beyond −8..=7).
pub fn encode_sfloat(value: Decimal) -> Option<u16> {
    let (m, e) = fit(value, 2045, -8, 7)?;
    Some((((e as i16 as u16) & 0xF) << 12) | ((m as i16 as u16) & 0x0FFF))
}

/// Encodes a decimal as FLOAT-Type; `None` when it does not fit.
pub fn encode_float(value: Decimal) -> Option<u32> {
    let (m, e) = fit(value, 8_388_605, -128, 127)?;
    Some(((e as i8 as u8 as u32) << 24) | ((m as i32 as u32) & 0x00FF_FFFF))
}

/// Finds mantissa/exponent within bounds, keeping the value's precision exactly.
fn fit(value: Decimal, max_mantissa: i64, min_exp: i32, max_exp: i32) -> Option<(i64, i32)> {
    let mut m = value.mantissa();
    let mut e = value.exponent() as i32;
    // Raising the exponent only while the mantissa has trailing zeros never loses digits;
    // it changes the stated precision, which a too-large mantissa forces anyway.
    while (m.abs() > max_mantissa || e < min_exp) && m % 10 == 0 && m != 0 {
        m /= 10;
        e += 1;
    }
    while e > max_exp && m.abs() * 10 <= max_mantissa {
        m *= 10;
        e -= 1;
    }
    (m.abs() <= max_mantissa && (min_exp..=max_exp).contains(&e)).then_some((m, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn num(v: FloatValue) -> alloc::string::String {
        v.number().expect("a number").to_string()
    }

    #[test]
    fn sfloat_public_vectors() {
        // GP-9 and the HL7 PHD IG "MDER FLOATs and SFLOATs" page: 0xF014 = 2.0, 0xE0C8 = 2.00.
        assert_eq!(num(sfloat(0xF014)), "2.0");
        assert_eq!(num(sfloat(0xE0C8)), "2.00");
        assert_eq!(num(sfloat(0xF3CF)), "97.5");
        assert_eq!(num(sfloat(0x0FF6)), "-10");
        assert_eq!(num(sfloat(0x0014)), "20");
        assert_eq!(num(sfloat(0xF0C8)), "20.0");
        // GP-8 glucose concentration 0xB05F = 95 × 10^-5.
        assert_eq!(num(sfloat(0xB05F)), "0.00095");
    }

    #[test]
    fn sfloat_specials_whatever_the_exponent() {
        for e in 0..16u16 {
            let x = e << 12;
            assert_eq!(sfloat(x | 0x07FF), FloatValue::NaN);
            assert_eq!(sfloat(x | 0x0800), FloatValue::NRes);
            assert_eq!(sfloat(x | 0x07FE), FloatValue::PositiveInfinity);
            assert_eq!(sfloat(x | 0x0802), FloatValue::NegativeInfinity);
            assert_eq!(sfloat(x | 0x0801), FloatValue::Reserved);
        }
        assert_eq!(sfloat(0x07FF).to_result(), Err(AbsentReason::NotANumber));
        // The numbers next to the specials are ordinary.
        assert_eq!(num(sfloat(0x07FD)), "2045");
        assert_eq!(num(sfloat(0x0803)), "-2045");
    }

    #[test]
    fn float_public_vectors() {
        // GP-6: 0xFF00016F = 367 × 10^-1 = 36.7 °C.
        assert_eq!(num(float(0xFF00_016F)), "36.7");
        // PP-4: 0xFF0003CF = 97.5; 0x007FFFFF = NaN.
        assert_eq!(num(float(0xFF00_03CF)), "97.5");
        assert_eq!(float(0x007F_FFFF), FloatValue::NaN);
        assert_eq!(float(0x0080_0000), FloatValue::NRes);
        assert_eq!(float(0x007F_FFFE), FloatValue::PositiveInfinity);
        assert_eq!(float(0x0080_0002), FloatValue::NegativeInfinity);
        assert_eq!(float(0x0080_0001), FloatValue::Reserved);
        assert_eq!(num(float(0x0000_0061)), "97");
        assert_eq!(num(float(0x00FF_FFF6)), "-10");
        // Exponent out of Decimal's range: refused, not invented.
        assert_eq!(float(0x7F00_0001), FloatValue::Reserved);
    }

    #[test]
    fn encode_round_trips_and_keeps_precision() {
        for s in ["2.0", "2.00", "97.5", "-10", "0.00095", "36.7", "120", "2045", "-2045"] {
            let d: Decimal = s.parse().unwrap();
            let raw = encode_sfloat(d).unwrap();
            assert_eq!(sfloat(raw).number().unwrap().to_string(), s, "sfloat {s}");
            let raw = encode_float(d).unwrap();
            assert_eq!(float(raw).number().unwrap().to_string(), s, "float {s}");
        }
        assert_eq!(encode_sfloat("2.0".parse().unwrap()), Some(0xF014));
        assert_eq!(encode_float("36.7".parse().unwrap()), Some(0xFF00_016F));
        // 12000 fits as 12 × 10^3; 2046 does not fit an SFLOAT mantissa at all.
        assert_eq!(sfloat(encode_sfloat("12000".parse().unwrap()).unwrap()).number().unwrap().to_string(), "12000");
        assert_eq!(encode_sfloat("2046".parse().unwrap()), None);
    }
}
