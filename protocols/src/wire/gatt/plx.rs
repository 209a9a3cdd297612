//! Pulse Oximeter Service: PLX Spot-Check Measurement (0x2A5E) and PLX Continuous Measurement
//! (0x2A5F).
//!
//! ```text
//! org.bluetooth.characteristic.plx_spot_check_measurement:
//! +-------+------------+----------+---------------+------------------+--------------------+----------+
//! | flags | SpO2 SFLOAT| PR SFLOAT| [timestamp 7] | [meas. status 16]| [dev+sensor st. 24]| [PAI SF] |
//! +-------+------------+----------+---------------+------------------+--------------------+----------+
//! flags bit 0 timestamp, 1 measurement status, 2 device & sensor status, 3 PAI,
//!       bit 4 device clock is not set, 5-7 reserved
//!
//! org.bluetooth.characteristic.plx_continuous_measurement:
//! +-------+--------------------+-------------------+-------------------+------------+-------------+-------+
//! | flags | SpO2PR-Normal 2×SF | [SpO2PR-Fast 2×SF]| [SpO2PR-Slow 2×SF]| [status 16]| [dev+sen 24]| [PAI] |
//! +-------+--------------------+-------------------+-------------------+------------+-------------+-------+
//! flags bit 0 Fast, 1 Slow, 2 measurement status, 3 device & sensor status, 4 PAI, 5-7 reserved
//! ```
//! SpO2 and PAI are percent, PR beats per minute. Measurement Status bits (both XMLs): 5 ongoing,
//! 6 early estimated data, 7 validated, 8 fully qualified, 9 from measurement storage,
//! 10 demonstration, 11 testing, 12 calibration ongoing, 13 measurement unavailable,
//! 14 questionable, 15 invalid; 0–4 reserved. Device and Sensor Status bits: 0 extended display
//! update ongoing, 1 equipment malfunction, 2 signal processing irregularity, 3 inadequate
//! signal, 4 poor signal, 5 low perfusion, 6 erratic signal, 7 nonpulsatile signal,
//! 8 questionable pulse, 9 signal analysis ongoing, 10 sensor interference, 11 sensor
//! unconnected to user, 12 unknown sensor connected, 13 sensor displaced, 14 sensor
//! malfunctioning, 15 sensor disconnected; 16–23 reserved.

use crate::error::Result;
use crate::quality::{Flags, Status};

use super::date_time::DateTime;
use super::{check_len, flags_of, le16, le24, opt, u8_at, Sfloat, Writer};

/// PLX Measurement Status (16 bit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MeasurementStatus(pub u16);

impl MeasurementStatus {
    pub const ONGOING: u16 = 1 << 5;
    pub const EARLY_ESTIMATE: u16 = 1 << 6;
    pub const VALIDATED: u16 = 1 << 7;
    pub const FULLY_QUALIFIED: u16 = 1 << 8;
    pub const FROM_STORAGE: u16 = 1 << 9;
    pub const DEMO: u16 = 1 << 10;
    pub const TESTING: u16 = 1 << 11;
    pub const CALIBRATION: u16 = 1 << 12;
    pub const UNAVAILABLE: u16 = 1 << 13;
    pub const QUESTIONABLE: u16 = 1 << 14;
    pub const INVALID: u16 = 1 << 15;

    pub fn has(self, bit: u16) -> bool {
        self.0 & bit != 0
    }

    /// The quality flags the status bits state. "Ongoing" and "early estimate" both say the
    /// value may still change: EARLY_ESTIMATE (and a preliminary status, see [`Self::status`]).
    /// Validated / fully qualified add nothing; reserved bits 0–4 are ignored. "Unavailable"
    /// and "invalid" also remove the number (see the `measurements` functions).
    pub fn flags(self) -> Flags {
        let mut f = Flags::NONE;
        for (bit, flag) in [
            (Self::ONGOING, Flags::EARLY_ESTIMATE),
            (Self::EARLY_ESTIMATE, Flags::EARLY_ESTIMATE),
            (Self::FROM_STORAGE, Flags::FROM_STORAGE),
            (Self::DEMO, Flags::DEMO),
            (Self::TESTING, Flags::TEST),
            (Self::CALIBRATION, Flags::CALIBRATING),
            (Self::QUESTIONABLE, Flags::QUESTIONABLE),
            (Self::INVALID, Flags::INVALID),
        ] {
            if self.has(bit) {
                f |= flag;
            }
        }
        f
    }

