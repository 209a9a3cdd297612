//! The normaliser: a device's measurements become canonical observations.
//!
//! It attaches the device context (identity, bed, patient from configuration), applies the
//! site's nomenclature maps, resolves device time to UTC with the device's zone, and judges the
//! device's clock against the gateway's (decisions.md, "Time"): the effective time published is
//! the device's when its clock is within 1 s of the gateway's (the IHE Consistent Time bound),
//! otherwise the receipt time, and the observation's flags say which and why. A record from the
//! device's memory is never stamped with the time it was downloaded: with a skewed clock its time
//! is the device's corrected by the estimated offset (`time-corrected`).

use std::collections::VecDeque;
use std::sync::Arc;

use medgw_protocols::nomenclature::Nomenclature;
use medgw_protocols::observation::{DeviceContext, DeviceIdentity, Flags, Measurement, Observation};
use medgw_protocols::time::{DeviceTime, Timestamp};

/// The IHE Consistent Time profile's bound on clock differences, in ms.
pub const MAX_SKEW_MS: i64 = 1000;

/// Estimates a device's clock offset from live readings.
///
/// Each live reading gives `device_time - receipt_time`, which is the clock offset minus the
/// transmission delay and minus the truncation of the device's timestamp (Masimo and MEDIBUS
/// send whole seconds). Both errors only make the sample smaller, so the largest sample of a
/// recent window is the best estimate (the same reasoning as NTP's minimum-delay filter).
///
/// That reasoning holds only while the clock runs steadily. A clock that is set, reset or jumps
/// (an RTC reset, the autumn DST fold of a local-time device) makes every later sample differ
/// from the window's: forwards the maximum follows at once, but backwards the old maximum would
/// hide the step for a whole window — 32 s of a Masimo, hours of a cuff that measures every
/// 15 min. So each sample is judged against the current estimate first, and one that is further
/// below it than delay and truncation explain (more than 1 s beyond the whole-second allowance)
/// is a step: the window restarts from that sample, and the reading that showed it is judged
/// with the new offset.
#[derive(Debug, Clone)]
pub struct ClockTracker {
    samples: VecDeque<i64>,
    window: usize,
    /// Every timestamp so far was a whole second: the clock may have 1 s resolution and read up
    /// to 999 ms behind, which is allowed for.
    whole_seconds: bool,
}

impl ClockTracker {
    pub fn new(window: usize) -> ClockTracker {
        ClockTracker { samples: VecDeque::with_capacity(window), window, whole_seconds: true }
    }

