//! Rate limits for log lines that can repeat without bound: a device server that connects and
//! closes in a loop, a port scan against a listener, a monitor that refuses every association.
//! One incident once wrote 49,210 warnings in 5 s (48,000 reconnects), burying everything else
//! and filling the disk; what an operator needs is the first line and how many followed.
//!
//! Per key (a device's cause, a refused peer): the first occurrence is logged at once; later
//! ones within [`REPEAT_INTERVAL`] are counted, not logged. The next occurrence after the
//! interval is logged with that count, and [`LogLimiter::due`] hands out the counts nobody
//! reported, for a summary line, so at most one line per key and interval is written and no
//! occurrence goes uncounted. Time is passed in, so tests need no clock.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// How often a repeating line is written (the first at once, then one with the count).
pub const REPEAT_INTERVAL: Duration = Duration::from_secs(60);
/// Keys remembered; the table is cleared beyond this (a scan of many peers stays bounded).
const MAX_KEYS: usize = 1024;

#[derive(Debug)]
struct Seen {
    last: Instant,
    suppressed: u64,
}

/// Decides which occurrences of a repeating line are logged.
#[derive(Debug)]
pub struct LogLimiter<K> {
    interval: Duration,
    keys: HashMap<K, Seen>,
}

impl<K: Hash + Eq + Clone> Default for LogLimiter<K> {
    fn default() -> Self {
        LogLimiter::new(REPEAT_INTERVAL)
    }
}

impl<K: Hash + Eq + Clone> LogLimiter<K> {
    pub fn new(interval: Duration) -> LogLimiter<K> {
        LogLimiter { interval, keys: HashMap::new() }
    }

    /// `Some(suppressed since the last line)` when this occurrence is to be logged, `None`
    /// when it is only counted.
    pub fn report(&mut self, key: K, now: Instant) -> Option<u64> {
        if self.keys.len() >= MAX_KEYS && !self.keys.contains_key(&key) {
            self.keys.clear();
        }
        match self.keys.get_mut(&key) {
            Some(seen) if now.saturating_duration_since(seen.last) < self.interval => {
                seen.suppressed += 1;
                None
            }
            Some(seen) => {
                seen.last = now;
                Some(std::mem::take(&mut seen.suppressed))
            }
            None => {
                self.keys.insert(key, Seen { last: now, suppressed: 0 });
                Some(0)
            }
        }
    }

    /// The keys whose counted occurrences are at least an interval old and were not reported
    /// by a later line: `(key, count)`, each to be written as one summary line. A key reported
    /// here starts a new interval.
    pub fn due(&mut self, now: Instant) -> Vec<(K, u64)> {
        let mut due = Vec::new();
        for (key, seen) in &mut self.keys {
            if seen.suppressed > 0 && now.saturating_duration_since(seen.last) >= self.interval {
                due.push((key.clone(), std::mem::take(&mut seen.suppressed)));
                seen.last = now;
            }
        }
        due
    }

    /// Every count not yet reported, whatever its age (at shutdown, so none is lost).
    pub fn drain(&mut self) -> Vec<(K, u64)> {
        self.keys.drain().filter(|(_, seen)| seen.suppressed > 0).map(|(key, seen)| (key, seen.suppressed)).collect()
    }

    /// Number of keys remembered (tests).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// What a repeating line is about, from an event's or error's text: the part before the
/// first ": " (what failed, without the operating system's reason), digits removed (port
/// numbers, counters), so that reconnects from one device server share a key.
pub fn cause(detail: &str) -> String {
    let head = detail.split_once(": ").map_or(detail, |(h, _)| h);
    head.chars().filter(|c| !c.is_ascii_digit()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_at_once_then_one_line_per_interval_with_the_count() {
        let mut l = LogLimiter::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let s = |n| t0 + Duration::from_millis(n);
        assert_eq!(l.report("disconnected", t0), Some(0));
        for i in 1..=1000 {
            assert_eq!(l.report("disconnected", s(i)), None, "counted, not logged");
        }
        assert_eq!(l.report("connected", s(5)), Some(0), "another cause is its own");
        assert!(l.due(s(9_999)).is_empty(), "nothing is due within the interval");
        // The next occurrence after the interval carries the count.
        assert_eq!(l.report("disconnected", s(10_000)), Some(1000));
        assert_eq!(l.report("disconnected", s(10_001)), None);
        // Occurrences nobody reported come out as a summary, once.
        assert_eq!(l.due(s(15_000)), []);
        assert_eq!(l.due(s(20_000)), [("disconnected", 1)]);
        assert_eq!(l.due(s(40_000)), []);
        // The summary started a new interval: the next occurrence is counted.
        assert_eq!(l.report("disconnected", s(25_000)), None);
        assert_eq!(l.report("disconnected", s(30_000)), Some(1));
        // At shutdown every count comes out, however young.
        assert_eq!(l.report("disconnected", s(30_001)), None);
        assert_eq!(l.drain(), [("disconnected", 1)]);
        assert!(l.is_empty());
    }

    #[test]
    fn at_most_one_line_per_interval_under_a_flood() {
        let mut l = LogLimiter::new(REPEAT_INTERVAL);
        let t0 = Instant::now();
        let mut lines = 0;
        let mut counted = 0;
        // 48,000 occurrences in 5 minutes of virtual time.
        for i in 0..48_000u64 {
            let now = t0 + Duration::from_micros(i * 6_250);
            if let Some(n) = l.report(7u8, now) {
                lines += 1;
                counted += n + 1;
            }
            for (_, n) in l.due(now) {
                lines += 1;
                counted += n;
            }
        }
        let end = t0 + Duration::from_secs(3600);
        for (_, n) in l.due(end) {
            lines += 1;
            counted += n;
        }
        assert!(lines <= 7, "{lines} lines for 5 minutes");
        assert_eq!(counted, 48_000, "every occurrence is counted");
    }

    #[test]
    fn the_table_stays_bounded() {
        let mut l = LogLimiter::new(REPEAT_INTERVAL);
        let t0 = Instant::now();
        for i in 0..(MAX_KEYS as u32 * 3) {
            l.report(i, t0);
            assert!(l.len() <= MAX_KEYS);
        }
    }

    #[test]
    fn causes_ignore_reasons_and_numbers() {
        assert_eq!(cause("cannot connect to 127.0.0.1:4001: Connection refused (os error 111)"), "cannot connect to ...:");
        assert_eq!(
            cause("the device server 10.1.2.3:40312 connected to 0.0.0.0:4001"),
            cause("the device server 10.1.2.3:40313 connected to 0.0.0.0:4001")
        );
        assert_eq!(cause("read failed: Connection reset by peer"), "read failed");
        assert_eq!(cause("association-refused"), "association-refused");
    }
}
