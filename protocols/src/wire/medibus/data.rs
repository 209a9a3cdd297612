//! The payloads medgw reads: measured-data records and the device identification.
//!
//! ```text
//! measured data (response to 0x24, codepage 1): repeated 6-character records
//!   | code: 2 ASCII hex | value: 4 ASCII characters |
//!   e.g. "DC  72" = code 0xDC (heart rate), value 72
//!
//! device identification (response to 0x52), as VSCaptureDrgVent writes it:
//!   | device id: 4 chars | 'device name' | revision | ':' MEDIBUS version |
//!   e.g. "0161'VSCaptureDrgVent'01.03:06.00"
//! ```
//! Values are right-aligned ASCII numbers; whether the padding is blanks or zeros is
//! \[UNCONFIRMED\] (the Dräger pediatric-device MEDIBUS manual says an underscore in its format
//! column is sent as a space and a negative value has `-` in the first position), so all blanks
//! are removed and zeros are left to the number parser. Blank or dashed values mean "no value".

use crate::decimal::Decimal;
use crate::error::Error;
use crate::mdc::{code, unit, MdcCode};

/// Length of one measured-data record.
pub const RECORD_LEN: usize = 6;

/// A measured-data value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reading {
    Number(Decimal),
    /// Blank or dashes: the device has no value.
    Absent,
}

/// The records of a measured-data response, in order.
pub fn records(data: &[u8]) -> Result<Records<'_>, Error> {
    if data.len() % RECORD_LEN != 0 {
        return Err(Error::BadField { field: "medibus record length", value: data.len() as u32 });
    }
    Ok(Records { rest: data })
}

/// Iterator over `(code, raw value)` records; a code that is not two hex digits is an error.
#[derive(Clone, Debug)]
pub struct Records<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<(u8, &'a [u8]), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.len() < RECORD_LEN {
            return None;
        }
        let (rec, rest) = self.rest.split_at(RECORD_LEN);
        self.rest = rest;
        let hex = |d: u8| (d as char).to_digit(16);
        let code = match (rec.first().and_then(|&d| hex(d)), rec.get(1).and_then(|&d| hex(d))) {
            (Some(h), Some(l)) => (h << 4 | l) as u8,
            _ => return Some(Err(Error::BadText { field: "medibus data code" })),
        };
        Some(Ok((code, rec.get(2..).unwrap_or(&[]))))
    }
}

/// Parses a value: blanks removed; empty or only dashes (and points) is absent; otherwise an
/// optionally negative decimal number (at most one point), kept with its digits.
pub fn parse_value(raw: &[u8]) -> Result<Reading, Error> {
    let bad = Err(Error::BadText { field: "medibus value" });
    let mut mantissa: i64 = 0;
    let mut decimals: i8 = 0;
    let (mut negative, mut digits, mut point, mut dashes) = (false, 0, false, 0);
    for &b in raw {
        match b {
            b' ' => {}
            b'0'..=b'9' => {
                if digits >= 18 {
                    return bad;
                }
                mantissa = mantissa * 10 + (b - b'0') as i64;
                digits += 1;
                if point {
                    decimals += 1;
                }
            }
            b'.' if !point => point = true,
            b'-' if digits == 0 && !point && dashes == 0 && !negative => negative = true,
            b'-' | b'.' => dashes += 1,
            _ => return bad,
        }
    }
    if digits == 0 {
        // Blank, "-", "---", "--.-": no value.
        return Ok(Reading::Absent);
    }
    if dashes > 0 {
        return bad;
    }
    match Decimal::new(if negative { -mantissa } else { mantissa }, -decimals) {
        Some(d) => Ok(Reading::Number(d)),
        None => bad,
    }
}

/// A codepage-1 code medgw maps, with its MDC metric and the unit the device sends it in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeDef {
    pub code: u8,
    /// [`MdcCode::UNMAPPED`] where no MDC code is assigned.
    pub metric: MdcCode,
    pub unit: MdcCode,
    pub name: &'static str,
}

