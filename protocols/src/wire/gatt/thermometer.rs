//! Temperature Measurement (0x2A1C), Health Thermometer Service.
//!
//! ```text
//! org.bluetooth.characteristic.temperature_measurement:
//! +-------+------------------+----------------+------------+
//! | flags | value FLOAT (32) | [time stamp 7] | [type u8]  |
//! +-------+------------------+----------------+------------+
//! flags bit 0 units: 0 = Celsius, 1 = Fahrenheit; 1 time stamp; 2 temperature type; 3-7 reserved
//! type (org.bluetooth.characteristic.temperature_type, "correspond to ISO/IEEE 11073-10408"):
//!   1 armpit, 2 body (general), 3 ear (usually ear lobe), 4 finger, 5 gastro-intestinal tract,
//!   6 mouth, 7 rectum, 8 toe, 9 tympanum (ear drum); 0 and 10-255 reserved
//! ```
//! The value is a 32-bit FLOAT, not an SFLOAT (GP-6: 0xFF00016F = 36.7).

use crate::error::Result;

use super::date_time::DateTime;
use super::{check_len, flags_of, le32, opt, u8_at, Float, Writer};

pub const FLAG_FAHRENHEIT: u8 = 0x01;
pub const FLAG_TIMESTAMP: u8 = 0x02;
pub const FLAG_TYPE: u8 = 0x04;

/// Temperature Type names by value (index = value; 0 reserved).
pub const TEMPERATURE_TYPES: [&str; 10] =
    ["reserved", "armpit", "body (general)", "ear", "finger", "gastro-intestinal tract", "mouth", "rectum", "toe", "tympanum"];

/// The vendor codes `2A1C.type.<n>` of the defined types (and reserved 0), as statics so that
/// a measurement points at its code instead of allocating one.
#[cfg(feature = "alloc")]
static TEMPERATURE_VENDOR_CODES: [crate::observation::VendorCode; 10] = {
    use crate::observation::VendorCode as V;
    [
        V::new_static("gatt", "2A1C.type.0"),
        V::new_static("gatt", "2A1C.type.1"),
        V::new_static("gatt", "2A1C.type.2"),
        V::new_static("gatt", "2A1C.type.3"),
        V::new_static("gatt", "2A1C.type.4"),
        V::new_static("gatt", "2A1C.type.5"),
        V::new_static("gatt", "2A1C.type.6"),
        V::new_static("gatt", "2A1C.type.7"),
        V::new_static("gatt", "2A1C.type.8"),
        V::new_static("gatt", "2A1C.type.9"),
    ]
};

/// Checked view of a Temperature Measurement.
#[derive(Clone, Copy, Debug)]
pub struct TemperatureView<'a> {
    buf: &'a [u8],
}

impl<'a> TemperatureView<'a> {
    pub fn new_checked(buf: &'a [u8]) -> Result<TemperatureView<'a>> {
        let flags = flags_of(buf)?;
        check_len(buf, Self::required_len(flags))?;
        Ok(TemperatureView { buf })
    }

    pub const fn required_len(flags: u8) -> usize {
        let at = opt(5, flags & FLAG_TIMESTAMP != 0, 7);
        opt(at, flags & FLAG_TYPE != 0, 1)
    }

    pub fn flags(&self) -> u8 {
        u8_at(self.buf, 0)
    }

    pub fn extra_len(&self) -> usize {
        self.buf.len().saturating_sub(Self::required_len(self.flags()))
    }

    pub fn parse(&self) -> Result<Temperature> {
        let (b, f) = (self.buf, self.flags());
        let mut at = 5;
        let timestamp = if f & FLAG_TIMESTAMP != 0 {
            let t = DateTime::parse(b.get(at..).unwrap_or(&[]))?;
            at += 7;
            Some(t)
        } else {
            None
        };
        let temperature_type = (f & FLAG_TYPE != 0).then(|| u8_at(b, at));
        Ok(Temperature { flags: f, value: Float(le32(b, 1)), timestamp, temperature_type })
    }
}

/// A validated Temperature Measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Temperature {
    pub flags: u8,
    pub value: Float,
    pub timestamp: Option<DateTime>,
    /// Where it was measured (see [`TEMPERATURE_TYPES`]); reserved values are kept as sent.
    pub temperature_type: Option<u8>,
}

