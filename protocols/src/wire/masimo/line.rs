//! One Masimo ASCII 1 line: its timestamp, its `TAG=value` fields and their values.
//!
//! Fields are found by tag, never by column: the field set and widths differ between models
//! and firmware versions (protocols.md §2; `poxrad_discrete.h` of MD PnP; remkolems
//! `masimo-capture.py` sample lines), so positions mean nothing.

use crate::decimal::Decimal;
use crate::error::Error;
use crate::time::CivilTime;

/// Length of the `MM/DD/YY HH:MM:SS` timestamp.
pub const TIMESTAMP_LEN: usize = 17;

/// The tags medgw knows. Any other tag is ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tag {
    /// Serial number of the device.
    Sn,
    Spo2,
    /// Pulse rate, /min.
    Bpm,
    /// Perfusion index, %.
    Pi,
    /// Carboxyhemoglobin saturation, %.
    Spco,
    /// Methemoglobin saturation, %.
    Spmet,
    /// Desaturation index.
    Desat,
    /// Change of PI (signed).
    Pidelta,
    /// Pleth variability index.
    Pvi,
    /// Total hemoglobin.
    Sphb,
    /// Oxygen content.
    Spoc,
    /// Alarm status, 4 or 6 hex digits.
    Alarm,
    /// Exception status, 3, 6 or 7 hex digits.
    Exc,
}

impl Tag {
    pub const ALL: [Tag; 13] = [
        Tag::Sn,
        Tag::Spo2,
        Tag::Bpm,
        Tag::Pi,
        Tag::Spco,
        Tag::Spmet,
        Tag::Desat,
        Tag::Pidelta,
        Tag::Pvi,
        Tag::Sphb,
        Tag::Spoc,
        Tag::Alarm,
        Tag::Exc,
    ];

    /// The tag as written on the line.
    pub const fn name(self) -> &'static str {
        match self {
            Tag::Sn => "SN",
            Tag::Spo2 => "SPO2",
            Tag::Bpm => "BPM",
            Tag::Pi => "PI",
            Tag::Spco => "SPCO",
            Tag::Spmet => "SPMET",
            Tag::Desat => "DESAT",
            Tag::Pidelta => "PIDELTA",
            Tag::Pvi => "PVI",
            Tag::Sphb => "SPHB",
            Tag::Spoc => "SPOC",
            Tag::Alarm => "ALARM",
            Tag::Exc => "EXC",
        }
    }

    pub fn from_bytes(tag: &[u8]) -> Option<Tag> {
        Tag::ALL.into_iter().find(|t| t.name().as_bytes() == tag)
    }

    /// Whether the device writes a `%` after the value (`SPO2=097%`, `PI=03.45%`,
    /// `SPCO=--.-%`, `SPMET=--.-%` in the reference lines).
    pub const fn percent(self) -> bool {
        matches!(self, Tag::Spo2 | Tag::Pi | Tag::Spco | Tag::Spmet)
    }

    /// Whether the value is a number (or absent).
    pub const fn numeric(self) -> bool {
        !matches!(self, Tag::Sn | Tag::Alarm | Tag::Exc)
    }
}

/// A numeric field's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reading {
    Number(Decimal),
    /// The device filled the digits with `-`: no value.
    Absent,
}

/// Whether `b` starts with something shaped like `MM/DD/YY HH:MM:SS` (digits and separators in
/// place, followed by a space or the end), before checking the ranges.
pub fn looks_like_timestamp(b: &[u8]) -> bool {
    let Some(ts) = b.get(..TIMESTAMP_LEN) else { return false };
    let sep_ok = ts[2] == b'/' && ts[5] == b'/' && ts[8] == b' ' && ts[11] == b':' && ts[14] == b':';
    let digits_ok = [0, 1, 3, 4, 6, 7, 9, 10, 12, 13, 15, 16].iter().all(|&i| ts[i].is_ascii_digit());
    sep_ok && digits_ok && matches!(b.get(TIMESTAMP_LEN), None | Some(b' '))
}

/// Parses `MM/DD/YY HH:MM:SS`; the two-digit year is 20YY.
pub fn parse_timestamp(b: &[u8]) -> Result<CivilTime, Error> {
    if !looks_like_timestamp(b) {
        return Err(Error::BadText { field: "masimo timestamp" });
    }
    let two = |i: usize| -> u8 { b.get(i..i + 2).map_or(0, |d| (d[0] - b'0') * 10 + (d[1] - b'0')) };
    let t = CivilTime {
        year: 2000 + two(6) as u16,
        month: two(0),
        day: two(3),
        hour: two(9),
        minute: two(12),
        second: two(15),
        millisecond: 0,
    };
    t.validate()?;
    Ok(t)
}