    /// Records a live reading; returns `true` when it shows that the clock stepped (see the type's
    /// documentation) and the window was restarted.
    pub fn observe(&mut self, device: Timestamp, receipt: Timestamp) -> bool {
        self.whole_seconds &= device.0 % 1000 == 0;
        let sample = device.0 - receipt.0;
        let step = match self.offset_ms() {
            // Further below the estimate than truncation (whole-second clocks) plus the 1 s bound
            // explain: the clock went back. Further above by the same margin: it went forward
            // (the maximum would follow anyway; restarting drops the samples of the old clock).
            Some(o) => (sample - o).abs() > self.allowance() + MAX_SKEW_MS,
            None => false,
        };
        if step {
            self.samples.clear();
        }
        if self.samples.len() == self.window {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
        step
    }

    /// How far a whole-second clock's samples may read below its offset from truncation alone.
    fn allowance(&self) -> i64 {
        if self.whole_seconds {
            999
        } else {
            0
        }
    }

    /// The estimated offset (device − gateway) in ms, once there is a sample.
    pub fn offset_ms(&self) -> Option<i64> {
        self.samples.iter().copied().max()
    }

    /// Whether the device's clock differs from the gateway's by more than 1 s.
    pub fn skewed(&self) -> bool {
        let allowance = self.allowance();
        match self.offset_ms() {
            // The offset is under-estimated by up to `allowance` for whole-second clocks.
            Some(o) => o > MAX_SKEW_MS || o + allowance < -MAX_SKEW_MS,
            None => false,
        }
    }
}

/// Converts a device's wall-clock time to UTC with its zone.
pub fn resolve_local(wall: Timestamp, zone: &jiff::tz::TimeZone) -> Option<Timestamp> {
    let c = wall.to_civil();
    let dt = jiff::civil::DateTime::new(
        c.year as i16,
        c.month as i8,
        c.day as i8,
        c.hour as i8,
        c.minute as i8,
        c.second as i8,
        c.millisecond as i32 * 1_000_000,
    )
    .ok()?;
    // In the autumn fold the earlier instant is chosen; in the spring gap the time is moved
    // forward (jiff's "compatible" disambiguation, as RFC 5545 does).
    let zoned = zone.to_ambiguous_zoned(dt).compatible().ok()?;
    Some(Timestamp(zoned.timestamp().as_millisecond()))
}

/// The readings of the latest time per metric (by vendor code when unmapped).
type SameTimes = crate::int_hash::IntMap<(medgw_protocols::MdcCode, Option<medgw_protocols::observation::VendorCode>), SameTime>;

/// Readings already seen for one metric at one time (see [`Normalizer::observation`]).
#[derive(Debug, Default)]
struct SameTime {
    time: i64,
    values: Vec<medgw_protocols::observation::Value>,
    count: u32,
}

/// Which of the readings with the same metric and time `r` is, so that different readings get
/// different ids and the same reading re-reported the same id ([`Observation::keyed`]).
///
/// - With a sequence number, the id is already unique.
/// - Without a device clock the time is the receipt time, and several frames read in one
///   chunk share it: each is its own reading (a clock-less oximeter sends them 1/3 s apart).
/// - With a device clock, the same value at the same device time is the device re-reporting
///   one reading (IntelliVue re-sends the last NIBP with every poll): same id, and the
///   pipeline drops the repeat. A different value at the same device time is a different
///   reading (a device clock with one-second resolution).
fn occurrence(same_time: &mut SameTimes, r: &medgw_protocols::observation::Reading) -> u32 {
    if r.seq.is_some() {
        return 0;
    }
    let time = r.device_time.unwrap_or(r.receipt_time).0;
    // Keyed like the id: by MDC code, and by the vendor code only when unmapped (two device
    // codes for one metric share an MDC code).
    let vendor = if r.metric.is_unmapped() { r.vendor.clone() } else { None };
    let entry = same_time.entry((r.metric, vendor)).or_default();
    if entry.time != time {
        *entry = SameTime { time, values: Vec::new(), count: 0 };
    }
    if r.device_time.is_none() {
        entry.count += 1;
        entry.count - 1
    } else {
        match entry.values.iter().position(|v| *v == r.value) {
            Some(i) => i as u32,
            None => {
                entry.values.push(r.value.clone());
                (entry.values.len() - 1) as u32
            }
        }
    }
}

/// Attributes a device's readings to the patient of its bed at each reading's effective time,
/// from the ADT association state (`crate::adt`). The context with that patient is kept while
/// the state's version and the reading times stay within the answer's span, so consecutive
/// readings share one `Arc` (and one buffer context row) and cost one atomic load each.
pub struct Attributor {
    shared: Arc<crate::adt::Shared>,
    /// The writer, for patient ids the device reports (rare: a lock per report).
    receiver: Arc<std::sync::Mutex<crate::adt::Receiver>>,
    bed: String,
    cache: Option<Attributed>,
}

struct Attributed {
    version: u64,
    from: Timestamp,
    until: Timestamp,
    /// The base context it was made from (identity changes replace the base).
    base: Arc<DeviceContext>,
    context: Arc<DeviceContext>,
}

impl Attributor {
    pub fn new(shared: Arc<crate::adt::Shared>, receiver: Arc<std::sync::Mutex<crate::adt::Receiver>>, bed: &str) -> Attributor {
        Attributor { shared, receiver, bed: bed.into(), cache: None }
    }

    /// The device reported its own patient id at `t` (e.g. a monitor's patient demographics):
    /// checked against the bed's ADT patient; a disagreement holds readings back from the
    /// patient until it agrees again (docs/adt.md, rule 7).
    pub fn device_reported(&self, device_id: &str, t: Timestamp) -> Option<medgw_protocols::association::AuditEvent> {
        self.receiver.lock().unwrap_or_else(|p| p.into_inner()).device_reported(&self.bed, device_id, t)
    }

