//! MIB/RS232 framing: BOF/EOF delimiters, byte transparency and the PPP frame check sequence
//! (Data Export Interface Programming Guide, ch. 4 "Transport Protocols for the MIB/RS232
//! Interface": Framing, Header Information, Frame Check Sequence Field, Transparency, Frame Abort).
//!
//! ```text
//! +----+-------------+-------------+--------------------+-------------+----+
//! | C0 | protocol 11 | msg type 01 | length: u16 BE     | user data   | FCS: u16, low  | C1 |
//! |BOF |             |             | = user data only   | (length B)  | byte first     |EOF |
//! +----+-------------+-------------+--------------------+-------------+----------------+----+
//!       \__________________ covered by the FCS (un-escaped) ________/
//!       \_______________ transparency applies to every byte between BOF and EOF ___________/
//! ```
//!
//! - Transparency: 0xC0, 0xC1 and 0x7D between BOF and EOF are sent as `7D, byte ^ 0x20`
//!   (VSC `WriteBuffer`, ICE `IntellivueByteSplitter`; PPP RFC 1662 §4.2).
//! - The FCS bytes are escaped too: ICE writes the FCS through its escaping stream and PPP
//!   escapes the FCS; VSC's sender leaves them raw but its receiver un-escapes everything
//!   between BOF and EOF, so escaping on send and un-escaping on receive interoperates with both.
//! - FCS: PPP FCS-16 (RFC 1662 §C.2): reflected polynomial 0x8408, initial 0xFFFF, the one's
//!   complement sent low byte first; good-frame residue 0xF0B8 (VSC `CRCmethods`, ICE
//!   `FCSOutputStream` with `GOOD_FINAL_FCS_VALUE = 0xf0b8`). This is the CRC catalogue's
//!   CRC-16/IBM-SDLC (= X-25), so the `crc` crate computes it; PP-1 and PP-2 prove the match.
//! - Frame abort: `7D C1` ends the frame and discards it (VSC `FrameAbort = {0x7d, 0xc1}`; the
//!   guide's "Frame Abort" section) **[single source for the byte pair]**.
//! - Header: protocol id 0x11 (data export), message type 0x01, length of the user data only
//!   (VSC, ICE `readFrame`, protocols.md §3).

use crc::{Crc, Table, CRC_16_IBM_SDLC};

use crate::error::{Error, Result};

pub const BOF: u8 = 0xC0;
pub const EOF: u8 = 0xC1;
pub const ESC: u8 = 0x7D;
/// The bit flipped in an escaped byte.
pub const ESC_XOR: u8 = 0x20;
/// Header protocol id: Data Export protocol.
pub const PROTOCOL_ID: u8 = 0x11;
/// Header message type: Data Export message.
pub const MSG_TYPE: u8 = 0x01;
pub const HEADER_LEN: usize = 4;
pub const FCS_LEN: usize = 2;

/// Slice-by-16 tables (8 KiB of constants): the FCS runs over every received byte.
const FCS16: Crc<u16, Table<16>> = Crc::<u16, Table<16>>::new(&CRC_16_IBM_SDLC);

/// The value to transmit (already complemented), over header and user data, un-escaped.
pub fn fcs(bytes: &[u8]) -> u16 {
    FCS16.checksum(bytes)
}

fn needs_escape(b: u8) -> bool {
    matches!(b, BOF | EOF | ESC)
}

/// The most bytes [`encode`] writes for `user_len` bytes of user data (every byte escaped).
pub const fn max_encoded_len(user_len: usize) -> usize {
    2 + 2 * (HEADER_LEN + user_len + FCS_LEN)
}

fn put(out: &mut [u8], pos: &mut usize, b: u8) -> Result<()> {
    let slot = out.get_mut(*pos).ok_or(Error::BufferTooSmall { needed: *pos + 1 })?;
    *slot = b;
    *pos += 1;
    Ok(())
}

fn put_escaped(out: &mut [u8], pos: &mut usize, b: u8) -> Result<()> {
    if needs_escape(b) {
        put(out, pos, ESC)?;
        put(out, pos, b ^ ESC_XOR)
    } else {
        put(out, pos, b)
    }
}

