//! Frame synchronisation: fed accumulators that find Nonin frames in a byte stream.
//!
//! Nonin sends a continuous stream with no gaps the receiver can rely on, so frames are found
//! by their content (spec pp. 8, 12, 16):
//! - DF2: a window of five bytes that starts with START 0x01, has status bit 7 set and a valid
//!   checksum;
//! - DF7: the same without START, so the window must start with a byte with bit 7 set;
//! - DF8: byte 1 is the only byte with bit 7 set.
//!
//! Bytes that are not part of a frame are skipped one at a time (a sliding window), so a frame
//! right after garbage is found again at its first byte. Each run of skipped bytes is reported
//! once, when the next good frame arrives (or every [`MAX_SKIP_RUN`] bytes), with the stream
//! offset of its first byte. A run that is exactly one bad frame is reported with that frame's
//! error ([`Error::BadChecksum`], [`Error::Truncated`], ...); any other run as
//! [`Error::Garbage`], since a DF7 window of garbage is frame-shaped more often than not and
//! calling it a checksum error would mislead. The report does not depend on how the stream was
//! chunked.

use super::frame::{Df8Frame, Format, Frame, DF2_START, DF8_LEN, FRAME_LEN};
use crate::error::Error;

/// A skipped run is reported at least every this many bytes, so a device that sends only
/// garbage is still visible.
pub const MAX_SKIP_RUN: usize = 4096;

/// What a synchroniser found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncEvent<F> {
    /// A frame and the stream offset of its first byte.
    Frame { frame: F, offset: u64 },
    /// Bytes that were skipped: the offset of the first one and why.
    Skipped { offset: u64, error: Error },
}

/// A run of skipped bytes, reported when it ends.
#[derive(Clone, Debug, Default)]
struct SkipRun {
    start: u64,
    count: usize,
    /// The error of the frame-shaped bytes that opened the run, and how many bytes they span.
    cause: Option<(Error, usize)>,
}

impl SkipRun {
    fn add<F>(&mut self, at: u64, n: usize, cause: Option<(Error, usize)>, f: &mut impl FnMut(SyncEvent<F>)) {
        if self.count == 0 {
            self.start = at;
            self.cause = cause;
        }
        self.count += n;
        if self.count >= MAX_SKIP_RUN {
            self.flush(f);
        }
    }

    fn flush<F>(&mut self, f: &mut impl FnMut(SyncEvent<F>)) {
        if self.count > 0 {
            let error = match self.cause.take() {
                Some((e, span)) if span == self.count => e,
                _ => Error::Garbage { skipped: self.count },
            };
            f(SyncEvent::Skipped { offset: self.start, error });
            self.count = 0;
        }
    }
}

/// Finds DF2 or DF7 frames (5 bytes, checksummed).
#[derive(Clone, Debug)]
pub struct FrameSync {
    format: Format,
    buf: [u8; FRAME_LEN],
    len: usize,
    /// Stream offset of the next byte.
    offset: u64,
    skip: SkipRun,
}

impl FrameSync {
    pub fn new(format: Format) -> FrameSync {
        FrameSync { format, buf: [0; FRAME_LEN], len: 0, offset: 0, skip: SkipRun::default() }
    }

    /// Bytes fed since creation.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Drops a partial frame and any unreported skip (after a reconnect the bytes before do not
    /// continue).
    pub fn reset(&mut self) {
        self.len = 0;
        self.skip = SkipRun::default();
    }

    fn can_start(&self, b: u8) -> bool {
        match self.format {
            Format::Df2 => b == DF2_START,
            Format::Df7 => b & 0x80 != 0,
        }
    }

