//! Fed, non-allocating stream accumulators shared by the line-oriented protocols.
//!
//! Each accumulator owns a fixed buffer (const generic) and is fed a byte at a time or a slice
//! at a time; it yields complete frames and reports overlong input instead of growing.
//! Protocol-specific framing (Nonin frame sync, IntelliVue BOF/EOF, COBS) lives beside its
//! protocol in `wire/`.

/// Result of feeding one byte to a [`LineAccumulator`].
#[derive(Debug, PartialEq, Eq)]
pub enum LineEvent<'a> {
    /// Nothing complete yet.
    Pending,
    /// A complete line without its terminator (CR, LF, or CR LF) and the stream offset of its
    /// first byte.
    Line(&'a [u8], u64),
    /// The line exceeded the buffer; the bytes up to the next terminator are discarded.
    /// Carries the offset of the overlong line's first byte.
    Overflow(u64),
}

/// Accumulates bytes into lines ended by CR and/or LF, in a buffer of `N` bytes.
#[derive(Debug)]
pub struct LineAccumulator<const N: usize> {
    buf: [u8; N],
    len: usize,
    /// Stream offset of `buf[0]`.
    start: u64,
    /// Bytes fed so far.
    offset: u64,
    overflowed: bool,
}

impl<const N: usize> Default for LineAccumulator<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> LineAccumulator<N> {
    pub const fn new() -> Self {
        LineAccumulator { buf: [0; N], len: 0, start: 0, offset: 0, overflowed: false }
    }

    /// Bytes fed so far (the stream offset of the next byte).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Drops a partial line (after a reconnect).
    pub fn clear(&mut self) {
        self.len = 0;
        self.overflowed = false;
    }

    /// Feeds one byte. Empty lines (the LF of CR LF, blank lines) are skipped.
    pub fn push(&mut self, b: u8) -> LineEvent<'_> {
        let at = self.offset;
        self.offset += 1;
        if b == b'\r' || b == b'\n' {
            if self.overflowed {
                self.overflowed = false;
                self.len = 0;
                return LineEvent::Pending;
            }
            if self.len == 0 {
                return LineEvent::Pending;
            }
            let len = self.len;
            self.len = 0;
            return LineEvent::Line(&self.buf[..len], self.start);
        }
        if self.overflowed {
            return LineEvent::Pending;
        }
        if self.len == 0 {
            self.start = at;
        }
        if self.len == N {
            self.overflowed = true;
            return LineEvent::Overflow(self.start);
        }
        self.buf[self.len] = b;
        self.len += 1;
        LineEvent::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn lines<const N: usize>(acc: &mut LineAccumulator<N>, input: &[u8]) -> Vec<(Vec<u8>, u64)> {
        let mut out = Vec::new();
        for &b in input {
            match acc.push(b) {
                LineEvent::Line(l, off) => out.push((l.to_vec(), off)),
                LineEvent::Overflow(off) => out.push((b"<overflow>".to_vec(), off)),
                LineEvent::Pending => {}
            }
        }
        out
    }

    #[test]
    fn splits_on_any_terminator_and_reports_offsets() {
        let mut acc = LineAccumulator::<16>::new();
        let got = lines(&mut acc, b"ab\r\ncd\n\nef\rgh");
        assert_eq!(got, alloc::vec![(b"ab".to_vec(), 0), (b"cd".to_vec(), 4), (b"ef".to_vec(), 8)]);
        assert_eq!(lines(&mut acc, b"\n"), alloc::vec![(b"gh".to_vec(), 11)]);
    }

    #[test]
    fn overlong_lines_are_reported_once_and_skipped() {
        let mut acc = LineAccumulator::<4>::new();
        let got = lines(&mut acc, b"abcdefgh\r\nok\r\n");
        assert_eq!(got, alloc::vec![(b"<overflow>".to_vec(), 0), (b"ok".to_vec(), 10)]);
    }
}