impl Temperature {
    pub fn parse(buf: &[u8]) -> Result<Temperature> {
        TemperatureView::new_checked(buf)?.parse()
    }

    pub fn is_fahrenheit(&self) -> bool {
        self.flags & FLAG_FAHRENHEIT != 0
    }

    pub fn emit(&self, out: &mut [u8]) -> Result<usize> {
        let mut f = self.flags & !(FLAG_TIMESTAMP | FLAG_TYPE);
        if self.timestamp.is_some() {
            f |= FLAG_TIMESTAMP;
        }
        if self.temperature_type.is_some() {
            f |= FLAG_TYPE;
        }
        let mut w = Writer::new(out);
        w.u8(f)?;
        w.u32(self.value.0)?;
        if let Some(t) = &self.timestamp {
            t.write(&mut w)?;
        }
        if let Some(t) = self.temperature_type {
            w.u8(t)?;
        }
        Ok(w.len())
    }

    /// MDC_TEMP_BODY in MDC_DIM_DEGC or MDC_DIM_FAHR as sent (never converted here), with the
    /// time stamp as local device time. The measurement site stays MDC_TEMP_BODY: 10408 has
    /// site-specific codes, but none is in medgw's verified table yet; the site is kept as the
    /// vendor code `gatt` / `2A1C.type.<n>` so a site can map it (e.g. 9 tympanum) through the
    /// nomenclature override without a new build.
    #[cfg(feature = "alloc")]
    pub fn measurements(&self, out: &mut alloc::vec::Vec<crate::observation::Measurement>) {
        self.for_each_measurement(&mut |m| out.push(m));
    }

    /// [`Self::measurements`], handing each measurement to `out` (no intermediate vector).
    #[cfg(feature = "alloc")]
    pub fn for_each_measurement<F: FnMut(crate::observation::Measurement) + ?Sized>(&self, out: &mut F) {
        use crate::mdc::{code, unit};
        let u = if self.is_fahrenheit() { unit::MDC_DIM_FAHR } else { unit::MDC_DIM_DEGC };
        let mut m = super::norm::float_measurement(code::MDC_TEMP_BODY, self.value.value(), u)
            .with_time(self.timestamp.and_then(|t| t.to_device_time()));
        if let Some(t) = self.temperature_type {
            m = match TEMPERATURE_VENDOR_CODES.get(t as usize) {
                Some(code) => m.with_static_vendor(code),
                None => m.with_vendor("gatt", alloc::format!("2A1C.type.{t}")),
            };
        }
        out(m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use alloc::string::ToString;

    #[test]
    fn gp6_celsius_float() {
        // GP-6: 00 6F 01 00 FF = FLOAT 0xFF00016F = 36.7 °C.
        let t = Temperature::parse(&[0x00, 0x6F, 0x01, 0x00, 0xFF]).unwrap();
        assert!(!t.is_fahrenheit());
        assert_eq!(t.value, Float(0xFF00_016F));
        assert_eq!(t.value.value().number().unwrap().to_string(), "36.7");
        assert_eq!((t.timestamp, t.temperature_type), (None, None));
    }

    #[test]
    fn type_without_time_stamp_follows_the_value() {
        // °F, type present, no time stamp: the type byte directly follows the FLOAT.
        let t = Temperature::parse(&[0x05, 0xD6, 0x03, 0x00, 0xFF, 0x09]).unwrap();
        assert!(t.is_fahrenheit());
        assert_eq!(t.temperature_type, Some(9));
        assert_eq!(t.value.value().number().unwrap().to_string(), "98.2");
        assert_eq!(Temperature::parse(&[0x06, 0, 0, 0, 0]), Err(Error::Truncated { needed: 13, got: 5 }));
    }
}
