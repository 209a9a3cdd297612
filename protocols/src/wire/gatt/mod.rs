//! Bluetooth LE GATT health characteristics: Heart Rate, Pulse Oximeter (PLX), Blood Pressure,
//! Health Thermometer, Weight Scale and Glucose, with the Date Time, Current Time and Device
//! Information characteristics they rely on.
//!
//! Each characteristic value arrives whole in one ATT notification, indication or read
//! response (Bluetooth Core v5.x Vol 3 Part F §3.4.7, §3.4.4): there is no framing, length
//! or checksum in the value, because ATT already delimits it and the link layer's CRC drops
//! corrupted PDUs. So every parser here takes exactly one value, and the [`GattDecoder`]s take
//! one value per `feed` call.
//!
//! Every file follows the same two levels (style.md, habit 1):
//! - a checked view (`*View::new_checked`) that reads the flags byte, computes the length the
//!   flags require and refuses shorter input with [`Error::Truncated`]; after that its accessors
//!   cannot fail or panic;
//! - a validated value (`parse`) with `emit` for the simulators and the round-trip tests.
//!
//! Conventions shared by every characteristic (sources: the Bluetooth SIG characteristic XMLs,
//! `org.bluetooth.characteristic.*.xml`, as mirrored in oesmith/gatt-xml):
//! - all multi-byte fields are little-endian ("fields ... in the order of LSO to MSO");
//! - conditional fields appear in the order the XML lists them, each only when its flag is set;
//! - bits marked `ReservedForFutureUse` are ignored: they neither fail the value nor move a
//!   field. (A later version that defines such a bit appends its field after the ones known
//!   here, which is how every revision of these services has extended them.)
//! - **trailing bytes are accepted and ignored.** A value longer than its flags require is not
//!   rejected: newer revisions of these services append fields behind the ones defined above,
//!   and Bluetooth's client rules are to ignore what a client does not understand (RFU bits and
//!   octets) rather than to fail. The views expose the count (`extra_len`) so a caller can
//!   still see it. The exact normative sentence could not be checked in a primary source from
//!   here: the decision rests on the XMLs' RFU markings and on the append-only history of the
//!   services [UNCONFIRMED clause].
//! - IEEE 11073-20601 SFLOAT/FLOAT specials (NaN, NRes, ±INF, reserved) are never numbers: they
//!   become `Value::Absent` with the matching [`AbsentReason`].

use crate::error::{Error, Result};
use crate::quality::{AbsentReason, Flags};
use crate::wire::sfloat::{self, FloatValue};

pub mod blood_pressure;
pub mod current_time;
pub mod date_time;
pub mod device_info;
pub mod glucose;
pub mod heart_rate;
pub mod plx;
pub mod thermometer;
pub mod weight;

#[cfg(feature = "alloc")]
mod decoder;
#[cfg(feature = "alloc")]
pub use decoder::{GattDecoder, GattKind, PROTOCOLS};

/// The largest attribute value ATT carries (Core v5.x Vol 3 Part F §3.2.9: 512 octets). Longer
/// input cannot be one characteristic value and is refused before anything is parsed.
pub const MAX_VALUE_LEN: usize = 512;

/// 16-bit UUIDs of the characteristics handled here (Bluetooth Assigned Numbers).
pub mod uuid {
    pub const DATE_TIME: u16 = 0x2A08;
    pub const GLUCOSE_MEASUREMENT: u16 = 0x2A18;
    pub const TEMPERATURE_MEASUREMENT: u16 = 0x2A1C;
    pub const SYSTEM_ID: u16 = 0x2A23;
    pub const MODEL_NUMBER: u16 = 0x2A24;
    pub const SERIAL_NUMBER: u16 = 0x2A25;
    pub const FIRMWARE_REVISION: u16 = 0x2A26;
    pub const HARDWARE_REVISION: u16 = 0x2A27;
    pub const SOFTWARE_REVISION: u16 = 0x2A28;
    pub const MANUFACTURER_NAME: u16 = 0x2A29;
    pub const CURRENT_TIME: u16 = 0x2A2B;
    pub const BLOOD_PRESSURE_MEASUREMENT: u16 = 0x2A35;
    pub const HEART_RATE_MEASUREMENT: u16 = 0x2A37;
    pub const RECORD_ACCESS_CONTROL_POINT: u16 = 0x2A52;
    pub const PLX_SPOT_CHECK_MEASUREMENT: u16 = 0x2A5E;
    pub const PLX_CONTINUOUS_MEASUREMENT: u16 = 0x2A5F;
    pub const WEIGHT_MEASUREMENT: u16 = 0x2A9D;
}

/// Refuses input that cannot be one attribute value, then input shorter than `needed`.
pub(crate) fn check_len(buf: &[u8], needed: usize) -> Result<()> {
    if buf.len() > MAX_VALUE_LEN {
        return Err(Error::TooLong { max: MAX_VALUE_LEN });
    }
    if buf.len() < needed {
        return Err(Error::Truncated { needed, got: buf.len() });
    }
    Ok(())
}

/// The flags byte of a value (its first byte), or `Truncated` for an empty value.
pub(crate) fn flags_of(buf: &[u8]) -> Result<u8> {
    check_len(buf, 1)?;
    buf.first().copied().ok_or(Error::Truncated { needed: 1, got: 0 })
}

/// Little-endian reads that never panic: out-of-range bytes read as zero. Views only call them
/// after their length check, so the zero is never seen.
pub(crate) fn u8_at(b: &[u8], at: usize) -> u8 {
    b.get(at).copied().unwrap_or(0)
}