    pub fn status(self) -> Status {
        if self.has(Self::ONGOING) || self.has(Self::EARLY_ESTIMATE) {
            Status::Preliminary
        } else {
            Status::Final
        }
    }
}

/// PLX Device and Sensor Status (24 bit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DeviceSensorStatus(pub u32);

impl DeviceSensorStatus {
    pub const EXTENDED_DISPLAY_UPDATE: u32 = 1 << 0;
    pub const EQUIPMENT_MALFUNCTION: u32 = 1 << 1;
    pub const SIGNAL_PROCESSING_IRREGULARITY: u32 = 1 << 2;
    pub const INADEQUATE_SIGNAL: u32 = 1 << 3;
    pub const POOR_SIGNAL: u32 = 1 << 4;
    pub const LOW_PERFUSION: u32 = 1 << 5;
    pub const ERRATIC_SIGNAL: u32 = 1 << 6;
    pub const NONPULSATILE_SIGNAL: u32 = 1 << 7;
    pub const QUESTIONABLE_PULSE: u32 = 1 << 8;
    pub const SIGNAL_ANALYSIS_ONGOING: u32 = 1 << 9;
    pub const SENSOR_INTERFERENCE: u32 = 1 << 10;
    pub const SENSOR_UNCONNECTED: u32 = 1 << 11;
    pub const UNKNOWN_SENSOR: u32 = 1 << 12;
    pub const SENSOR_DISPLACED: u32 = 1 << 13;
    pub const SENSOR_MALFUNCTIONING: u32 = 1 << 14;
    pub const SENSOR_DISCONNECTED: u32 = 1 << 15;

    /// The quality flags the bits state:
    /// - sensor unconnected to user, displaced, disconnected → SENSOR_OFF;
    /// - equipment or sensor malfunctioning → INVALID (flag only: the number, if any, stays);
    /// - inadequate / poor signal, extended display update (the device holds its display
    ///   longer because it cannot update it normally) → LOW_SIGNAL_QUALITY;
    /// - erratic signal, sensor interference → ARTIFACT;
    /// - signal processing irregularity, questionable pulse, unknown sensor → QUESTIONABLE;
    /// - low perfusion → LOW_PERFUSION; nonpulsatile signal → OUT_OF_TRACK (no pulse found);
    /// - signal analysis ongoing → PULSE_SEARCH.
    ///
    /// Reserved bits 16–23 are ignored.
    pub fn flags(self) -> Flags {
        let mut f = Flags::NONE;
        for (bit, flag) in [
            (Self::EXTENDED_DISPLAY_UPDATE, Flags::LOW_SIGNAL_QUALITY),
            (Self::EQUIPMENT_MALFUNCTION, Flags::INVALID),
            (Self::SIGNAL_PROCESSING_IRREGULARITY, Flags::QUESTIONABLE),
            (Self::INADEQUATE_SIGNAL, Flags::LOW_SIGNAL_QUALITY),
            (Self::POOR_SIGNAL, Flags::LOW_SIGNAL_QUALITY),
            (Self::LOW_PERFUSION, Flags::LOW_PERFUSION),
            (Self::ERRATIC_SIGNAL, Flags::ARTIFACT),
            (Self::NONPULSATILE_SIGNAL, Flags::OUT_OF_TRACK),
            (Self::QUESTIONABLE_PULSE, Flags::QUESTIONABLE),
            (Self::SIGNAL_ANALYSIS_ONGOING, Flags::PULSE_SEARCH),
            (Self::SENSOR_INTERFERENCE, Flags::ARTIFACT),
            (Self::SENSOR_UNCONNECTED, Flags::SENSOR_OFF),
            (Self::UNKNOWN_SENSOR, Flags::QUESTIONABLE),
            (Self::SENSOR_DISPLACED, Flags::SENSOR_OFF),
            (Self::SENSOR_MALFUNCTIONING, Flags::INVALID),
            (Self::SENSOR_DISCONNECTED, Flags::SENSOR_OFF),
        ] {
            if self.0 & bit != 0 {
                f |= flag;
            }
        }
        f
    }
}

