//! Blood Pressure Measurement (0x2A35), Blood Pressure Service.
//!
//! ```text
//! org.bluetooth.characteristic.blood_pressure_measurement:
//! +-------+--------+--------+--------+---------------+-----------+-----------+--------------+
//! | flags | SYS SF | DIA SF | MAP SF | [time stamp 7]| [PR SFLOAT]| [user u8] | [status u16] |
//! +-------+--------+--------+--------+---------------+-----------+-----------+--------------+
//! flags bit 0 units: 0 = mmHg, 1 = kPa; 1 time stamp; 2 pulse rate; 3 user ID;
//!       bit 4 measurement status; 5-7 reserved
//! status bit 0 body movement during measurement; 1 cuff too loose; 2 irregular pulse;
//!        bits 3-4 pulse rate range: 0 within, 1 above upper limit, 2 below lower limit,
//!        3 reserved; bit 5 improper measurement position; 6-15 reserved
//! user ID 255 = unknown user; 0-254 defined by the service
//! ```

use crate::error::Result;
use crate::quality::Flags;

use super::date_time::DateTime;
use super::{check_len, flags_of, le16, opt, u8_at, Sfloat, Writer};

pub const FLAG_KPA: u8 = 0x01;
pub const FLAG_TIMESTAMP: u8 = 0x02;
pub const FLAG_PULSE_RATE: u8 = 0x04;
pub const FLAG_USER_ID: u8 = 0x08;
pub const FLAG_STATUS: u8 = 0x10;

/// User ID 0xFF: "unknown user".
pub const UNKNOWN_USER: u8 = 0xFF;

/// Blood Pressure Measurement Status (16 bit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct BpStatus(pub u16);

/// Pulse rate range detection (status bits 3–4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PulseRateRange {
    Within,
    AboveUpperLimit,
    BelowLowerLimit,
    Reserved,
}

impl BpStatus {
    pub const BODY_MOVEMENT: u16 = 1 << 0;
    pub const CUFF_TOO_LOOSE: u16 = 1 << 1;
    pub const IRREGULAR_PULSE: u16 = 1 << 2;
    pub const PULSE_RATE_RANGE_MASK: u16 = 0b11 << 3;
    pub const IMPROPER_POSITION: u16 = 1 << 5;

    pub fn has(self, bit: u16) -> bool {
        self.0 & bit != 0
    }

    pub fn pulse_rate_range(self) -> PulseRateRange {
        match (self.0 & Self::PULSE_RATE_RANGE_MASK) >> 3 {
            0 => PulseRateRange::Within,
            1 => PulseRateRange::AboveUpperLimit,
            2 => PulseRateRange::BelowLowerLimit,
            _ => PulseRateRange::Reserved,
        }
    }

    /// Flags for the pressures (and the pulse rate, which was measured in the same inflation):
    /// body movement → ARTIFACT; cuff too loose, improper measurement position → QUESTIONABLE
    /// (the device says the cuff or posture could make the reading wrong); irregular pulse →
    /// ALARM: the monitor annunciates it (the "IHB" symbol) as a physiological finding that
    /// may indicate arrhythmia, not as a fault of the reading, and medgw has no narrower flag.
    pub fn flags(self) -> Flags {
        let mut f = Flags::NONE;
        if self.has(Self::BODY_MOVEMENT) {
            f |= Flags::ARTIFACT;
        }
        if self.has(Self::CUFF_TOO_LOOSE) || self.has(Self::IMPROPER_POSITION) {
            f |= Flags::QUESTIONABLE;
        }
        if self.has(Self::IRREGULAR_PULSE) {
            f |= Flags::ALARM;
        }
        f
    }

    /// Extra flags for the pulse rate: above / below the device's limit → ALARM. The XML does
    /// not say whether the limits are alarm limits or the measuring range [UNCONFIRMED]; ALARM
    /// keeps the number visible and marked, which is right for either reading.
    pub fn pulse_rate_flags(self) -> Flags {
        match self.pulse_rate_range() {
            PulseRateRange::AboveUpperLimit | PulseRateRange::BelowLowerLimit => Flags::ALARM,
            _ => Flags::NONE,
        }
    }
}