/// Writes one complete frame (BOF … EOF) carrying `user_data`; returns the bytes written.
pub fn encode(user_data: &[u8], out: &mut [u8]) -> Result<usize> {
    let len = u16::try_from(user_data.len()).map_err(|_| Error::TooLong { max: u16::MAX as usize })?;
    let [lh, ll] = len.to_be_bytes();
    let header = [PROTOCOL_ID, MSG_TYPE, lh, ll];
    let mut digest = FCS16.digest();
    digest.update(&header);
    digest.update(user_data);
    let fcs = digest.finalize().to_le_bytes();
    let mut pos = 0;
    put(out, &mut pos, BOF)?;
    for &b in header.iter().chain(user_data).chain(fcs.iter()) {
        put_escaped(out, &mut pos, b)?;
    }
    put(out, &mut pos, EOF)?;
    Ok(pos)
}

/// [`encode`] into a new vector.
#[cfg(feature = "alloc")]
pub fn encode_vec(user_data: &[u8]) -> alloc::vec::Vec<u8> {
    let mut out = alloc::vec![0u8; max_encoded_len(user_data.len())];
    match encode(user_data, &mut out) {
        Ok(n) => out.truncate(n),
        // Only a user data longer than 65535 bytes fails; nothing medgw builds.
        Err(_) => out.clear(),
    }
    out
}

/// Applies transparency to `data` (no delimiters); returns the bytes written.
pub fn escape(data: &[u8], out: &mut [u8]) -> Result<usize> {
    let mut pos = 0;
    for &b in data {
        put_escaped(out, &mut pos, b)?;
    }
    Ok(pos)
}

/// Removes transparency from the bytes between BOF and EOF. A raw delimiter or a dangling
/// escape is an error: the caller's bytes are not the inside of one frame.
pub fn unescape(data: &[u8], out: &mut [u8]) -> Result<usize> {
    let mut pos = 0;
    let mut esc = false;
    for &b in data {
        if b == BOF || b == EOF {
            return Err(Error::BadField { field: "unescaped delimiter", value: b as u32 });
        }
        if esc {
            put(out, &mut pos, b ^ ESC_XOR)?;
            esc = false;
        } else if b == ESC {
            esc = true;
        } else {
            put(out, &mut pos, b)?;
        }
    }
    if esc {
        return Err(Error::Truncated { needed: data.len() + 1, got: data.len() });
    }
    Ok(pos)
}

/// What one byte fed to a [`Deframer`] completed.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameEvent<'a> {
    Pending,
    /// A frame whose header and FCS check out: its user data, and the stream offset of its BOF.
    Frame {
        user_data: &'a [u8],
        offset: u64,
    },
    /// Bytes that were not a good frame: the offset of their first byte and why.
    Rejected {
        offset: u64,
        error: Error,
    },
}

/// A [`FrameEvent`] before the frame's bytes are lent out.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Pending,
    Frame { offset: u64 },
    Rejected { offset: u64, error: Error },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between frames: waiting for BOF; other bytes are garbage.
    Hunt,
    /// After BOF: collecting un-escaped bytes.
    Frame,
    /// After an escape byte inside a frame.
    Escaped,
    /// The frame was already rejected (overlong, bad header): skip to the next delimiter.
    Discard,
}

/// A fed, non-allocating deframer with a fixed buffer of `N` un-escaped bytes (header, user
/// data and FCS). It checks the declared length against `N` as soon as the header is in, so a
/// corrupt length costs nothing, and resynchronises on the next BOF after garbage, a bad FCS, a
/// truncated or an aborted frame.
#[derive(Debug)]
pub struct Deframer<const N: usize> {
    buf: [u8; N],
    len: usize,
    state: State,
    /// Stream offset of the current frame's BOF.
    frame_start: u64,
    /// Bytes fed so far.
    offset: u64,
    garbage: usize,
    garbage_start: u64,
}

impl<const N: usize> Default for Deframer<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Deframer<N> {
    pub const fn new() -> Self {
        Deframer { buf: [0; N], len: 0, state: State::Hunt, frame_start: 0, offset: 0, garbage: 0, garbage_start: 0 }
    }