pub(crate) fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([u8_at(b, at), u8_at(b, at + 1)])
}

pub(crate) fn le24(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([u8_at(b, at), u8_at(b, at + 1), u8_at(b, at + 2), 0])
}

pub(crate) fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([u8_at(b, at), u8_at(b, at + 1), u8_at(b, at + 2), u8_at(b, at + 3)])
}

/// Adds `n` to an offset when `present`.
pub(crate) const fn opt(at: usize, present: bool, n: usize) -> usize {
    if present {
        at + n
    } else {
        at
    }
}

/// Writes fields into a caller's buffer, refusing with `BufferTooSmall` instead of panicking.
pub(crate) struct Writer<'a> {
    out: &'a mut [u8],
    len: usize,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(out: &'a mut [u8]) -> Writer<'a> {
        Writer { out, len: 0 }
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) -> Result<()> {
        let end = self.len + b.len();
        let dst = self.out.get_mut(self.len..end).ok_or(Error::BufferTooSmall { needed: end })?;
        dst.copy_from_slice(b);
        self.len = end;
        Ok(())
    }

    pub(crate) fn u8(&mut self, v: u8) -> Result<()> {
        self.bytes(&[v])
    }

    pub(crate) fn u16(&mut self, v: u16) -> Result<()> {
        self.bytes(&v.to_le_bytes())
    }

    pub(crate) fn u24(&mut self, v: u32) -> Result<()> {
        let b = v.to_le_bytes();
        self.bytes(&[b[0], b[1], b[2]])
    }

    pub(crate) fn u32(&mut self, v: u32) -> Result<()> {
        self.bytes(&v.to_le_bytes())
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

/// A decoded SFLOAT/FLOAT with the raw bits kept, so that `emit` writes back exactly what was
/// read (NaN and NRes have many encodings; the exponent of a special is free).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sfloat(pub u16);

impl Sfloat {
    pub const NAN: Sfloat = Sfloat(0x07FF);
    pub const NRES: Sfloat = Sfloat(0x0800);
    pub const POSITIVE_INFINITY: Sfloat = Sfloat(0x07FE);
    pub const NEGATIVE_INFINITY: Sfloat = Sfloat(0x0802);
    pub const RESERVED: Sfloat = Sfloat(0x0801);

    pub fn value(self) -> FloatValue {
        sfloat::sfloat(self.0)
    }
}

/// FLOAT-Type (32 bit) with its raw bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Float(pub u32);

impl Float {
    pub const NAN: Float = Float(0x007F_FFFF);
    pub const NRES: Float = Float(0x0080_0000);
    pub const POSITIVE_INFINITY: Float = Float(0x007F_FFFE);
    pub const NEGATIVE_INFINITY: Float = Float(0x0080_0002);
    pub const RESERVED: Float = Float(0x0080_0001);

    pub fn value(self) -> FloatValue {
        sfloat::float(self.0)
    }
}

/// The quality flags a float special implies beyond `unavailable`: ±INF is a value beyond the
/// device's range (Flags::OUT_OF_RANGE documents "±INF, off-scale").
pub fn special_flags(reason: AbsentReason) -> Flags {
    match reason {
        AbsentReason::PositiveInfinity | AbsentReason::NegativeInfinity => Flags::OUT_OF_RANGE,
        _ => Flags::NONE,
    }
}

#[cfg(feature = "alloc")]
pub(crate) mod norm {
    //! Small helpers shared by the characteristics' `measurements` functions.
    use super::special_flags;
    use crate::decimal::Decimal;
    use crate::mdc::MdcCode;
    use crate::observation::{Measurement, Scalar};
    use crate::quality::AbsentReason;
    use crate::wire::sfloat::FloatValue;

    /// A number, or an absent value with the special's reason and flags.
    pub(crate) fn float_measurement(metric: MdcCode, v: FloatValue, unit: MdcCode) -> Measurement {
        from_result(metric, v.to_result(), unit)
    }

    pub(crate) fn from_result(metric: MdcCode, v: Result<Decimal, AbsentReason>, unit: MdcCode) -> Measurement {
        match v {
            Ok(d) => Measurement::numeric(metric, d, unit),
            Err(r) => Measurement::absent(metric, r, unit).with_flags(special_flags(r)),
        }
    }

    pub(crate) fn scalar(v: FloatValue) -> Scalar {
        match v.to_result() {
            Ok(d) => Scalar::Numeric(d),
            Err(r) => Scalar::Absent(r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_never_panic_and_check_len_types_the_error() {
        let b = [0x34, 0x12];
        assert_eq!(le16(&b, 0), 0x1234);
        assert_eq!(le16(&b, 1), 0x0012);
        assert_eq!(le32(&b, 5), 0);
        assert_eq!(check_len(&b, 3), Err(Error::Truncated { needed: 3, got: 2 }));
        assert_eq!(check_len(&[0u8; 513], 1), Err(Error::TooLong { max: 512 }));
        assert_eq!(flags_of(&[]), Err(Error::Truncated { needed: 1, got: 0 }));
        let mut out = [0u8; 3];
        let mut w = Writer::new(&mut out);
        w.u16(0xABCD).unwrap();
        assert_eq!(w.u16(1), Err(Error::BufferTooSmall { needed: 4 }));
        assert_eq!(w.len(), 2);
        assert_eq!(out, [0xCD, 0xAB, 0]);
    }
}