/// One SpO2 / pulse-rate pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpO2Pr {
    pub spo2: Sfloat,
    pub pr: Sfloat,
}

impl SpO2Pr {
    fn read(b: &[u8], at: usize) -> SpO2Pr {
        SpO2Pr { spo2: Sfloat(le16(b, at)), pr: Sfloat(le16(b, at + 2)) }
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.u16(self.spo2.0)?;
        w.u16(self.pr.0)
    }
}

pub mod spot {
    pub const TIMESTAMP: u8 = 0x01;
    pub const MEASUREMENT_STATUS: u8 = 0x02;
    pub const DEVICE_SENSOR_STATUS: u8 = 0x04;
    pub const PAI: u8 = 0x08;
    pub const CLOCK_NOT_SET: u8 = 0x10;
}

pub mod continuous {
    pub const FAST: u8 = 0x01;
    pub const SLOW: u8 = 0x02;
    pub const MEASUREMENT_STATUS: u8 = 0x04;
    pub const DEVICE_SENSOR_STATUS: u8 = 0x08;
    pub const PAI: u8 = 0x10;
}

/// Checked view of a PLX Spot-Check Measurement.
#[derive(Clone, Copy, Debug)]
pub struct SpotCheckView<'a> {
    buf: &'a [u8],
}

impl<'a> SpotCheckView<'a> {
    pub fn new_checked(buf: &'a [u8]) -> Result<SpotCheckView<'a>> {
        let flags = flags_of(buf)?;
        check_len(buf, Self::required_len(flags))?;
        Ok(SpotCheckView { buf })
    }

    pub const fn required_len(flags: u8) -> usize {
        let at = opt(5, flags & spot::TIMESTAMP != 0, 7);
        let at = opt(at, flags & spot::MEASUREMENT_STATUS != 0, 2);
        let at = opt(at, flags & spot::DEVICE_SENSOR_STATUS != 0, 3);
        opt(at, flags & spot::PAI != 0, 2)
    }

    pub fn flags(&self) -> u8 {
        u8_at(self.buf, 0)
    }

    pub fn extra_len(&self) -> usize {
        self.buf.len().saturating_sub(Self::required_len(self.flags()))
    }

    /// Parses the fields; only the time stamp can still fail (`BadField`).
    pub fn parse(&self) -> Result<SpotCheck> {
        let (b, f) = (self.buf, self.flags());
        let mut at = 5;
        let timestamp = if f & spot::TIMESTAMP != 0 {
            let t = DateTime::parse(b.get(at..).unwrap_or(&[]))?;
            at += 7;
            Some(t)
        } else {
            None
        };
        let status = (f & spot::MEASUREMENT_STATUS != 0).then(|| MeasurementStatus(le16(b, at)));
        at = opt(at, status.is_some(), 2);
        let device_status = (f & spot::DEVICE_SENSOR_STATUS != 0).then(|| DeviceSensorStatus(le24(b, at)));
        at = opt(at, device_status.is_some(), 3);
        let pai = (f & spot::PAI != 0).then(|| Sfloat(le16(b, at)));
        Ok(SpotCheck { flags: f, reading: SpO2Pr::read(b, 1), timestamp, status, device_status, pai })
    }
}

/// A validated PLX Spot-Check Measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpotCheck {
    /// The flags byte as sent; the presence bits agree with the fields below.
    pub flags: u8,
    pub reading: SpO2Pr,
    pub timestamp: Option<DateTime>,
    pub status: Option<MeasurementStatus>,
    pub device_status: Option<DeviceSensorStatus>,
    pub pai: Option<Sfloat>,
}

impl SpotCheck {
    pub fn parse(buf: &[u8]) -> Result<SpotCheck> {
        SpotCheckView::new_checked(buf)?.parse()
    }

    pub fn clock_not_set(&self) -> bool {
        self.flags & spot::CLOCK_NOT_SET != 0
    }