    /// The context for a reading effective at `t`: the base context with the ADT patient of
    /// the bed at `t`; the base as configured for a manual binding that nothing contradicts;
    /// without a patient when the bed is unassociated, in conflict or in mismatch.
    fn context(&mut self, base: &Arc<DeviceContext>, t: Timestamp) -> Arc<DeviceContext> {
        let version = self.shared.version();
        if let Some(c) = &self.cache {
            if c.version == version && c.from <= t && t < c.until && Arc::ptr_eq(&c.base, base) {
                return c.context.clone();
            }
        }
        let snap = self.shared.snapshot();
        let (from, until) = snap.span_at(&self.bed, t);
        let patient = self.patient_at(&snap, base, t);
        let context = match &self.cache {
            // The same answer under a new version: keep the context (and its buffer row).
            Some(c) if Arc::ptr_eq(&c.base, base) && c.context.patient == patient => c.context.clone(),
            _ if base.patient == patient => base.clone(),
            _ => Arc::new(DeviceContext { patient, ..(**base).clone() }),
        };
        self.cache = Some(Attributed { version, from, until, base: base.clone(), context: context.clone() });
        context
    }
}

impl Attributor {
    fn patient_at(
        &self,
        snap: &medgw_protocols::association::Associations,
        base: &Arc<DeviceContext>,
        t: Timestamp,
    ) -> Option<medgw_protocols::observation::Patient> {
        use medgw_protocols::association::{Attribution, Source};
        match snap.patient_at(&self.bed, t) {
            Attribution::Patient { source: Source::Manual, .. } => base.patient.clone(),
            Attribution::Patient { patient, .. } => Some(observation_patient(&patient, snap, &self.bed)),
            Attribution::Unassociated | Attribution::Conflict { .. } | Attribution::Mismatch { .. } => None,
        }
    }

    /// [`Self::context`] without its cache, for what is not on the per-reading path (alarm
    /// events, wave segments): the same rules, the patient of the bed at `t`.
    pub fn context_at(&self, base: &Arc<DeviceContext>, t: Timestamp) -> Arc<DeviceContext> {
        let patient = self.patient_at(&self.shared.snapshot(), base, t);
        if base.patient == patient {
            base.clone()
        } else {
            Arc::new(DeviceContext { patient, ..(**base).clone() })
        }
    }
}

/// The observation's patient for an ADT patient: keyed by the identifier the association uses,
/// with the fields the outputs repeat as received (PV1-3: the bed as the bed map spells it,
/// which is how the feed spells it, since locations are matched exactly).
fn observation_patient(
    p: &medgw_protocols::association::Patient,
    snap: &medgw_protocols::association::Associations,
    bed: &str,
) -> medgw_protocols::observation::Patient {
    use medgw_protocols::hl7::{Hd, Pl};
    let location = snap.bedmap().mappings().iter().find(|m| m.gateway_bed == bed).map(|m| Pl {
        point_of_care: m.point_of_care.clone(),
        room: m.room.clone(),
        bed: m.bed.clone(),
        facility: Hd { namespace: m.facility.clone().unwrap_or_default(), ..Default::default() },
        ..Default::default()
    });
    medgw_protocols::observation::Patient {
        id: p.id.id.clone(),
        system: medgw_protocols::observation::AdtFields::system_of(&p.id),
        adt: Some(Box::new(medgw_protocols::observation::AdtFields {
            identifier: p.id.clone(),
            name: p.name.clone(),
            location,
            visit: p.visit.clone(),
        })),
    }
}

/// Per-device normalisation state.
pub struct Normalizer {
    association: Option<Attributor>,
    context: Arc<DeviceContext>,
    /// `context.key()`, kept: every reading's id hashes it, and it changes only with the
    /// context's identity (formatting it per reading was ~5 % of the gateway's work, issue 20).
    key: String,
    zone: jiff::tz::TimeZone,
    /// The last local wall time resolved with `zone` and its result: the readings of one
    /// report share their time, and each is looked at twice (clock, then reading).
    last_local: std::cell::Cell<Option<(i64, Option<Timestamp>)>>,
    clock: ClockTracker,
    nomenclature: Arc<Nomenclature>,
    same_time: SameTimes,
}

impl Normalizer {
    pub fn new(context: DeviceContext, zone: jiff::tz::TimeZone, nomenclature: Arc<Nomenclature>) -> Normalizer {
        Normalizer {
            association: None,
            key: context.key(),
            context: Arc::new(context),
            zone,
            last_local: std::cell::Cell::new(None),
            clock: ClockTracker::new(32),
            nomenclature,
            same_time: Default::default(),
        }
    }

    /// Attributes readings with the ADT association state (`[adt]` configured) instead of the
    /// configured patient alone.
    pub fn set_association(&mut self, attributor: Attributor) {
        self.association = Some(attributor);
    }

    pub fn association(&self) -> Option<&Attributor> {
        self.association.as_ref()
    }

    pub fn context(&self) -> &Arc<DeviceContext> {
        &self.context
    }

