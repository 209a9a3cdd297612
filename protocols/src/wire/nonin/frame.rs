//! One Nonin frame: checked views over the bytes and validated values with `parse`/`emit`.
//!
//! DF2 and DF7 frames carry an 8-bit additive checksum (Nonin 9560 OEM spec, pp. 8 and 12);
//! DF8 has none (p. 16), so a single frame is checked by its bit-7 pattern, its reserved bits
//! and the ranges of its fields, and the decoder trusts frames only under a confirmed lock on
//! the stream ([`crate::lock`]).

use crate::error::Error;
use crate::quality::Flags;

/// The START byte that opens every DF2 frame (spec p. 8, byte 1).
pub const DF2_START: u8 = 0x01;
/// Length of a DF2 or DF7 frame.
pub const FRAME_LEN: usize = 5;
/// Length of a DF8 frame (the table on spec p. 16 shows four bytes; its text says three).
pub const DF8_LEN: usize = 4;
/// "Missing data" value of the 9-bit heart rate (spec pp. 10, 16).
pub const HR_MISSING: u16 = 511;
/// "Missing data" value of the 7-bit SpO2 (spec pp. 10, 16).
pub const SPO2_MISSING: u8 = 127;

/// Which of the two checksummed 5-byte layouts a frame uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `START STATUS PLETH FLOAT CHK`, 8-bit pleth.
    Df2,
    /// `STATUS PLETH_MSB PLETH_LSB FLOAT CHK`, 16-bit pleth, no START byte.
    Df7,
}

/// The additive checksum of DF2/DF7: the sum of bytes 1–4 modulo 256 (spec pp. 8, 12).
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |acc, &b| acc.wrapping_add(b))
}

/// Perfusion colour from the RPRF/GPRF pair (spec p. 9): shown for 12 frames per pulse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Perfusion {
    /// Neither bit: no pulse shown in this frame.
    None,
    /// GPRF only: good (high) perfusion.
    Green,
    /// RPRF and GPRF: marginal perfusion.
    Yellow,
    /// RPRF only: low perfusion or no signal.
    Red,
}

/// The STATUS byte of DF2/DF7 (spec p. 9).
///
/// ```text
/// bit  7    6    5     4    3     2     1     0
///      1    R    ARTF  OOT  SNSA  RPRF  GPRF  SYNC
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status(pub u8);

impl Status {
    pub const ALWAYS: u8 = 0x80;
    pub const ARTF: u8 = 0x20;
    pub const OOT: u8 = 0x10;
    pub const SNSA: u8 = 0x08;
    pub const RPRF: u8 = 0x04;
    pub const GPRF: u8 = 0x02;
    pub const SYNC: u8 = 0x01;

    /// Frame 1 of a 25-frame packet.
    pub const fn sync(self) -> bool {
        self.0 & Self::SYNC != 0
    }

    pub const fn perfusion(self) -> Perfusion {
        match (self.0 & Self::RPRF != 0, self.0 & Self::GPRF != 0) {
            (true, false) => Perfusion::Red,
            (true, true) => Perfusion::Yellow,
            (false, true) => Perfusion::Green,
            (false, false) => Perfusion::None,
        }
    }

    /// ARTF, OOT and SNSA as flags; perfusion is judged over a packet (see `packet`).
    pub fn flags(self) -> Flags {
        let mut f = Flags::NONE;
        if self.0 & Self::ARTF != 0 {
            f |= Flags::ARTIFACT;
        }
        if self.0 & Self::OOT != 0 {
            f |= Flags::OUT_OF_TRACK;
        }
        if self.0 & Self::SNSA != 0 {
            f |= Flags::SENSOR_OFF;
        }
        f
    }
}

/// Flags of a perfusion colour: red is low perfusion, yellow marginal, green and none nothing.
pub fn perfusion_flags(p: Perfusion) -> Flags {
    match p {
        Perfusion::Red => Flags::LOW_PERFUSION,
        Perfusion::Yellow => Flags::MARGINAL_PERFUSION,
        Perfusion::Green | Perfusion::None => Flags::NONE,
    }
}

