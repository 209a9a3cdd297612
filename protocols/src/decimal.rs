//! A decimal number that keeps the precision the device reported.
//!
//! Clinical values carry their resolution: a thermometer that says `37.0` measured to a tenth of a
//! degree, one that says `37` did not. IEEE 11073-20601 FLOAT/SFLOAT encode exactly this as
//! mantissa × 10^exponent, and FHIR R4 (§2.24.0.1 `decimal`) requires that trailing zeros are kept.
//! A plain `f64` loses both, so every value in medgw is a [`Decimal`] until it is written out.

use core::fmt;
use core::str::FromStr;

use crate::error::Error;

/// mantissa × 10^exponent, exactly as measured. `20` and `20.0` are different values here on purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Decimal {
    mantissa: i64,
    exponent: i8,
}

/// The largest mantissa accepted: 18 significant digits, so that scaling by 10 never overflows.
const MAX_MANTISSA: i64 = 999_999_999_999_999_999;
const POW10: [i64; 19] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
    10_000_000_000,
    100_000_000_000,
    1_000_000_000_000,
    10_000_000_000_000,
    100_000_000_000_000,
    1_000_000_000_000_000,
    10_000_000_000_000_000,
    100_000_000_000_000_000,
    1_000_000_000_000_000_000,
];

impl Decimal {
    /// `mantissa × 10^exponent`. Returns `None` when the mantissa has more than 18 digits or the
    /// exponent is outside ±18 (no device reports such a value; refusing keeps arithmetic exact).
    pub const fn new(mantissa: i64, exponent: i8) -> Option<Decimal> {
        if mantissa > MAX_MANTISSA || mantissa < -MAX_MANTISSA || exponent > 18 || exponent < -18 {
            None
        } else {
            Some(Decimal { mantissa, exponent })
        }
    }

    /// An integer value (exponent 0).
    pub const fn from_int(value: i32) -> Decimal {
        Decimal { mantissa: value as i64, exponent: 0 }
    }

    pub const fn mantissa(&self) -> i64 {
        self.mantissa
    }

    pub const fn exponent(&self) -> i8 {
        self.exponent
    }

    /// Number of digits after the decimal point that the value carries (0 for integers and for
    /// positive exponents).
    pub const fn decimals(&self) -> u8 {
        if self.exponent < 0 {
            (-self.exponent) as u8
        } else {
            0
        }
    }

    /// The value as `f64`, for arithmetic and plotting; never for output.
    pub fn to_f64(&self) -> f64 {
        let m = self.mantissa as f64;
        if self.exponent >= 0 {
            m * POW10[self.exponent as usize] as f64
        } else {
            m / POW10[(-self.exponent) as usize] as f64
        }
    }

    /// Rounds `value` half away from zero to `decimals` digits after the point.
    pub fn from_f64(value: f64, decimals: u8) -> Option<Decimal> {
        if !value.is_finite() || decimals > 18 {
            return None;
        }
        let scaled = value * POW10[decimals as usize] as f64;
        if scaled.abs() > MAX_MANTISSA as f64 {
            return None;
        }
        // `f64::round` is std-only; add ±0.5 and truncate, which is half-away-from-zero.
        let rounded = if scaled >= 0.0 { (scaled + 0.5) as i64 } else { (scaled - 0.5) as i64 };
        Decimal::new(rounded, -(decimals as i8))
    }

    /// Equality of the numbers, ignoring precision: `20 == 20.0` here.
    pub fn value_eq(&self, other: &Decimal) -> bool {
        let (a, b) = (self.normalized(), other.normalized());
        a == b
    }

    /// The same number with trailing zeros of the mantissa removed (used for comparisons only).
    fn normalized(&self) -> Decimal {
        let mut d = *self;
        if d.mantissa == 0 {
            return Decimal { mantissa: 0, exponent: 0 };
        }
        while d.mantissa % 10 == 0 && d.exponent < 18 {
            d.mantissa /= 10;
            d.exponent += 1;
        }
        d
    }