/// Where the line's own record starts: the position of the last timestamp in it.
///
/// A well-formed line starts with its timestamp and holds no other (no field value contains
/// `/`). A later timestamp means the bytes before it are the remains of a line cut short or
/// garbage that ran into this line without a line end; decoding resumes at that timestamp.
/// `None` when the line holds no timestamp at all.
pub fn record_start(line: &[u8]) -> Option<usize> {
    let mut found = looks_like_timestamp(line).then_some(0);
    let mut from = 1;
    while let Some(rel) = line.get(from..).and_then(|rest| rest.iter().position(|&b| b == b'/')) {
        let slash = from + rel;
        if let Some(start) = slash.checked_sub(2) {
            if start >= 1 && line.get(start..).is_some_and(looks_like_timestamp) {
                found = Some(start);
            }
        }
        from = slash + 1;
    }
    found
}

/// A line parsed up to its fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Line<'a> {
    pub time: CivilTime,
    /// Everything after the timestamp.
    rest: &'a [u8],
}

impl<'a> Line<'a> {
    /// Parses the timestamp at the start of `line`.
    pub fn parse(line: &'a [u8]) -> Result<Line<'a>, Error> {
        let time = parse_timestamp(line)?;
        Ok(Line { time, rest: line.get(TIMESTAMP_LEN..).unwrap_or(&[]) })
    }

    /// The `TAG=value` fields in line order. A space-separated token without `=` is an error
    /// (the line is damaged).
    pub fn fields(&self) -> Fields<'a> {
        Fields { rest: self.rest }
    }
}

/// Iterator over the fields of a line.
#[derive(Clone, Debug)]
pub struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(&'a [u8], &'a [u8]), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let start = self.rest.iter().position(|&b| b != b' ')?;
        let rest = self.rest.get(start..)?;
        let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
        let (token, tail) = rest.split_at(end);
        self.rest = tail;
        Some(match token.iter().position(|&b| b == b'=') {
            Some(eq) => Ok((token.get(..eq).unwrap_or(&[]), token.get(eq + 1..).unwrap_or(&[]))),
            None => Err(Error::BadText { field: "masimo field without '='" }),
        })
    }
}

/// Parses a numeric value: optional sign, digits with an optional point, then `%` when the tag
/// writes one. Any `-` in the digit positions means "no value" (protocols.md §2: `SPO2=---%`,
/// `PI=--.--%`, `PIDELTA=+--`).
pub fn parse_number(tag: Tag, value: &[u8]) -> Result<Reading, Error> {
    let bad = Err(Error::BadText { field: tag.name() });
    let value = match (tag.percent(), value.split_last()) {
        (true, Some((b'%', body))) => body,
        _ => value,
    };
    let body = match value.split_first() {
        Some((b'+' | b'-', rest)) if !rest.is_empty() => rest,
        _ => value,
    };
    if body.is_empty() || !body.iter().all(|&b| b.is_ascii_digit() || b == b'.' || b == b'-') {
        return bad;
    }
    if body.contains(&b'-') {
        return Ok(Reading::Absent);
    }
    let Ok(text) = core::str::from_utf8(value) else { return bad };
    match text.parse::<Decimal>() {
        Ok(d) => Ok(Reading::Number(d)),
        Err(_) => bad,
    }
}

/// Parses a hex status field whose width must be one of `widths`.
pub fn parse_hex(tag: Tag, value: &[u8], widths: &[usize]) -> Result<u32, Error> {
    if !widths.contains(&value.len()) {
        return Err(Error::BadField { field: tag.name(), value: value.len() as u32 });
    }
    let mut v: u32 = 0;
    for &b in value {
        let d = (b as char).to_digit(16).ok_or(Error::BadText { field: tag.name() })?;
        v = v << 4 | d;
    }
    Ok(v)
}

/// ALARM is 4 hex digits, 6 on newer Radical-7 firmware (protocols.md §2).
pub const ALARM_WIDTHS: &[usize] = &[4, 6];
/// EXC is 3 hex digits (Radical-5), 6 (Radical-7, Rad-8) or 7 (protocols.md §2).
pub const EXC_WIDTHS: &[usize] = &[3, 6, 7];

#[cfg(test)]
mod tests {
    use super::*;