/// Checked view of a Blood Pressure Measurement.
#[derive(Clone, Copy, Debug)]
pub struct BloodPressureView<'a> {
    buf: &'a [u8],
}

impl<'a> BloodPressureView<'a> {
    pub fn new_checked(buf: &'a [u8]) -> Result<BloodPressureView<'a>> {
        let flags = flags_of(buf)?;
        check_len(buf, Self::required_len(flags))?;
        Ok(BloodPressureView { buf })
    }

    pub const fn required_len(flags: u8) -> usize {
        let at = opt(7, flags & FLAG_TIMESTAMP != 0, 7);
        let at = opt(at, flags & FLAG_PULSE_RATE != 0, 2);
        let at = opt(at, flags & FLAG_USER_ID != 0, 1);
        opt(at, flags & FLAG_STATUS != 0, 2)
    }

    pub fn flags(&self) -> u8 {
        u8_at(self.buf, 0)
    }

    pub fn extra_len(&self) -> usize {
        self.buf.len().saturating_sub(Self::required_len(self.flags()))
    }

    pub fn parse(&self) -> Result<BloodPressure> {
        let (b, f) = (self.buf, self.flags());
        let mut at = 7;
        let timestamp = if f & FLAG_TIMESTAMP != 0 {
            let t = DateTime::parse(b.get(at..).unwrap_or(&[]))?;
            at += 7;
            Some(t)
        } else {
            None
        };
        let pulse_rate = (f & FLAG_PULSE_RATE != 0).then(|| Sfloat(le16(b, at)));
        at = opt(at, pulse_rate.is_some(), 2);
        let user_id = (f & FLAG_USER_ID != 0).then(|| u8_at(b, at));
        at = opt(at, user_id.is_some(), 1);
        let status = (f & FLAG_STATUS != 0).then(|| BpStatus(le16(b, at)));
        Ok(BloodPressure {
            flags: f,
            systolic: Sfloat(le16(b, 1)),
            diastolic: Sfloat(le16(b, 3)),
            mean: Sfloat(le16(b, 5)),
            timestamp,
            pulse_rate,
            user_id,
            status,
        })
    }
}

/// A validated Blood Pressure Measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BloodPressure {
    /// The flags byte as sent (unit and reserved bits kept for `emit`).
    pub flags: u8,
    pub systolic: Sfloat,
    pub diastolic: Sfloat,
    /// Mean arterial pressure.
    pub mean: Sfloat,
    pub timestamp: Option<DateTime>,
    pub pulse_rate: Option<Sfloat>,
    /// Which of the device's users was measured (255 unknown). medgw binds patients by
    /// configuration only, so this is not used to pick a patient.
    pub user_id: Option<u8>,
    pub status: Option<BpStatus>,
}

impl BloodPressure {
    pub fn parse(buf: &[u8]) -> Result<BloodPressure> {
        BloodPressureView::new_checked(buf)?.parse()
    }

    pub fn is_kpa(&self) -> bool {
        self.flags & FLAG_KPA != 0
    }

    pub fn emit(&self, out: &mut [u8]) -> Result<usize> {
        let mut f = self.flags & !(FLAG_TIMESTAMP | FLAG_PULSE_RATE | FLAG_USER_ID | FLAG_STATUS);
        for (present, bit) in [
            (self.timestamp.is_some(), FLAG_TIMESTAMP),
            (self.pulse_rate.is_some(), FLAG_PULSE_RATE),
            (self.user_id.is_some(), FLAG_USER_ID),
            (self.status.is_some(), FLAG_STATUS),
        ] {
            if present {
                f |= bit;
            }
        }
        let mut w = Writer::new(out);
        w.u8(f)?;
        for v in [self.systolic, self.diastolic, self.mean] {
            w.u16(v.0)?;
        }
        if let Some(t) = &self.timestamp {
            t.write(&mut w)?;
        }
        if let Some(p) = self.pulse_rate {
            w.u16(p.0)?;
        }
        if let Some(u) = self.user_id {
            w.u8(u)?;
        }
        if let Some(s) = self.status {
            w.u16(s.0)?;
        }
        Ok(w.len())
    }