    /// Writes the value; presence bits follow the fields, the clock and reserved bits are kept.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize> {
        let mut f = self.flags & !(spot::TIMESTAMP | spot::MEASUREMENT_STATUS | spot::DEVICE_SENSOR_STATUS | spot::PAI);
        for (present, bit) in [
            (self.timestamp.is_some(), spot::TIMESTAMP),
            (self.status.is_some(), spot::MEASUREMENT_STATUS),
            (self.device_status.is_some(), spot::DEVICE_SENSOR_STATUS),
            (self.pai.is_some(), spot::PAI),
        ] {
            if present {
                f |= bit;
            }
        }
        let mut w = Writer::new(out);
        w.u8(f)?;
        self.reading.write(&mut w)?;
        if let Some(t) = &self.timestamp {
            t.write(&mut w)?;
        }
        if let Some(s) = self.status {
            w.u16(s.0)?;
        }
        if let Some(d) = self.device_status {
            w.u24(d.0)?;
        }
        if let Some(p) = self.pai {
            w.u16(p.0)?;
        }
        Ok(w.len())
    }

    /// SpO2 (MDC_PULS_OXIM_SAT_O2, %), pulse rate (MDC_PULS_OXIM_PULS_RATE, bpm) and, when
    /// sent, PAI (MDC_PULS_OXIM_PERF_REL, %), all with the time stamp as local device time and
    /// the status flags; "device clock not set" adds CLOCK_NOT_SET.
    #[cfg(feature = "alloc")]
    pub fn measurements(&self, out: &mut alloc::vec::Vec<crate::observation::Measurement>) {
        self.for_each_measurement(&mut |m| out.push(m));
    }

    /// [`Self::measurements`], handing each measurement to `out` (no intermediate vector).
    #[cfg(feature = "alloc")]
    pub fn for_each_measurement<F: FnMut(crate::observation::Measurement) + ?Sized>(&self, out: &mut F) {
        let time = self.timestamp.and_then(|t| t.to_device_time());
        let extra = if self.clock_not_set() { Flags::CLOCK_NOT_SET } else { Flags::NONE };
        let ctx = Ctx::new(self.status, self.device_status, time, extra);
        ctx.push(out, crate::mdc::code::MDC_PULS_OXIM_SAT_O2, None, self.reading.spo2, crate::mdc::unit::MDC_DIM_PERCENT);
        ctx.push(out, crate::mdc::code::MDC_PULS_OXIM_PULS_RATE, None, self.reading.pr, crate::mdc::unit::MDC_DIM_BEAT_PER_MIN);
        if let Some(p) = self.pai {
            ctx.push(out, crate::mdc::code::MDC_PULS_OXIM_PERF_REL, None, p, crate::mdc::unit::MDC_DIM_PERCENT);
        }
    }
}

/// Checked view of a PLX Continuous Measurement.
#[derive(Clone, Copy, Debug)]
pub struct ContinuousView<'a> {
    buf: &'a [u8],
}

impl<'a> ContinuousView<'a> {
    pub fn new_checked(buf: &'a [u8]) -> Result<ContinuousView<'a>> {
        let flags = flags_of(buf)?;
        check_len(buf, Self::required_len(flags))?;
        Ok(ContinuousView { buf })
    }

    pub const fn required_len(flags: u8) -> usize {
        let at = opt(5, flags & continuous::FAST != 0, 4);
        let at = opt(at, flags & continuous::SLOW != 0, 4);
        let at = opt(at, flags & continuous::MEASUREMENT_STATUS != 0, 2);
        let at = opt(at, flags & continuous::DEVICE_SENSOR_STATUS != 0, 3);
        opt(at, flags & continuous::PAI != 0, 2)
    }

    pub fn flags(&self) -> u8 {
        u8_at(self.buf, 0)
    }

    pub fn extra_len(&self) -> usize {
        self.buf.len().saturating_sub(Self::required_len(self.flags()))
    }

    pub fn parse(&self) -> Continuous {
        let (b, f) = (self.buf, self.flags());
        let mut at = 5;
        let fast = (f & continuous::FAST != 0).then(|| SpO2Pr::read(b, at));
        at = opt(at, fast.is_some(), 4);
        let slow = (f & continuous::SLOW != 0).then(|| SpO2Pr::read(b, at));
        at = opt(at, slow.is_some(), 4);
        let status = (f & continuous::MEASUREMENT_STATUS != 0).then(|| MeasurementStatus(le16(b, at)));
        at = opt(at, status.is_some(), 2);
        let device_status = (f & continuous::DEVICE_SENSOR_STATUS != 0).then(|| DeviceSensorStatus(le24(b, at)));
        at = opt(at, device_status.is_some(), 3);
        let pai = (f & continuous::PAI != 0).then(|| Sfloat(le16(b, at)));
        Continuous { flags: f, normal: SpO2Pr::read(b, 1), fast, slow, status, device_status, pai }
    }
}

/// A validated PLX Continuous Measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Continuous {
    pub flags: u8,
    pub normal: SpO2Pr,
    pub fast: Option<SpO2Pr>,
    pub slow: Option<SpO2Pr>,
    pub status: Option<MeasurementStatus>,
    pub device_status: Option<DeviceSensorStatus>,
    pub pai: Option<Sfloat>,
}

