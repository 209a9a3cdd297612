//! Heart Rate Measurement (0x2A37), Heart Rate Service.
//!
//! ```text
//! org.bluetooth.characteristic.heart_rate_measurement; fields in this order:
//! +-------+----------------+------------------+---------------------------+
//! | flags | HR u8 or u16   | [energy u16 kJ]  | [RR u16 ...] (1/1024 s)   |
//! +-------+----------------+------------------+---------------------------+
//! flags bit 0   HR format: 0 = uint8, 1 = uint16
//!       bit 1-2 sensor contact: 0, 1 = not supported; 2 = supported, not detected;
//!               3 = supported and detected
//!       bit 3   Energy Expended present (kJ, saturates at 0xFFFF "65535 kJ or more")
//!       bit 4   RR-Interval present: one or more, as many as fit (oldest first per the
//!               Heart Rate Service text [UNCONFIRMED here]; medgw keeps the wire order)
//!       bit 5-7 reserved (ignored)
//! ```
//! With bit 4 set at least one RR interval must be there (the flag says "one or more"); RR
//! values fill the rest of the value, and an odd last byte is a trailing byte (ignored, see the
//! module rules in [`super`]).

use crate::error::{Error, Result};

use super::{check_len, flags_of, le16, opt, Writer};

pub const FLAG_UINT16: u8 = 0x01;
pub const FLAG_CONTACT_MASK: u8 = 0x06;
pub const FLAG_ENERGY: u8 = 0x08;
pub const FLAG_RR: u8 = 0x10;

/// Sensor contact status (flags bits 1–2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SensorContact {
    /// The sensor cannot tell (values 0 and 1).
    NotSupported,
    /// The sensor can tell, and it is not touching the skin.
    NotDetected,
    Detected,
}

impl SensorContact {
    pub fn from_flags(flags: u8) -> SensorContact {
        match (flags & FLAG_CONTACT_MASK) >> 1 {
            2 => SensorContact::NotDetected,
            3 => SensorContact::Detected,
            _ => SensorContact::NotSupported,
        }
    }

    pub fn bits(self) -> u8 {
        match self {
            SensorContact::NotSupported => 0,
            SensorContact::NotDetected => 0x04,
            SensorContact::Detected => 0x06,
        }
    }
}

/// A checked view: length verified against the flags.
#[derive(Clone, Copy, Debug)]
pub struct HeartRateView<'a> {
    buf: &'a [u8],
}

impl<'a> HeartRateView<'a> {
    pub fn new_checked(buf: &'a [u8]) -> Result<HeartRateView<'a>> {
        let flags = flags_of(buf)?;
        check_len(buf, Self::required_len(flags))?;
        Ok(HeartRateView { buf })
    }

    /// Bytes the flags require (with one RR interval when bit 4 is set).
    pub const fn required_len(flags: u8) -> usize {
        let at = 1 + if flags & FLAG_UINT16 != 0 { 2 } else { 1 };
        let at = opt(at, flags & FLAG_ENERGY != 0, 2);
        opt(at, flags & FLAG_RR != 0, 2)
    }

    pub fn flags(&self) -> u8 {
        super::u8_at(self.buf, 0)
    }

    fn rr_start(&self) -> usize {
        let f = self.flags();
        opt(1 + if f & FLAG_UINT16 != 0 { 2 } else { 1 }, f & FLAG_ENERGY != 0, 2)
    }

    pub fn heart_rate(&self) -> u16 {
        if self.flags() & FLAG_UINT16 != 0 {
            le16(self.buf, 1)
        } else {
            super::u8_at(self.buf, 1) as u16
        }
    }

    pub fn energy_expended(&self) -> Option<u16> {
        let f = self.flags();
        (f & FLAG_ENERGY != 0).then(|| le16(self.buf, 1 + if f & FLAG_UINT16 != 0 { 2 } else { 1 }))
    }

    pub fn rr_intervals(&self) -> RrIntervals<'a> {
        if self.flags() & FLAG_RR == 0 {
            return RrIntervals { raw: &[] };
        }
        let rest = self.buf.get(self.rr_start()..).unwrap_or(&[]);
        let even = rest.len() & !1;
        RrIntervals { raw: rest.get(..even).unwrap_or(&[]) }
    }

    /// Bytes after the last field the flags define.
    pub fn extra_len(&self) -> usize {
        let used = self.rr_start() + self.rr_intervals().raw.len();
        self.buf.len().saturating_sub(used)
    }
}

