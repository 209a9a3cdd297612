//! The 25-frame DF2/DF7 packet: assembling FLOAT bytes into values without mixing packets.
//!
//! Each frame's FLOAT byte means something different depending on the frame's place in the
//! packet (spec pp. 9–10 for DF2, identical for DF7 on p. 13); frame 1 carries SYNC:
//!
//! ```text
//! frame  FLOAT byte           frame  FLOAT byte
//!   1    HR MSB (SYNC=1)        14    E-HR MSB
//!   2    HR LSB                 15    E-HR LSB
//!   3    SpO2                   16    E-SpO2
//!   4    SREV (firmware rev.)   17    E-SpO2-D
//!   5    reserved               18–19 reserved
//!   6    TMR MSB                20    HR-D MSB
//!   7    TMR LSB                21    HR-D LSB
//!   8    STAT2                  22    E-HR-D MSB
//!   9    SpO2-D                 23    E-HR-D LSB
//!  10    SpO2 Fast              24–25 reserved
//!  11    SpO2 B-B
//!  12–13 reserved
//!
//! HR (9 bits) = (MSB & 0x03) << 7 | (LSB & 0x7F); 511 = missing.   SpO2 = byte & 0x7F; 127 = missing.
//! STAT2: bit 7 = 0, bit 5 SPA (SmartPoint), bit 0 LOW BAT.
//! ```
//!
//! A packet is accepted only when its 25 frames arrived back to back. After the synchroniser
//! skipped bytes, the packet in progress is dropped, and so is a packet whose SYNC frame comes
//! right after the skipped bytes: DF7 frames have no start byte, so a frame-shaped run of
//! garbage passes the 8-bit checksum often enough (about 1 in 512 positions) to fake a SYNC
//! frame, and a packet assembled behind a fake SYNC would combine bytes of two packets (for
//! example an HR MSB from garbage with a real HR LSB). The first packet after a burst of
//! garbage is the price of never publishing such a mixed value.

use super::frame::{perfusion_flags, Frame, Perfusion, HR_MISSING, SPO2_MISSING};
use crate::error::Error;
use crate::quality::Flags;

/// Frames per packet.
pub const PACKET_FRAMES: usize = 25;

/// STAT2 bits (frame 8).
pub const STAT2_SPA: u8 = 0x20;
pub const STAT2_LOW_BAT: u8 = 0x01;

/// A complete packet: the 25 FLOAT bytes and the status seen over its frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet {
    floats: [u8; PACKET_FRAMES],
    /// ARTF, OOT, SNSA of any frame.
    status_flags: Flags,
    /// The worst perfusion colour shown in the packet.
    perfusion: Perfusion,
}

impl Packet {
    /// Builds a packet from its FLOAT bytes (for simulators and tests).
    pub fn from_floats(floats: [u8; PACKET_FRAMES]) -> Packet {
        Packet { floats, status_flags: Flags::NONE, perfusion: Perfusion::None }
    }

    /// The FLOAT byte of frame `n` (1-based, as the spec counts).
    pub fn float(&self, n: usize) -> u8 {
        n.checked_sub(1).and_then(|i| self.floats.get(i)).copied().unwrap_or(0)
    }

    pub fn floats(&self) -> &[u8; PACKET_FRAMES] {
        &self.floats
    }

    fn hr9(&self, msb: usize) -> Option<u16> {
        let v = ((self.float(msb) & 0x03) as u16) << 7 | (self.float(msb + 1) & 0x7F) as u16;
        (v != HR_MISSING).then_some(v)
    }

    fn spo2_at(&self, n: usize) -> Option<u8> {
        let v = self.float(n) & 0x7F;
        (v != SPO2_MISSING).then_some(v)
    }