/// Codepage 1 codes (MEDIBUS.X CP1 table in VSCaptureDrgVent `Class2.cs`, protocols.md §4).
/// 0xD2/0xC8/0xCD are the invasive arterial pressures (MDC_PRESS_BLD_ART_ABP_*), not NIBP.
/// etCO2 in mmHg (0xE6) and kPa (0xE3) are one quantity, 151708 MDC_CONC_AWAY_CO2_ET (10101
/// via RTMMS; the code vendor PCD-01 feeds send with mmHg). 0xDB (etCO2 in %) stays unmapped with
/// its unit: LOINC 19891-1 is a partial pressure. The three are one reading in three units:
/// [`super::decoder::measurements`] publishes only one of them.
pub const CP1: &[CodeDef] = &[
    CodeDef { code: 0xDC, metric: code::MDC_ECG_HEART_RATE, unit: unit::MDC_DIM_BEAT_PER_MIN, name: "heart rate" },
    CodeDef { code: 0xE1, metric: code::MDC_PULS_OXIM_PULS_RATE, unit: unit::MDC_DIM_BEAT_PER_MIN, name: "pulse rate (oximeter)" },
    CodeDef { code: 0xEB, metric: code::MDC_PULS_OXIM_SAT_O2, unit: unit::MDC_DIM_PERCENT, name: "SpO2" },
    CodeDef { code: 0xE6, metric: code::MDC_CONC_AWAY_CO2_ET, unit: unit::MDC_DIM_MMHG, name: "etCO2 (mmHg)" },
    CodeDef { code: 0xE3, metric: code::MDC_CONC_AWAY_CO2_ET, unit: unit::MDC_DIM_KILO_PASCAL, name: "etCO2 (kPa)" },
    CodeDef { code: 0xDB, metric: MdcCode::UNMAPPED, unit: unit::MDC_DIM_PERCENT, name: "etCO2 (%)" },
    CodeDef { code: 0xD6, metric: code::MDC_RESP_RATE, unit: unit::MDC_DIM_RESP_PER_MIN, name: "respiratory rate" },
    CodeDef { code: 0xD5, metric: code::MDC_CO2_RESP_RATE, unit: unit::MDC_DIM_RESP_PER_MIN, name: "respiratory rate (CO2)" },
    CodeDef { code: 0xD2, metric: code::MDC_PRESS_BLD_ART_ABP_SYS, unit: unit::MDC_DIM_MMHG, name: "arterial pressure systolic" },
    CodeDef { code: 0xC8, metric: code::MDC_PRESS_BLD_ART_ABP_DIA, unit: unit::MDC_DIM_MMHG, name: "arterial pressure diastolic" },
    CodeDef { code: 0xCD, metric: code::MDC_PRESS_BLD_ART_ABP_MEAN, unit: unit::MDC_DIM_MMHG, name: "arterial pressure mean" },
];

/// Position + 1 in [`CP1`] of every code, 0 for codes not in the table.
static CP1_INDEX: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < CP1.len() {
        t[CP1[i].code as usize] = i as u8 + 1;
        i += 1;
    }
    t
};

/// The definition of a codepage-1 code; unknown codes are unmapped with an unknown unit.
pub fn lookup(code: u8) -> CodeDef {
    match CP1_INDEX[code as usize].checked_sub(1).and_then(|i| CP1.get(i as usize)) {
        Some(d) => *d,
        None => CodeDef { code, metric: MdcCode::UNMAPPED, unit: MdcCode::UNMAPPED, name: "unmapped" },
    }
}

/// `0x00` .. `0xFF` as bytes, for [`CODE_NAMES`].
static CODE_BYTES: [[u8; 4]; 256] = {
    let mut t = [[0u8; 4]; 256];
    let mut i = 0;
    while i < 256 {
        let [hi, lo] = super::frame::hex2(i as u8);
        t[i] = [b'0', b'x', hi, lo];
        i += 1;
    }
    t
};

/// The vendor-code text of every code, checked once at compile time.
static CODE_NAMES: [&str; 256] = {
    let mut t = [""; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = match core::str::from_utf8(&CODE_BYTES[i]) {
            Ok(s) => s,
            Err(_) => "",
        };
        i += 1;
    }
    t
};

/// The vendor code of a record, `0xNN` with upper-case hex.
pub fn code_name(code: u8) -> &'static str {
    CODE_NAMES[code as usize]
}

/// What the device says about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceId<'a> {
    /// The 4-character device id.
    pub id: &'a str,
    /// The name between single quotes.
    pub name: Option<&'a str>,
    /// The device's software revision.
    pub revision: Option<&'a str>,
    /// The MEDIBUS version after `:`.
    pub medibus_version: Option<&'a str>,
}

