//! Date Time (0x2A08): the 7-byte time stamp inside the BP, thermometer, weight, PLX and
//! glucose values.
//!
//! ```text
//! org.bluetooth.characteristic.date_time (Bluetooth SIG XML), little-endian:
//! +------+------+-------+-----+-------+---------+---------+
//! | year (u16)  | month | day | hours | minutes | seconds |
//! +------+------+-------+-----+-------+---------+---------+
//!   0..1          2       3     4       5         6
//! year 1582..=9999 or 0 "not known"; month 1..=12 or 0 "not known"; day 1..=31 or 0
//! "not known"; hours 0..=23; minutes 0..=59; seconds 0..=59.
//! ```
//! A wall-clock time without a zone: it becomes a [`DeviceTime::Local`] that the gateway resolves
//! with the device's configured zone (decisions.md, "Time"). When the year, month or day is
//! "not known", the device has no usable time and the value carries none.

use crate::error::{Error, Result};
use crate::time::{CivilTime, DeviceTime, Timestamp};

use super::{le16, u8_at, Writer};

/// A Date Time as sent, range-checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DateTime {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hours: u8,
    pub minutes: u8,
    pub seconds: u8,
}

impl DateTime {
    pub const LEN: usize = 7;

    /// Reads the first 7 bytes of `b`. Out-of-range fields are `BadField`; year, month and
    /// day 0 are allowed (they mean "not known", see [`DateTime::to_device_time`]).
    pub fn parse(b: &[u8]) -> Result<DateTime> {
        if b.len() < Self::LEN {
            return Err(Error::Truncated { needed: Self::LEN, got: b.len() });
        }
        let dt = DateTime {
            year: le16(b, 0),
            month: u8_at(b, 2),
            day: u8_at(b, 3),
            hours: u8_at(b, 4),
            minutes: u8_at(b, 5),
            seconds: u8_at(b, 6),
        };
        dt.validate()?;
        Ok(dt)
    }

    fn validate(&self) -> Result<()> {
        let bad = |field, value: u32| Err(Error::BadField { field, value });
        if self.year != 0 && !(1582..=9999).contains(&self.year) {
            return bad("date time year", self.year as u32);
        }
        if self.month > 12 {
            return bad("date time month", self.month as u32);
        }
        if self.day > 31 {
            return bad("date time day", self.day as u32);
        }
        if self.hours > 23 {
            return bad("date time hours", self.hours as u32);
        }
        if self.minutes > 59 {
            return bad("date time minutes", self.minutes as u32);
        }
        if self.seconds > 59 {
            return bad("date time seconds", self.seconds as u32);
        }
        // A known date must exist in its month (31 April is malformed, not "not known").
        if let Some(c) = self.known_civil() {
            c.validate().map_err(|_| Error::BadField { field: "date time day", value: self.day as u32 })?;
        }
        Ok(())
    }

    /// Whether the device knows the date (year, month and day all non-zero).
    pub fn is_known(&self) -> bool {
        self.year != 0 && self.month != 0 && self.day != 0
    }

    fn known_civil(&self) -> Option<CivilTime> {
        self.is_known().then_some(CivilTime {
            year: self.year,
            month: self.month,
            day: self.day,
            hour: self.hours,
            minute: self.minutes,
            second: self.seconds,
            millisecond: 0,
        })
    }

    /// The wall-clock instant, read as if UTC; `None` when the date is not known.
    pub fn to_timestamp(&self) -> Option<Timestamp> {
        self.known_civil().and_then(|c| c.to_timestamp().ok())
    }

    /// The device time this stamp gives: local wall-clock time, or none when not known.
    pub fn to_device_time(&self) -> Option<DeviceTime> {
        self.to_timestamp().map(DeviceTime::Local)
    }

    /// The stamp a device whose wall clock reads `t` (as if UTC) writes, seconds truncated.
    pub fn from_timestamp(t: Timestamp) -> DateTime {
        let c = t.to_civil();
        DateTime { year: c.year, month: c.month, day: c.day, hours: c.hour, minutes: c.minute, seconds: c.second }
    }

    pub fn emit(&self, out: &mut [u8]) -> Result<usize> {
        let mut w = Writer::new(out);
        self.write(&mut w)?;
        Ok(w.len())
    }

    pub(crate) fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.u16(self.year)?;
        w.bytes(&[self.month, self.day, self.hours, self.minutes, self.seconds])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gp8_base_time() {
        // GP-8 base time bytes: E8 07 03 0F 08 1E 00 = 2024-03-15 08:30:00.
        let dt = DateTime::parse(&[0xE8, 0x07, 0x03, 0x0F, 0x08, 0x1E, 0x00]).unwrap();
        assert_eq!(dt, DateTime { year: 2024, month: 3, day: 15, hours: 8, minutes: 30, seconds: 0 });
        let expect = CivilTime { year: 2024, month: 3, day: 15, hour: 8, minute: 30, second: 0, millisecond: 0 };
        assert_eq!(dt.to_device_time(), Some(DeviceTime::Local(expect.to_timestamp().unwrap())));
        let mut out = [0u8; 7];
        assert_eq!(dt.emit(&mut out), Ok(7));
        assert_eq!(out, [0xE8, 0x07, 0x03, 0x0F, 0x08, 0x1E, 0x00]);
    }

    #[test]
    fn zero_year_month_or_day_means_no_time() {
        for b in [[0, 0, 3, 15, 8, 30, 0], [0xE8, 0x07, 0, 15, 8, 30, 0], [0xE8, 0x07, 3, 0, 8, 30, 0], [0; 7]] {
            let dt = DateTime::parse(&b).unwrap();
            assert!(!dt.is_known());
            assert_eq!(dt.to_device_time(), None, "{b:02X?}");
        }
    }

    #[test]
    fn out_of_range_fields_are_bad_fields() {
        let ok = [0xE8u8, 0x07, 3, 15, 8, 30, 0];
        for (i, v, field) in [
            (2, 13, "date time month"),
            (3, 32, "date time day"),
            (4, 24, "date time hours"),
            (5, 60, "date time minutes"),
            (6, 60, "date time seconds"),
        ] {
            let mut b = ok;
            b[i] = v;
            assert_eq!(DateTime::parse(&b), Err(Error::BadField { field, value: v as u32 }));
        }
        // 31 April does not exist; year 1581 is before the Gregorian minimum of the XML.
        assert!(DateTime::parse(&[0xE8, 0x07, 4, 31, 0, 0, 0]).is_err());
        assert!(DateTime::parse(&[0x2D, 0x06, 1, 1, 0, 0, 0]).is_err());
        assert_eq!(DateTime::parse(&ok[..6]), Err(Error::Truncated { needed: 7, got: 6 }));
    }
}