    /// Standard heart rate (4-beat average, updated every 1/3 s), frames 1–2.
    pub fn hr(&self) -> Option<u16> {
        self.hr9(1)
    }
    /// Standard SpO2 (4-beat average), frame 3.
    pub fn spo2(&self) -> Option<u8> {
        self.spo2_at(3)
    }
    /// Firmware revision, frame 4.
    pub fn srev(&self) -> u8 {
        self.float(4)
    }
    /// The timer, frames 6–7 (a free-running counter; not a time of day).
    pub fn tmr(&self) -> u16 {
        ((self.float(6) as u16) << 8) | self.float(7) as u16
    }
    pub fn stat2(&self) -> u8 {
        self.float(8)
    }
    /// Display SpO2 (updated every 1.5 s, held 10 s after the finger is removed), frame 9.
    pub fn spo2_d(&self) -> Option<u8> {
        self.spo2_at(9)
    }
    pub fn spo2_fast(&self) -> Option<u8> {
        self.spo2_at(10)
    }
    pub fn spo2_bb(&self) -> Option<u8> {
        self.spo2_at(11)
    }
    /// Extended (8-beat) heart rate, frames 14–15.
    pub fn e_hr(&self) -> Option<u16> {
        self.hr9(14)
    }
    pub fn e_spo2(&self) -> Option<u8> {
        self.spo2_at(16)
    }
    pub fn e_spo2_d(&self) -> Option<u8> {
        self.spo2_at(17)
    }
    /// Display heart rate, frames 20–21.
    pub fn hr_d(&self) -> Option<u16> {
        self.hr9(20)
    }
    pub fn e_hr_d(&self) -> Option<u16> {
        self.hr9(22)
    }
    pub fn low_battery(&self) -> bool {
        self.stat2() & STAT2_LOW_BAT != 0
    }
    pub fn smartpoint(&self) -> bool {
        self.stat2() & STAT2_SPA != 0
    }

    /// The worst perfusion colour shown in the packet ([`Perfusion::None`] when no frame of it
    /// showed one: the colour is shown for 12 frames per pulse, so a packet between pulses has
    /// none).
    pub fn perfusion(&self) -> Perfusion {
        self.perfusion
    }

    /// The packet's quality flags: ARTF/OOT/SNSA of any frame, the worst perfusion colour of any
    /// frame (red → low, yellow → marginal) and STAT2 LOW BAT.
    pub fn flags(&self) -> Flags {
        let mut f = self.status_flags | perfusion_flags(self.perfusion);
        if self.low_battery() {
            f |= Flags::LOW_BATTERY;
        }
        f
    }
}

/// What pushing a frame into the assembler produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PacketEvent {
    /// The frame was stored (or dropped while waiting for the next SYNC).
    Pending,
    /// The 25th frame completed a packet.
    Complete(Packet),
    /// The frame stream broke the packet structure where no skipped bytes explain it (SYNC
    /// before frame 25, or a 26th frame without SYNC): the packet is dropped.
    Broken(Error),
}

/// Collects frames into packets.
#[derive(Clone, Debug)]
pub struct PacketAssembler {
    floats: [u8; PACKET_FRAMES],
    /// Frames stored of the packet in progress; 0 when waiting for a SYNC frame.
    count: usize,
    status_flags: Flags,
    perfusion: Perfusion,
    /// Bytes were skipped since the last frame.
    after_skip: bool,
}

impl Default for PacketAssembler {
    fn default() -> Self {
        PacketAssembler::new()
    }
}

impl PacketAssembler {
    pub fn new() -> PacketAssembler {
        PacketAssembler { floats: [0; PACKET_FRAMES], count: 0, status_flags: Flags::NONE, perfusion: Perfusion::None, after_skip: false }
    }

    /// The synchroniser skipped bytes: the packet in progress is lost, and the next frame
    /// cannot open a packet.
    pub fn skipped(&mut self) {
        self.count = 0;
        self.after_skip = true;
    }