    /// Bytes fed so far: the stream offset of the next byte.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Drops a partial frame (after a reconnect); the stream offset keeps counting.
    pub fn clear(&mut self) {
        self.len = 0;
        self.state = State::Hunt;
        self.garbage = 0;
    }

    /// Starts a frame at the BOF just fed (offset `at`); returns the garbage report, if any.
    fn begin(&mut self, at: u64) -> Step {
        let skipped = core::mem::take(&mut self.garbage);
        self.state = State::Frame;
        self.len = 0;
        self.frame_start = at;
        if skipped > 0 {
            Step::Rejected { offset: self.garbage_start, error: Error::Garbage { skipped } }
        } else {
            Step::Pending
        }
    }

    fn store(&mut self, b: u8) -> Step {
        let Some(slot) = self.buf.get_mut(self.len) else {
            self.state = State::Discard;
            return Step::Rejected { offset: self.frame_start, error: Error::TooLong { max: N } };
        };
        *slot = b;
        self.len += 1;
        if self.len == HEADER_LEN {
            if let Err(error) = self.check_header() {
                self.state = State::Discard;
                return Step::Rejected { offset: self.frame_start, error };
            }
        }
        Step::Pending
    }

    /// Checks the four header bytes, including the declared length against the buffer bound.
    fn check_header(&self) -> Result<()> {
        let h = self.buf.get(..HEADER_LEN).ok_or(Error::Truncated { needed: HEADER_LEN, got: self.len })?;
        if h[0] != PROTOCOL_ID {
            return Err(Error::BadField { field: "frame protocol id", value: h[0] as u32 });
        }
        if h[1] != MSG_TYPE {
            return Err(Error::BadField { field: "frame message type", value: h[1] as u32 });
        }
        let declared = u16::from_be_bytes([h[2], h[3]]) as usize;
        if declared + HEADER_LEN + FCS_LEN > N {
            return Err(Error::TooLong { max: N });
        }
        Ok(())
    }

    /// The frame length the header declares (header, user data, FCS), or the least possible
    /// frame before the header is complete.
    fn expected_len(&self) -> usize {
        match self.buf.get(2..HEADER_LEN) {
            Some(&[h, l]) if self.len >= HEADER_LEN => u16::from_be_bytes([h, l]) as usize + HEADER_LEN + FCS_LEN,
            _ => HEADER_LEN + FCS_LEN,
        }
    }

    fn finish(&mut self) -> Step {
        self.state = State::Hunt;
        let offset = self.frame_start;
        let len = self.len;
        if len < HEADER_LEN + FCS_LEN {
            return Step::Rejected { offset, error: Error::Truncated { needed: HEADER_LEN + FCS_LEN, got: len } };
        }
        let expected = self.expected_len();
        if len < expected {
            return Step::Rejected { offset, error: Error::Truncated { needed: expected, got: len } };
        }
        if len > expected {
            return Step::Rejected { offset, error: Error::BadField { field: "frame length", value: len as u32 } };
        }
        let Some((body, fcs_bytes)) = self.buf.get(..len).and_then(|f| f.split_last_chunk::<FCS_LEN>()) else {
            return Step::Rejected { offset, error: Error::Truncated { needed: expected, got: len } };
        };
        let found = u16::from_le_bytes(*fcs_bytes);
        let expected_fcs = fcs(body);
        if found != expected_fcs {
            return Step::Rejected { offset, error: Error::BadChecksum { expected: expected_fcs as u32, found: found as u32 } };
        }
        Step::Frame { offset }
    }

