//! Trusting a stream without a checksum: a confirmed lock and a rate gate.
//!
//! A format with no checksum (Nonin DF8) finds its frames by a few fixed bits, which random
//! bytes match about once in a thousand positions; each match, taken alone, would be a `final`
//! SpO2 and pulse rate. What noise cannot do is match several times *back to back*, at no more
//! than the rate the device sends. So a decoder that uses this module:
//!
//! - publishes nothing until [`LOCK_FRAMES`] well-formed frames arrived back to back (no skipped
//!   byte between them) — the lock. The frames that confirm the lock are held and published
//!   when it is confirmed, so a real device loses nothing; they are published at the receipt
//!   time of the frame that confirmed the lock, up to `LOCK_FRAMES − 1` frame periods late.
//!   Held frames dropped because the stream broke first are rejected as
//!   [`Error::Unconfirmed`];
//! - drops the lock at every skipped byte (a resynchronisation) and on reconnect, and locks
//!   again the same way;
//! - passes every well-formed frame through a [`RateGate`]: frames faster than the device can
//!   send are rejected ([`Error::RateExceeded`]) and drop the lock;
//! - reports [`Event::NoisyLine`] once per unlocked stretch, when the rate gate trips or when
//!   [`NOISY_FRAMES`] well-formed frames or [`NOISY_BYTES`] skipped bytes went by without a lock.
//!
//! Random bytes lock with a probability of about p³ per position, where p is the chance of one
//! well-formed frame (DF8 with its reserved-bit and range checks: about 1/1000), so about once
//! in 10⁹ bytes; another protocol's stream, whose frames have another length, never does.

use alloc::vec::Vec;

use crate::decode::Event;
use crate::error::Error;
use crate::time::Timestamp;

/// Well-formed frames back to back that confirm a lock.
pub const LOCK_FRAMES: usize = 3;
/// Well-formed frames without a lock after which the line is reported noisy.
pub const NOISY_FRAMES: u32 = 8;
/// Bytes skipped without a lock after which the line is reported noisy.
pub const NOISY_BYTES: u64 = 1024;

/// A token bucket over receipt times: `per_s` frames per second sustained, after a burst of up
/// to `burst` frames at once. The burst is a backlog the receiver itself caused: the gateway
/// stops reading a device while its buffer is full (policy `stop-reading`), a device server
/// may keep a port's output while no client is connected, and the serial driver holds what
/// arrived meanwhile; all of it arrives at once when reading resumes, and must pass. What the
/// gate stops is a rate kept up beyond that, which no device of the protocol produces: noise at
/// the speed of a pseudo-terminal, a faster device or protocol. Sans-IO: the time is the
/// receipt time given with the bytes, never a clock.
#[derive(Clone, Debug)]
pub struct RateGate {
    per_s: u32,
    /// Tokens in thousandths of a frame.
    tokens: u64,
    capacity: u64,
    last: Option<i64>,
}

impl RateGate {
    pub fn new(per_s: u32, burst: u32) -> RateGate {
        let per_s = per_s.max(1);
        let capacity = u64::from(burst.max(1)).saturating_mul(1000);
        RateGate { per_s, tokens: capacity, capacity, last: None }
    }

    /// The limit in frames per second.
    pub fn per_s(&self) -> u32 {
        self.per_s
    }

    /// Takes one frame received at `now`: `false` when it is over the limit.
    #[inline]
    pub fn admit(&mut self, now: Timestamp) -> bool {
        if let Some(last) = self.last {
            let elapsed = now.0.saturating_sub(last).max(0) as u64;
            if elapsed > 0 {
                self.tokens = self.tokens.saturating_add(elapsed.saturating_mul(u64::from(self.per_s))).min(self.capacity);
            }
        }
        self.last = Some(self.last.map_or(now.0, |l| l.max(now.0)));
        if self.tokens >= 1000 {
            self.tokens -= 1000;
            true
        } else {
            false
        }
    }

    /// Full again (a reconnect).
    pub fn reset(&mut self) {
        self.tokens = self.capacity;
        self.last = None;
    }
}

/// The lock state of one stream; `F` is the decoder's frame type.
#[derive(Clone, Debug)]
pub struct StreamLock<F> {
    /// Frames (with their stream offsets) seen back to back while not locked.
    held: Vec<(F, u64)>,
    locked: bool,
    gate: RateGate,
    /// Well-formed frames and skipped bytes since the lock was lost (or since the start).
    unlocked_frames: u32,
    unlocked_bytes: u64,
    /// [`Event::NoisyLine`] was sent for this unlocked stretch.
    reported: bool,
}

impl<F: Copy> StreamLock<F> {
    /// A lock whose rate gate passes `burst` frames at once, then `max_frame_rate` a second.
    pub fn new(max_frame_rate: u32, burst: u32) -> StreamLock<F> {
        StreamLock {
            held: Vec::with_capacity(LOCK_FRAMES),
            locked: false,
            gate: RateGate::new(max_frame_rate, burst),
            unlocked_frames: 0,
            unlocked_bytes: 0,
            reported: false,
        }
    }

    pub fn locked(&self) -> bool {
        self.locked
    }

