//! On-node signal processing: pulse rate and SpO2 from red/IR PPG samples, with quality flags.
//!
//! ```text
//!  red, ir (18-bit counts, 100 /s)
//!    ├── one-pole low-pass (τ 1 s) ──────────────► DC_red, DC_ir ── contact check
//!    └── band-pass 0.5–5 Hz ─► 5 s windows ──┬─► autocorrelation period ─┐
//!                                            ├─► beat (trough) count ────┼─► pulse rate + flags
//!                                            └─► red-on-IR slope ────────┴─► R ─► SpO2 + flags
//! ```
//!
//! f32 throughout (the Cortex-M4F has a single-precision FPU); no heap. The windows are
//! rotated into order in place once per estimate, so no second buffer is needed.

pub mod filter;
pub mod peaks;
pub mod quality;
pub mod spo2;

use filter::{BandPass, Ema};
pub use quality::Flags;

/// Samples per second.
pub const FS: f32 = 100.0;
/// Window length: 5 s holds more than 3 beats at 40 /min.
pub const WINDOW: usize = 500;
/// Shortest period searched: 30 samples = 200 /min.
pub const MIN_LAG: usize = 30;
/// Longest period searched: 160 samples = 37.5 /min.
pub const MAX_LAG: usize = 160;
/// Samples after contact before the band-pass output is used (its transient is about 1 s).
pub const SETTLE: usize = 150;
/// Lowest and highest pulse rate reported (/min); outside is out of range.
pub const MIN_RATE: f32 = 35.0;
pub const MAX_RATE: f32 = 210.0;

/// An estimate for one metric: a value, or none, with the flags that qualify it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub value: Option<f32>,
    pub flags: Flags,
}

impl Reading {
    pub const fn absent(flags: Flags) -> Reading {
        Reading { value: None, flags }
    }
}

/// One estimate of the window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// Pulse rate, /min.
    pub pulse_rate: Reading,
    /// SpO2, %.
    pub spo2: Reading,
    /// Perfusion index, % (0 when unknown).
    pub perfusion_index: f32,
}

/// The estimator: fed at [`FS`], asked for an [`Estimate`] (every second).
#[derive(Debug, Clone)]
pub struct Estimator {
    dc_red: Ema,
    dc_ir: Ema,
    bp_red: BandPass,
    bp_ir: BandPass,
    red: [f32; WINDOW],
    ir: [f32; WINDOW],
    /// Index of the oldest sample (the next to be overwritten).
    pos: usize,
    /// Samples since contact began (saturates).
    in_contact: usize,
    scratch: [f32; MAX_LAG + 2],
    /// Normalised power (power / DC²) of the recent windows, to see motion as a jump.
    history: [f32; HISTORY],
    history_len: usize,
    history_pos: usize,
    /// The last pulse rate given, and a candidate that differs from it by more than
    /// [`quality::MAX_RATE_JUMP`], with how many estimates in a row have confirmed it.
    last_rate: Option<f32>,
    candidate: Option<(f32, u8)>,
    last_spo2: Option<f32>,
    spo2_candidate: Option<(f32, u8)>,
    /// The previous window's estimate, released by the next call.
    pending: Estimate,
}

/// How much older than the call the released estimate's window end is.
pub const RELEASE_DELAY_MS: u64 = 1_000;

/// Windows of history for the motion check.
pub const HISTORY: usize = 16;

impl Default for Estimator {
    fn default() -> Self {
        Self::new()
    }
}

impl Estimator {
    pub fn new() -> Estimator {
        Estimator {
            dc_red: Ema::new(FS),
            dc_ir: Ema::new(FS),
            bp_red: BandPass::new(FS),
            bp_ir: BandPass::new(FS),
            red: [0.0; WINDOW],
            ir: [0.0; WINDOW],
            pos: 0,
            in_contact: 0,
            scratch: [0.0; MAX_LAG + 2],
            history: [0.0; HISTORY],
            history_len: 0,
            history_pos: 0,
            last_rate: None,
            candidate: None,
            last_spo2: None,
            spo2_candidate: None,
            pending: Estimate {
                pulse_rate: Reading::absent(Flags::PULSE_SEARCH),
                spo2: Reading::absent(Flags::PULSE_SEARCH),
                perfusion_index: 0.0,
            },
        }
    }