/// A checked view of a DF2 or DF7 frame: after [`FrameView::new_checked`] no accessor can
/// fail or panic.
///
/// ```text
/// DF2 (spec pp. 8–9):  | 0x01 | STATUS | PLETH | FLOAT | CHK |
/// DF7 (spec p. 12):    | STATUS | PLETH MSB | PLETH LSB | FLOAT | CHK |
/// CHK = (byte1 + byte2 + byte3 + byte4) mod 256
/// ```
#[derive(Clone, Copy, Debug)]
pub struct FrameView<T: AsRef<[u8]>> {
    buffer: T,
    format: Format,
}

impl<T: AsRef<[u8]>> FrameView<T> {
    /// Wraps `buffer` after checking that it holds exactly one frame.
    pub fn new_checked(buffer: T, format: Format) -> Result<Self, Error> {
        let len = buffer.as_ref().len();
        if len < FRAME_LEN {
            return Err(Error::Truncated { needed: FRAME_LEN, got: len });
        }
        if len > FRAME_LEN {
            return Err(Error::TooLong { max: FRAME_LEN });
        }
        Ok(FrameView { buffer, format })
    }

    fn byte(&self, i: usize) -> u8 {
        // In range by the length check of `new_checked`.
        self.buffer.as_ref().get(i).copied().unwrap_or(0)
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// The START byte of DF2; DF7 has none.
    pub fn start(&self) -> Option<u8> {
        match self.format {
            Format::Df2 => Some(self.byte(0)),
            Format::Df7 => None,
        }
    }

    pub fn status(&self) -> Status {
        Status(match self.format {
            Format::Df2 => self.byte(1),
            Format::Df7 => self.byte(0),
        })
    }

    /// The pleth sample: 8 bits in DF2, 16 bits (MSB first) in DF7.
    pub fn pleth(&self) -> u16 {
        match self.format {
            Format::Df2 => self.byte(2) as u16,
            Format::Df7 => (self.byte(1) as u16) << 8 | self.byte(2) as u16,
        }
    }

    /// The FLOAT byte, whose meaning depends on the frame's place in the packet.
    pub fn float(&self) -> u8 {
        self.byte(3)
    }

    pub fn checksum(&self) -> u8 {
        self.byte(4)
    }

    pub fn computed_checksum(&self) -> u8 {
        checksum(self.buffer.as_ref().get(..4).unwrap_or(&[]))
    }
}

/// A validated DF2/DF7 frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    pub status: Status,
    pub pleth: u16,
    pub float: u8,
}

impl Frame {
    /// Validates START (DF2), status bit 7 and the checksum.
    pub fn parse<T: AsRef<[u8]>>(view: &FrameView<T>) -> Result<Frame, Error> {
        if let Some(start) = view.start() {
            if start != DF2_START {
                return Err(Error::BadField { field: "nonin start", value: start as u32 });
            }
        }
        let status = view.status();
        if status.0 & Status::ALWAYS == 0 {
            return Err(Error::BadField { field: "nonin status", value: status.0 as u32 });
        }
        let (expected, found) = (view.computed_checksum(), view.checksum());
        if expected != found {
            return Err(Error::BadChecksum { expected: expected as u32, found: found as u32 });
        }
        Ok(Frame { status, pleth: view.pleth(), float: view.float() })
    }

    /// Parses one frame from exactly [`FRAME_LEN`] bytes.
    #[inline]
    pub fn parse_bytes(bytes: &[u8], format: Format) -> Result<Frame, Error> {
        Frame::parse(&FrameView::new_checked(bytes, format)?)
    }

    /// Writes the frame into `out` (at least [`FRAME_LEN`] bytes) with its checksum. Bit 7 of the
    /// status is forced on, as the spec requires; a DF2 pleth above 255 is clipped to 255.
    pub fn emit(&self, format: Format, out: &mut [u8]) -> Result<usize, Error> {
        let out = out.get_mut(..FRAME_LEN).ok_or(Error::BufferTooSmall { needed: FRAME_LEN })?;
        let status = self.status.0 | Status::ALWAYS;
        let head = match format {
            Format::Df2 => [DF2_START, status, self.pleth.min(255) as u8, self.float],
            Format::Df7 => [status, (self.pleth >> 8) as u8, self.pleth as u8, self.float],
        };
        out[..4].copy_from_slice(&head);
        out[4] = checksum(&head);
        Ok(FRAME_LEN)
    }
}