    /// MP-1 (protocols.md §2, Radical-7 style), without its CR LF.
    const MP1: &[u8] = b"03/15/24 10:22:05 SN=0000123456 SPO2=097% BPM=072 PI=03.45% SPCO=--.-% SPMET=--.-% DESAT=-- PIDELTA=+-- PVI=--- ALARM=0000 EXC=000800";

    #[test]
    fn timestamp_and_fields_of_mp1() {
        let l = Line::parse(MP1).unwrap();
        assert_eq!(l.time, CivilTime { year: 2024, month: 3, day: 15, hour: 10, minute: 22, second: 5, millisecond: 0 });
        let fields: Result<alloc::vec::Vec<_>, _> = l.fields().collect();
        let fields = fields.unwrap();
        assert_eq!(fields.len(), 11);
        assert_eq!(fields[0], (&b"SN"[..], &b"0000123456"[..]));
        assert_eq!(fields[10], (&b"EXC"[..], &b"000800"[..]));
    }

    #[test]
    fn numbers_keep_their_digits_and_dashes_are_absent() {
        let n = |tag, v: &[u8]| parse_number(tag, v).unwrap();
        assert_eq!(n(Tag::Spo2, b"097%"), Reading::Number(Decimal::from_int(97)));
        assert_eq!(n(Tag::Pi, b"03.45%"), Reading::Number(Decimal::new(345, -2).unwrap()));
        assert_eq!(n(Tag::Pi, b"10.00%"), Reading::Number(Decimal::new(1000, -2).unwrap()));
        assert_eq!(n(Tag::Pidelta, b"-05"), Reading::Number(Decimal::from_int(-5)));
        assert_eq!(n(Tag::Pidelta, b"+12"), Reading::Number(Decimal::from_int(12)));
        for absent in [&b"---%"[..], b"--.-%", b"+--", b"---", b"--", b"0-5"] {
            let tag = if absent.ends_with(b"%") { Tag::Spo2 } else { Tag::Pidelta };
            assert_eq!(n(tag, absent), Reading::Absent, "{}", core::str::from_utf8(absent).unwrap());
        }
        for bad in [&b""[..], b"%", b"9x7%", b"+", b"1.2.3"] {
            assert!(parse_number(Tag::Spo2, bad).is_err(), "{:?}", bad);
        }
        // A '%' where the tag writes none is damage, not a unit.
        assert!(parse_number(Tag::Bpm, b"072%").is_err());
    }

    #[test]
    fn status_widths() {
        assert_eq!(parse_hex(Tag::Exc, b"021", EXC_WIDTHS), Ok(0x21));
        assert_eq!(parse_hex(Tag::Exc, b"000800", EXC_WIDTHS), Ok(0x800));
        assert_eq!(parse_hex(Tag::Exc, b"0400020", EXC_WIDTHS), Ok(0x400020));
        assert_eq!(parse_hex(Tag::Alarm, b"0010", ALARM_WIDTHS), Ok(0x10));
        assert_eq!(parse_hex(Tag::Alarm, b"00a010", ALARM_WIDTHS), Ok(0xA010));
        assert!(matches!(parse_hex(Tag::Alarm, b"00010", ALARM_WIDTHS), Err(Error::BadField { value: 5, .. })));
        assert!(matches!(parse_hex(Tag::Exc, b"0G0", EXC_WIDTHS), Err(Error::BadText { .. })));
    }

    #[test]
    fn timestamps_are_validated() {
        assert!(parse_timestamp(b"13/15/24 10:22:05").is_err());
        assert!(parse_timestamp(b"02/30/24 10:22:05").is_err());
        assert!(parse_timestamp(b"02/29/24 23:59:59").is_ok());
        assert!(parse_timestamp(b"03/15/24 10:22:0").is_err());
        assert!(parse_timestamp(b"03/15/24 10:22:05X").is_err());
    }

    #[test]
    fn the_record_starts_at_the_last_timestamp() {
        assert_eq!(record_start(MP1), Some(0));
        assert_eq!(record_start(b"\x07\xffgarbage03/15/24 10:22:05 SPO2=097%"), Some(9));
        let merged = b"03/15/24 10:22:04 SN=0000123456 SPO2=09703/15/24 10:22:05 SPO2=097%";
        assert_eq!(record_start(merged), Some(40));
        assert_eq!(record_start(b"SPO2=097% BPM=072"), None);
        assert_eq!(record_start(b"1/2/3"), None);
    }
}