    /// Feeds one sample pair (ADC counts).
    pub fn push(&mut self, red: u32, ir: u32) {
        let (r, i) = (red as f32, ir as f32);
        self.dc_ir.process(i);
        self.dc_red.process(r);
        if quality::contact(i) {
            if self.in_contact == 0 {
                // Contact just began: start the filters at this level, not from zero.
                self.bp_red.settle(r);
                self.bp_ir.settle(i);
                self.dc_red.reset();
                self.dc_ir.reset();
                self.dc_red.process(r);
                self.dc_ir.process(i);
            }
            self.in_contact = self.in_contact.saturating_add(1);
        } else {
            self.in_contact = 0;
            self.history_len = 0;
            self.last_rate = None;
            self.candidate = None;
            self.last_spo2 = None;
            self.spo2_candidate = None;
        }
        let (fr, fi) = (self.bp_red.process(r), self.bp_ir.process(i));
        if let (Some(a), Some(b)) = (self.red.get_mut(self.pos), self.ir.get_mut(self.pos)) {
            *a = fr;
            *b = fi;
        }
        self.pos = (self.pos + 1) % WINDOW;
    }

    /// Estimates from the last [`WINDOW`] samples.
    /// The estimate of the window that ended [`RELEASE_DELAY_MS`] ago.
    ///
    /// Each window's estimate is held back one second and released only if the next window
    /// shows no motion: a burst that starts in the last moments of a window shifts its estimate
    /// before there is enough of it to be detected, and is detected one second later.
    pub fn estimate(&mut self) -> Estimate {
        let current = self.estimate_window();
        let mut released = core::mem::replace(&mut self.pending, current);
        if current.pulse_rate.flags.contains(Flags::ARTIFACT) {
            for r in [&mut released.pulse_rate, &mut released.spo2] {
                if r.value.is_some() {
                    *r = Reading::absent(r.flags | Flags::ARTIFACT);
                }
            }
        }
        released
    }

    fn estimate_window(&mut self) -> Estimate {
        let (dc_red, dc_ir) = (self.dc_red.value(), self.dc_ir.value());
        if !quality::contact(dc_ir) || self.in_contact == 0 {
            let r = Reading::absent(Flags::SENSOR_OFF);
            return Estimate { pulse_rate: r, spo2: r, perfusion_index: 0.0 };
        }
        if self.in_contact < WINDOW + SETTLE {
            let r = Reading::absent(Flags::PULSE_SEARCH);
            return Estimate { pulse_rate: r, spo2: r, perfusion_index: 0.0 };
        }
        // Order the windows oldest-first in place.
        self.red.rotate_left(self.pos);
        self.ir.rotate_left(self.pos);
        self.pos = 0;

        let Some(p) = peaks::period(&self.ir, MIN_LAG, MAX_LAG, &mut self.scratch) else {
            let r = Reading::absent(Flags::ARTIFACT);
            return Estimate { pulse_rate: r, spo2: r, perfusion_index: 0.0 };
        };
        let pi = quality::perfusion_index(p.periodic_power, dc_ir);
        if pi < quality::PI_LOW {
            let r = Reading::absent(Flags::LOW_PERFUSION);
            return Estimate { pulse_rate: r, spo2: r, perfusion_index: pi };
        }
        // Motion: the window is much louder than the quietest recent one.
        let norm = p.power / (dc_ir * dc_ir);
        if let Some(h) = self.history.get_mut(self.history_pos) {
            *h = norm;
        }
        self.history_pos = (self.history_pos + 1) % HISTORY;
        self.history_len = (self.history_len + 1).min(HISTORY);
        let quietest = self.history.iter().take(self.history_len).copied().fold(f32::INFINITY, f32::min);
        if self.history_len < 3 {
            let r = Reading::absent(Flags::PULSE_SEARCH);
            return Estimate { pulse_rate: r, spo2: r, perfusion_index: pi };
        }
        let beats = peaks::beat_intervals(&self.ir, (0.7 * p.lag) as usize, libm::roundf(p.lag) as usize);
        let consistent = beats.is_some_and(|b| {
            (b.median - p.lag).abs() <= quality::MAX_BEAT_DISAGREEMENT * p.lag && b.spread <= quality::MAX_INTERVAL_SPREAD
        });
        // Segments at least a beat long, so that each holds a whole pulse.
        let segments = ((WINDOW as f32 / (1.1 * p.lag)) as usize).clamp(2, 5);
        let steady = quality::segment_ratio(&self.ir, segments) <= quality::MAX_SEGMENT_RATIO;
        let calm = norm <= quality::MAX_POWER_JUMP * quietest;
        let rate = 60.0 * FS / p.lag;
        if p.strength < quality::MIN_STRENGTH || !consistent || !steady || !calm {
            // Agreement must be in consecutive estimates.
            self.candidate = None;
            self.spo2_candidate = None;
            let r = Reading::absent(Flags::ARTIFACT);
            return Estimate { pulse_rate: r, spo2: r, perfusion_index: pi };
        }
        if !self.rate_plausible(rate) {
            let r = Reading::absent(Flags::ARTIFACT);
            return Estimate { pulse_rate: r, spo2: r, perfusion_index: pi };
        }
        let marginal = if pi < quality::PI_MARGINAL { Flags::MARGINAL_PERFUSION } else { Flags::NONE };

        let pulse_rate = if (MIN_RATE..=MAX_RATE).contains(&rate) {
            Reading { value: Some(rate), flags: marginal }
        } else {
            Reading::absent(Flags::OUT_OF_RANGE)
        };

        let spo2 = match spo2::fit(&self.red, &self.ir) {
            // The periodic part alone (correlations at one period's lag) must give the same
            // ratio: motion and baseline are not periodic at the pulse and pull the slope away.
            Some(f)
                if f.correlation >= quality::MIN_CORRELATION
                    && dc_red > 0.0
                    && self.periodic_ratio_agrees(p.lag, f.slope, dc_ir / dc_red) =>
            {
                let r = f.slope * dc_ir / dc_red;
                let s = spo2::spo2_from_ratio(r);
                if !(50.0..=102.0).contains(&s) {
                    Reading::absent(Flags::OUT_OF_RANGE)
                } else if !self.spo2_plausible(s) {
                    Reading::absent(Flags::ARTIFACT)
                } else {
                    Reading { value: Some(s.min(100.0)), flags: marginal }
                }
            }
            _ => {
                self.spo2_candidate = None;
                Reading::absent(Flags::ARTIFACT)
            }
        };
        Estimate { pulse_rate, spo2, perfusion_index: pi }
    }

