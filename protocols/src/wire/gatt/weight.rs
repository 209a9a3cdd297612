//! Weight Measurement (0x2A9D), Weight Scale Service.
//!
//! ```text
//! org.bluetooth.characteristic.weight_measurement:
//! +-------+--------------+----------------+-----------+-----------+--------------+
//! | flags | weight u16   | [time stamp 7] | [user u8] | [BMI u16] [height u16] |
//! +-------+--------------+----------------+-----------+-----------+--------------+
//! flags bit 0 units: 0 = SI (kg, m), 1 = imperial (lb, in); 1 time stamp; 2 user ID;
//!       bit 3 BMI and height (both); 4-7 reserved
//! weight: SI resolution 0.005 kg (exponent -3, multiplier 5); imperial 0.01 lb
//! BMI: resolution 0.1 (unitless, i.e. kg/m²) in both unit systems
//! height: SI 0.001 m; imperial 0.1 in
//! weight 0xFFFF: "Measurement Unsuccessful" (Weight Scale Service 1.0; then only the time
//! stamp and user ID may follow)
//! ```
//! The weight is an integer count, not an SFLOAT (GP-7: 0x3714 = 14100 × 0.005 = 70.5 kg).

use crate::decimal::Decimal;
use crate::error::Result;

use super::date_time::DateTime;
use super::{check_len, flags_of, le16, opt, u8_at, Writer};

pub const FLAG_IMPERIAL: u8 = 0x01;
pub const FLAG_TIMESTAMP: u8 = 0x02;
pub const FLAG_USER_ID: u8 = 0x04;
pub const FLAG_BMI_HEIGHT: u8 = 0x08;

/// Weight 0xFFFF: the scale could not measure.
pub const UNSUCCESSFUL: u16 = 0xFFFF;

/// The weight in its unit, exactly: SI raw × 0.005 kg is kept with three decimals (the
/// resolution's own digits: 14100 → 70.500 kg), imperial raw × 0.01 lb with two.
pub fn weight_value(raw: u16, imperial: bool) -> Decimal {
    let d = if imperial { Decimal::new(raw as i64, -2) } else { Decimal::new(raw as i64 * 5, -3) };
    d.unwrap_or(Decimal::from_int(0))
}

/// BMI, raw × 0.1 kg/m².
pub fn bmi_value(raw: u16) -> Decimal {
    Decimal::new(raw as i64, -1).unwrap_or(Decimal::from_int(0))
}

/// Height in cm (SI: raw × 0.001 m = raw × 0.1 cm, the decimal point moved, nothing rounded)
/// or in inches (imperial: raw × 0.1 in).
pub fn height_value(raw: u16) -> Decimal {
    Decimal::new(raw as i64, -1).unwrap_or(Decimal::from_int(0))
}

/// Checked view of a Weight Measurement.
#[derive(Clone, Copy, Debug)]
pub struct WeightView<'a> {
    buf: &'a [u8],
}

impl<'a> WeightView<'a> {
    pub fn new_checked(buf: &'a [u8]) -> Result<WeightView<'a>> {
        let flags = flags_of(buf)?;
        check_len(buf, Self::required_len(flags))?;
        Ok(WeightView { buf })
    }

    pub const fn required_len(flags: u8) -> usize {
        let at = opt(3, flags & FLAG_TIMESTAMP != 0, 7);
        let at = opt(at, flags & FLAG_USER_ID != 0, 1);
        opt(at, flags & FLAG_BMI_HEIGHT != 0, 4)
    }

    pub fn flags(&self) -> u8 {
        u8_at(self.buf, 0)
    }

    pub fn extra_len(&self) -> usize {
        self.buf.len().saturating_sub(Self::required_len(self.flags()))
    }

    pub fn parse(&self) -> Result<Weight> {
        let (b, f) = (self.buf, self.flags());
        let mut at = 3;
        let timestamp = if f & FLAG_TIMESTAMP != 0 {
            let t = DateTime::parse(b.get(at..).unwrap_or(&[]))?;
            at += 7;
            Some(t)
        } else {
            None
        };
        let user_id = (f & FLAG_USER_ID != 0).then(|| u8_at(b, at));
        at = opt(at, user_id.is_some(), 1);
        let bmi_height = (f & FLAG_BMI_HEIGHT != 0).then(|| (le16(b, at), le16(b, at + 2)));
        Ok(Weight { flags: f, weight: le16(b, 1), timestamp, user_id, bmi_height })
    }
}

/// A validated Weight Measurement, raw counts as sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Weight {
    pub flags: u8,
    /// 0.005 kg or 0.01 lb units; [`UNSUCCESSFUL`] when the scale could not measure.
    pub weight: u16,
    pub timestamp: Option<DateTime>,
    /// The scale's user (255 unknown); not used to pick a patient (configuration does that).
    pub user_id: Option<u8>,
    /// (BMI in 0.1, height in 0.001 m or 0.1 in).
    pub bmi_height: Option<(u16, u16)>,
}

