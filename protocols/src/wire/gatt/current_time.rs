//! Current Time (0x2A2B), Current Time Service: what the gateway writes to set a device's
//! clock (devices that set "device clock not set" or send a time fault need it).
//!
//! ```text
//! org.bluetooth.characteristic.current_time = Exact Time 256 + Adjust Reason:
//! +-----------------+-------------+-------------+---------------+
//! | Date Time (7)   | day of week | fractions256| adjust reason |
//! +-----------------+-------------+-------------+---------------+
//!   0..6              7             8             9
//! day of week (0x2A09): 1 Monday .. 7 Sunday, 0 not known
//! fractions256: 1/256 s
//! adjust reason bits: 0 manual time update, 1 external reference time update,
//!   2 change of time zone, 3 change of DST; 4-7 reserved
//! ```
//! The time is the device's wall-clock (local) time: the caller converts the gateway's UTC
//! clock with the device's configured zone before encoding.

use crate::error::Result;
use crate::time::{CivilTime, Timestamp};

use super::date_time::DateTime;
use super::{check_len, u8_at, Writer};

pub const ADJUST_MANUAL: u8 = 0x01;
pub const ADJUST_EXTERNAL_REFERENCE: u8 = 0x02;
pub const ADJUST_TIME_ZONE: u8 = 0x04;
pub const ADJUST_DST: u8 = 0x08;

/// A Current Time value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CurrentTime {
    pub date_time: DateTime,
    pub day_of_week: u8,
    pub fractions256: u8,
    pub adjust_reason: u8,
}

impl CurrentTime {
    pub const LEN: usize = 10;

    /// The value for wall-clock time `local` (a civil time read as if UTC, as [`Timestamp`]
    /// stores local times): the weekday is computed, milliseconds become 1/256 s (truncated).
    pub fn from_local(local: Timestamp, adjust_reason: u8) -> CurrentTime {
        let c: CivilTime = local.to_civil();
        let days = local.0.div_euclid(86_400_000);
        // 1970-01-01 was a Thursday (4); Monday = 1 .. Sunday = 7.
        let day_of_week = ((days + 3).rem_euclid(7) + 1) as u8;
        CurrentTime {
            date_time: DateTime::from_timestamp(local),
            day_of_week,
            fractions256: ((c.millisecond as u32 * 256) / 1000) as u8,
            adjust_reason,
        }
    }

    pub fn emit(&self, out: &mut [u8]) -> Result<usize> {
        let mut w = Writer::new(out);
        self.date_time.write(&mut w)?;
        w.bytes(&[self.day_of_week, self.fractions256, self.adjust_reason])?;
        Ok(w.len())
    }

    pub fn parse(b: &[u8]) -> Result<CurrentTime> {
        check_len(b, Self::LEN)?;
        let date_time = DateTime::parse(b)?;
        let day_of_week = u8_at(b, 7);
        if day_of_week > 7 {
            return Err(crate::error::Error::BadField { field: "day of week", value: day_of_week as u32 });
        }
        Ok(CurrentTime { date_time, day_of_week, fractions256: u8_at(b, 8), adjust_reason: u8_at(b, 9) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_a_known_friday() {
        // 2024-03-15 was a Friday (5). 08:30:00.500 → fractions256 = 128.
        let t = CivilTime { year: 2024, month: 3, day: 15, hour: 8, minute: 30, second: 0, millisecond: 500 }.to_timestamp().unwrap();
        let ct = CurrentTime::from_local(t, ADJUST_EXTERNAL_REFERENCE);
        let mut out = [0u8; 10];
        assert_eq!(ct.emit(&mut out), Ok(10));
        assert_eq!(out, [0xE8, 0x07, 0x03, 0x0F, 0x08, 0x1E, 0x00, 0x05, 0x80, 0x02]);
        assert_eq!(CurrentTime::parse(&out), Ok(ct));
        // 1970-01-04 was a Sunday (7), 1970-01-05 a Monday (1).
        assert_eq!(CurrentTime::from_local(Timestamp(3 * 86_400_000), 0).day_of_week, 7);
        assert_eq!(CurrentTime::from_local(Timestamp(4 * 86_400_000), 0).day_of_week, 1);
    }
}