    /// Whether the red/IR ratio of the periodic part (correlations at one period's lag) gives
    /// the same SpO2 as the whole window's, within [`quality::MAX_SPO2_DISAGREEMENT`].
    fn periodic_ratio_agrees(&self, lag: f32, slope: f32, dc_ratio: f32) -> bool {
        let k = libm::roundf(lag) as usize;
        let cii = peaks::xcf(&self.ir, &self.ir, k);
        let cri = peaks::xcf(&self.ir, &self.red, k);
        cii > 0.0 && slope > 0.0 && ((cri / cii) - slope).abs() * dc_ratio * spo2::CAL_B <= quality::MAX_SPO2_DISAGREEMENT
    }

    /// A pulse rate that jumps by more than [`quality::MAX_RATE_JUMP`] from the last one given,
    /// or the first after contact, is given only once [`CONFIRMATIONS`] estimates in a row agree on it: a
    /// heart does not change its rate by a fifth within a second, motion does.
    fn rate_plausible(&mut self, rate: f32) -> bool {
        let jump = quality::MAX_RATE_JUMP * self.last_rate.unwrap_or(rate);
        confirm(&mut self.last_rate, &mut self.candidate, rate, jump, 0.05 * rate)
    }

    /// The same for SpO2, with [`quality::MAX_SPO2_JUMP`].
    fn spo2_plausible(&mut self, s: f32) -> bool {
        confirm(&mut self.last_spo2, &mut self.spo2_candidate, s, quality::MAX_SPO2_JUMP, 1.0)
    }
}

/// Estimates in a row that must agree before a value that jumped (or the first after contact)
/// is given.
pub const CONFIRMATIONS: usize = 3;

/// Accepts `v` when it is within `jump` of the last value given; otherwise (or with no last
/// value) only once [`CONFIRMATIONS`] estimates in a row agree within `same`.
fn confirm(last: &mut Option<f32>, candidate: &mut Option<(f32, u8)>, v: f32, jump: f32, same: f32) -> bool {
    if last.is_some_and(|l| (v - l).abs() <= jump) {
        *last = Some(v);
        *candidate = None;
        return true;
    }
    let n = match *candidate {
        Some((c, n)) if (v - c).abs() <= same => n.saturating_add(1),
        _ => 1,
    };
    if usize::from(n) >= CONFIRMATIONS {
        *last = Some(v);
        *candidate = None;
        true
    } else {
        *candidate = Some((v, n));
        false
    }
}