    /// Feeds bytes; every frame and skipped run is passed to `f` in stream order.
    pub fn feed(&mut self, bytes: &[u8], mut f: impl FnMut(SyncEvent<Frame>)) {
        for &b in bytes {
            self.offset += 1;
            if self.len == 0 && !self.can_start(b) {
                self.skip.add(self.offset - 1, 1, None, &mut f);
                continue;
            }
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = b;
            }
            self.len += 1;
            if self.len < FRAME_LEN {
                continue;
            }
            let start = self.offset - FRAME_LEN as u64;
            match Frame::parse_bytes(&self.buf, self.format) {
                Ok(frame) => {
                    self.skip.flush(&mut f);
                    f(SyncEvent::Frame { frame, offset: start });
                    self.len = 0;
                }
                Err(e) => {
                    self.skip.add(start, 1, Some((e, FRAME_LEN)), &mut f);
                    self.buf.copy_within(1.., 0);
                    self.len -= 1;
                    // Drop bytes that cannot start a frame at once.
                    let mut drop = 0;
                    while drop < self.len && !self.can_start(self.buf.get(drop).copied().unwrap_or(0)) {
                        drop += 1;
                    }
                    if drop > 0 {
                        self.skip.add(start + 1, drop, None, &mut f);
                        self.buf.copy_within(drop.., 0);
                        self.len -= drop;
                    }
                }
            }
        }
    }
}

/// Finds DF8 frames (4 bytes, byte 1 the only one with bit 7 set, no checksum).
#[derive(Clone, Debug, Default)]
pub struct Df8Sync {
    buf: [u8; DF8_LEN],
    len: usize,
    offset: u64,
    skip: SkipRun,
}

