//! A synthetic PPG of known pulse rate and SpO2: the sensor of the QEMU image and of the
//! accuracy tests.
//!
//! ```text
//!  ir(t)  = DC_ir  · (1 − PI_ir  · p(φ(t)) · (1 + m_resp(t))) · (1 + b(t)) · (1 + M(t)) + n_ir(t)
//!  red(t) = DC_red · (1 − PI_red · p(φ(t)) · (1 + m_resp(t))) · (1 + b(t)) · (1 + M(t)) + n_red(t)
//!  PI_red = R · PI_ir,   R = (110 − SpO2) / 25   (the calibration curve of dsp::spo2)
//! ```
//! - p(φ): one beat, a systolic wave and a smaller dicrotic wave (two Gaussians in phase);
//!   arterial blood absorbs, so the detected light dips at systole;
//! - φ advances at the pulse rate, each beat's length varied by ±`hrv` (heart-rate variability);
//! - m_resp, b: respiratory modulation of the pulse amplitude and of the baseline (0.25 Hz);
//! - M: motion, bursts of a few seconds of low-frequency movement that change the optical path
//!   of both wavelengths alike (so they pull R towards 1, i.e. a false SpO2 near 85 %);
//! - n: white Gaussian noise in ADC counts (sum of four uniforms: the Irwin–Hall approximation).
//!
//! Without a finger the photodiode sees ambient light only: a low level and no pulse.

use crate::dsp::spo2::ratio_for_spo2;
use core::f32::consts::PI;

/// What to synthesise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SynthConfig {
    pub pulse_rate: f32,
    pub spo2: f32,
    /// IR perfusion index, % (AC peak-to-peak / DC).
    pub perfusion_index: f32,
    pub dc_ir: f32,
    pub dc_red: f32,
    /// White noise, ADC counts RMS.
    pub noise: f32,
    /// Beat-to-beat variation of the period, fraction (0.02 = ±2 %).
    pub hrv: f32,
    /// Respiratory baseline wander, fraction of DC.
    pub baseline: f32,
    /// Motion: mean seconds between bursts (0 = none).
    pub motion_every_s: f32,
    /// Motion burst amplitude, fraction of DC.
    pub motion_amplitude: f32,
    pub finger: bool,
    pub seed: u32,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            pulse_rate: 72.0,
            spo2: 97.0,
            perfusion_index: 2.0,
            dc_ir: 110_000.0,
            dc_red: 85_000.0,
            noise: 10.0,
            hrv: 0.02,
            baseline: 0.005,
            motion_every_s: 0.0,
            motion_amplitude: 0.0,
            finger: true,
            seed: 1,
        }
    }
}

/// The generator, one sample pair per call at 100 samples/s.
#[derive(Debug, Clone)]
pub struct PpgSynth {
    pub config: SynthConfig,
    fs: f32,
    n: u32,
    phase: f32,
    beats: u32,
    beat_len: f32,
    rng: u32,
    motion_left: u32,
    motion_freq: [f32; 3],
    motion_phase: [f32; 3],
    motion_gain: f32,
}

/// One beat's shape, peak 1.
fn beat_shape(phase: f32) -> f32 {
    let g = |mu: f32, sigma: f32| {
        let z = (phase - mu) / sigma;
        libm::expf(-0.5 * z * z)
    };
    (g(0.18, 0.07) + 0.35 * g(0.45, 0.09)).min(1.0)
}

impl PpgSynth {
    pub fn new(config: SynthConfig) -> PpgSynth {
        let mut s = PpgSynth {
            config,
            fs: crate::dsp::FS,
            n: 0,
            phase: 0.0,
            beats: 0,
            beat_len: 1.0,
            rng: config.seed.max(1),
            motion_left: 0,
            motion_freq: [0.0; 3],
            motion_phase: [0.0; 3],
            motion_gain: 0.0,
        };
        s.beat_len = s.next_beat_len();
        s
    }