    /// The device's context with the patient valid at `t` (the ADT association when `[adt]`
    /// is configured): what alarm events and wave segments carry, as readings do.
    pub fn context_at(&self, t: Timestamp) -> Arc<DeviceContext> {
        match &self.association {
            Some(a) => a.context_at(&self.context, t),
            None => self.context.clone(),
        }
    }

    /// Takes what the device said about itself; returns `true` when the identity changed (the
    /// caller republishes the Device resource).
    pub fn identity(&mut self, update: &DeviceIdentity) -> bool {
        let mut ctx = (*self.context).clone();
        if ctx.identity.merge(update) {
            self.key = ctx.key();
            self.context = Arc::new(ctx);
            true
        } else {
            false
        }
    }

    /// Turns one measurement, reported alone, into an observation received at `receipt`.
    pub fn observation(&mut self, m: Measurement, receipt: Timestamp) -> Observation {
        self.observe_clock(std::iter::once(&m), receipt);
        self.judged(m, receipt)
    }

    /// The device time of a measurement on the UTC scale (a local time resolved with the zone).
    fn device_time(&self, m: &Measurement) -> Option<Timestamp> {
        match m.device_time {
            None => None,
            Some(DeviceTime::Utc(t)) => Some(t),
            Some(DeviceTime::Local(wall)) => match self.last_local.get() {
                Some((w, resolved)) if w == wall.0 => resolved,
                _ => {
                    let resolved = resolve_local(wall, &self.zone);
                    self.last_local.set(Some((wall.0, resolved)));
                    resolved
                }
            },
        }
    }

    /// Gives the clock tracker the sample of one report of the device (one frame, poll reply
    /// or line, as decoded from one read): the freshest live reading of the report. A report can
    /// carry a reading measured earlier beside the current ones (IntelliVue sends the last NIBP,
    /// taken minutes ago, with every poll of its numerics): that reading's time is its
    /// measurement time, not the device clock's "now", and taken alone it would look like the
    /// clock stepping back. Call before [`Normalizer::judged`] for each measurement of the report.
    pub fn observe_clock<'a>(&mut self, report: impl IntoIterator<Item = &'a Measurement>, receipt: Timestamp) {
        let freshest = report
            .into_iter()
            .filter(|m| !m.flags.intersects(Flags::FROM_STORAGE | Flags::CLOCK_NOT_SET))
            .filter_map(|m| self.device_time(m))
            .max();
        if let Some(t) = freshest {
            self.clock.observe(t, receipt);
        }
    }

    /// Turns one measurement into an observation received at `receipt`, judging its time by the
    /// clock estimate [`Normalizer::observe_clock`] updated with its report.
    pub fn judged(&mut self, mut m: Measurement, receipt: Timestamp) -> Observation {
        self.nomenclature.apply(&mut m);
        let mut time_flags = Flags::NONE;
        if matches!(m.device_time, Some(DeviceTime::Local(_))) {
            time_flags |= Flags::ZONE_ASSUMED;
        }
        let device_time = self.device_time(&m);
        let stored = m.flags.contains(Flags::FROM_STORAGE);
        let mut corrected = None;
        if let Some(t) = device_time {
            if self.clock.skewed() {
                match (stored, self.clock.offset_ms()) {
                    // A record from the device's memory was measured at its device time, not at
                    // the download: put that time on the gateway's clock with the offset the live
                    // readings gave.
                    (true, Some(offset)) => {
                        corrected = Some(Timestamp(t.0 - offset));
                        time_flags |= Flags::TIME_CORRECTED;
                    }
                    _ => time_flags |= Flags::CLOCK_SKEW,
                }
            }
        }
        // The id stays that of the device's own time: the same record downloaded again, with
        // another offset estimate, is the same observation.
        let same_time = &mut self.same_time;
        let mut o = Observation::keyed(self.context.clone(), &self.key, m, receipt, device_time, time_flags, |r| occurrence(same_time, r));
        if let Some(c) = corrected {
            o.reading.device_time = Some(c);
        }
        if let Some(a) = &mut self.association {
            // The patient at the reading's effective time, not at its publication.
            o.context = a.context(&self.context, o.reading.effective_time());
        }
        o
    }