impl Continuous {
    pub fn parse(buf: &[u8]) -> Result<Continuous> {
        Ok(ContinuousView::new_checked(buf)?.parse())
    }

    pub fn emit(&self, out: &mut [u8]) -> Result<usize> {
        use continuous::*;
        let mut f = self.flags & !(FAST | SLOW | MEASUREMENT_STATUS | DEVICE_SENSOR_STATUS | PAI);
        for (present, bit) in [
            (self.fast.is_some(), FAST),
            (self.slow.is_some(), SLOW),
            (self.status.is_some(), MEASUREMENT_STATUS),
            (self.device_status.is_some(), DEVICE_SENSOR_STATUS),
            (self.pai.is_some(), PAI),
        ] {
            if present {
                f |= bit;
            }
        }
        let mut w = Writer::new(out);
        w.u8(f)?;
        self.normal.write(&mut w)?;
        for p in [self.fast, self.slow].into_iter().flatten() {
            p.write(&mut w)?;
        }
        if let Some(s) = self.status {
            w.u16(s.0)?;
        }
        if let Some(d) = self.device_status {
            w.u24(d.0)?;
        }
        if let Some(p) = self.pai {
            w.u16(p.0)?;
        }
        Ok(w.len())
    }

    /// SpO2PR-Normal as MDC_PULS_OXIM_SAT_O2 / MDC_PULS_OXIM_PULS_RATE, PAI as
    /// MDC_PULS_OXIM_PERF_REL. The Fast and Slow pairs have no MDC codes of their own: 10404
    /// describes them as the same metrics with a different averaging modality
    /// (MDC_MODALITY_FAST / _SLOW attribute), which a `Measurement` cannot carry. They are kept
    /// unmapped with vendor codes `gatt` / `2A5F.spo2-fast`, `2A5F.pr-fast`, `2A5F.spo2-slow`,
    /// `2A5F.pr-slow`, so a site can map them, and so they do not share the Normal values'
    /// observation ids. Continuous values carry no time stamp.
    #[cfg(feature = "alloc")]
    pub fn measurements(&self, out: &mut alloc::vec::Vec<crate::observation::Measurement>) {
        self.for_each_measurement(&mut |m| out.push(m));
    }

    /// [`Self::measurements`], handing each measurement to `out` (no intermediate vector).
    #[cfg(feature = "alloc")]
    pub fn for_each_measurement<F: FnMut(crate::observation::Measurement) + ?Sized>(&self, out: &mut F) {
        use crate::mdc::{code, unit, MdcCode};
        let ctx = Ctx::new(self.status, self.device_status, None, Flags::NONE);
        ctx.push(out, code::MDC_PULS_OXIM_SAT_O2, None, self.normal.spo2, unit::MDC_DIM_PERCENT);
        ctx.push(out, code::MDC_PULS_OXIM_PULS_RATE, None, self.normal.pr, unit::MDC_DIM_BEAT_PER_MIN);
        for (pair, spo2, pr) in [(self.fast, &SPO2_FAST, &PR_FAST), (self.slow, &SPO2_SLOW, &PR_SLOW)] {
            if let Some(p) = pair {
                ctx.push(out, MdcCode::UNMAPPED, Some(spo2), p.spo2, unit::MDC_DIM_PERCENT);
                ctx.push(out, MdcCode::UNMAPPED, Some(pr), p.pr, unit::MDC_DIM_BEAT_PER_MIN);
            }
        }
        if let Some(p) = self.pai {
            ctx.push(out, code::MDC_PULS_OXIM_PERF_REL, None, p, unit::MDC_DIM_PERCENT);
        }
    }
}