    /// The bytes stopped for longer than a frame period would explain: whole frames may have been
    /// lost without a damaged byte, so the packet in progress is dropped. Unlike a skip, a gap
    /// cannot forge a frame, so the next SYNC frame opens a packet.
    pub fn gap(&mut self) {
        self.count = 0;
    }

    /// Forgets everything (reconnect): the next SYNC frame opens a packet.
    pub fn reset(&mut self) {
        self.count = 0;
        self.after_skip = false;
    }

    pub fn push(&mut self, frame: &Frame) -> PacketEvent {
        let contiguous = !core::mem::replace(&mut self.after_skip, false);
        if frame.status.sync() {
            // A packet cut short: frames 2..24 arrived but not 25 (a complete packet stays at 25).
            let cut = if self.count < PACKET_FRAMES { self.count } else { 0 };
            self.count = 0;
            if contiguous {
                self.floats = [0; PACKET_FRAMES];
                self.floats[0] = frame.float;
                self.count = 1;
                self.status_flags = frame.status.flags();
                self.perfusion = frame.status.perfusion();
            }
            if cut > 0 {
                return PacketEvent::Broken(Error::Truncated { needed: PACKET_FRAMES, got: cut });
            }
            return PacketEvent::Pending;
        }
        if self.count == 0 || !contiguous {
            self.count = 0;
            return PacketEvent::Pending;
        }
        if self.count >= PACKET_FRAMES {
            self.count = 0;
            return PacketEvent::Broken(Error::BadField { field: "nonin frames without sync", value: PACKET_FRAMES as u32 + 1 });
        }
        if let Some(slot) = self.floats.get_mut(self.count) {
            *slot = frame.float;
        }
        self.count += 1;
        self.status_flags |= frame.status.flags();
        self.perfusion = self.perfusion.max(frame.status.perfusion());
        if self.count == PACKET_FRAMES {
            // Stay at 25 so that a 26th frame without SYNC is noticed.
            return PacketEvent::Complete(Packet { floats: self.floats, status_flags: self.status_flags, perfusion: self.perfusion });
        }
        PacketEvent::Pending
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::wire::nonin::frame::{Format, Status};

    /// NP-3 (protocols.md §1): one DF2 packet, HR 72, SpO2 97, SREV 0x41, status 0x80, pleth 0x80.
    pub(crate) const NP3: [[u8; 5]; 25] = [
        [0x01, 0x81, 0x80, 0x00, 0x02],
        [0x01, 0x80, 0x80, 0x48, 0x49],
        [0x01, 0x80, 0x80, 0x61, 0x62],
        [0x01, 0x80, 0x80, 0x41, 0x42],
        [0x01, 0x80, 0x80, 0x00, 0x01],
        [0x01, 0x80, 0x80, 0x00, 0x01],
        [0x01, 0x80, 0x80, 0x00, 0x01],
        [0x01, 0x80, 0x80, 0x00, 0x01],
        [0x01, 0x80, 0x80, 0x61, 0x62],
        [0x01, 0x80, 0x80, 0x61, 0x62],
        [0x01, 0x80, 0x80, 0x61, 0x62],
        [0x01, 0x80, 0x80, 0x00, 0x01],
        [0x01, 0x80, 0x80, 0x00, 0x01],
        [0x01, 0x80, 0x80, 0x00, 0x01],
        [0x01, 0x80, 0x80, 0x48, 0x49],
        [0x01, 0x80, 0x80, 0x61, 0x62],
        [0x01, 0x80, 0x80, 0x61, 0x62],
        [0x01, 0x80, 0x80, 0x00, 0x01],
        [0x01, 0x80, 0x80, 0x00, 0x01],
        [0x01, 0x80, 0x80, 0x00, 0x01],
        [0x01, 0x80, 0x80, 0x48, 0x49],
        [0x01, 0x80, 0x80, 0x00, 0x01],
        [0x01, 0x80, 0x80, 0x48, 0x49],
        [0x01, 0x80, 0x80, 0x00, 0x01],
        [0x01, 0x80, 0x80, 0x00, 0x01],
    ];

    fn frames(raw: &[[u8; 5]]) -> impl Iterator<Item = Frame> + '_ {
        raw.iter().map(|b| Frame::parse_bytes(b, Format::Df2).unwrap())
    }