    /// A well-formed frame at stream offset `offset`, received at `now`: `publish` is called
    /// for it, or for it and the frames it confirms, when the stream is locked.
    #[inline]
    pub fn frame(&mut self, frame: F, offset: u64, now: Timestamp, out: &mut Vec<Event>, mut publish: impl FnMut(&F, &mut Vec<Event>)) {
        if !self.gate.admit(now) {
            self.unlock(out);
            out.push(Event::Rejected { offset, error: Error::RateExceeded { per_s: self.gate.per_s() } });
            self.noisy("frames arrive faster than the device sends them", out);
            return;
        }
        if self.locked {
            publish(&frame, out);
            return;
        }
        self.held.push((frame, offset));
        if self.held.len() >= LOCK_FRAMES {
            self.locked = true;
            self.unlocked_frames = 0;
            self.unlocked_bytes = 0;
            self.reported = false;
            for (f, _) in self.held.drain(..) {
                publish(&f, out);
            }
            return;
        }
        self.unlocked_frames += 1;
        if self.unlocked_frames >= NOISY_FRAMES {
            self.noisy("well-formed frames do not line up into a lock", out);
        }
    }

    /// `bytes` were skipped (resynchronisation): the lock is lost.
    pub fn skipped(&mut self, bytes: usize, out: &mut Vec<Event>) {
        self.unlock(out);
        self.unlocked_bytes = self.unlocked_bytes.saturating_add(bytes as u64);
        if self.unlocked_bytes >= NOISY_BYTES {
            self.noisy("no lock on the stream", out);
        }
    }

    /// The connection reopened: nothing before continues.
    pub fn reset(&mut self, out: &mut Vec<Event>) {
        self.unlock(out);
        self.gate.reset();
        self.unlocked_frames = 0;
        self.unlocked_bytes = 0;
        self.reported = false;
    }

    fn unlock(&mut self, out: &mut Vec<Event>) {
        self.locked = false;
        if let Some(&(_, offset)) = self.held.first() {
            out.push(Event::Rejected { offset, error: Error::Unconfirmed { frames: self.held.len() } });
            self.held.clear();
        }
    }

    fn noisy(&mut self, why: &'static str, out: &mut Vec<Event>) {
        if !core::mem::replace(&mut self.reported, true) {
            out.push(Event::NoisyLine(why));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(lock: &mut StreamLock<u8>, steps: &[(Option<u8>, i64)]) -> Vec<Event> {
        let mut out = Vec::new();
        for (i, &(f, t)) in steps.iter().enumerate() {
            match f {
                Some(f) => {
                    lock.frame(f, i as u64, Timestamp(t), &mut out, |f, out| out.push(Event::Session(if *f == 0 { "0" } else { "v" })))
                }
                None => lock.skipped(1, &mut out),
            }
        }
        out
    }

    fn published(ev: &[Event]) -> usize {
        ev.iter().filter(|e| matches!(e, Event::Session(_))).count()
    }

    #[test]
    fn three_back_to_back_frames_lock_and_are_all_published() {
        let mut l = StreamLock::new(5, 15);
        let ev = run(&mut l, &[(Some(1), 0), (Some(1), 1000)]);
        assert_eq!(published(&ev), 0);
        let ev = run(&mut l, &[(Some(1), 2000), (Some(1), 3000)]);
        assert_eq!(published(&ev), 4, "{ev:?}");
        assert!(l.locked());
    }

    #[test]
    fn a_skip_drops_the_lock_and_the_held_frames_are_rejected() {
        let mut l = StreamLock::new(5, 15);
        let ev =
            run(&mut l, &[(Some(1), 0), (Some(1), 1000), (Some(1), 2000), (None, 2500), (Some(1), 3000), (Some(1), 4000), (None, 4500)]);
        assert_eq!(published(&ev), 3);
        assert!(ev.contains(&Event::Rejected { offset: 4, error: Error::Unconfirmed { frames: 2 } }), "{ev:?}");
        assert!(!l.locked());
    }

    #[test]
    fn the_rate_gate_trips_on_a_burst_and_reports_once() {
        let mut l = StreamLock::new(2, 8);
        // A burst of 8 frames, then 2 per second: 100 frames in one instant trip it.
        let steps: Vec<(Option<u8>, i64)> = (0..100).map(|_| (Some(1), 0)).collect();
        let ev = run(&mut l, &steps);
        assert_eq!(published(&ev), 8);
        assert_eq!(ev.iter().filter(|e| matches!(e, Event::NoisyLine(_))).count(), 1);
        assert_eq!(ev.iter().filter(|e| matches!(e, Event::Rejected { error: Error::RateExceeded { per_s: 2 }, .. })).count(), 92);
        // At the device's pace the lock comes back.
        let steps: Vec<(Option<u8>, i64)> = (1..=5).map(|i| (Some(1), i * 1000)).collect();
        assert_eq!(published(&run(&mut l, &steps)), 5);
    }

    #[test]
    fn frames_that_never_lock_are_a_noisy_line() {
        let mut l = StreamLock::new(100, 300);
        let steps: Vec<(Option<u8>, i64)> = (0..40).map(|i| (if i % 2 == 0 { Some(1) } else { None }, i)).collect();
        let ev = run(&mut l, &steps);
        assert_eq!(published(&ev), 0);
        assert_eq!(ev.iter().filter(|e| matches!(e, Event::NoisyLine(_))).count(), 1, "{ev:?}");
    }
}