    /// Writes the stored digits into `buf` and returns the text. 40 bytes always suffice.
    pub fn write_to<'a>(&self, buf: &'a mut [u8; 40]) -> &'a str {
        let mut scratch = [0u8; 20];
        let d = digits(&mut scratch, self.mantissa.unsigned_abs()).as_bytes();
        let mut pos = 0;
        let mut push = |bytes: &[u8], pos: &mut usize| {
            buf[*pos..*pos + bytes.len()].copy_from_slice(bytes);
            *pos += bytes.len();
        };
        if self.mantissa < 0 {
            push(b"-", &mut pos);
        }
        if self.exponent >= 0 {
            push(d, &mut pos);
            for _ in 0..self.exponent {
                push(b"0", &mut pos);
            }
        } else {
            let frac = (-self.exponent) as usize;
            if d.len() <= frac {
                push(b"0.", &mut pos);
                for _ in d.len()..frac {
                    push(b"0", &mut pos);
                }
                push(d, &mut pos);
            } else {
                let (int, fraction) = d.split_at(d.len() - frac);
                push(int, &mut pos);
                push(b".", &mut pos);
                push(fraction, &mut pos);
            }
        }
        // Only ASCII digits, '-' and '.' were written.
        core::str::from_utf8(&buf[..pos]).unwrap_or("0")
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 40];
        f.write_str(self.write_to(&mut buf))
    }
}

impl FromStr for Decimal {
    type Err = Error;

    /// Parses `-12.30`, `97`, `+5`, `.5` (a leading `.` is accepted as devices send it). Scientific
    /// notation is refused: no device protocol medgw reads uses it.
    fn from_str(s: &str) -> Result<Decimal, Error> {
        let bad = Error::BadText { field: "decimal" };
        let bytes = s.as_bytes();
        let (neg, rest) = match bytes.first() {
            Some(b'-') => (true, &bytes[1..]),
            Some(b'+') => (false, &bytes[1..]),
            _ => (false, bytes),
        };
        if rest.is_empty() {
            return Err(bad);
        }
        let mut mantissa: i64 = 0;
        let mut frac: i32 = 0;
        let mut seen_point = false;
        let mut digits = 0;
        for &b in rest {
            match b {
                b'0'..=b'9' => {
                    if digits >= 18 {
                        return Err(bad);
                    }
                    mantissa = mantissa * 10 + (b - b'0') as i64;
                    if mantissa != 0 || seen_point {
                        digits += 1;
                    }
                    if seen_point {
                        frac += 1;
                    }
                }
                b'.' if !seen_point => seen_point = true,
                _ => return Err(bad),
            }
        }
        if rest == b"." || frac > 18 {
            return Err(bad);
        }
        Decimal::new(if neg { -mantissa } else { mantissa }, -(frac as i8)).ok_or(bad)
    }
}

/// JSON writes the stored digits as a JSON number (`97.50`, not `97.5`); compact binary formats
/// (postcard) store `(mantissa, exponent)`.
impl serde::Serialize for Decimal {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            #[cfg(feature = "alloc")]
            {
                let mut buf = [0u8; 40];
                let text = self.write_to(&mut buf);
                match serde_json::value::RawValue::from_string(alloc::string::String::from(text)) {
                    Ok(raw) => return serde::Serialize::serialize(&raw, serializer),
                    Err(_) => return serializer.serialize_f64(self.to_f64()),
                }
            }
            #[cfg(not(feature = "alloc"))]
            return serializer.serialize_f64(self.to_f64());
        }
        serde::Serialize::serialize(&(self.mantissa, self.exponent), serializer)
    }
}

impl<'de> serde::Deserialize<'de> for Decimal {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
        use serde::de::Error as _;
        if deserializer.is_human_readable() {
            #[cfg(feature = "alloc")]
            {
                let raw: alloc::boxed::Box<serde_json::value::RawValue> = serde::Deserialize::deserialize(deserializer)?;
                return raw.get().trim().parse().map_err(D::Error::custom);
            }
            #[cfg(not(feature = "alloc"))]
            return Err(D::Error::custom("decimal text needs the alloc feature"));
        }
        let (m, e): (i64, i8) = serde::Deserialize::deserialize(deserializer)?;
        Decimal::new(m, e).ok_or_else(|| D::Error::custom("decimal out of range"))
    }
}