/// RR intervals as sent: little-endian u16 in units of 1/1024 s, in wire order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RrIntervals<'a> {
    raw: &'a [u8],
}

impl<'a> RrIntervals<'a> {
    /// Wraps bytes holding little-endian u16 values; an odd last byte is left out.
    pub fn from_bytes(raw: &'a [u8]) -> RrIntervals<'a> {
        RrIntervals { raw: raw.get(..raw.len() & !1).unwrap_or(&[]) }
    }

    pub fn len(&self) -> usize {
        self.raw.len() / 2
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Each interval in 1/1024 s.
    pub fn iter(&self) -> impl Iterator<Item = u16> + 'a {
        self.raw.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]))
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }
}

/// An RR interval of `raw` / 1024 s in whole milliseconds.
///
/// The strap measures in steps of 1/1024 s ≈ 0.98 ms (Bluetooth SIG Heart Rate Measurement,
/// 0x2A37, "RR-Interval ... resolution of 1/1024 second"), so a millisecond is the decimal step that
/// keeps that resolution without claiming more: the exact quotient `999.0234375 ms` would claim a
/// resolution of 10^-7 ms that the measurement does not have (decisions.md, "a value keeps its
/// precision"). `raw × 1000 / 1024` is rounded half up to the nearest ms; the rounding error is at
/// most 0.5 ms, about half a step of the measurement (1024 → 1000 ms, 800 → 781 ms, 1 → 1 ms).
pub fn rr_millis(raw: u16) -> crate::decimal::Decimal {
    // raw × 1000 <= 65_535_000 fits in u32; adding 512 (half of 1024) rounds half up.
    let ms = (raw as u32 * 1000 + 512) / 1024;
    // ms <= 64_000: always an i32 and within Decimal's range.
    crate::decimal::Decimal::from_int(ms as i32)
}

/// A validated Heart Rate Measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeartRate<'a> {
    /// The flags byte as sent (format and contact bits, reserved bits kept for `emit`).
    pub flags: u8,
    /// Beats per minute.
    pub bpm: u16,
    /// Energy expended since the last reset, kJ.
    pub energy_kj: Option<u16>,
    pub rr: RrIntervals<'a>,
}