impl Weight {
    pub fn parse(buf: &[u8]) -> Result<Weight> {
        WeightView::new_checked(buf)?.parse()
    }

    pub fn is_imperial(&self) -> bool {
        self.flags & FLAG_IMPERIAL != 0
    }

    pub fn emit(&self, out: &mut [u8]) -> Result<usize> {
        let mut f = self.flags & !(FLAG_TIMESTAMP | FLAG_USER_ID | FLAG_BMI_HEIGHT);
        for (present, bit) in [
            (self.timestamp.is_some(), FLAG_TIMESTAMP),
            (self.user_id.is_some(), FLAG_USER_ID),
            (self.bmi_height.is_some(), FLAG_BMI_HEIGHT),
        ] {
            if present {
                f |= bit;
            }
        }
        let mut w = Writer::new(out);
        w.u8(f)?;
        w.u16(self.weight)?;
        if let Some(t) = &self.timestamp {
            t.write(&mut w)?;
        }
        if let Some(u) = self.user_id {
            w.u8(u)?;
        }
        if let Some((bmi, h)) = self.bmi_height {
            w.u16(bmi)?;
            w.u16(h)?;
        }
        Ok(w.len())
    }

    /// MDC_MASS_BODY_ACTUAL in kg or lb (absent `Unavailable` for 0xFFFF), and with BMI and
    /// height: MDC_RATIO_MASS_BODY_LEN_SQ in kg/m² and MDC_LEN_BODY_ACTUAL in cm (SI, converted
    /// from m by moving the decimal point) or in (imperial). All carry the time stamp.
    #[cfg(feature = "alloc")]
    pub fn measurements(&self, out: &mut alloc::vec::Vec<crate::observation::Measurement>) {
        self.for_each_measurement(&mut |m| out.push(m));
    }

    /// [`Self::measurements`], handing each measurement to `out` (no intermediate vector).
    #[cfg(feature = "alloc")]
    pub fn for_each_measurement<F: FnMut(crate::observation::Measurement) + ?Sized>(&self, out: &mut F) {
        use crate::mdc::{code, unit};
        use crate::observation::Measurement;
        use crate::quality::AbsentReason;
        let time = self.timestamp.and_then(|t| t.to_device_time());
        let imperial = self.is_imperial();
        let wu = if imperial { unit::MDC_DIM_LB } else { unit::MDC_DIM_KILO_G };
        let w = if self.weight == UNSUCCESSFUL {
            Measurement::absent(code::MDC_MASS_BODY_ACTUAL, AbsentReason::Unavailable, wu)
        } else {
            Measurement::numeric(code::MDC_MASS_BODY_ACTUAL, weight_value(self.weight, imperial), wu)
        };
        out(w.with_time(time));
        if let Some((bmi, h)) = self.bmi_height {
            out(Measurement::numeric(code::MDC_RATIO_MASS_BODY_LEN_SQ, bmi_value(bmi), unit::MDC_DIM_KG_PER_M_SQ).with_time(time));
            let hu = if imperial { unit::MDC_DIM_INCH } else { unit::MDC_DIM_CENTI_M };
            out(Measurement::numeric(code::MDC_LEN_BODY_ACTUAL, height_value(h), hu).with_time(time));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use alloc::string::ToString;

    #[test]
    fn gp7_si_weight() {
        // GP-7: 00 14 37 = 0x3714 = 14100 × 0.005 = 70.5 kg.
        let w = Weight::parse(&[0x00, 0x14, 0x37]).unwrap();
        assert_eq!(w.weight, 14100);
        assert!(!w.is_imperial());
        let v = weight_value(w.weight, false);
        assert!(v.value_eq(&"70.5".parse().unwrap()));
        assert_eq!(v.to_string(), "70.500");
    }

    #[test]
    fn imperial_with_bmi_and_height() {
        // Imperial 155.43 lb, user 1, BMI 22.9, height 69.1 in.
        let b = [0x0D, 0xB7, 0x3C, 0x01, 0xE5, 0x00, 0xB3, 0x02];
        let w = Weight::parse(&b).unwrap();
        assert_eq!(weight_value(w.weight, true).to_string(), "155.43");
        assert_eq!(w.user_id, Some(1));
        assert_eq!(w.bmi_height, Some((229, 691)));
        assert_eq!(bmi_value(229).to_string(), "22.9");
        assert_eq!(height_value(691).to_string(), "69.1");
        // SI height 1755 mm-units = 1.755 m = 175.5 cm.
        assert_eq!(height_value(1755).to_string(), "175.5");
        assert_eq!(Weight::parse(&b[..7]), Err(Error::Truncated { needed: 8, got: 7 }));
    }
}