/// The decimal digits of `v`, written into the end of `buf` (20 hold any `u64`). For the numbers
/// every observation's encoding or id writes (metric codes, times in ms, sequence numbers),
/// where `core::fmt` was a measurable share of the gateway's work at full speed (issue 20).
pub fn digits(buf: &mut [u8; 20], mut v: u64) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    core::str::from_utf8(&buf[i..]).unwrap_or("")
}

#[cfg(test)]
mod tests {
    #[test]
    fn digits_are_the_formatted_number() {
        let mut buf = [0u8; 20];
        for v in [0u64, 1, 9, 10, 99, 100, 150_456, u64::from(u32::MAX), 1_710_498_125_000, u64::MAX - 1, u64::MAX] {
            assert_eq!(digits(&mut buf, v), alloc::format!("{v}"));
        }
        for shift in 0..64 {
            let v = (1u64 << shift) - 1;
            assert_eq!(digits(&mut buf, v), alloc::format!("{v}"));
        }
    }

    use super::*;
    use alloc::string::ToString;

    #[test]
    fn keeps_trailing_zeros() {
        assert_eq!(Decimal::new(200, -1).unwrap().to_string(), "20.0");
        assert_eq!(Decimal::new(200, -2).unwrap().to_string(), "2.00");
        assert_eq!(Decimal::new(20, 0).unwrap().to_string(), "20");
        assert_eq!(Decimal::new(12, 2).unwrap().to_string(), "1200");
        assert_eq!(Decimal::new(5, -3).unwrap().to_string(), "0.005");
        assert_eq!(Decimal::new(-975, -1).unwrap().to_string(), "-97.5");
        assert_eq!(Decimal::new(-5, -2).unwrap().to_string(), "-0.05");
        assert_eq!(Decimal::new(0, -1).unwrap().to_string(), "0.0");
    }

    #[test]
    fn parses_what_it_prints() {
        for s in ["97.50", "0.005", "-12.3", "120", "0", "0.0", "-0.05", "999999999999999999"] {
            let d: Decimal = s.parse().unwrap();
            assert_eq!(d.to_string(), s);
        }
        assert_eq!("+5".parse::<Decimal>().unwrap().to_string(), "5");
        assert_eq!(".5".parse::<Decimal>().unwrap().to_string(), "0.5");
        for bad in ["", "-", ".", "1.2.3", "1e5", "--1", "12a", "1234567890123456789"] {
            assert!(bad.parse::<Decimal>().is_err(), "{bad}");
        }
    }

    #[test]
    fn rounds_half_away_from_zero() {
        assert_eq!(Decimal::from_f64(39.75, 1).unwrap().to_string(), "39.8");
        assert_eq!(Decimal::from_f64(-39.75, 1).unwrap().to_string(), "-39.8");
        assert_eq!(Decimal::from_f64(37.0, 1).unwrap().to_string(), "37.0");
        assert!(Decimal::from_f64(f64::NAN, 1).is_none());
    }

    #[test]
    fn value_equality_ignores_precision() {
        let a = Decimal::new(20, 0).unwrap();
        let b = Decimal::new(200, -1).unwrap();
        assert_ne!(a, b);
        assert!(a.value_eq(&b));
        assert!(!a.value_eq(&Decimal::new(201, -1).unwrap()));
    }

    #[test]
    fn json_keeps_digits_and_postcard_is_compact() {
        let d = Decimal::new(9750, -2).unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), "97.50");
        let back: Decimal = serde_json::from_str("97.50").unwrap();
        assert_eq!(back, d);
        let bytes = postcard::to_allocvec(&d).unwrap();
        assert!(bytes.len() <= 4);
        assert_eq!(postcard::from_bytes::<Decimal>(&bytes).unwrap(), d);
    }
}