impl<'a> HeartRate<'a> {
    pub fn parse(buf: &'a [u8]) -> Result<HeartRate<'a>> {
        let v = HeartRateView::new_checked(buf)?;
        Ok(HeartRate { flags: v.flags(), bpm: v.heart_rate(), energy_kj: v.energy_expended(), rr: v.rr_intervals() })
    }

    pub fn contact(&self) -> SensorContact {
        SensorContact::from_flags(self.flags)
    }

    pub fn is_uint16(&self) -> bool {
        self.flags & FLAG_UINT16 != 0
    }

    /// Writes the value; the energy and RR flag bits follow the fields, the format bit is the
    /// caller's (a bpm above 255 in uint8 format is refused).
    pub fn emit(&self, out: &mut [u8]) -> Result<usize> {
        let mut flags = self.flags & !(FLAG_ENERGY | FLAG_RR);
        if self.energy_kj.is_some() {
            flags |= FLAG_ENERGY;
        }
        if !self.rr.is_empty() {
            flags |= FLAG_RR;
        }
        let mut w = Writer::new(out);
        w.u8(flags)?;
        if flags & FLAG_UINT16 != 0 {
            w.u16(self.bpm)?;
        } else {
            let bpm = u8::try_from(self.bpm).map_err(|_| Error::BadField { field: "heart rate (uint8 format)", value: self.bpm as u32 })?;
            w.u8(bpm)?;
        }
        if let Some(e) = self.energy_kj {
            w.u16(e)?;
        }
        w.bytes(self.rr.as_bytes())?;
        Ok(w.len())
    }

    /// The measurements this value reports:
    /// - heart rate, MDC_ECG_HEART_RATE in bpm (the code the brief and 10101 give for a
    ///   heart rate from the ECG; a chest strap measures the ECG R wave). Contact "not detected"
    ///   adds `SENSOR_OFF`; a rate of 0 without contact is the strap's "no value" and is absent.
    /// - RR intervals, one measurement MDC_ECG_TIME_PD_RR_GL (2::16168 = 147240; 10101, as
    ///   used by the German MII cardiology FHIR IG examples) in ms whose value is a compound of
    ///   the intervals in wire order. One measurement, not one per interval: the intervals of a
    ///   notification share its receipt time and would otherwise get the same observation id.
    /// - energy expended: no MDC code is known for it here, so it is kept unmapped with the
    ///   vendor code `gatt` / `2A37.energy-expended` in kJ; 0xFFFF means "65535 kJ or more"
    ///   (saturated) and adds `OUT_OF_RANGE`.
    #[cfg(feature = "alloc")]
    pub fn measurements(&self, out: &mut alloc::vec::Vec<crate::observation::Measurement>) {
        self.for_each_measurement(&mut |m| out.push(m));
    }

    /// [`Self::measurements`], handing each measurement to `out` (no intermediate vector).
    #[cfg(feature = "alloc")]
    pub fn for_each_measurement<F: FnMut(crate::observation::Measurement) + ?Sized>(&self, out: &mut F) {
        use crate::decimal::Decimal;
        use crate::mdc::{code, unit};
        use crate::observation::{Component, Measurement, Scalar, Value};
        use crate::quality::{AbsentReason, Flags};

        let off = self.contact() == SensorContact::NotDetected;
        let hr = if off && self.bpm == 0 {
            Measurement::absent(code::MDC_ECG_HEART_RATE, AbsentReason::Unavailable, unit::MDC_DIM_BEAT_PER_MIN)
        } else {
            Measurement::numeric(code::MDC_ECG_HEART_RATE, Decimal::from_int(self.bpm as i32), unit::MDC_DIM_BEAT_PER_MIN)
        };
        let contact_flags = if off { Flags::SENSOR_OFF } else { Flags::NONE };
        out(hr.with_flags(contact_flags));
        if !self.rr.is_empty() {
            let components =
                self.rr.iter().map(|r| Component { metric: MDC_ECG_TIME_PD_RR_GL, value: Scalar::Numeric(rr_millis(r)) }).collect();
            out(Measurement {
                value: Value::Compound(components),
                ..Measurement::numeric(MDC_ECG_TIME_PD_RR_GL, Decimal::from_int(0), unit::MDC_DIM_MILLI_SEC)
            }
            .with_flags(contact_flags));
        }
        if let Some(e) = self.energy_kj {
            let saturated = if e == u16::MAX { Flags::OUT_OF_RANGE } else { Flags::NONE };
            out(Measurement::numeric(crate::mdc::MdcCode::UNMAPPED, Decimal::from_int(e as i32), MDC_DIM_KILO_JOULES)
                .with_static_vendor(&ENERGY_EXPENDED)
                .with_flags(Flags::UNMAPPED | saturated));
        }
    }
}

/// The vendor code of the energy expended, which has no MDC code here.
#[cfg(feature = "alloc")]
static ENERGY_EXPENDED: crate::observation::VendorCode = crate::observation::VendorCode::new_static("gatt", "2A37.energy-expended");

/// MDC_ECG_TIME_PD_RR_GL, 2::16168 (IEEE 11073-10101; public nomenclature headers and the MII
/// Kardio FHIR IG example `urn:iso:std:iso:11073:10101#147240`). Not yet in `crate::mdc`.
pub const MDC_ECG_TIME_PD_RR_GL: crate::mdc::MdcCode = crate::mdc::MdcCode::scada(16168);

/// MDC_DIM_KILO_JOULES, 4::3971 (see [`crate::mdc::unit::MDC_DIM_KILO_JOULES`]).
pub const MDC_DIM_KILO_JOULES: crate::mdc::MdcCode = crate::mdc::unit::MDC_DIM_KILO_JOULES;

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn gp1_uint8_contact_detected() {
        // GP-1: 06 48 = HR 72, uint8, contact supported and detected, no energy, no RR.
        let hr = HeartRate::parse(&[0x06, 0x48]).unwrap();
        assert_eq!(hr.bpm, 72);
        assert!(!hr.is_uint16());
        assert_eq!(hr.contact(), SensorContact::Detected);
        assert_eq!(hr.energy_kj, None);
        assert!(hr.rr.is_empty());
    }

    #[test]
    fn gp2_one_rr_interval_of_one_second() {
        // GP-2: 10 48 00 04 = HR 72; RR = 0x0400 = 1024/1024 s.
        let hr = HeartRate::parse(&[0x10, 0x48, 0x00, 0x04]).unwrap();
        assert_eq!(hr.bpm, 72);
        assert_eq!(hr.contact(), SensorContact::NotSupported);
        assert_eq!(hr.rr.iter().collect::<alloc::vec::Vec<_>>(), [1024]);
        assert_eq!(rr_millis(1024).to_string(), "1000");
    }