/// Parses a device-identification response. Only the 4-character id is required; the parts
/// after it are read when present.
pub fn parse_device_id(data: &[u8]) -> Result<DeviceId<'_>, Error> {
    let text = core::str::from_utf8(data).map_err(|_| Error::BadText { field: "medibus device id" })?;
    if !text.bytes().all(|b| (0x20..0x7F).contains(&b)) || text.len() < 4 {
        return Err(Error::BadText { field: "medibus device id" });
    }
    let (id, rest) = text.split_at(4);
    let mut d = DeviceId { id: id.trim(), name: None, revision: None, medibus_version: None };
    let rest = match rest.strip_prefix('\'').and_then(|r| r.split_once('\'')) {
        Some((name, after)) => {
            d.name = Some(name.trim()).filter(|n| !n.is_empty());
            after
        }
        None => rest,
    };
    let (rev, ver) = match rest.split_once(':') {
        Some((r, v)) => (r, Some(v)),
        None => (rest, None),
    };
    d.revision = Some(rev.trim()).filter(|r| !r.is_empty());
    d.medibus_version = ver.map(str::trim).filter(|v| !v.is_empty());
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn dp2_records() {
        // DP-2 payload.
        let recs: Vec<(u8, &[u8])> = records(b"DC  72E1  71EB  97").unwrap().map(Result::unwrap).collect();
        assert_eq!(recs, [(0xDC, &b"  72"[..]), (0xE1, b"  71"), (0xEB, b"  97")]);
        assert_eq!(parse_value(b"  72"), Ok(Reading::Number(Decimal::from_int(72))));
        assert!(matches!(records(b"DC  72E1"), Err(Error::BadField { value: 8, .. })));
        assert!(records(b"XY  72").unwrap().next().unwrap().is_err());
    }

    #[test]
    fn values_blank_dashed_padded_negative() {
        assert_eq!(parse_value(b"    "), Ok(Reading::Absent));
        assert_eq!(parse_value(b" ---"), Ok(Reading::Absent));
        assert_eq!(parse_value(b"--.-"), Ok(Reading::Absent));
        assert_eq!(parse_value(b"0072"), Ok(Reading::Number(Decimal::from_int(72))));
        assert_eq!(parse_value(b" 5.3"), Ok(Reading::Number(Decimal::new(53, -1).unwrap())));
        assert_eq!(parse_value(b"- 12"), Ok(Reading::Number(Decimal::from_int(-12))));
        assert_eq!(parse_value(b"  *7"), Err(Error::BadText { field: "medibus value" }));
        assert_eq!(parse_value(b"1-2 "), Err(Error::BadText { field: "medibus value" }));
        assert_eq!(parse_value(b"1.2."), Err(Error::BadText { field: "medibus value" }));
        assert_eq!(parse_value(b"-.50"), Ok(Reading::Number(Decimal::new(-50, -2).unwrap())));
        assert_eq!(parse_value(b"  -0"), Ok(Reading::Number(Decimal::from_int(0))));
        assert!(parse_value(&[b'9'; 40]).is_err(), "no overflow on a long value");
        for (code, d) in CP1.iter().map(|d| (d.code, d)) {
            assert_eq!(lookup(code), *d);
        }
    }

    #[test]
    fn code_table() {
        assert_eq!(lookup(0xDC).metric, code::MDC_ECG_HEART_RATE);
        assert_eq!((lookup(0xE3).metric, lookup(0xE3).unit), (code::MDC_CONC_AWAY_CO2_ET, unit::MDC_DIM_KILO_PASCAL));
        assert_eq!((lookup(0xE6).metric, lookup(0xE6).unit), (code::MDC_CONC_AWAY_CO2_ET, unit::MDC_DIM_MMHG));
        assert_eq!(lookup(0xCD).metric, code::MDC_PRESS_BLD_ART_ABP_MEAN);
        assert!(lookup(0x05).metric.is_unmapped());
        assert_eq!(code_name(0x05), "0x05");
        assert_eq!(code_name(0xDB), "0xDB");
    }

    #[test]
    fn device_id() {
        let d = parse_device_id(b"0161'VSCaptureDrgVent'01.03:06.00").unwrap();
        assert_eq!(d, DeviceId { id: "0161", name: Some("VSCaptureDrgVent"), revision: Some("01.03"), medibus_version: Some("06.00") });
        let d = parse_device_id(b"8208").unwrap();
        assert_eq!((d.id, d.name, d.revision), ("8208", None, None));
        assert!(parse_device_id(b"01").is_err());
        assert!(parse_device_id(b"0161\x02").is_err());
    }
}
