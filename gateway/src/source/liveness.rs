//! Whether a device is alive, and what to say about it: the part of a device's connection loop
//! that does not depend on how it is connected (serial port, device server, Bluetooth).
//!
//! [`Liveness`] is sans-IO: it reads no clock and sleeps nowhere. The loop tells it what
//! happened (a connection opened, connecting failed, the connection broke, data arrived) with
//! the time it happened, asks it when to wake next, and at that time what is due (a silence,
//! the rejection report). It answers which events to publish, with their spans, and how long
//! to wait before connecting again. So every transport reports outages alike — `disconnected`
//! once per outage, `silent` once per gap in the data, `resumed` with the span of the whole
//! gap — and that is tested here without a device or a runtime.

use std::time::{Duration, Instant};

use medgw_protocols::Timestamp;

use super::backoff::Backoff;

/// How often rejected-frame counts are reported (one `rejected` event per window at most).
pub const REJECTION_REPORT: Duration = Duration::from_secs(5);

/// A moment, on both clocks: the monotonic one for deadlines (a wall-clock step must not
/// make a device look silent) and the wall clock for the spans events carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub at: Instant,
    pub wall: Timestamp,
}

impl Now {
    /// Reads both clocks (the loops do; tests make their own).
    pub fn read() -> Now {
        Now { at: Instant::now(), wall: Timestamp::now() }
    }
}

/// Which failed connection attempts are announced (`disconnected`) during one outage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failures {
    /// The first only: a port that stays away is one event, not one per retry.
    Once,
    /// The first, and each whose reason differs from the last announced: a Bluetooth device
    /// whose adapter returns but which is out of range says so.
    WhenChanged,
}

/// A silence found by [`Liveness::poll`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Silence {
    /// Start of the gap: the last data (or the start of the outage the data never ended).
    pub since: Timestamp,
    /// Whether to publish `silent`: once per gap, however often the loop reconnects in it.
    pub announce: bool,
}

/// What is due at a wake-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Due {
    /// Report the rejections collected since the last report.
    pub rejections: bool,
    /// The device has sent nothing for the silence timeout.
    pub silence: Option<Silence>,
}

/// One device's liveness: outage, silence and back-off state.
#[derive(Debug, Clone)]
pub struct Liveness {
    failures: Failures,
    backoff: Backoff,
    /// The silence timeout of the open connection; `None` while there is no connection or
    /// silence means nothing (a cuff speaks when a measurement is taken).
    silence: Option<Duration>,
    /// A connection is open and ready ([`Liveness::watch`]).
    open: bool,
    /// Silence is looked for (a connection is open and has not been found silent yet).
    watching: bool,
    last_data: Instant,
    /// When the next rejection report is due (while a connection is open).
    rejections_due: Option<Instant>,
    /// Start of the current gap in the data (disconnected or silent), for the spans.
    outage_since: Option<Timestamp>,
    silence_announced: bool,
    /// The reason of the `disconnected` event announced in the current outage.
    down: Option<String>,
    opened_before: bool,
}

impl Liveness {
    pub fn new(backoff: Backoff, failures: Failures) -> Liveness {
        Liveness {
            failures,
            backoff,
            silence: None,
            open: false,
            watching: false,
            last_data: Instant::now(),
            rejections_due: None,
            outage_since: None,
            silence_announced: false,
            down: None,
            opened_before: false,
        }
    }

    /// A connection opened: whether to publish `connected`. The first connection and one
    /// after an announced outage are news; reconnecting after a silence is not.
    pub fn opened(&mut self) -> bool {
        let news = !self.opened_before || self.down.is_some();
        self.opened_before = true;
        self.down = None;
        news
    }

    /// The connection is ready for data: silence (when `silence` is some) and the rejection
    /// report are timed from `now`.
    pub fn watch(&mut self, silence: Option<Duration>, now: Now) {
        self.silence = silence;
        self.open = true;
        self.watching = silence.is_some();
        self.last_data = now.at;
        self.rejections_due = Some(now.at + REJECTION_REPORT);
    }

