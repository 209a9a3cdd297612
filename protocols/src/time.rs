//! Instants and calendar conversion without `std`.
//!
//! medgw keeps every time as a UTC instant in milliseconds since the Unix epoch (decisions.md,
//! "Time"). Devices that send a wall-clock time without a zone (Masimo ASCII, MEDIBUS, GATT Date
//! Time) produce a [`DeviceTime::Local`], which the gateway resolves with the device's configured
//! zone; the observation then says that the zone was assumed.
//!
//! The calendar arithmetic is the proleptic Gregorian "days from civil" algorithm (H. Hinnant,
//! "chrono-Compatible Low-Level Date Algorithms"), valid for years 0..=9999, which covers every
//! timestamp format medgw reads.

use core::fmt;

use crate::error::Error;

/// A UTC instant: milliseconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

/// JSON writes RFC 3339 text; compact binary formats write the milliseconds.
impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(&self.rfc3339())
        } else {
            serializer.serialize_i64(self.0)
        }
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 time or milliseconds since the epoch")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Timestamp, E> {
                Timestamp::parse_rfc3339(v).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Timestamp, E> {
                Ok(Timestamp(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Timestamp, E> {
                i64::try_from(v).map(Timestamp).map_err(E::custom)
            }
        }
        if deserializer.is_human_readable() {
            deserializer.deserialize_any(Visitor)
        } else {
            deserializer.deserialize_i64(Visitor)
        }
    }
}

/// A time as the device reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceTime {
    /// The device's clock is in UTC (medgw link, IntelliVue absolute time after sync).
    Utc(Timestamp),
    /// A wall-clock time with no zone, stored as if it were UTC; resolve with the device's zone.
    Local(Timestamp),
}

/// Broken-down calendar time, as it appears on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CivilTime {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub millisecond: u16,
}

const MS_PER_DAY: i64 = 86_400_000;

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp as i64 + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

impl CivilTime {
    /// Checks ranges (month 1–12, the day within its month, 23:59:59.999 at most; leap seconds are
    /// not representable in any format medgw reads).
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |field, value: u32| Err(Error::BadField { field, value });
        if self.year > 9999 {
            return bad("year", self.year as u32);
        }
        if !(1..=12).contains(&self.month) {
            return bad("month", self.month as u32);
        }
        if self.day == 0 || self.day > days_in_month(self.year, self.month) {
            return bad("day", self.day as u32);
        }
        if self.hour > 23 {
            return bad("hour", self.hour as u32);
        }
        if self.minute > 59 {
            return bad("minute", self.minute as u32);
        }
        if self.second > 59 {
            return bad("second", self.second as u32);
        }
        if self.millisecond > 999 {
            return bad("millisecond", self.millisecond as u32);
        }
        Ok(())
    }

    /// The instant this calendar time denotes when read as UTC.
    pub fn to_timestamp(&self) -> Result<Timestamp, Error> {
        self.validate()?;
        let days = days_from_civil(self.year as i64, self.month as u32, self.day as u32);
        Ok(Timestamp(
            days * MS_PER_DAY + (self.hour as i64 * 3600 + self.minute as i64 * 60 + self.second as i64) * 1000 + self.millisecond as i64,
        ))
    }
}

impl Timestamp {
    pub const fn from_millis(ms: i64) -> Timestamp {
        Timestamp(ms)
    }

    pub const fn as_millis(&self) -> i64 {
        self.0
    }

    /// The current time from the system clock.
    #[cfg(feature = "std")]
    pub fn now() -> Timestamp {
        let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Timestamp(d.as_millis() as i64)
    }

    pub fn to_civil(&self) -> CivilTime {
        let days = self.0.div_euclid(MS_PER_DAY);
        let rem = self.0.rem_euclid(MS_PER_DAY);
        let (y, m, d) = civil_from_days(days);
        CivilTime {
            year: y.clamp(0, 9999) as u16,
            month: m as u8,
            day: d as u8,
            hour: (rem / 3_600_000) as u8,
            minute: (rem / 60_000 % 60) as u8,
            second: (rem / 1000 % 60) as u8,
            millisecond: (rem % 1000) as u16,
        }
    }