    fn event(&self, step: Step) -> FrameEvent<'_> {
        match step {
            Step::Pending => FrameEvent::Pending,
            Step::Rejected { offset, error } => FrameEvent::Rejected { offset, error },
            Step::Frame { offset } => {
                let user_data = self.buf.get(HEADER_LEN..self.len.saturating_sub(FCS_LEN)).unwrap_or(&[]);
                FrameEvent::Frame { user_data, offset }
            }
        }
    }

    /// Feeds one byte.
    pub fn push(&mut self, b: u8) -> FrameEvent<'_> {
        let step = self.step(b);
        self.event(step)
    }

    /// Feeds bytes until one completes a frame or a rejection; returns how many bytes were
    /// consumed and the event (`Pending` when all were consumed without one). Runs of ordinary
    /// bytes inside a frame are copied at once, which is what makes decoding fast.
    pub fn feed(&mut self, bytes: &[u8]) -> (usize, FrameEvent<'_>) {
        let mut i = 0;
        while let Some(rest) = bytes.get(i..).filter(|r| !r.is_empty()) {
            if self.state == State::Frame && self.len >= HEADER_LEN {
                let run = rest.iter().position(|&b| needs_escape(b)).unwrap_or(rest.len());
                let n = run.min(N.saturating_sub(self.len));
                if let (Some(dst), Some(src)) = (self.buf.get_mut(self.len..self.len + n), rest.get(..n)) {
                    if n > 0 {
                        dst.copy_from_slice(src);
                        self.len += n;
                        self.offset += n as u64;
                        i += n;
                        continue;
                    }
                }
            }
            let Some(&b) = rest.first() else { break };
            i += 1;
            let step = self.step(b);
            if !matches!(step, Step::Pending) {
                return (i, self.event(step));
            }
        }
        (i, FrameEvent::Pending)
    }

    fn step(&mut self, b: u8) -> Step {
        let at = self.offset;
        self.offset += 1;
        match (self.state, b) {
            (State::Hunt, BOF) => self.begin(at),
            (State::Hunt, _) => {
                if self.garbage == 0 {
                    self.garbage_start = at;
                }
                self.garbage = self.garbage.saturating_add(1);
                Step::Pending
            }
            // A BOF inside a frame: the previous frame lost its end. Report it and start over.
            (State::Frame | State::Escaped, BOF) => {
                let offset = self.frame_start;
                let (needed, got) = (self.expected_len(), self.len);
                self.begin(at);
                Step::Rejected { offset, error: Error::Truncated { needed, got } }
            }
            (State::Discard, BOF) => self.begin(at),
            (State::Frame, EOF) => self.finish(),
            (State::Escaped, EOF) => {
                self.state = State::Hunt;
                Step::Rejected { offset: self.frame_start, error: Error::Refused { reason: "frame aborted by the sender (7D C1)" } }
            }
            (State::Discard, EOF) => {
                self.state = State::Hunt;
                Step::Pending
            }
            (State::Discard, _) => Step::Pending,
            (State::Frame, ESC) => {
                self.state = State::Escaped;
                Step::Pending
            }
            (State::Frame, _) => self.store(b),
            (State::Escaped, _) => {
                self.state = State::Frame;
                self.store(b ^ ESC_XOR)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PP-1 (protocols.md §3): the numeric poll request frame, FCS bytes 8E 95.
    pub(crate) const PP1_FRAME: [u8; 44] = [
        0xC0, 0x11, 0x01, 0x00, 0x24, 0xE1, 0x00, 0x00, 0x02, 0x00, 0x01, 0x00, 0x1C, 0x00, 0x00, 0x00, 0x07, 0x00, 0x16, 0x00, 0x21, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x16, 0x00, 0x08, 0x00, 0x01, 0x00, 0x01, 0x00, 0x06, 0x00, 0x00, 0x8E, 0x95, 0xC1,
    ];
    /// PP-2 (protocols.md §3): the MDS-create event result frame, FCS bytes 39 17.
    pub(crate) const PP2_FRAME: [u8; 36] = [
        0xC0, 0x11, 0x01, 0x00, 0x1C, 0xE1, 0x00, 0x00, 0x02, 0x00, 0x02, 0x00, 0x14, 0x00, 0x01, 0x00, 0x01, 0x00, 0x0E, 0x00, 0x21, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x0A, 0xBD, 0x00, 0x0D, 0x06, 0x00, 0x00, 0x39, 0x17, 0xC1,
    ];

    fn feed<const N: usize>(d: &mut Deframer<N>, bytes: &[u8]) -> (alloc::vec::Vec<alloc::vec::Vec<u8>>, alloc::vec::Vec<(u64, Error)>) {
        let mut frames = alloc::vec::Vec::new();
        let mut rejects = alloc::vec::Vec::new();
        for &b in bytes {
            match d.push(b) {
                FrameEvent::Pending => {}
                FrameEvent::Frame { user_data, .. } => frames.push(user_data.to_vec()),
                FrameEvent::Rejected { offset, error } => rejects.push((offset, error)),
            }
        }
        (frames, rejects)
    }

    #[test]
    fn crc_16_ibm_sdlc_is_the_ppp_fcs_pp1_pp2() {
        // PP-1: header + user data (without BOF, FCS, EOF) gives 0x958E, sent as 8E 95.
        assert_eq!(fcs(&PP1_FRAME[1..41]), 0x958E);
        // PP-2: sent as 39 17.
        assert_eq!(fcs(&PP2_FRAME[1..33]), 0x1739);
        // The catalogue check value of CRC-16/IBM-SDLC (X-25), which RFC 1662's table computes.
        assert_eq!(fcs(b"123456789"), 0x906E);
    }

    #[test]
    fn ppp_residue_over_a_good_frame() {
        // RFC 1662 §C.2: running the uncomplemented FCS over data + transmitted FCS gives 0xF0B8;
        // the catalogue's final XOR turns that into 0x0F47 for `checksum`.
        assert_eq!(fcs(&PP1_FRAME[1..43]), 0xF0B8 ^ 0xFFFF);
    }

    #[test]
    fn encoder_produces_pp1_and_pp2() {
        let mut out = [0u8; 128];
        let n = encode(&PP1_FRAME[5..41], &mut out).unwrap();
        assert_eq!(&out[..n], &PP1_FRAME[..]);
        let n = encode(&PP2_FRAME[5..33], &mut out).unwrap();
        assert_eq!(&out[..n], &PP2_FRAME[..]);
    }

    #[test]
    fn deframer_accepts_pp1_and_pp2_back_to_back() {
        let mut d = Deframer::<256>::new();
        let mut stream = PP1_FRAME.to_vec();
        stream.extend_from_slice(&PP2_FRAME);
        let (frames, rejects) = feed(&mut d, &stream);
        assert!(rejects.is_empty(), "{rejects:?}");
        assert_eq!(frames, [PP1_FRAME[5..41].to_vec(), PP2_FRAME[5..33].to_vec()]);
    }

    #[test]
    fn escapes_every_delimiter_including_the_fcs_and_length() {
        // User data full of the special bytes; search for one whose FCS has a special byte too.
        let mut found_fcs_escape = false;
        for seed in 0u8..=255 {
            let data = [0xC0, 0x7D, seed, 0xC1, 0x20];
            let mut out = [0u8; 64];
            let n = encode(&data, &mut out).unwrap();
            let inner = &out[1..n - 1];
            assert!(!inner.contains(&BOF) && !inner.contains(&EOF), "raw delimiter in {inner:02X?}");
            let f = fcs(&[0x11, 0x01, 0x00, 0x05, 0xC0, 0x7D, seed, 0xC1, 0x20]).to_le_bytes();
            found_fcs_escape |= f.iter().any(|b| needs_escape(*b));
            let mut d = Deframer::<64>::new();
            let (frames, rejects) = feed(&mut d, &out[..n]);
            assert!(rejects.is_empty());
            assert_eq!(frames, [data.to_vec()]);
        }
        assert!(found_fcs_escape, "no seed exercised an escaped FCS byte");
        // A declared length of 0x7D (125 bytes) is escaped in the header as well.
        let data = [0u8; 0x7D];
        let mut out = [0u8; 300];
        let n = encode(&data, &mut out).unwrap();
        assert_eq!(&out[..6], &[0xC0, 0x11, 0x01, 0x00, 0x7D, 0x5D]);
        assert_eq!(n, 1 + 5 + 0x7D + 2 + 1);
    }

    #[test]
    fn bad_fcs_is_rejected_with_the_frame_offset_and_the_next_frame_decodes() {
        let mut stream = alloc::vec![0x55, 0x66];
        let mut bad = PP1_FRAME;
        bad[41] ^= 0x01;
        stream.extend_from_slice(&bad);
        stream.extend_from_slice(&PP2_FRAME);
        let mut d = Deframer::<256>::new();
        let (frames, rejects) = feed(&mut d, &stream);
        assert_eq!(frames, [PP2_FRAME[5..33].to_vec()]);
        assert_eq!(rejects[0], (0, Error::Garbage { skipped: 2 }));
        assert_eq!(rejects[1], (2, Error::BadChecksum { expected: 0x958E, found: 0x958F }));
        assert_eq!(rejects.len(), 2);
    }

    #[test]
    fn truncated_frame_is_reported_when_the_next_bof_arrives() {
        let mut stream = PP1_FRAME[..20].to_vec();
        stream.extend_from_slice(&PP2_FRAME);
        let mut d = Deframer::<256>::new();
        let (frames, rejects) = feed(&mut d, &stream);
        assert_eq!(frames.len(), 1);
        assert_eq!(rejects, [(0, Error::Truncated { needed: 42, got: 19 })]);
        // A frame ended early by EOF: the declared length says what was missing.
        let mut short = PP2_FRAME[..20].to_vec();
        short.push(EOF);
        let (frames, rejects) = feed(&mut d, &short);
        assert!(frames.is_empty());
        assert_eq!(rejects, [(PP1_FRAME[..20].len() as u64 + PP2_FRAME.len() as u64, Error::Truncated { needed: 34, got: 19 })]);
    }

    #[test]
    fn declared_length_beyond_the_buffer_is_refused_before_buffering() {
        let mut d = Deframer::<64>::new();
        let (frames, rejects) = feed(&mut d, &[0xC0, 0x11, 0x01, 0x10, 0x00, 1, 2, 3, 0xC1]);
        assert!(frames.is_empty());
        assert_eq!(rejects, [(0, Error::TooLong { max: 64 })]);
        // Wrong protocol id: rejected at the fourth byte, rest skipped, next frame fine.
        let mut stream = alloc::vec![0xC0, 0x12, 0x01, 0x00, 0x00, 0xAA, 0xC1];
        stream.extend_from_slice(&PP2_FRAME);
        let mut d = Deframer::<64>::new();
        let (frames, rejects) = feed(&mut d, &stream);
        assert_eq!(frames.len(), 1);
        assert_eq!(rejects, [(0, Error::BadField { field: "frame protocol id", value: 0x12 })]);
    }

    #[test]
    fn frame_abort_discards_the_frame() {
        let mut stream = PP1_FRAME[..10].to_vec();
        stream.extend_from_slice(&[ESC, EOF]);
        stream.extend_from_slice(&PP2_FRAME);
        let mut d = Deframer::<256>::new();
        let (frames, rejects) = feed(&mut d, &stream);
        assert_eq!(frames.len(), 1);
        assert_eq!(rejects.len(), 1);
        assert_eq!(rejects[0].0, 0);
        assert_eq!(rejects[0].1.reason(), "refused");
    }

    #[test]
    fn unescape_inverts_escape_and_rejects_raw_delimiters() {
        let data = [0x00, 0xC0, 0xC1, 0x7D, 0x5D, 0xE0, 0xFF];
        let mut esc = [0u8; 32];
        let n = escape(&data, &mut esc).unwrap();
        assert_eq!(&esc[..n], &[0x00, 0x7D, 0xE0, 0x7D, 0xE1, 0x7D, 0x5D, 0x5D, 0xE0, 0xFF]);
        let mut back = [0u8; 32];
        let m = unescape(&esc[..n], &mut back).unwrap();
        assert_eq!(&back[..m], &data);
        assert!(unescape(&[0x01, 0xC0], &mut back).is_err());
        assert!(unescape(&[0x01, 0x7D], &mut back).is_err());
        assert_eq!(encode(&data, &mut [0u8; 4]), Err(Error::BufferTooSmall { needed: 5 }));
    }
}
