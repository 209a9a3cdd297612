//! MLLP, the Minimal Lower Layer Protocol that carries HL7 v2 over TCP (HL7 v2.6 Appendix C).
//!
//! ```text
//! | 0x0B | HL7 message (segments ended by CR) | 0x1C | 0x0D |
//! ```

use alloc::vec::Vec;

use crate::error::Error;

pub const START_BLOCK: u8 = 0x0B;
pub const END_BLOCK: u8 = 0x1C;
pub const CARRIAGE_RETURN: u8 = 0x0D;

/// Wraps a message in MLLP framing.
pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 3);
    out.push(START_BLOCK);
    out.extend_from_slice(message);
    out.push(END_BLOCK);
    out.push(CARRIAGE_RETURN);
    out
}

/// A fed MLLP deframer with a bound on the message size.
#[derive(Debug)]
pub struct Deframer {
    buf: Vec<u8>,
    max: usize,
    in_block: bool,
    saw_end: bool,
}

/// What one call to [`Deframer::feed`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    Message(Vec<u8>),
    /// Bytes outside a block, or a block longer than the bound.
    Rejected(Error),
}

impl Deframer {
    pub fn new(max: usize) -> Deframer {
        Deframer { buf: Vec::new(), max, in_block: false, saw_end: false }
    }

    /// Feeds bytes; complete messages and rejections are appended to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Frame>) {
        let mut garbage = 0usize;
        for &b in bytes {
            if !self.in_block {
                if b == START_BLOCK {
                    if garbage > 0 {
                        out.push(Frame::Rejected(Error::Garbage { skipped: garbage }));
                        garbage = 0;
                    }
                    self.in_block = true;
                    self.saw_end = false;
                    self.buf.clear();
                } else {
                    garbage += 1;
                }
                continue;
            }
            if self.saw_end {
                self.in_block = false;
                self.saw_end = false;
                if b == CARRIAGE_RETURN {
                    out.push(Frame::Message(core::mem::take(&mut self.buf)));
                } else {
                    out.push(Frame::Rejected(Error::BadField { field: "mllp end block", value: b as u32 }));
                }
                continue;
            }
            match b {
                END_BLOCK => self.saw_end = true,
                START_BLOCK => {
                    // A new block before the end of this one: the previous message is truncated.
                    out.push(Frame::Rejected(Error::Truncated { needed: self.buf.len() + 2, got: self.buf.len() }));
                    self.buf.clear();
                }
                _ => {
                    if self.buf.len() >= self.max {
                        out.push(Frame::Rejected(Error::TooLong { max: self.max }));
                        self.in_block = false;
                        self.buf.clear();
                    } else {
                        self.buf.push(b);
                    }
                }
            }
        }
        if garbage > 0 {
            out.push(Frame::Rejected(Error::Garbage { skipped: garbage }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// HP-2 from the reference vectors: an MLLP-framed ACK of MSG00001.
    const HP2: &[u8] = b"\x0bMSH|^~\\&|HIS|HOSP|EDGEGW^0012345678ABCDEF^EUI-64|ICU|20240315102206+0000||ACK^R01^ACK|ACK00001|P|2.6\rMSA|AA|MSG00001\r\x1c\r";

    #[test]
    fn deframes_hp2_in_any_chunking() {
        for chunk in 1..HP2.len() {
            let mut d = Deframer::new(4096);
            let mut out = Vec::new();
            for c in HP2.chunks(chunk) {
                d.feed(c, &mut out);
            }
            assert_eq!(out.len(), 1, "chunk {chunk}");
            let Frame::Message(m) = &out[0] else { panic!("{out:?}") };
            let ack = crate::encode::hl7v2::parse_ack(core::str::from_utf8(m).unwrap()).unwrap();
            assert!(ack.accepted());
            assert_eq!(ack.message_id, "MSG00001");
        }
        assert_eq!(frame(&HP2[1..HP2.len() - 2]), HP2);
    }

    #[test]
    fn rejects_garbage_overlong_and_bad_trailer() {
        let mut d = Deframer::new(8);
        let mut out = Vec::new();
        d.feed(b"xx\x0bshort\x1c\r\x0b0123456789\x1c\r\x0bab\x1cX", &mut out);
        assert_eq!(out[0], Frame::Rejected(Error::Garbage { skipped: 2 }));
        assert_eq!(out[1], Frame::Message(b"short".to_vec()));
        assert_eq!(out[2], Frame::Rejected(Error::TooLong { max: 8 }));
        // The rest of the overlong block is garbage until the next start block.
        assert!(matches!(out[3], Frame::Rejected(Error::Garbage { .. })));
        assert_eq!(out[4], Frame::Rejected(Error::BadField { field: "mllp end block", value: b'X' as u32 }));
    }
}