/// A checked view of a DF8 frame (spec p. 16).
///
/// ```text
/// byte 1 STATUS   | 1 | R | OOT | LPRF | MPRF | ARTF | HR8 | HR7 |
/// byte 2 HR-D     | 0 | HR6 .. HR0                              |
/// byte 3 SpO2-D   | 0 | SpO2 (0–100, 127 = missing)            |
/// byte 4 STATUS2  | 0 | R | SPA | R | SNSA | R | R | LOW BAT    |
/// ```
/// Only byte 1 has bit 7 set, which is how a receiver finds frame starts; there is no checksum.
#[derive(Clone, Copy, Debug)]
pub struct Df8View<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Df8View<T> {
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let len = buffer.as_ref().len();
        if len < DF8_LEN {
            return Err(Error::Truncated { needed: DF8_LEN, got: len });
        }
        if len > DF8_LEN {
            return Err(Error::TooLong { max: DF8_LEN });
        }
        Ok(Df8View { buffer })
    }

    fn byte(&self, i: usize) -> u8 {
        self.buffer.as_ref().get(i).copied().unwrap_or(0)
    }

    pub fn status(&self) -> u8 {
        self.byte(0)
    }
    pub fn hr_lsb(&self) -> u8 {
        self.byte(1)
    }
    pub fn spo2(&self) -> u8 {
        self.byte(2)
    }
    pub fn status2(&self) -> u8 {
        self.byte(3)
    }
}

/// A validated DF8 frame: the display (-D) values, once per second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Df8Frame {
    pub status: u8,
    /// 9-bit display heart rate, [`HR_MISSING`] when missing.
    pub hr: u16,
    /// Display SpO2, [`SPO2_MISSING`] when missing.
    pub spo2: u8,
    pub status2: u8,
}

impl Df8Frame {
    pub const ALWAYS: u8 = 0x80;
    pub const OOT: u8 = 0x20;
    pub const LPRF: u8 = 0x10;
    pub const MPRF: u8 = 0x08;
    pub const ARTF: u8 = 0x04;
    pub const HR8: u8 = 0x02;
    pub const HR7: u8 = 0x01;
    /// STATUS2 bits.
    pub const SPA: u8 = 0x20;
    pub const SNSA: u8 = 0x08;
    pub const LOW_BAT: u8 = 0x01;

    /// Bits the spec marks R (reserved) in STATUS: bit 6 (p. 16 table).
    pub const STATUS_RESERVED: u8 = 0x40;
    /// Bits the spec marks R in STATUS2: bits 6, 4, 2 and 1 (p. 16 table).
    pub const STATUS2_RESERVED: u8 = 0x56;
    /// The pulse rates a Nonin oximeter measures: 18–321 /min (Onyx II 9560 instructions for
    /// use, Specifications; \[UNCONFIRMED\]: not in the OEM data-format document). 511 is the
    /// missing-data value.
    pub const HR_RANGE: core::ops::RangeInclusive<u16> = 18..=321;

    /// Checks everything a DF8 frame has instead of a checksum (spec p. 16): the bit-7 pattern,
    /// the reserved bits (clear: the spec defines no use for them, and random bytes set one of
    /// these five bits 31 times in 32), SpO2 a percentage or the missing-data value, and the
    /// pulse rate within what the device measures or missing. A firmware that one day sets a
    /// reserved bit is rejected with this reason, visibly, rather than trusted blindly.
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(view: &Df8View<T>) -> Result<Df8Frame, Error> {
        if view.status() & 0x80 == 0 {
            return Err(Error::BadField { field: "nonin df8 status", value: view.status() as u32 });
        }
        for (field, b) in [("nonin df8 hr", view.hr_lsb()), ("nonin df8 spo2", view.spo2()), ("nonin df8 status2", view.status2())] {
            if b & 0x80 != 0 {
                return Err(Error::BadField { field, value: b as u32 });
            }
        }
        if view.status() & Self::STATUS_RESERVED != 0 {
            return Err(Error::BadField { field: "nonin df8 status reserved bit", value: view.status() as u32 });
        }
        if view.status2() & Self::STATUS2_RESERVED != 0 {
            return Err(Error::BadField { field: "nonin df8 status2 reserved bits", value: view.status2() as u32 });
        }
        let spo2 = view.spo2();
        if spo2 > 100 && spo2 != SPO2_MISSING {
            return Err(Error::BadField { field: "nonin df8 spo2", value: spo2 as u32 });
        }
        let hr = ((view.status() & 0x03) as u16) << 7 | view.hr_lsb() as u16;
        if hr != HR_MISSING && !Self::HR_RANGE.contains(&hr) {
            return Err(Error::Implausible { field: "nonin df8 pulse rate", value: hr as u32 });
        }
        Ok(Df8Frame { status: view.status(), hr, spo2, status2: view.status2() })
    }

