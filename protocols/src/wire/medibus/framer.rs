//! The MEDIBUS stream accumulator: finds `ESC ... CR` and `SOH ... CR` in a byte stream.
//!
//! - A message runs from ESC or SOH to the next CR; an ESC or SOH before the CR starts a new
//!   message and the cut one is reported.
//! - Bytes with bit 7 set belong to the realtime extension (sync byte 0xD0, sync commands
//!   0xC0–0xCF, data bytes with bit 7 set; MEDIBUS "Realtime-Data Records"), which may be
//!   interleaved with slow data: they are skipped without disturbing the message around them.
//! - DC1/DC3 (software handshake) are skipped; CAN aborts the message in progress
//!   (MEDIBUS "Software Handshaking", "Aborting data transmission").
//! - A message longer than the buffer is reported once and skipped up to its CR.
//! - Other bytes outside a message are garbage, reported as one run when the next message
//!   starts (so the report does not depend on the chunking).

use super::frame::{CAN, CR, DC1, DC3, ESC, SOH};
use crate::error::Error;

/// What the framer found.
#[derive(Debug, PartialEq, Eq)]
pub enum FramerEvent<'a> {
    /// A message without its CR, and the stream offset of its first byte.
    Message(&'a [u8], u64),
    /// Bytes that were dropped: the offset of the first one and why.
    Skipped { offset: u64, error: Error },
}

/// Accumulates messages in a buffer of `N` bytes.
#[derive(Clone, Debug)]
pub struct Framer<const N: usize> {
    buf: [u8; N],
    len: usize,
    in_message: bool,
    overflowed: bool,
    /// Stream offset of the message's first byte.
    start: u64,
    offset: u64,
    garbage_start: u64,
    garbage: usize,
}

impl<const N: usize> Default for Framer<N> {
    fn default() -> Self {
        Framer::new()
    }
}

impl<const N: usize> Framer<N> {
    pub const fn new() -> Framer<N> {
        Framer { buf: [0; N], len: 0, in_message: false, overflowed: false, start: 0, offset: 0, garbage_start: 0, garbage: 0 }
    }

    /// Bytes fed since creation.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Drops a partial message and unreported garbage (after a reconnect).
    pub fn reset(&mut self) {
        self.len = 0;
        self.in_message = false;
        self.overflowed = false;
        self.garbage = 0;
    }

    fn flush_garbage(&mut self, f: &mut impl FnMut(FramerEvent<'_>)) {
        if self.garbage > 0 {
            f(FramerEvent::Skipped { offset: self.garbage_start, error: Error::Garbage { skipped: self.garbage } });
            self.garbage = 0;
        }
    }

    pub fn feed(&mut self, bytes: &[u8], mut f: impl FnMut(FramerEvent<'_>)) {
        let mut i = 0;
        while let Some(&b) = bytes.get(i) {
            // Fast path: the ordinary bytes of a message are copied as one run.
            if self.in_message && !self.overflowed && !SPECIAL[b as usize] {
                let run = bytes.get(i..).unwrap_or(&[]).iter().position(|&c| SPECIAL[c as usize]).unwrap_or(bytes.len() - i);
                // A run that does not fit takes the byte-by-byte path, which reports it.
                if let Some(dst) = self.buf.get_mut(self.len..self.len.saturating_add(run)) {
                    dst.copy_from_slice(bytes.get(i..i + run).unwrap_or(&[]));
                    self.len += run;
                    self.offset += run as u64;
                    i += run;
                    continue;
                }
            }
            i += 1;
            self.push(b, &mut f);
        }
    }

    fn push(&mut self, b: u8, f: &mut impl FnMut(FramerEvent<'_>)) {
        let at = self.offset;
        self.offset += 1;
        match b {
            _ if b & 0x80 != 0 => {}
            DC1 | DC3 => {}
            CAN => {
                self.in_message = false;
                self.len = 0;
            }
            ESC | SOH => {
                if self.in_message && !self.overflowed {
                    f(FramerEvent::Skipped { offset: self.start, error: Error::BadText { field: "medibus message without CR" } });
                }
                self.flush_garbage(f);
                self.in_message = true;
                self.overflowed = false;
                self.start = at;
                self.len = 0;
                if let Some(slot) = self.buf.get_mut(0) {
                    *slot = b;
                    self.len = 1;
                }
            }
            CR if self.in_message => {
                self.in_message = false;
                if !self.overflowed {
                    f(FramerEvent::Message(self.buf.get(..self.len).unwrap_or(&[]), self.start));
                }
                self.len = 0;
            }
            _ if self.in_message => {
                if self.overflowed {
                    return;
                }
                match self.buf.get_mut(self.len) {
                    Some(slot) => {
                        *slot = b;
                        self.len += 1;
                    }
                    None => {
                        self.overflowed = true;
                        f(FramerEvent::Skipped { offset: self.start, error: Error::TooLong { max: N } });
                    }
                }
            }
            _ => {
                if self.garbage == 0 {
                    self.garbage_start = at;
                }
                self.garbage += 1;
                if self.garbage >= 4096 {
                    self.flush_garbage(f);
                }
            }
        }
    }
}

/// Bytes that end, start or interrupt a message, or are skipped inside one: everything the
/// fast path must hand to the byte-by-byte path.
static SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = i >= 0x80 || matches!(i as u8, ESC | SOH | CR | CAN | DC1 | DC3);
        i += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn run<const N: usize>(chunks: &[&[u8]]) -> Vec<(Vec<u8>, Option<Error>, u64)> {
        let mut fr = Framer::<N>::new();
        let mut out = Vec::new();
        for c in chunks {
            fr.feed(c, |e| match e {
                FramerEvent::Message(m, off) => out.push((m.to_vec(), None, off)),
                FramerEvent::Skipped { offset, error } => out.push((Vec::new(), Some(error), offset)),
            });
        }
        out
    }

    #[test]
    fn messages_garbage_realtime_and_cut_messages() {
        // Garbage, DP-2 with a realtime byte inside, a cut command, DP-1.
        let stream = b"ab\x01$DC  72\xd3E1  71EB  97AA\r\x1b$3\x1b$3F\r";
        let got = run::<64>(&[stream]);
        assert_eq!(got[0], (Vec::new(), Some(Error::Garbage { skipped: 2 }), 0));
        assert_eq!(got[1], (b"\x01$DC  72E1  71EB  97AA".to_vec(), None, 2));
        assert_eq!(got[2], (Vec::new(), Some(Error::BadText { field: "medibus message without CR" }), 26));
        assert_eq!(got[3], (b"\x1b$3F".to_vec(), None, 29));
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(run::<64>(&bytes), got);
    }

    #[test]
    fn overlong_messages_are_reported_once_and_skipped() {
        let got = run::<8>(&[b"\x01$0123456789\r\x1b03B\r"]);
        assert_eq!(got[0], (Vec::new(), Some(Error::TooLong { max: 8 }), 0));
        assert_eq!(got[1], (b"\x1b03B".to_vec(), None, 13));
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn can_aborts_the_message_in_progress() {
        let got = run::<16>(&[b"\x01$DC\x18  72\r\x1b03B\r"]);
        assert_eq!(got.len(), 2, "{got:?}");
        // "  72" and the stray CR after the abort are garbage.
        assert_eq!(got[0].1, Some(Error::Garbage { skipped: 5 }));
        assert_eq!(got[1].0, b"\x1b03B".to_vec());
    }
}