    #[test]
    fn np3_packet_values() {
        let mut a = PacketAssembler::new();
        let mut done = None;
        for (i, f) in frames(&NP3).enumerate() {
            match a.push(&f) {
                PacketEvent::Complete(p) => {
                    assert_eq!(i, 24);
                    done = Some(p);
                }
                e => assert_eq!(e, PacketEvent::Pending),
            }
        }
        let p = done.unwrap();
        assert_eq!((p.hr(), p.spo2(), p.srev()), (Some(72), Some(97), 0x41));
        assert_eq!(
            (p.spo2_d(), p.hr_d(), p.e_hr(), p.e_spo2(), p.e_spo2_d(), p.e_hr_d()),
            (Some(97), Some(72), Some(72), Some(97), Some(97), Some(72))
        );
        assert_eq!((p.spo2_fast(), p.spo2_bb()), (Some(97), Some(97)));
        assert!(!p.low_battery());
        assert_eq!(p.flags(), Flags::NONE);
    }

    #[test]
    fn missing_values_are_none() {
        let mut floats = [0u8; PACKET_FRAMES];
        floats[0] = 0x03;
        floats[1] = 0x7F;
        floats[2] = 0x7F;
        let p = Packet::from_floats(floats);
        assert_eq!((p.hr(), p.spo2()), (None, None));
        floats[0] = 0x02; // HR 256 + 0x7F = 383: a number, not the sentinel.
        assert_eq!(Packet::from_floats(floats).hr(), Some(383));
    }

    #[test]
    fn a_skip_drops_the_packet_in_progress_and_the_next_sync() {
        let mut a = PacketAssembler::new();
        let fr: alloc::vec::Vec<Frame> = frames(&NP3).collect();
        for f in &fr[..10] {
            a.push(f);
        }
        a.skipped();
        for f in &fr[10..] {
            assert_eq!(a.push(f), PacketEvent::Pending);
        }
        // Garbage right before a SYNC frame: that packet is dropped too.
        a.skipped();
        for f in &fr {
            assert_eq!(a.push(f), PacketEvent::Pending);
        }
        // Back to back: the next packet is complete.
        let last = fr.iter().map(|f| a.push(f)).last().unwrap();
        assert!(matches!(last, PacketEvent::Complete(_)));
    }

    #[test]
    fn structure_errors_without_skips_are_reported() {
        let mut a = PacketAssembler::new();
        let fr: alloc::vec::Vec<Frame> = frames(&NP3).collect();
        for f in &fr[..5] {
            a.push(f);
        }
        assert_eq!(a.push(&fr[0]), PacketEvent::Broken(Error::Truncated { needed: 25, got: 5 }));
        for f in &fr[1..] {
            a.push(f);
        }
        assert!(matches!(a.push(&fr[1]), PacketEvent::Broken(Error::BadField { value: 26, .. })));
    }

    #[test]
    fn flags_cover_every_frame_and_the_worst_perfusion() {
        let mut a = PacketAssembler::new();
        let mut last = PacketEvent::Pending;
        for (i, f) in frames(&NP3).enumerate() {
            let mut f = f;
            if i == 7 {
                f.float = STAT2_LOW_BAT;
            }
            if i == 3 {
                f.status = Status(0x80 | Status::RPRF | Status::GPRF);
            }
            if i == 12 {
                f.status = Status(0x80 | Status::ARTF | Status::RPRF);
            }
            last = a.push(&f);
        }
        let PacketEvent::Complete(p) = last else { panic!("{last:?}") };
        assert_eq!(p.flags(), Flags::ARTIFACT | Flags::LOW_PERFUSION | Flags::LOW_BATTERY);
    }
}
