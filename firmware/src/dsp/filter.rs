//! IIR filters in f32: the band-pass that isolates the pulse and the one-pole low-pass that
//! tracks the DC level.
//!
//! Biquad coefficients follow R. Bristow-Johnson, "Cookbook formulae for audio EQ biquad filter
//! coefficients" (bilinear transform with pre-warping), with Q = 1/√2 for a Butterworth
//! response. The structure is the transposed direct form II, which keeps its state small and
//! behaves well in single precision for these low corner frequencies at 100 Hz.

use core::f32::consts::PI;

/// One second-order section.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Biquad {
    b0: f32,
    b1: f32,
    b2: f32,
    a1: f32,
    a2: f32,
    z1: f32,
    z2: f32,
}

impl Biquad {
    fn from_normalised(b: [f32; 3], a: [f32; 3]) -> Biquad {
        let a0 = a[0];
        Biquad { b0: b[0] / a0, b1: b[1] / a0, b2: b[2] / a0, a1: a[1] / a0, a2: a[2] / a0, z1: 0.0, z2: 0.0 }
    }

    /// Butterworth low-pass at `fc` Hz for sample rate `fs`.
    pub fn lowpass(fc: f32, fs: f32) -> Biquad {
        let w0 = 2.0 * PI * fc / fs;
        let (s, c) = (libm::sinf(w0), libm::cosf(w0));
        let alpha = s / (2.0 * core::f32::consts::FRAC_1_SQRT_2);
        Biquad::from_normalised([(1.0 - c) / 2.0, 1.0 - c, (1.0 - c) / 2.0], [1.0 + alpha, -2.0 * c, 1.0 - alpha])
    }

    /// Butterworth high-pass at `fc` Hz for sample rate `fs`.
    pub fn highpass(fc: f32, fs: f32) -> Biquad {
        let w0 = 2.0 * PI * fc / fs;
        let (s, c) = (libm::sinf(w0), libm::cosf(w0));
        let alpha = s / (2.0 * core::f32::consts::FRAC_1_SQRT_2);
        Biquad::from_normalised([(1.0 + c) / 2.0, -(1.0 + c), (1.0 + c) / 2.0], [1.0 + alpha, -2.0 * c, 1.0 - alpha])
    }

    pub fn process(&mut self, x: f32) -> f32 {
        let y = self.b0 * x + self.z1;
        self.z1 = self.b1 * x - self.a1 * y + self.z2;
        self.z2 = self.b2 * x - self.a2 * y;
        y
    }

    /// Sets the state to the steady state for a constant input `x`, so that a step at contact
    /// does not ring through the window.
    pub fn settle(&mut self, x: f32) {
        let gain = (self.b0 + self.b1 + self.b2) / (1.0 + self.a1 + self.a2);
        let y = gain * x;
        self.z2 = self.b2 * x - self.a2 * y;
        self.z1 = self.b1 * x - self.a1 * y + self.z2;
    }

    /// Magnitude response at `f` Hz (for tests and documentation).
    pub fn gain_at(&self, f: f32, fs: f32) -> f32 {
        let w = 2.0 * PI * f / fs;
        let (c1, s1, c2, s2) = (libm::cosf(w), libm::sinf(w), libm::cosf(2.0 * w), libm::sinf(2.0 * w));
        let (nr, ni) = (self.b0 + self.b1 * c1 + self.b2 * c2, -(self.b1 * s1 + self.b2 * s2));
        let (dr, di) = (1.0 + self.a1 * c1 + self.a2 * c2, -(self.a1 * s1 + self.a2 * s2));
        libm::sqrtf((nr * nr + ni * ni) / (dr * dr + di * di))
    }
}

/// Band-pass for the pulse: two high-pass sections at 0.5 Hz (fourth order: the respiratory
/// baseline at 0.2–0.3 Hz, which has a red/IR ratio near 1 and would pull SpO2 towards 85 %, is
/// attenuated about 17×) then a low-pass at 5 Hz (sensor noise, mains pick-up). Pulse rates
/// 40–180 /min are 0.67–3 Hz.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BandPass {
    hp: Biquad,
    hp2: Biquad,
    lp: Biquad,
}

impl BandPass {
    pub const LOW_HZ: f32 = 0.5;
    pub const HIGH_HZ: f32 = 5.0;

    pub fn new(fs: f32) -> BandPass {
        let hp = Biquad::highpass(Self::LOW_HZ, fs);
        BandPass { hp, hp2: hp, lp: Biquad::lowpass(Self::HIGH_HZ, fs) }
    }

    pub fn process(&mut self, x: f32) -> f32 {
        self.lp.process(self.hp2.process(self.hp.process(x)))
    }

    /// Starts from the steady state of a constant input `x` (output 0).
    pub fn settle(&mut self, x: f32) {
        self.hp.settle(x);
        self.hp2.settle(0.0);
        self.lp.settle(0.0);
    }

    pub fn gain_at(&self, f: f32, fs: f32) -> f32 {
        self.hp.gain_at(f, fs) * self.hp2.gain_at(f, fs) * self.lp.gain_at(f, fs)
    }
}

/// One-pole low-pass `y += (x - y) / n`: the DC level, with a time constant of `n` samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ema {
    y: f32,
    k: f32,
    primed: bool,
}

impl Ema {
    pub fn new(time_constant_samples: f32) -> Ema {
        Ema { y: 0.0, k: 1.0 / time_constant_samples.max(1.0), primed: false }
    }

    pub fn process(&mut self, x: f32) -> f32 {
        if self.primed {
            self.y += (x - self.y) * self.k;
        } else {
            self.y = x;
            self.primed = true;
        }
        self.y
    }

    pub fn value(&self) -> f32 {
        self.y
    }

    pub fn reset(&mut self) {
        self.primed = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn band_pass_passes_pulse_rates_and_rejects_dc_and_noise() {
        let bp = BandPass::new(100.0);
        assert!(bp.gain_at(0.0, 100.0) < 1e-3);
        assert!(bp.gain_at(0.1, 100.0) < 0.01, "respiration baseline");
        for f in [0.67f32, 1.0, 2.0, 3.0] {
            let g = bp.gain_at(f, 100.0);
            assert!(g > 0.7 && g < 1.01, "{f} Hz: {g}");
        }
        assert!(bp.gain_at(0.25, 100.0) < 0.07, "{}", bp.gain_at(0.25, 100.0));
        assert!(bp.gain_at(25.0, 100.0) < 0.05);
        // -3 dB at the corners (Butterworth).
        let hp = Biquad::highpass(0.5, 100.0);
        assert!((hp.gain_at(0.5, 100.0) - core::f32::consts::FRAC_1_SQRT_2).abs() < 0.01);
    }

    #[test]
    fn filtering_a_sine_keeps_its_amplitude() {
        let mut bp = BandPass::new(100.0);
        bp.settle(1000.0);
        let mut peak = 0.0f32;
        for n in 0..2000 {
            let x = 1000.0 + 10.0 * libm::sinf(2.0 * PI * 1.5 * n as f32 / 100.0);
            let y = bp.process(x);
            if n > 1000 {
                peak = peak.max(y.abs());
            }
        }
        assert!((peak - 10.0 * bp.gain_at(1.5, 100.0)).abs() < 0.2, "{peak}");
    }

    #[test]
    fn ema_tracks_level() {
        let mut e = Ema::new(10.0);
        assert_eq!(e.process(5.0), 5.0);
        for _ in 0..200 {
            e.process(15.0);
        }
        assert!((e.value() - 15.0).abs() < 1e-3);
    }
}