    #[inline]
    pub fn parse_bytes(bytes: &[u8]) -> Result<Df8Frame, Error> {
        Df8Frame::parse(&Df8View::new_checked(bytes)?)
    }

    /// Writes the four bytes; the heart rate's bits 8–7 go into the status byte, reserved bits
    /// are written clear.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize, Error> {
        let out = out.get_mut(..DF8_LEN).ok_or(Error::BufferTooSmall { needed: DF8_LEN })?;
        let hr = self.hr.min(HR_MISSING);
        out[0] = Self::ALWAYS | (self.status & 0x3C) | (hr >> 7) as u8;
        out[1] = (hr & 0x7F) as u8;
        out[2] = self.spo2 & 0x7F;
        out[3] = self.status2 & 0x7F & !Self::STATUS2_RESERVED;
        Ok(DF8_LEN)
    }

    /// The heart rate, `None` for the missing-data value.
    pub fn hr(&self) -> Option<u16> {
        (self.hr != HR_MISSING).then_some(self.hr)
    }

    /// The SpO2, `None` for the missing-data value.
    pub fn spo2(&self) -> Option<u8> {
        (self.spo2 != SPO2_MISSING).then_some(self.spo2)
    }

    /// SmartPoint: the reading is of high quality (STATUS2 bit 5).
    pub fn smartpoint(&self) -> bool {
        self.status2 & Self::SPA != 0
    }

    /// The status bits as flags (brief: LPRF, MPRF, ARTF, OOT, SNSA, LOW BAT).
    pub fn flags(&self) -> Flags {
        let mut f = Flags::NONE;
        if self.status & Self::OOT != 0 {
            f |= Flags::OUT_OF_TRACK;
        }
        if self.status & Self::LPRF != 0 {
            f |= Flags::LOW_PERFUSION;
        }
        if self.status & Self::MPRF != 0 {
            f |= Flags::MARGINAL_PERFUSION;
        }
        if self.status & Self::ARTF != 0 {
            f |= Flags::ARTIFACT;
        }
        if self.status2 & Self::SNSA != 0 {
            f |= Flags::SENSOR_OFF;
        }
        if self.status2 & Self::LOW_BAT != 0 {
            f |= Flags::LOW_BATTERY;
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NP-1 (protocols.md §1, built from the spec p. 16 table): HR 72, SpO2 97, no flags.
    const NP1: [u8; 4] = [0x80, 0x48, 0x61, 0x00];
    /// NP-2: HR = (1 << 7) | 0x16 = 150, SpO2 95, SmartPoint.
    const NP2: [u8; 4] = [0x81, 0x16, 0x5F, 0x20];
    /// NP-3, frame 2 (HR LSB 0x48).
    const NP3_F02: [u8; 5] = [0x01, 0x80, 0x80, 0x48, 0x49];

    #[test]
    fn df8_vectors() {
        let f = Df8Frame::parse_bytes(&NP1).unwrap();
        assert_eq!((f.hr(), f.spo2(), f.flags(), f.smartpoint()), (Some(72), Some(97), Flags::NONE, false));
        let f = Df8Frame::parse_bytes(&NP2).unwrap();
        assert_eq!((f.hr(), f.spo2(), f.flags(), f.smartpoint()), (Some(150), Some(95), Flags::NONE, true));
        let mut out = [0u8; 4];
        f.emit(&mut out).unwrap();
        assert_eq!(out, NP2);
    }

    #[test]
    fn df8_missing_values_and_flags() {
        // HR 511 = status bits 1..0 = 11, LSB 0x7F; SpO2 127; every flag bit set.
        let f = Df8Frame::parse_bytes(&[0x80 | 0x3C | 0x03, 0x7F, 0x7F, 0x09]).unwrap();
        assert_eq!((f.hr(), f.spo2()), (None, None));
        let want = Flags::OUT_OF_TRACK
            | Flags::LOW_PERFUSION
            | Flags::MARGINAL_PERFUSION
            | Flags::ARTIFACT
            | Flags::SENSOR_OFF
            | Flags::LOW_BATTERY;
        assert_eq!(f.flags(), want);
    }

    #[test]
    fn df8_rejects_misaligned_or_impossible_frames() {
        assert!(matches!(Df8Frame::parse_bytes(&[0x48, 0x61, 0x00, 0x80]), Err(Error::BadField { .. })));
        assert!(matches!(Df8Frame::parse_bytes(&[0x80, 0x48, 0x65, 0x00]), Err(Error::BadField { value: 0x65, .. })));
        assert!(matches!(Df8Frame::parse_bytes(&[0x80, 0x48]), Err(Error::Truncated { needed: 4, got: 2 })));
    }

    #[test]
    fn df8_rejects_reserved_bits_and_implausible_pulse_rates() {
        // NP-1 with STATUS bit 6, then each STATUS2 reserved bit.
        assert!(matches!(Df8Frame::parse_bytes(&[0xC0, 0x48, 0x61, 0x00]), Err(Error::BadField { value: 0xC0, .. })));
        for bit in [0x40, 0x10, 0x04, 0x02] {
            assert!(matches!(Df8Frame::parse_bytes(&[0x80, 0x48, 0x61, bit]), Err(Error::BadField { .. })), "{bit:#x}");
        }
        // The defined STATUS2 bits pass.
        assert!(Df8Frame::parse_bytes(&[0x80, 0x48, 0x61, 0x29]).is_ok());
        // Pulse rate 0, 17 and 353 (a DF7 stream read as DF8 gave 353) are outside 18–321.
        for (msb, lsb, hr) in [(0x80u8, 0x00u8, 0u32), (0x80, 0x11, 17), (0x82, 0x61, 353)] {
            assert_eq!(
                Df8Frame::parse_bytes(&[msb, lsb, 0x61, 0x00]),
                Err(Error::Implausible { field: "nonin df8 pulse rate", value: hr })
            );
        }
        assert_eq!(Df8Frame::parse_bytes(&[0x82, 0x41, 0x61, 0x00]).map(|f| f.hr), Ok(321));
        assert_eq!(Df8Frame::parse_bytes(&[0x80, 0x12, 0x61, 0x00]).map(|f| f.hr), Ok(18));
    }

    #[test]
    fn df2_frame_parse_and_emit() {
        let f = Frame::parse_bytes(&NP3_F02, Format::Df2).unwrap();
        assert_eq!(f, Frame { status: Status(0x80), pleth: 0x80, float: 0x48 });
        let mut out = [0u8; 5];
        f.emit(Format::Df2, &mut out).unwrap();
        assert_eq!(out, NP3_F02);
        let mut bad = NP3_F02;
        bad[4] = 0x4A;
        assert_eq!(Frame::parse_bytes(&bad, Format::Df2), Err(Error::BadChecksum { expected: 0x49, found: 0x4A }));
        let mut nostart = NP3_F02;
        nostart[0] = 0x02;
        nostart[4] = checksum(&nostart[..4]);
        assert!(matches!(Frame::parse_bytes(&nostart, Format::Df2), Err(Error::BadField { field: "nonin start", .. })));
    }

    #[test]
    fn df7_frame_has_16_bit_pleth_and_no_start() {
        // Status 0x81 (SYNC), pleth 0x1234, float 0x00: CHK = 0x81 + 0x12 + 0x34 = 0xC7.
        let bytes = [0x81, 0x12, 0x34, 0x00, 0xC7];
        let f = Frame::parse_bytes(&bytes, Format::Df7).unwrap();
        assert_eq!((f.status.sync(), f.pleth, f.float), (true, 0x1234, 0));
        let mut out = [0u8; 5];
        f.emit(Format::Df7, &mut out).unwrap();
        assert_eq!(out, bytes);
        assert!(matches!(Frame::parse_bytes(&[0x01, 0x12, 0x34, 0x00, 0x47], Format::Df7), Err(Error::BadField { .. })));
    }

    #[test]
    fn status_bits() {
        let s = Status(0x80 | Status::ARTF | Status::SNSA | Status::RPRF);
        assert_eq!(s.flags(), Flags::ARTIFACT | Flags::SENSOR_OFF);
        assert_eq!(s.perfusion(), Perfusion::Red);
        assert_eq!(Status(0x86).perfusion(), Perfusion::Yellow);
        assert_eq!(Status(0x82).perfusion(), Perfusion::Green);
        assert_eq!(Status(0x90).flags(), Flags::OUT_OF_TRACK);
    }
}