    /// The device clock's estimated offset from the gateway's, for status pages.
    pub fn clock_offset_ms(&self) -> Option<i64> {
        self.clock.offset_ms()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use medgw_protocols::mdc::{code, unit};
    use medgw_protocols::time::CivilTime;
    use medgw_protocols::Decimal;

    fn wall(y: u16, mo: u8, d: u8, h: u8, mi: u8, s: u8) -> Timestamp {
        CivilTime { year: y, month: mo, day: d, hour: h, minute: mi, second: s, millisecond: 0 }.to_timestamp().unwrap()
    }

    #[test]
    fn local_time_is_resolved_with_the_zone_across_dst() {
        let berlin = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
        // Winter: UTC+1.
        assert_eq!(resolve_local(wall(2024, 1, 15, 10, 0, 0), &berlin), Some(wall(2024, 1, 15, 9, 0, 0)));
        // Summer: UTC+2.
        assert_eq!(resolve_local(wall(2024, 7, 15, 10, 0, 0), &berlin), Some(wall(2024, 7, 15, 8, 0, 0)));
        // Autumn fold 2024-10-27 02:30 happens twice: the earlier (CEST, UTC+2) is chosen.
        assert_eq!(resolve_local(wall(2024, 10, 27, 2, 30, 0), &berlin), Some(wall(2024, 10, 27, 0, 30, 0)));
        // Spring gap 2024-03-31 02:30 does not exist: moved forward by the gap (= 01:30 UTC).
        assert_eq!(resolve_local(wall(2024, 3, 31, 2, 30, 0), &berlin), Some(wall(2024, 3, 31, 1, 30, 0)));
    }

    fn normalizer() -> Normalizer {
        Normalizer::new(
            DeviceContext { gateway: "gw".into(), name: "d".into(), ..Default::default() },
            jiff::tz::TimeZone::UTC,
            Arc::new(Nomenclature::builtin()),
        )
    }

    fn spo2(t: Option<DeviceTime>) -> Measurement {
        Measurement::numeric(code::MDC_PULS_OXIM_SAT_O2, Decimal::from_int(97), unit::MDC_DIM_PERCENT).with_time(t)
    }

    #[test]
    fn a_synced_whole_second_clock_is_trusted() {
        let mut n = normalizer();
        // The device truncates to seconds; the bytes arrive 0..900 ms later.
        for i in 0..10 {
            let dev = Timestamp(1_000_000 + i * 1000);
            let o = n.observation(spo2(Some(DeviceTime::Utc(dev))), Timestamp(dev.0 + 900 - i * 50));
            assert!(!o.reading.flags.contains(Flags::CLOCK_SKEW), "sample {i}");
            assert_eq!(o.reading.effective_time(), dev);
        }
    }

    #[test]
    fn a_skewed_clock_is_flagged_and_receipt_time_used() {
        let mut n = normalizer();
        let dev = Timestamp(1_000_000);
        let rx = Timestamp(1_000_000 - 5000); // device 5 s ahead
        let o = n.observation(spo2(Some(DeviceTime::Utc(dev))), rx);
        assert!(o.reading.flags.contains(Flags::CLOCK_SKEW));
        assert_eq!(o.reading.effective_time(), rx);
        // 3 s behind.
        let mut n = normalizer();
        let o = n.observation(spo2(Some(DeviceTime::Utc(Timestamp(1_000_000)))), Timestamp(1_003_100));
        assert!(o.reading.flags.contains(Flags::CLOCK_SKEW));
    }

    #[test]
    fn stored_readings_do_not_look_skewed_by_their_age() {
        let mut n = normalizer();
        n.observation(spo2(Some(DeviceTime::Utc(Timestamp(10_000_000)))), Timestamp(10_000_200));
        // A reading from the device's memory, an hour old.
        let old = spo2(Some(DeviceTime::Utc(Timestamp(10_000_000 - 3_600_000)))).with_flags(Flags::FROM_STORAGE);
        let o = n.observation(old, Timestamp(10_000_300));
        assert!(!o.reading.flags.contains(Flags::CLOCK_SKEW));
        assert_eq!(o.reading.effective_time(), Timestamp(10_000_000 - 3_600_000));
    }

    /// A device whose clock is 5 s ahead sends records from its memory (GATT RACP, two days old):
    /// each keeps its own time, corrected by the offset, never the download time.
    #[test]
    fn stored_records_of_a_skewed_clock_keep_their_corrected_device_time() {
        let mut n = normalizer();
        let now = 200_000_000_000i64;
        // Live readings: the device is 5 s ahead.
        for i in 0..3 {
            let rx = Timestamp(now + i * 1000);
            let o = n.observation(spo2(Some(DeviceTime::Utc(Timestamp(rx.0 + 5000)))), rx);
            assert!(o.reading.flags.contains(Flags::CLOCK_SKEW));
        }
        let two_days = 2 * 86_400_000;
        let dev = Timestamp(now + 5000 - two_days);
        let stored = spo2(Some(DeviceTime::Utc(dev))).with_flags(Flags::FROM_STORAGE);
        let rx = Timestamp(now + 3000);
        let o = n.observation(stored.clone(), rx);
        assert_eq!(o.reading.effective_time(), Timestamp(now - two_days), "corrected by the 5 s offset");
        assert_ne!(o.reading.effective_time(), rx);
        assert!(o.reading.flags.contains(Flags::TIME_CORRECTED) && !o.reading.flags.intersects(Flags::TIME_FROM_GATEWAY));
        // The same record downloaded again, with another estimate, is the same observation.
        n.observation(spo2(Some(DeviceTime::Utc(Timestamp(now + 4000 + 5200)))), Timestamp(now + 4000));
        let again = n.observation(stored, Timestamp(now + 5000));
        assert_eq!(again.reading.id, o.reading.id);
    }

    /// Masimo sends local time; at the autumn fold its clock reads 02:00 again, which resolves to
    /// an instant one hour early. The first such reading is flagged, not the 33rd.
    #[test]
    fn a_clock_going_back_at_the_dst_fold_is_flagged_from_the_first_reading() {
        let berlin = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
        let mut n = Normalizer::new(
            DeviceContext { gateway: "gw".into(), name: "d".into(), ..Default::default() },
            berlin,
            Arc::new(Nomenclature::builtin()),
        );
        // 2024-10-27 00:59:50Z .. 00:59:59Z = 02:59:50..02:59:59 CEST: in sync.
        let utc0 = wall(2024, 10, 27, 0, 59, 50);
        for i in 0..10 {
            let o =
                n.observation(spo2(Some(DeviceTime::Local(wall(2024, 10, 27, 2, 59, 50 + i as u8)))), Timestamp(utc0.0 + i * 1000 + 300));
            assert!(!o.reading.flags.contains(Flags::CLOCK_SKEW), "sample {i}");
        }
        // 01:00:00Z = 02:00:00 CET: the wall clock reads 02:00 again; resolved as CEST, an hour early.
        for i in 0..5 {
            let rx = Timestamp(wall(2024, 10, 27, 1, 0, 0).0 + i * 1000 + 300);
            let o = n.observation(spo2(Some(DeviceTime::Local(wall(2024, 10, 27, 2, 0, i as u8)))), rx);
            assert!(o.reading.flags.contains(Flags::CLOCK_SKEW), "reading {i} after the fold");
            assert_eq!(o.reading.effective_time(), rx);
        }
    }

    /// A cuff measuring every 15 min whose RTC is reset to 2000-01-01: flagged at once, and trusted
    /// again from the first reading after the clock is set right.
    #[test]
    fn an_rtc_reset_of_a_slow_device_is_flagged_at_once() {
        let mut n = normalizer();
        let start = 1_700_000_000_000i64;
        let every = 15 * 60_000;
        for i in 0..40 {
            let rx = Timestamp(start + i * every);
            let o = n.observation(spo2(Some(DeviceTime::Utc(Timestamp(rx.0 - 400)))), rx);
            assert!(!o.reading.flags.contains(Flags::CLOCK_SKEW));
        }
        let reset = wall(2000, 1, 1, 0, 0, 0);
        let rx = Timestamp(start + 40 * every);
        let o = n.observation(spo2(Some(DeviceTime::Utc(reset))), rx);
        assert!(o.reading.flags.contains(Flags::CLOCK_SKEW));
        assert_eq!(o.reading.effective_time(), rx);
        let o = n.observation(spo2(Some(DeviceTime::Utc(Timestamp(reset.0 + every)))), Timestamp(rx.0 + every));
        assert!(o.reading.flags.contains(Flags::CLOCK_SKEW));
        // Set right again: a step forward, trusted from its first reading.
        let rx = Timestamp(rx.0 + 2 * every);
        let o = n.observation(spo2(Some(DeviceTime::Utc(Timestamp(rx.0 - 300)))), rx);
        assert!(!o.reading.flags.contains(Flags::CLOCK_SKEW));
        assert_eq!(o.reading.effective_time(), Timestamp(rx.0 - 300));
    }

    #[test]
    fn an_earlier_measurement_reported_with_current_ones_keeps_its_time() {
        // An IntelliVue poll: the current numerics and the last NIBP, measured 40 s before.
        let mut n = normalizer();
        let mut nibp_time = None;
        for i in 0..5i64 {
            let rx = Timestamp(50_000_000 + i * 1000);
            let now_dev = Timestamp(rx.0 - 150);
            let nibp_dev = Timestamp(50_000_000 - 40_000);
            let mut nibp = spo2(Some(DeviceTime::Utc(nibp_dev)));
            nibp.metric = medgw_protocols::MdcCode(150_301);
            let report = [nibp, spo2(Some(DeviceTime::Utc(now_dev)))];
            n.observe_clock(report.iter(), rx);
            for m in report {
                let o = n.judged(m, rx);
                assert!(!o.reading.flags.contains(Flags::CLOCK_SKEW), "poll {i}: {:?}", o.reading.flags);
                if o.reading.metric == medgw_protocols::MdcCode(150_301) {
                    nibp_time = Some(o.reading.effective_time());
                }
            }
            assert_eq!(nibp_time, Some(nibp_dev), "the NIBP keeps its measurement time");
        }
    }

    #[test]
    fn no_device_time_and_zone_flags() {
        let mut n = normalizer();
        let o = n.observation(spo2(None), Timestamp(5));
        assert!(o.reading.flags.contains(Flags::NO_DEVICE_CLOCK));
        let o = n.observation(spo2(Some(DeviceTime::Local(Timestamp(1_000_000)))), Timestamp(1_000_100));
        assert!(o.reading.flags.contains(Flags::ZONE_ASSUMED));
        assert_eq!(o.reading.device_time, Some(Timestamp(1_000_000)));
    }

    #[test]
    fn readings_at_the_same_time_are_told_apart_and_repeats_are_not() {
        let mut n = normalizer();
        // A clock-less device: two frames in one chunk, even with equal values, are two readings.
        let a = n.observation(spo2(None), Timestamp(5_000));
        let b = n.observation(spo2(None), Timestamp(5_000));
        assert_ne!(a.reading.id, b.reading.id);
        // A device clock: the same reading re-reported keeps its id; another value does not.
        let t = Some(DeviceTime::Utc(Timestamp(9_000_000)));
        let c = n.observation(spo2(t), Timestamp(9_000_100));
        let d = n.observation(spo2(t), Timestamp(9_001_100));
        assert_eq!(c.reading.id, d.reading.id);
        let e = n.observation(
            Measurement::numeric(code::MDC_PULS_OXIM_SAT_O2, Decimal::from_int(95), unit::MDC_DIM_PERCENT).with_time(t),
            Timestamp(9_001_200),
        );
        assert_ne!(e.reading.id, c.reading.id);
        // One metric in one chunk with two values from a clock-less device: two readings.
        let a = Measurement::numeric(code::MDC_CONC_AWAY_CO2_ET, Decimal::from_int(35), unit::MDC_DIM_MMHG);
        let b = Measurement::numeric(code::MDC_CONC_AWAY_CO2_ET, Decimal::from_int(36), unit::MDC_DIM_MMHG);
        let f = n.observation(a, Timestamp(7_000));
        let g = n.observation(b, Timestamp(7_000));
        assert_ne!(f.reading.id, g.reading.id);
    }

    /// ADT association: a reading goes to the patient of the bed at its effective time, also
    /// when it is normalised after a transfer; a mismatch or a manual conflict leaves it without
    /// a patient; consecutive readings share one context.
    #[test]
    fn readings_carry_the_patient_of_their_effective_time() {
        use medgw_protocols::association::{Associations, BedMap, BedMapping};
        let beds = BedMap::new(vec![BedMapping {
            gateway_bed: "BED1".into(),
            facility: None,
            point_of_care: "ICU".into(),
            room: "03".into(),
            bed: "B".into(),
        }])
        .unwrap();
        let (shared, mut audit) = crate::adt::Shared::new(Associations::new(beds.clone()));
        let receiver = Arc::new(std::sync::Mutex::new(
            crate::adt::Receiver::new(Associations::new(beds), jiff::tz::TimeZone::UTC, "", "", None).with_shared(shared.clone()),
        ));
        let mut n = Normalizer::new(
            DeviceContext { gateway: "gw".into(), name: "d".into(), ..Default::default() },
            jiff::tz::TimeZone::UTC,
            Arc::new(Nomenclature::builtin()),
        );
        n.set_association(Attributor::new(shared.clone(), receiver.clone(), "BED1"));
        let at = |s: &str| Timestamp::parse_rfc3339(s).unwrap();
        let reading = |n: &mut Normalizer, t: &str| {
            let t = at(t);
            n.observation(spo2(Some(DeviceTime::Utc(t))), Timestamp(t.0 + 200))
        };
        let who = |o: &Observation| o.context.patient.as_ref().map(|p| p.id.clone());
        assert_eq!(who(&reading(&mut n, "2026-07-01T10:00:00Z")), None, "nobody admitted yet");
        // Received when sent (history older than 72 h before the receipt is pruned).
        let msg = |s: &str| receiver.lock().unwrap().handle(s.as_bytes(), at("2026-07-01T12:00:00Z")).code;
        use medgw_protocols::hl7::AckCode;
        assert_eq!(msg("MSH|^~\\&|PAS|H|||20260701101500+0000||ADT^A01|C1|P|2.5\rPID|||4711^^^H^MR||Doe^Jane\rPV1||I|ICU^03^B||||||||||||||||V1^^^H^VN\r"), AckCode::AA);
        assert!(matches!(audit.try_recv(), Ok(medgw_protocols::association::AuditEvent::Associated { .. })));
        let a = reading(&mut n, "2026-07-01T10:20:00Z");
        assert_eq!(who(&a).as_deref(), Some("4711"));
        let adt = a.context.patient.as_ref().unwrap().adt.as_ref().unwrap();
        assert_eq!((adt.visit.as_ref().unwrap().id.as_str(), adt.location.as_ref().unwrap().room.as_str()), ("V1", "03"));
        let b = reading(&mut n, "2026-07-01T10:20:01Z");
        assert!(Arc::ptr_eq(&a.context, &b.context), "one context for one association");
        assert_eq!(
            msg("MSH|^~\\&|PAS|H|||20260701110000+0000||ADT^A02|C2|P|2.5\rPID|||4711^^^H^MR\rPV1||I|WARD^1^1|||ICU^03^B\r"),
            AckCode::AA
        );
        // Taken at 10:59 and normalised after the 11:00 transfer: still the patient of 10:59.
        assert_eq!(who(&reading(&mut n, "2026-07-01T10:59:00Z")).as_deref(), Some("4711"));
        assert_eq!(who(&reading(&mut n, "2026-07-01T11:01:00Z")), None);
        // Alarm events and wave segments (context_at, uncached) follow the same timeline.
        let ctx_who = |t: &str| n.context_at(at(t)).patient.as_ref().map(|p| p.id.clone());
        assert_eq!((ctx_who("2026-07-01T10:59:00Z").as_deref(), ctx_who("2026-07-01T11:01:00Z")), (Some("4711"), None));
        assert_eq!(ctx_who("2026-07-01T10:00:00Z"), None, "before the admission");
        // Admitted again; the device then reports another patient: no patient from then on.
        assert_eq!(msg("MSH|^~\\&|PAS|H|||20260701120000+0000||ADT^A01|C3|P|2.5\rPID|||5822^^^H^MR\rPV1||I|ICU^03^B\r"), AckCode::AA);
        assert_eq!(who(&reading(&mut n, "2026-07-01T12:05:00Z")).as_deref(), Some("5822"));
        let e = n.association().unwrap().device_reported("9999", at("2026-07-01T12:10:00Z"));
        assert!(matches!(e, Some(medgw_protocols::association::AuditEvent::PatientMismatch { .. })), "{e:?}");
        assert_eq!(who(&reading(&mut n, "2026-07-01T12:11:00Z")), None, "mismatch: unassociated output");
        assert_eq!(who(&reading(&mut n, "2026-07-01T12:09:00Z")).as_deref(), Some("5822"), "before the mismatch");
        n.association().unwrap().device_reported("5822", at("2026-07-01T12:20:00Z"));
        assert_eq!(who(&reading(&mut n, "2026-07-01T12:21:00Z")).as_deref(), Some("5822"));
        // A manual binding for the same bed: a conflict, and neither patient is used.
        let conflict = receiver.lock().unwrap().set_manual("BED1", &medgw_protocols::observation::Patient::configured("MRN9", None));
        assert!(matches!(conflict, Some(medgw_protocols::association::AuditEvent::ManualConflict { .. })));
        assert_eq!(who(&reading(&mut n, "2026-07-01T12:22:00Z")), None, "manual + ADT: no patient");
    }

    #[test]
    fn identity_updates_replace_the_context() {
        let mut n = normalizer();
        let before = n.context().key();
        assert!(n.identity(&DeviceIdentity { serial: Some("123".into()), ..Default::default() }));
        assert!(!n.identity(&DeviceIdentity { serial: Some("123".into()), ..Default::default() }));
        assert_ne!(n.context().key(), before);
    }
}