    /// One MDC_PRESS_BLD_NONINV measurement whose value is the compound SYS / DIA / MEAN in the
    /// cuff's unit (MDC_DIM_MMHG or MDC_DIM_KILO_PASCAL, never converted here), and, when sent,
    /// the pulse rate as MDC_PULS_RATE_NON_INV in bpm. Each member keeps its own float special
    /// (a monitor that does not compute the MAP sends NaN there). Both carry the time stamp as
    /// local device time and the status flags.
    #[cfg(feature = "alloc")]
    pub fn measurements(&self, out: &mut alloc::vec::Vec<crate::observation::Measurement>) {
        self.for_each_measurement(&mut |m| out.push(m));
    }

    /// [`Self::measurements`], handing each measurement to `out` (no intermediate vector).
    #[cfg(feature = "alloc")]
    pub fn for_each_measurement<F: FnMut(crate::observation::Measurement) + ?Sized>(&self, out: &mut F) {
        use crate::decimal::Decimal;
        use crate::mdc::{code, unit};
        use crate::observation::{Component, Components, Measurement, Value};

        let time = self.timestamp.and_then(|t| t.to_device_time());
        let status = self.status.unwrap_or_default();
        let u = if self.is_kpa() { unit::MDC_DIM_KILO_PASCAL } else { unit::MDC_DIM_MMHG };
        let components = Components::from([
            Component { metric: code::MDC_PRESS_BLD_NONINV_SYS, value: super::norm::scalar(self.systolic.value()) },
            Component { metric: code::MDC_PRESS_BLD_NONINV_DIA, value: super::norm::scalar(self.diastolic.value()) },
            Component { metric: code::MDC_PRESS_BLD_NONINV_MEAN, value: super::norm::scalar(self.mean.value()) },
        ]);
        out(Measurement {
            value: Value::Compound(components),
            ..Measurement::numeric(code::MDC_PRESS_BLD_NONINV, Decimal::from_int(0), u)
        }
        .with_flags(status.flags())
        .with_time(time));
        if let Some(p) = self.pulse_rate {
            out(super::norm::float_measurement(code::MDC_PULS_RATE_NON_INV, p.value(), unit::MDC_DIM_BEAT_PER_MIN)
                .with_flags(status.flags() | status.pulse_rate_flags())
                .with_time(time));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn gp5_mmhg_with_pulse_rate() {
        // GP-5: 04 78 00 50 00 5D 00 48 00 = mmHg; sys 120, dia 80, MAP 93; PR 72.
        let bp = BloodPressure::parse(&[0x04, 0x78, 0x00, 0x50, 0x00, 0x5D, 0x00, 0x48, 0x00]).unwrap();
        assert!(!bp.is_kpa());
        assert_eq!((bp.systolic, bp.diastolic, bp.mean), (Sfloat(120), Sfloat(80), Sfloat(93)));
        assert_eq!(bp.pulse_rate, Some(Sfloat(72)));
        assert_eq!((bp.timestamp, bp.user_id, bp.status), (None, None, None));
    }

    #[test]
    fn status_and_field_order() {
        // kPa, time stamp, PR, user 2, status: body movement + irregular pulse + PR above.
        let b = [0x1F, 0xA0, 0xF0, 0x6B, 0xF0, 0x7C, 0xF0, 0xE8, 0x07, 3, 15, 8, 30, 0, 0x48, 0x00, 0x02, 0x0D, 0x00];
        let bp = BloodPressure::parse(&b).unwrap();
        assert!(bp.is_kpa());
        assert_eq!(bp.user_id, Some(2));
        let st = bp.status.unwrap();
        assert_eq!(st.pulse_rate_range(), PulseRateRange::AboveUpperLimit);
        assert_eq!(st.flags(), Flags::ARTIFACT | Flags::ALARM);
        let mut out = [0u8; 32];
        let n = bp.emit(&mut out).unwrap();
        assert_eq!(&out[..n], &b[..]);
        assert_eq!(BloodPressure::parse(&b[..6]), Err(Error::Truncated { needed: 19, got: 6 }));
        assert_eq!(BpStatus(BpStatus::CUFF_TOO_LOOSE).flags(), Flags::QUESTIONABLE);
        assert_eq!(BpStatus(BpStatus::IMPROPER_POSITION).flags(), Flags::QUESTIONABLE);
    }
}