impl Df8Sync {
    pub fn new() -> Df8Sync {
        Df8Sync::default()
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub fn reset(&mut self) {
        self.len = 0;
        self.skip = SkipRun::default();
    }

    pub fn feed(&mut self, bytes: &[u8], mut f: impl FnMut(SyncEvent<Df8Frame>)) {
        let mut rest = bytes;
        loop {
            // Fast path, the usual case of an aligned stream: whole frames straight from the
            // input, without the byte-by-byte copy. It takes exactly the frames the byte path
            // below would (a start byte followed by three bytes without bit 7), so both paths
            // give the same events for any chunking.
            while self.len == 0 {
                let Some((frame, tail)) = rest.split_first_chunk::<DF8_LEN>() else { break };
                if frame[0] & 0x80 == 0 || (frame[1] | frame[2] | frame[3]) & 0x80 != 0 {
                    break;
                }
                let start = self.offset;
                self.offset += DF8_LEN as u64;
                rest = tail;
                match Df8Frame::parse_bytes(frame) {
                    Ok(frame) => {
                        self.skip.flush(&mut f);
                        f(SyncEvent::Frame { frame, offset: start });
                    }
                    Err(e) => self.skip.add(start, DF8_LEN, Some((e, DF8_LEN)), &mut f),
                }
            }
            let Some((&b, tail)) = rest.split_first() else { return };
            rest = tail;
            self.byte(b, &mut f);
        }
    }

    /// The byte path: resynchronisation, and frames split across `feed` calls.
    fn byte(&mut self, b: u8, mut f: impl FnMut(SyncEvent<Df8Frame>)) {
        self.offset += 1;
        let at = self.offset - 1;
        if b & 0x80 != 0 {
            if self.len > 0 {
                // A new start before the frame was complete: the partial frame is lost.
                let cause = Error::Truncated { needed: DF8_LEN, got: self.len };
                self.skip.add(at - self.len as u64, self.len, Some((cause, self.len)), &mut f);
            }
            self.buf[0] = b;
            self.len = 1;
            return;
        }
        if self.len == 0 {
            self.skip.add(at, 1, None, &mut f);
            return;
        }
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
        }
        self.len += 1;
        if self.len == DF8_LEN {
            self.len = 0;
            let start = at + 1 - DF8_LEN as u64;
            match Df8Frame::parse_bytes(&self.buf) {
                Ok(frame) => {
                    self.skip.flush(&mut f);
                    f(SyncEvent::Frame { frame, offset: start });
                }
                Err(e) => self.skip.add(start, DF8_LEN, Some((e, DF8_LEN)), &mut f),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn run(format: Format, chunks: &[&[u8]]) -> Vec<SyncEvent<Frame>> {
        let mut s = FrameSync::new(format);
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c, |e| out.push(e));
        }
        out
    }

    /// NP-3 frames 2 and 3.
    const F2: [u8; 5] = [0x01, 0x80, 0x80, 0x48, 0x49];
    const F3: [u8; 5] = [0x01, 0x80, 0x80, 0x61, 0x62];

    #[test]
    fn finds_frames_after_garbage_and_reports_the_run_once() {
        let mut stream = Vec::new();
        stream.extend_from_slice(&[0x55, 0x01, 0x01, 0xFF]);
        stream.extend_from_slice(&F2);
        stream.extend_from_slice(&F3);
        let events = run(Format::Df2, &[&stream]);
        assert_eq!(events.len(), 3);
        assert_eq!(events[0], SyncEvent::Skipped { offset: 0, error: Error::Garbage { skipped: 4 } });
        assert!(matches!(events[1], SyncEvent::Frame { offset: 4, .. }));
        assert!(matches!(events[2], SyncEvent::Frame { offset: 9, .. }));
        // One byte at a time: the same events.
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(run(Format::Df2, &bytes), events);
    }

    #[test]
    fn a_bad_checksum_is_named_and_the_next_frame_survives() {
        let mut bad = F2;
        bad[4] ^= 0x10;
        let stream = [bad.as_slice(), F3.as_slice()].concat();
        let events = run(Format::Df2, &[&stream]);
        assert_eq!(events[0], SyncEvent::Skipped { offset: 0, error: Error::BadChecksum { expected: 0x49, found: 0x59 } });
        assert!(matches!(events[1], SyncEvent::Frame { offset: 5, frame: Frame { float: 0x61, .. } }));
        assert_eq!(events.len(), 2);
    }

    #[test]
    fn df7_resynchronises_on_status_bit7_and_checksum() {
        let f = [0x80, 0x01, 0x02, 0x48, 0xCB];
        let stream = [&[0x90u8, 0x10][..], &f, &f].concat();
        let events = run(Format::Df7, &[&stream[..3], &stream[3..]]);
        assert_eq!(events[0], SyncEvent::Skipped { offset: 0, error: Error::Garbage { skipped: 2 } });
        assert!(matches!(events[1], SyncEvent::Frame { offset: 2, .. }));
        assert!(matches!(events[2], SyncEvent::Frame { offset: 7, .. }));
    }

    #[test]
    fn df8_truncated_frame_and_garbage() {
        let mut s = Df8Sync::new();
        let mut out = Vec::new();
        // Garbage, a frame cut after 2 bytes, then NP-1 and NP-2.
        s.feed(&[0x11, 0x22, 0x80, 0x48, 0x80, 0x48, 0x61, 0x00, 0x81, 0x16, 0x5F, 0x20], |e| out.push(e));
        assert_eq!(out[0], SyncEvent::Skipped { offset: 0, error: Error::Garbage { skipped: 4 } });
        assert!(matches!(out[1], SyncEvent::Frame { offset: 4, frame: Df8Frame { hr: 72, spo2: 97, .. } }));
        assert!(matches!(out[2], SyncEvent::Frame { offset: 8, frame: Df8Frame { hr: 150, spo2: 95, .. } }));
        assert_eq!(out.len(), 3);
        let mut s = Df8Sync::new();
        let mut out = Vec::new();
        s.feed(&[0x80, 0x48, 0x80, 0x48, 0x61, 0x00], |e| out.push(e));
        assert_eq!(out[0], SyncEvent::Skipped { offset: 0, error: Error::Truncated { needed: 4, got: 2 } });
    }

    #[test]
    fn endless_garbage_is_reported_in_bounded_runs() {
        let mut s = FrameSync::new(Format::Df2);
        let mut n = 0;
        s.feed(&[0x55; 3 * MAX_SKIP_RUN], |e| {
            assert!(matches!(e, SyncEvent::Skipped { error: Error::Garbage { skipped: MAX_SKIP_RUN }, .. }));
            n += 1;
        });
        assert_eq!(n, 3);
    }
}