    #[test]
    fn rr_intervals_are_whole_milliseconds() {
        // 1/1024 s ≈ 0.98 ms: whole ms keep the resolution and claim no more.
        assert_eq!(rr_millis(1).to_string(), "1");
        assert_eq!(rr_millis(512).to_string(), "500");
        assert_eq!(rr_millis(800).to_string(), "781");
        assert_eq!(rr_millis(0).to_string(), "0");
        assert_eq!(rr_millis(1023).to_string(), "999");
        assert_eq!(rr_millis(u16::MAX).to_string(), "63999");
    }

    #[test]
    fn every_rr_interval_of_a_full_value_is_kept() {
        // A 512-byte value (ATT maximum): flags, uint8 HR, then 255 RR intervals. They spill
        // from the inline member to the heap; none is dropped, and the order is the wire's.
        use crate::observation::{Scalar, Value};
        let mut v = alloc::vec![FLAG_RR, 60];
        for i in 0..255u16 {
            v.extend_from_slice(&(1000 + i).to_le_bytes());
        }
        assert_eq!(v.len(), 512);
        let mut ms = alloc::vec::Vec::new();
        HeartRate::parse(&v).unwrap().measurements(&mut ms);
        let Value::Compound(c) = &ms[1].value else { panic!("{:?}", ms[1]) };
        assert_eq!(c.len(), 255);
        for (i, comp) in c.iter().enumerate() {
            assert_eq!(comp.value, Scalar::Numeric(rr_millis(1000 + i as u16)), "interval {i}");
        }
        // One interval: the common case, same value either way.
        let mut ms = alloc::vec::Vec::new();
        HeartRate::parse(&[FLAG_RR, 60, 0x00, 0x04]).unwrap().measurements(&mut ms);
        let Value::Compound(c) = &ms[1].value else { panic!("{:?}", ms[1]) };
        assert_eq!(
            c.as_slice(),
            [crate::observation::Component { metric: MDC_ECG_TIME_PD_RR_GL, value: Scalar::Numeric(rr_millis(1024)) }]
        );
    }

    #[test]
    fn rr_rounding_is_within_half_a_millisecond_for_every_raw_value() {
        for raw in 0..=u16::MAX {
            let d = rr_millis(raw);
            assert_eq!(d.exponent(), 0, "raw {raw}");
            let exact = raw as f64 * 1000.0 / 1024.0;
            assert!((d.to_f64() - exact).abs() <= 0.5, "raw {raw}: {d} vs {exact}");
        }
    }

    #[test]
    fn uint16_energy_and_rr_in_order() {
        // flags 0x19: uint16 HR 0x0100 = 256, energy 0x1234, RR 0x0300, 0x0310, then one odd byte.
        let b = [0x19, 0x00, 0x01, 0x34, 0x12, 0x00, 0x03, 0x10, 0x03, 0xAA];
        let v = HeartRateView::new_checked(&b).unwrap();
        assert_eq!(v.extra_len(), 1);
        let hr = HeartRate::parse(&b).unwrap();
        assert_eq!(hr.bpm, 256);
        assert_eq!(hr.energy_kj, Some(0x1234));
        assert_eq!(hr.rr.iter().collect::<alloc::vec::Vec<_>>(), [0x0300, 0x0310]);
        let mut out = [0u8; 16];
        let n = hr.emit(&mut out).unwrap();
        assert_eq!(&out[..n], &b[..9]);
    }

    #[test]
    fn truncation_and_reserved_bits() {
        assert_eq!(HeartRate::parse(&[0x01, 0x48]), Err(Error::Truncated { needed: 3, got: 2 }));
        assert_eq!(HeartRate::parse(&[0x10, 0x48]), Err(Error::Truncated { needed: 4, got: 2 }));
        assert_eq!(HeartRate::parse(&[0x08, 0x48, 0x01]), Err(Error::Truncated { needed: 4, got: 3 }));
        // Reserved bits 5–7 change nothing.
        let a = HeartRate::parse(&[0xE6, 0x48]).unwrap();
        assert_eq!((a.bpm, a.contact(), a.energy_kj, a.rr.len()), (72, SensorContact::Detected, None, 0));
    }
}
