//! The HL7 v2 data types the ADT view reads: CX, HD, PL, XPN and TS/DTM.

use alloc::string::String;

use super::message::{BadEscape, Field};
use crate::time::{CivilTime, DeviceTime, Timestamp};

/// HD, hierarchic designator: `namespace & universal id & universal id type`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct Hd {
    pub namespace: String,
    pub universal_id: String,
    pub universal_id_type: String,
}

impl Hd {
    /// Reads an HD that sits in a component (its parts are subcomponents).
    pub fn from_component(f: Field<'_>) -> Result<Hd, BadEscape> {
        Ok(Hd {
            namespace: f.subcomponent(1).text()?,
            universal_id: f.subcomponent(2).text()?,
            universal_id_type: f.subcomponent(3).text()?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.namespace.is_empty() && self.universal_id.is_empty()
    }

    /// The universal id (an OID) when given, else the namespace: the more global name.
    pub fn key(&self) -> &str {
        if self.universal_id.is_empty() {
            &self.namespace
        } else {
            &self.universal_id
        }
    }
}

/// CX, extended composite id: `id ^ check digit ^ scheme ^ assigning authority (HD) ^ type`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct Cx {
    pub id: String,
    pub assigning_authority: Hd,
    /// Table 0203: MR medical record number, PI patient internal id, VN visit number, ...
    pub id_type: String,
}

impl Cx {
    /// Reads one repetition of a CX field.
    pub fn from_repetition(f: Field<'_>) -> Result<Cx, BadEscape> {
        Ok(Cx { id: f.component(1).text()?, assigning_authority: Hd::from_component(f.component(4))?, id_type: f.component(5).text()? })
    }
}

/// PL, person location: `point of care ^ room ^ bed ^ facility (HD) ^ status ^ type ^ building ^ floor`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct Pl {
    pub point_of_care: String,
    pub room: String,
    pub bed: String,
    pub facility: Hd,
    pub building: String,
    pub floor: String,
}

impl Pl {
    pub fn from_field(f: Field<'_>) -> Result<Pl, BadEscape> {
        Ok(Pl {
            point_of_care: f.component(1).text()?,
            room: f.component(2).text()?,
            bed: f.component(3).text()?,
            facility: Hd::from_component(f.component(4))?,
            building: f.component(7).text()?,
            floor: f.component(8).text()?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.point_of_care.is_empty() && self.room.is_empty() && self.bed.is_empty() && self.facility.is_empty()
    }
}

impl core::fmt::Display for Pl {
    /// `facility/point of care/room/bed`, the form logs and `medgw adt status` use.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}/{}/{}/{}", self.facility.key(), self.point_of_care, self.room, self.bed)
    }
}

/// XPN, person name: `family ^ given ^ middle ^ suffix ^ prefix`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Xpn {
    pub family: String,
    pub given: String,
    pub middle: String,
    pub suffix: String,
    pub prefix: String,
}

impl Xpn {
    pub fn from_repetition(f: Field<'_>) -> Result<Xpn, BadEscape> {
        // The family name is FN in v2.3+, whose first subcomponent is the surname.
        Ok(Xpn {
            family: f.component(1).subcomponent(1).text()?,
            given: f.component(2).text()?,
            middle: f.component(3).text()?,
            suffix: f.component(4).text()?,
            prefix: f.component(5).text()?,
        })
    }
}

/// A TS/DTM value that is not a valid time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadTime;