/// The vendor codes of the Fast and Slow pairs (see [`Continuous::measurements`]).
#[cfg(feature = "alloc")]
static SPO2_FAST: crate::observation::VendorCode = crate::observation::VendorCode::new_static("gatt", "2A5F.spo2-fast");
#[cfg(feature = "alloc")]
static PR_FAST: crate::observation::VendorCode = crate::observation::VendorCode::new_static("gatt", "2A5F.pr-fast");
#[cfg(feature = "alloc")]
static SPO2_SLOW: crate::observation::VendorCode = crate::observation::VendorCode::new_static("gatt", "2A5F.spo2-slow");
#[cfg(feature = "alloc")]
static PR_SLOW: crate::observation::VendorCode = crate::observation::VendorCode::new_static("gatt", "2A5F.pr-slow");

/// What every value of one PLX characteristic shares, worked out once per characteristic
/// value rather than once per measurement (a continuous value gives up to seven).
#[cfg(feature = "alloc")]
struct Ctx {
    /// The status bits' flags, the device and sensor status bits' flags and the caller's.
    flags: Flags,
    status: Status,
    /// What replaces every number: status bit 13 or 15 (see [`Ctx::push`]).
    absent: Option<crate::quality::AbsentReason>,
    time: Option<crate::time::DeviceTime>,
}

#[cfg(feature = "alloc")]
impl Ctx {
    fn new(
        status: Option<MeasurementStatus>,
        device_status: Option<DeviceSensorStatus>,
        time: Option<crate::time::DeviceTime>,
        extra: Flags,
    ) -> Ctx {
        use crate::quality::AbsentReason;
        let st = status.unwrap_or_default();
        let absent = if st.has(MeasurementStatus::UNAVAILABLE) {
            Some(AbsentReason::Unavailable)
        } else if st.has(MeasurementStatus::INVALID) {
            Some(AbsentReason::Error)
        } else {
            None
        };
        Ctx { flags: st.flags() | device_status.unwrap_or_default().flags() | extra, status: st.status(), absent, time }
    }