    /// Connecting failed for `reason`: whether to publish `disconnected` (see [`Failures`]).
    pub fn connect_failed(&mut self, reason: &str, now: Now) -> bool {
        self.outage_since.get_or_insert(now.wall);
        let announce = match (&self.down, self.failures) {
            (None, _) => true,
            (Some(last), Failures::WhenChanged) => last != reason,
            (Some(_), Failures::Once) => false,
        };
        if announce {
            self.down = Some(reason.to_string());
        }
        announce
    }

    /// The connection broke, or the device cannot be reached for `reason` (a listener that
    /// cannot bind): always published as `disconnected`.
    pub fn lost(&mut self, reason: &str, now: Now) {
        self.outage_since.get_or_insert(now.wall);
        self.down = Some(reason.to_string());
        self.closed();
    }

    /// A new connection replaces the open one (a device server that rebooted connects again
    /// before the old socket dies): it is announced when it opens, though no outage came first.
    pub fn replaced(&mut self) {
        self.opened_before = false;
        self.closed();
    }

    /// The connection is closed (broken, or dropped by the loop): nothing is watched until the
    /// next one is ready.
    pub fn closed(&mut self) {
        self.open = false;
        self.watching = false;
        self.rejections_due = None;
    }

    /// Data arrived: the back-off starts over, silence is timed from `now`, and when a gap
    /// ends here its start is returned (`resumed`, span from it to `now`).
    pub fn data(&mut self, now: Now) -> Option<Timestamp> {
        self.last_data = now.at;
        self.watching = self.open && self.silence.is_some();
        self.backoff.reset();
        let since = self.outage_since.take();
        if since.is_some() {
            self.silence_announced = false;
        }
        since
    }