/// Reads a TS/DTM value `YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]` (component 1 of a TS;
/// v2.3's degree-of-precision component is ignored). Without a zone the time is the sender's
/// local time: [`DeviceTime::Local`], for the caller to resolve with the feed's configured zone.
/// `Ok(None)` for an empty value.
pub fn parse_ts(raw: &str) -> Result<Option<DeviceTime>, BadTime> {
    if raw.is_empty() {
        return Ok(None);
    }
    let (body, zone) = match raw.find(['+', '-']) {
        Some(i) => (&raw[..i], Some(&raw[i..])),
        None => (raw, None),
    };
    let (digits, fraction) = match body.find('.') {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    if !matches!(digits.len(), 4 | 6 | 8 | 10 | 12 | 14) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BadTime);
    }
    if fraction.is_some() && digits.len() != 14 {
        return Err(BadTime);
    }
    let num = |r: core::ops::Range<usize>, default: u32| -> u32 {
        digits.get(r).map(|s| s.bytes().fold(0u32, |v, b| v * 10 + (b - b'0') as u32)).unwrap_or(default)
    };
    let millisecond = match fraction {
        None => 0,
        Some(f) if (1..=4).contains(&f.len()) && f.bytes().all(|b| b.is_ascii_digit()) => {
            let mut ms = 0u32;
            for (i, b) in f.bytes().take(3).enumerate() {
                ms += (b - b'0') as u32 * [100, 10, 1][i];
            }
            ms as u16
        }
        Some(_) => return Err(BadTime),
    };
    let civil = CivilTime {
        year: num(0..4, 0) as u16,
        month: num(4..6, 1) as u8,
        day: num(6..8, 1) as u8,
        hour: num(8..10, 0) as u8,
        minute: num(10..12, 0) as u8,
        second: num(12..14, 0) as u8,
        millisecond,
    };
    let t = civil.to_timestamp().map_err(|_| BadTime)?;
    match zone {
        None => Ok(Some(DeviceTime::Local(t))),
        Some(z) => {
            let b = z.as_bytes();
            if b.len() != 5 || !b[1..].iter().all(|c| c.is_ascii_digit()) {
                return Err(BadTime);
            }
            let hh = ((b[1] - b'0') * 10 + (b[2] - b'0')) as i64;
            let mm = ((b[3] - b'0') * 10 + (b[4] - b'0')) as i64;
            if hh > 14 || mm > 59 {
                return Err(BadTime);
            }
            let offset = (hh * 60 + mm) * 60_000 * if b[0] == b'-' { -1 } else { 1 };
            Ok(Some(DeviceTime::Utc(Timestamp(t.0 - offset))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hl7::message::Delimiters;

    #[test]
    fn reads_times_with_and_without_zone() {
        let t = Timestamp::parse_rfc3339("2026-11-25T10:15:00Z").unwrap();
        assert_eq!(parse_ts("20261125101500+0000"), Ok(Some(DeviceTime::Utc(t))));
        assert_eq!(parse_ts("20261125111500+0100"), Ok(Some(DeviceTime::Utc(t))));
        assert_eq!(parse_ts("20261125051500-0500"), Ok(Some(DeviceTime::Utc(t))));
        assert_eq!(parse_ts("20261125101500"), Ok(Some(DeviceTime::Local(t))));
        assert_eq!(parse_ts("202611251015"), Ok(Some(DeviceTime::Local(t))));
        assert_eq!(parse_ts("20261125101500.25+0000"), Ok(Some(DeviceTime::Utc(Timestamp(t.0 + 250)))));
        assert_eq!(parse_ts(""), Ok(None));
        for bad in ["2026112", "20261325", "20261125101500+00", "2026112510.5", "20261125101500+2500", "2026-11-25", "20261125101500.12345"]
        {
            assert_eq!(parse_ts(bad), Err(BadTime), "{bad}");
        }
    }

    #[test]
    fn reads_cx_pl_and_xpn() {
        let d = Delimiters::default();
        let cx = Cx::from_repetition(Field::new("MRN12345^^^HOSP&1.2.3.4.5&ISO^MR", d)).unwrap();
        assert_eq!(cx.id, "MRN12345");
        assert_eq!(cx.assigning_authority.namespace, "HOSP");
        assert_eq!(cx.assigning_authority.key(), "1.2.3.4.5");
        assert_eq!(cx.id_type, "MR");
        let pl = Pl::from_field(Field::new("4E^136^B^HOSP^^N^Main^3", d)).unwrap();
        assert_eq!((pl.point_of_care.as_str(), pl.room.as_str(), pl.bed.as_str()), ("4E", "136", "B"));
        assert_eq!(pl.facility.key(), "HOSP");
        assert_eq!(pl.building, "Main");
        assert_eq!(pl.to_string(), "HOSP/4E/136/B");
        let n = Xpn::from_repetition(Field::new("O\\T\\Brien&O'Brien^Pat^Q^Jr^Dr", d)).unwrap();
        assert_eq!((n.family.as_str(), n.given.as_str(), n.prefix.as_str()), ("O&Brien", "Pat", "Dr"));
    }
}