    /// RFC 3339 / FHIR `dateTime` in UTC: `2024-03-15T10:22:05Z`, with `.123` only when the
    /// milliseconds are not zero (FHIR allows either; fewer digits read better).
    pub fn rfc3339(&self) -> Rfc3339 {
        Rfc3339(*self)
    }

    /// HL7 v2 DTM with explicit zone, as IHE PCD-01 requires: `20240315102205+0000`, or
    /// `20240315102205.123+0000` when the milliseconds are not zero.
    pub fn hl7(&self) -> Hl7Time {
        Hl7Time(*self)
    }

    /// Parses RFC 3339 with `Z` or a numeric offset, and optional fractional seconds (truncated
    /// to milliseconds).
    pub fn parse_rfc3339(s: &str) -> Result<Timestamp, Error> {
        let bad = Error::BadText { field: "rfc3339 time" };
        let b = s.as_bytes();
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
            return Err(bad);
        }
        let num = |r: core::ops::Range<usize>| -> Result<u32, Error> {
            let mut v = 0u32;
            for &c in &b[r] {
                if !c.is_ascii_digit() {
                    return Err(Error::BadText { field: "rfc3339 time" });
                }
                v = v * 10 + (c - b'0') as u32;
            }
            Ok(v)
        };
        let mut civil = CivilTime {
            year: num(0..4)? as u16,
            month: num(5..7)? as u8,
            day: num(8..10)? as u8,
            hour: num(11..13)? as u8,
            minute: num(14..16)? as u8,
            second: num(17..19)? as u8,
            millisecond: 0,
        };
        let mut i = 19;
        if b[i] == b'.' {
            i += 1;
            let start = i;
            let mut ms = 0u32;
            while i < b.len() && b[i].is_ascii_digit() {
                if i - start < 3 {
                    ms = ms * 10 + (b[i] - b'0') as u32;
                }
                i += 1;
            }
            if i == start {
                return Err(bad);
            }
            for _ in (i - start)..3 {
                ms *= 10;
            }
            civil.millisecond = ms as u16;
        }
        let rest = &b[i..];
        let offset_min: i64 = match rest {
            [b'Z'] | [b'z'] => 0,
            [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
                let digits = [*h1, *h2, *m1, *m2];
                if !digits.iter().all(u8::is_ascii_digit) {
                    return Err(bad);
                }
                let h = ((h1 - b'0') * 10 + (h2 - b'0')) as i64;
                let m = ((m1 - b'0') * 10 + (m2 - b'0')) as i64;
                if h > 23 || m > 59 {
                    return Err(bad);
                }
                let v = h * 60 + m;
                if *sign == b'-' {
                    -v
                } else {
                    v
                }
            }
            _ => return Err(bad),
        };
        let local = civil.to_timestamp()?;
        Ok(Timestamp(local.0 - offset_min * 60_000))
    }
}

/// Display adapter: RFC 3339 in UTC.
pub struct Rfc3339(Timestamp);

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Every observation carries several of these: one `write_str`, not nine formatted
        // fields (issue 20, a measurable share of the encoders' time at full speed).
        let mut text = Digits::instant(&self.0.to_civil(), b'-', b'T', b':');
        text.push(b'Z');
        f.write_str(text.as_str())
    }
}

/// A date and time written digit by digit into a small buffer.
struct Digits {
    buf: [u8; 32],
    len: usize,
}

impl Digits {
    /// `YYYY<d>MM<d>DD<t>hh<c>mm<c>ss[.sss]`, the milliseconds only when not zero; a separator
    /// of 0 is left out. The year has at least four digits (as `{:04}` writes it).
    fn instant(c: &CivilTime, d: u8, t: u8, colon: u8) -> Digits {
        let mut out = Digits { buf: [0; 32], len: 0 };
        out.number(u32::from(c.year), if c.year > 9999 { 5 } else { 4 });
        for (sep, v) in [(d, c.month), (d, c.day), (t, c.hour), (colon, c.minute), (colon, c.second)] {
            if sep != 0 {
                out.push(sep);
            }
            out.number(u32::from(v), 2);
        }
        if c.millisecond != 0 {
            out.push(b'.');
            out.number(u32::from(c.millisecond), 3);
        }
        out
    }

    fn push(&mut self, b: u8) {
        if self.len < self.buf.len() {
            self.buf[self.len] = b;
            self.len += 1;
        }
    }