    /// One measurement. Precedence for "no number": a float special keeps its own reason; else
    /// status bit 13 "measurement unavailable" gives `Unavailable`; else bit 15 "invalid" gives
    /// `Error` (the device says the number must not be used, so it is not published as one;
    /// the INVALID flag says why).
    fn push<F: FnMut(crate::observation::Measurement) + ?Sized>(
        &self,
        out: &mut F,
        metric: crate::mdc::MdcCode,
        vendor: Option<&'static crate::observation::VendorCode>,
        v: Sfloat,
        unit: crate::mdc::MdcCode,
    ) {
        use crate::observation::{Measurement, Value, VendorRef};
        let (value, flags) = match (v.value().to_result(), self.absent) {
            (Ok(d), None) => (Value::Numeric(d), self.flags),
            (Ok(_), Some(r)) | (Err(r), _) => (Value::Absent(r), self.flags | Flags::UNAVAILABLE | super::special_flags(r)),
        };
        let (vendor, flags) = match vendor {
            Some(code) => (Some(VendorRef::Static(code)), flags | Flags::UNMAPPED),
            None => (None, flags),
        };
        // One literal, not a chain of `with_*`: the fields are stored once, where they go.
        out(Measurement { metric, vendor, value, unit, device_time: self.time, seq: None, flags, status: self.status });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::wire::sfloat::FloatValue;

    #[test]
    fn gp3_spot_check() {
        // GP-3: 00 61 00 48 00 = SpO2 97 %, PR 72 bpm.
        let s = SpotCheck::parse(&[0x00, 0x61, 0x00, 0x48, 0x00]).unwrap();
        assert_eq!(s.reading.spo2.value(), FloatValue::Number(crate::decimal::Decimal::from_int(97)));
        assert_eq!(s.reading.pr.value(), FloatValue::Number(crate::decimal::Decimal::from_int(72)));
        assert_eq!((s.timestamp, s.status, s.device_status, s.pai), (None, None, None, None));
        assert!(!s.clock_not_set());
    }

    #[test]
    fn gp4_continuous_normal_only() {
        // GP-4: 00 62 00 5F 00 = SpO2 98 %, PR 95 bpm.
        let c = Continuous::parse(&[0x00, 0x62, 0x00, 0x5F, 0x00]).unwrap();
        assert_eq!(c.normal, SpO2Pr { spo2: Sfloat(98), pr: Sfloat(95) });
        assert_eq!((c.fast, c.slow, c.pai), (None, None, None));
    }

    #[test]
    fn field_order_with_everything() {
        // Spot-check with all fields: the 24-bit status is read as 3 bytes, then the PAI.
        let b = [0x1F, 0x61, 0x00, 0x48, 0x00, 0xE8, 0x07, 3, 15, 8, 30, 0, 0x80, 0x20, 0x00, 0x28, 0x01, 0x2C, 0xF0];
        let s = SpotCheck::parse(&b).unwrap();
        assert_eq!(s.status, Some(MeasurementStatus(0x2080)));
        assert_eq!(s.device_status, Some(DeviceSensorStatus(0x01_2800)));
        assert_eq!(s.pai, Some(Sfloat(0xF02C)));
        assert!(s.clock_not_set());
        let mut out = [0u8; 32];
        let n = s.emit(&mut out).unwrap();
        assert_eq!(&out[..n], &b[..]);
        assert_eq!(SpotCheck::parse(&b[..18]), Err(Error::Truncated { needed: 19, got: 18 }));
    }

    #[test]
    fn absent_reason_precedence_per_measurement() {
        // Continuous, status "unavailable" (bit 13) and "invalid" (bit 15) together, SpO2 NaN
        // (0x07FF), PR 72, a fast pair: the special keeps its own reason, the other numbers
        // take bit 13's; the flags (worked out once for the value) are on every measurement.
        use crate::observation::Value;
        use crate::quality::AbsentReason;
        let b = [0x05, 0xFF, 0x07, 0x48, 0x00, 0x60, 0x00, 0x4A, 0x00, 0x00, 0xA0];
        let mut ms = alloc::vec::Vec::new();
        Continuous::parse(&b).unwrap().measurements(&mut ms);
        let got: alloc::vec::Vec<_> = ms.iter().map(|m| (m.value.clone(), m.flags, m.status)).collect();
        let f = Flags::UNAVAILABLE | Flags::INVALID;
        assert_eq!(
            got,
            [
                (Value::Absent(AbsentReason::NotANumber), f, Status::Final),
                (Value::Absent(AbsentReason::Unavailable), f, Status::Final),
                (Value::Absent(AbsentReason::Unavailable), f | Flags::UNMAPPED, Status::Final),
                (Value::Absent(AbsentReason::Unavailable), f | Flags::UNMAPPED, Status::Final),
            ]
        );
        // Invalid alone: `Error`; early estimate: preliminary, numbers kept.
        let mut ms = alloc::vec::Vec::new();
        Continuous::parse(&[0x04, 0x61, 0x00, 0x48, 0x00, 0x00, 0x80]).unwrap().measurements(&mut ms);
        assert!(ms.iter().all(|m| m.value == Value::Absent(AbsentReason::Error) && m.flags == Flags::UNAVAILABLE | Flags::INVALID));
        let mut ms = alloc::vec::Vec::new();
        Continuous::parse(&[0x04, 0x61, 0x00, 0x48, 0x00, 0x40, 0x00]).unwrap().measurements(&mut ms);
        assert!(ms.iter().all(|m| m.value.numeric().is_some() && m.flags == Flags::EARLY_ESTIMATE && m.status == Status::Preliminary));
    }

    #[test]
    fn status_bits_map_to_flags() {
        let s = MeasurementStatus(MeasurementStatus::EARLY_ESTIMATE | MeasurementStatus::DEMO | 0x1F);
        assert_eq!(s.flags(), Flags::EARLY_ESTIMATE | Flags::DEMO);
        assert_eq!(s.status(), Status::Preliminary);
        assert_eq!(MeasurementStatus(MeasurementStatus::VALIDATED).flags(), Flags::NONE);
        let d = DeviceSensorStatus(DeviceSensorStatus::SENSOR_DISPLACED | 0xFF_0000);
        assert_eq!(d.flags(), Flags::SENSOR_OFF);
    }
}