    /// When [`Liveness::poll`] is next due.
    pub fn next_wakeup(&self) -> Option<Instant> {
        let silence = self.silence.filter(|_| self.watching).map(|s| self.last_data + s);
        match (silence, self.rejections_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// What is due at `now`. A silence stops the watch until data arrives (or the next
    /// connection is ready).
    pub fn poll(&mut self, now: Now) -> Due {
        let mut due = Due::default();
        if let Some(t) = self.rejections_due.filter(|t| now.at >= *t) {
            due.rejections = true;
            // On the same grid: a loop that was held up reports once, not once per missed window.
            let behind = now.at.duration_since(t).as_nanos() / REJECTION_REPORT.as_nanos();
            self.rejections_due = Some(t + REJECTION_REPORT * (behind as u32 + 1));
        }
        if let Some(s) = self.silence.filter(|s| self.watching && now.at >= self.last_data + *s) {
            self.watching = false;
            let since = *self.outage_since.get_or_insert(Timestamp(now.wall.0 - s.as_millis() as i64));
            let announce = !self.silence_announced;
            self.silence_announced = true;
            due.silence = Some(Silence { since, announce });
        }
        due
    }

    /// How long to wait before connecting again: grows from attempt to attempt (with jitter)
    /// up to its cap, and starts over once a connection delivered data.
    pub fn retry_delay(&mut self) -> Duration {
        self.backoff.next_delay()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SILENCE: Duration = Duration::from_secs(2);

    struct Clock {
        t0: Instant,
        wall0: i64,
        ms: u64,
    }

    impl Clock {
        fn new() -> Clock {
            Clock { t0: Instant::now(), wall0: 1_700_000_000_000, ms: 0 }
        }
        fn now(&self) -> Now {
            Now { at: self.t0 + Duration::from_millis(self.ms), wall: Timestamp(self.wall0 + self.ms as i64) }
        }
        fn at(&self, ms: u64) -> Now {
            Now { at: self.t0 + Duration::from_millis(ms), wall: Timestamp(self.wall0 + ms as i64) }
        }
        /// Advances to the next wake-up of `l` (or by `max`, whichever is first) and polls.
        fn run_to(&mut self, l: &mut Liveness, until: u64) -> Vec<(u64, Due)> {
            let mut out = Vec::new();
            while let Some(w) = l.next_wakeup() {
                let ms = w.duration_since(self.t0).as_millis() as u64;
                if ms > until {
                    break;
                }
                self.ms = ms.max(self.ms);
                out.push((self.ms, l.poll(self.now())));
            }
            self.ms = until.max(self.ms);
            out
        }
    }

    fn liveness(failures: Failures) -> Liveness {
        Liveness::new(Backoff::new(Duration::from_millis(500), Duration::from_secs(30), 7), failures)
    }

    #[test]
    fn a_silent_connection_is_announced_once_and_the_resumption_spans_the_gap() {
        let mut c = Clock::new();
        let mut l = liveness(Failures::Once);
        assert!(l.opened(), "the first connection is news");
        l.watch(Some(SILENCE), c.now());
        c.ms = 1000;
        assert_eq!(l.data(c.now()), None, "no gap yet");
        let due = c.run_to(&mut l, 3500);
        let silences: Vec<_> = due.iter().filter_map(|(t, d)| d.silence.map(|s| (*t, s))).collect();
        assert_eq!(silences, vec![(3000, Silence { since: c.at(1000).wall, announce: true })]);
        // The loop reconnects; the device stays silent through two more connections.
        l.closed();
        for _ in 0..2 {
            assert!(!l.opened(), "reconnecting after a silence is not news");
            l.watch(Some(SILENCE), c.now());
            let start = c.ms;
            let due = c.run_to(&mut l, start + 2500);
            let s = due.iter().find_map(|(_, d)| d.silence).expect("silent again");
            assert_eq!(s, Silence { since: c.at(1000).wall, announce: false }, "same gap, not announced again");
            l.closed();
        }
        assert!(!l.opened());
        l.watch(Some(SILENCE), c.now());
        c.ms += 300;
        assert_eq!(l.data(c.now()), Some(c.at(1000).wall), "the resumption spans the whole gap");
        assert_eq!(l.data(c.now()), None, "once");
    }

    #[test]
    fn a_failing_port_is_announced_once_per_outage() {
        let c = Clock::new();
        let mut l = liveness(Failures::Once);
        assert!(l.connect_failed("cannot open /dev/ttyUSB0: no such file", c.at(0)));
        assert!(!l.connect_failed("cannot open /dev/ttyUSB0: no such file", c.at(500)));
        assert!(!l.connect_failed("cannot open /dev/ttyUSB0: permission denied", c.at(1500)));
        assert!(l.opened(), "back after an announced outage");
        l.watch(Some(SILENCE), c.at(2000));
        assert_eq!(l.data(c.at(2100)), Some(c.at(0).wall), "the gap began with the first failure");
        l.lost("port closed", c.at(3000));
        assert!(!l.connect_failed("cannot open /dev/ttyUSB0: no such file", c.at(3500)), "the loss was announced");
        assert!(l.opened());
    }

    #[test]
    fn a_changed_reason_is_announced_when_asked() {
        let c = Clock::new();
        let mut l = liveness(Failures::WhenChanged);
        assert!(l.connect_failed("Bluetooth unavailable: no adapter", c.at(0)));
        assert!(!l.connect_failed("Bluetooth unavailable: no adapter", c.at(1000)));
        assert!(l.connect_failed("cannot connect to AA: not found", c.at(2000)));
        assert!(l.opened());
        l.lost("disconnected: link lost", c.at(3000));
        assert!(!l.connect_failed("disconnected: link lost", c.at(4000)));
        assert!(l.connect_failed("cannot connect to AA: not found", c.at(5000)));
    }

    #[test]
    fn without_a_silence_timeout_only_rejections_are_due() {
        let mut c = Clock::new();
        let mut l = liveness(Failures::WhenChanged);
        l.opened();
        l.watch(None, c.now());
        let due = c.run_to(&mut l, 16_000);
        assert_eq!(due.iter().map(|(t, _)| *t).collect::<Vec<_>>(), vec![5000, 10_000, 15_000]);
        assert!(due.iter().all(|(_, d)| d.rejections && d.silence.is_none()));
        l.closed();
        assert_eq!(l.next_wakeup(), None, "nothing is due without a connection");
    }

    #[test]
    fn a_late_poll_reports_rejections_once() {
        let c = Clock::new();
        let mut l = liveness(Failures::Once);
        l.watch(None, c.at(0));
        assert!(l.poll(c.at(17_000)).rejections);
        assert!(!l.poll(c.at(17_001)).rejections);
        assert_eq!(l.next_wakeup(), Some(c.at(20_000).at));
    }

    #[test]
    fn back_off_grows_to_its_cap_and_starts_over_after_data() {
        let c = Clock::new();
        let mut l = liveness(Failures::Once);
        let first: Vec<u128> = (0..10).map(|_| l.retry_delay().as_millis()).collect();
        assert!(first[0] <= 600 && first[9] >= 24_000, "{first:?}");
        l.opened();
        l.watch(Some(SILENCE), c.at(0));
        assert!(l.retry_delay().as_millis() >= 24_000, "a connection without data does not reset it");
        l.data(c.at(10));
        assert!(l.retry_delay().as_millis() <= 600);
    }

    /// Something that happens to a connection, for the property test.
    #[derive(Debug, Clone)]
    enum Happening {
        /// Nothing for this many ms (polling at every wake-up).
        Wait(u64),
        Data,
        ConnectFailed(u8),
        Lost,
        /// The loop closes the connection (as after a silence) and opens a new one.
        Reopen,
    }

    fn happening() -> impl Strategy<Value = Happening> {
        prop_oneof![
            (1u64..6000).prop_map(Happening::Wait),
            Just(Happening::Data),
            (0u8..3).prop_map(Happening::ConnectFailed),
            Just(Happening::Lost),
            Just(Happening::Reopen),
        ]
    }

    proptest! {
        /// Over any history: at most one `silent` per gap in the data; every `resumed` spans
        /// exactly the gap it ends (from the last data, or the start of the outage, to the
        /// data that ends it); a silence is found only after the timeout without data; the
        /// back-off stays within its bounds.
        #[test]
        fn silence_and_resumption_follow_the_data(history in proptest::collection::vec(happening(), 1..60)) {
            let mut c = Clock::new();
            let mut l = liveness(Failures::Once);
            let mut connected = false;
            // The model: when the data stopped (or the outage began) and whether this gap
            // was announced silent.
            let mut last_data: u64 = 0;
            let mut gap_start: Option<u64> = None;
            let mut announced_in_gap = 0;
            for h in history {
                match h {
                    Happening::Wait(ms) => {
                        let until = c.ms + ms;
                        for (t, due) in c.run_to(&mut l, until) {
                            if let Some(s) = due.silence {
                                prop_assert!(connected);
                                prop_assert_eq!(t, last_data + SILENCE.as_millis() as u64, "silent exactly one timeout after the data");
                                let start = *gap_start.get_or_insert(last_data);
                                prop_assert_eq!(s.since, c.at(start).wall);
                                prop_assert_eq!(s.announce, announced_in_gap == 0, "the first silence of a gap is announced, no other");
                                announced_in_gap += 1;
                                prop_assert!(l.poll(c.now()).silence.is_none(), "reported once, until data or a new connection");
                            }
                        }
                    }
                    Happening::Data if connected => {
                        c.ms += 1;
                        let resumed = l.data(c.now());
                        prop_assert_eq!(resumed, gap_start.map(|s| c.at(s).wall));
                        gap_start = None;
                        announced_in_gap = 0;
                        last_data = c.ms;
                    }
                    Happening::Data => {}
                    Happening::ConnectFailed(r) if !connected => {
                        l.connect_failed(&format!("reason {r}"), c.now());
                        gap_start.get_or_insert(c.ms);
                        let d = l.retry_delay();
                        prop_assert!(d >= Duration::from_millis(400) && d <= Duration::from_secs(36), "{d:?}");
                    }
                    Happening::ConnectFailed(_) => {}
                    Happening::Lost if connected => {
                        l.lost("gone", c.now());
                        gap_start.get_or_insert(c.ms);
                        connected = false;
                    }
                    Happening::Lost => {}
                    Happening::Reopen => {
                        l.closed();
                        l.opened();
                        l.watch(Some(SILENCE), c.now());
                        connected = true;
                        last_data = c.ms;
                    }
                }
            }
        }
    }
}