    /// xorshift32: uniform in 0..1.
    fn uniform(&mut self) -> f32 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.rng = x;
        (x >> 8) as f32 / (1u32 << 24) as f32
    }

    /// Approximately standard normal (Irwin–Hall with 4 terms, variance scaled to 1).
    fn gaussian(&mut self) -> f32 {
        let s = self.uniform() + self.uniform() + self.uniform() + self.uniform();
        (s - 2.0) * 1.732_050_8
    }

    fn next_beat_len(&mut self) -> f32 {
        1.0 + self.config.hrv * (2.0 * self.uniform() - 1.0)
    }

    /// Beats generated so far, with the fraction of the current one: the difference over a
    /// window, per minute, is the true mean pulse rate of that window (with beat-to-beat
    /// variation it is not exactly the configured rate).
    pub fn cycles(&self) -> f64 {
        f64::from(self.beats) + f64::from(self.phase)
    }

    /// Whether a motion burst is under way.
    pub fn in_motion(&self) -> bool {
        self.motion_left > 0
    }

    /// The next (red, ir) pair in ADC counts (18 bits).
    pub fn next_sample(&mut self) -> (u32, u32) {
        let c = self.config;
        let t = self.n as f32 / self.fs;
        self.n = self.n.wrapping_add(1);
        if !c.finger {
            let ambient = 1_500.0 + 3.0 * self.gaussian();
            return (ambient.max(0.0) as u32, ambient.max(0.0) as u32);
        }
        // Beat phase, with a new length for every beat.
        self.phase += c.pulse_rate / 60.0 / self.fs / self.beat_len;
        if self.phase >= 1.0 {
            self.phase -= 1.0;
            self.beats = self.beats.wrapping_add(1);
            self.beat_len = self.next_beat_len();
        }
        let pulse = beat_shape(self.phase);
        let resp = libm::sinf(2.0 * PI * 0.25 * t);
        let amp_mod = 1.0 + 0.1 * resp;
        let base = 1.0 + c.baseline * resp;

        // Motion bursts.
        if self.motion_left == 0 && c.motion_every_s > 0.0 && self.uniform() < 1.0 / (c.motion_every_s * self.fs) {
            self.motion_left = (self.fs * (1.0 + 3.0 * self.uniform())) as u32;
            for k in 0..3 {
                self.motion_freq[k] = 0.3 + 2.7 * self.uniform();
                self.motion_phase[k] = 2.0 * PI * self.uniform();
            }
            self.motion_gain = c.motion_amplitude * (0.5 + self.uniform());
        }
        let mut motion = 0.0;
        if self.motion_left > 0 {
            self.motion_left -= 1;
            for k in 0..3 {
                motion += libm::sinf(2.0 * PI * self.motion_freq[k] * t + self.motion_phase[k]) / 3.0;
            }
            motion *= self.motion_gain;
        }

        let pi_ir = c.perfusion_index / 100.0;
        let pi_red = pi_ir * ratio_for_spo2(c.spo2);
        let path = base * (1.0 + motion);
        let ir = c.dc_ir * (1.0 - pi_ir * pulse * amp_mod) * path + c.noise * self.gaussian();
        let red = c.dc_red * (1.0 - pi_red * pulse * amp_mod) * path + c.noise * self.gaussian();
        let clamp = |v: f32| v.clamp(0.0, 262_143.0) as u32;
        (clamp(red), clamp(ir))
    }
}

impl crate::app::PpgSource for PpgSynth {
    fn sample(&mut self) -> Option<(u32, u32)> {
        Some(self.next_sample())
    }
}

/// A body temperature that drifts slowly around a set point.
#[derive(Debug, Clone)]
pub struct TempSynth {
    pub centi_celsius: i32,
    n: u32,
}

impl TempSynth {
    pub fn new(centi_celsius: i32) -> TempSynth {
        TempSynth { centi_celsius, n: 0 }
    }
}

impl crate::app::TemperatureSource for TempSynth {
    fn centi_celsius(&mut self) -> Option<i32> {
        self.n = self.n.wrapping_add(1);
        // ±0.05 degC over a minute.
        let wobble = (libm::sinf(self.n as f32 * 2.0 * PI / 60.0) * 5.0) as i32;
        Some(self.centi_celsius + wobble)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synth_has_the_configured_levels_and_ratio() {
        let mut s = PpgSynth::new(SynthConfig { noise: 0.0, hrv: 0.0, baseline: 0.0, ..SynthConfig::default() });
        let (mut min_ir, mut max_ir, mut min_red, mut max_red) = (u32::MAX, 0, u32::MAX, 0);
        for _ in 0..500 {
            let (r, i) = s.next_sample();
            min_ir = min_ir.min(i);
            max_ir = max_ir.max(i);
            min_red = min_red.min(r);
            max_red = max_red.max(r);
        }
        let pi_ir = (max_ir - min_ir) as f32 / 110_000.0 * 100.0;
        let pi_red = (max_red - min_red) as f32 / 85_000.0 * 100.0;
        // The respiratory amplitude modulation (±10 %) widens the peak-to-peak a little.
        assert!((pi_ir - 2.0).abs() < 0.25, "{pi_ir}");
        assert!((pi_red / pi_ir - ratio_for_spo2(97.0)).abs() < 0.02, "{}", pi_red / pi_ir);
        let mut off = PpgSynth::new(SynthConfig { finger: false, ..SynthConfig::default() });
        assert!(off.next_sample().1 < 2_000);
    }
}