    /// `v` in exactly `width` decimal digits (the caller keeps it below 10^width).
    fn number(&mut self, mut v: u32, width: usize) {
        let end = (self.len + width).min(self.buf.len());
        for i in (self.len..end).rev() {
            self.buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        self.len = end;
    }

    fn as_str(&self) -> &str {
        // Only ASCII digits and separators were written.
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

/// Display adapter: HL7 v2 DTM with `+0000`.
pub struct Hl7Time(Timestamp);

impl fmt::Display for Hl7Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Digits::instant(&self.0.to_civil(), 0, 0, 0).as_str())?;
        f.write_str("+0000")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    /// The digit-by-digit writers give what the formatted fields did, for instants from 1970
    /// to beyond year 9999 (five-digit years), with and without milliseconds.
    #[test]
    fn fast_date_time_text_matches_formatted_fields() {
        use alloc::format;
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for i in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Up to ~year 10,400; every fourth on a whole second.
            let ms = (x % 264_000_000_000_000) as i64;
            let t = Timestamp(if i % 4 == 0 { ms - ms % 1000 } else { ms });
            let c = t.to_civil();
            let frac = if c.millisecond != 0 { format!(".{:03}", c.millisecond) } else { alloc::string::String::new() };
            let fields = format!("{:04}{:02}{:02}{:02}{:02}{:02}", c.year, c.month, c.day, c.hour, c.minute, c.second);
            let rfc = format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{frac}Z", c.year, c.month, c.day, c.hour, c.minute, c.second);
            assert_eq!(t.rfc3339().to_string(), rfc);
            assert_eq!(t.hl7().to_string(), format!("{fields}{frac}+0000"));
        }
    }

    #[test]
    fn epoch_and_known_instants() {
        assert_eq!(Timestamp(0).rfc3339().to_string(), "1970-01-01T00:00:00Z");
        // 2024-03-15T10:22:05Z = 1710498125 s (checked with `date -u -d @1710498125`).
        let t = Timestamp(1_710_498_125_000);
        assert_eq!(t.rfc3339().to_string(), "2024-03-15T10:22:05Z");
        assert_eq!(t.hl7().to_string(), "20240315102205+0000");
        assert_eq!(Timestamp(1_710_498_125_042).rfc3339().to_string(), "2024-03-15T10:22:05.042Z");
        assert_eq!(Timestamp(1_710_498_125_042).hl7().to_string(), "20240315102205.042+0000");
        assert_eq!(Timestamp(-1).rfc3339().to_string(), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn civil_round_trip_over_leap_years() {
        let mut t = Timestamp(
            CivilTime { year: 1999, month: 12, day: 31, hour: 0, minute: 0, second: 0, millisecond: 0 }.to_timestamp().unwrap().0,
        );
        for _ in 0..(366 * 6) {
            let c = t.to_civil();
            assert_eq!(c.to_timestamp().unwrap(), t);
            t.0 += MS_PER_DAY + 3_723_004;
        }
        let feb29 = CivilTime { year: 2024, month: 2, day: 29, hour: 12, minute: 0, second: 0, millisecond: 0 };
        assert!(feb29.validate().is_ok());
        assert!(CivilTime { year: 2023, ..feb29 }.validate().is_err());
        assert!(CivilTime { year: 2100, ..feb29 }.validate().is_err());
        assert!(CivilTime { year: 2000, ..feb29 }.validate().is_ok());
    }

    #[test]
    fn parses_rfc3339_with_offsets() {
        let t = Timestamp::parse_rfc3339("2024-03-15T10:22:05Z").unwrap();
        assert_eq!(t, Timestamp(1_710_498_125_000));
        assert_eq!(Timestamp::parse_rfc3339("2024-03-15T11:22:05.5+01:00").unwrap(), Timestamp(1_710_498_125_500));
        assert_eq!(Timestamp::parse_rfc3339("2024-03-15T05:22:05.123456-05:00").unwrap(), Timestamp(1_710_498_125_123));
        for bad in
            ["2024-03-15T10:22:05", "2024-13-15T10:22:05Z", "2024-03-15T10:22:05+1:00", "x024-03-15T10:22:05Z", "2024-03-15T10:22:05.Z"]
        {
            assert!(Timestamp::parse_rfc3339(bad).is_err(), "{bad}");
        }
    }
}
