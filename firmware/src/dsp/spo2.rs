//! SpO2 from the ratio of ratios.
//!
//! ```text
//!        AC_red / DC_red
//!  R  =  ---------------          SpO2 = 110 - 25 R   (%)
//!        AC_ir  / DC_ir
//! ```
//!
//! AC_red / AC_ir is the least-squares slope of the band-passed red signal against the
//! band-passed IR signal over the window: both pass the same filter, so their ratio is the ratio
//! of the pulsatile amplitudes, and noise in the red channel does not bias a slope as it biases
//! an RMS ratio. Their correlation is the quality check: a clean pulse makes red and IR move
//! together (> 0.9).
//!
//! Calibration curve: the empirical linear approximation SpO2 = 110 − 25·R, valid for R about
//! 0.4–1.6 (100–70 %), as given in J. G. Webster (ed.), "Design of Pulse Oximeters" (1997), and
//! repeated in the pulse-oximetry application notes of the AFE vendors. A product calibrates its
//! own curve against arterial blood samples in a desaturation study (ISO 80601-2-61, Annex EE);
//! the constants below are then replaced, nothing else changes.

/// `SpO2 = CAL_A - CAL_B * R`.
pub const CAL_A: f32 = 110.0;
pub const CAL_B: f32 = 25.0;

/// The ratio of ratios for a saturation (the inverse of [`spo2_from_ratio`]; the synthetic PPG
/// uses it to make a signal of known SpO2).
pub fn ratio_for_spo2(spo2: f32) -> f32 {
    (CAL_A - spo2) / CAL_B
}

/// Saturation (%) from the ratio of ratios.
pub fn spo2_from_ratio(r: f32) -> f32 {
    CAL_A - CAL_B * r
}

/// Slope and correlation of `red` against `ir`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    /// AC_red / AC_ir.
    pub slope: f32,
    /// Correlation of the band-passed signals.
    pub correlation: f32,
}

/// AC_red / AC_ir of two band-passed windows.
///
/// The slope is fitted to the first differences of the signals, which weights each frequency by
/// its square: the pulse (0.67–3 Hz) counts, what is left of the respiratory baseline
/// (0.2–0.3 Hz, ratio near 1) hardly does. The fit is Deming's orthogonal regression with equal
/// error variances (both channels see the same ADC noise in counts), which, unlike ordinary
/// least squares, is not biased towards zero by noise in the IR channel.
pub fn fit(red: &[f32], ir: &[f32]) -> Option<Fit> {
    let (mut rr, mut ii, mut ri) = (0.0f32, 0.0f32, 0.0f32);
    for (&r, &i) in red.iter().zip(ir) {
        rr += r * r;
        ii += i * i;
        ri += r * i;
    }
    if ii <= 0.0 || rr <= 0.0 {
        return None;
    }
    let correlation = ri / libm::sqrtf(rr * ii);
    let (mut syy, mut sxx, mut sxy) = (0.0f32, 0.0f32, 0.0f32);
    for ((r0, r1), (i0, i1)) in red.iter().zip(red.iter().skip(1)).zip(ir.iter().zip(ir.iter().skip(1))) {
        let (dy, dx) = (r1 - r0, i1 - i0);
        syy += dy * dy;
        sxx += dx * dx;
        sxy += dx * dy;
    }
    if sxy <= 0.0 {
        return None;
    }
    let d = syy - sxx;
    let slope = (d + libm::sqrtf(d * d + 4.0 * sxy * sxy)) / (2.0 * sxy);
    Some(Fit { slope, correlation })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_curve_points() {
        assert_eq!(spo2_from_ratio(0.4), 100.0);
        assert_eq!(spo2_from_ratio(1.0), 85.0);
        assert!((spo2_from_ratio(1.6) - 70.0).abs() < 1e-4);
        for s in [70.0f32, 85.0, 97.0, 100.0] {
            assert!((spo2_from_ratio(ratio_for_spo2(s)) - s).abs() < 1e-4);
        }
    }

    #[test]
    fn slope_recovers_the_amplitude_ratio() {
        let ir: [f32; 100] = core::array::from_fn(|i| libm::sinf(i as f32 * 0.2));
        let red: [f32; 100] = core::array::from_fn(|i| 0.7 * ir[i]);
        let f = fit(&red, &ir).unwrap();
        assert!((f.slope - 0.7).abs() < 1e-4 && f.correlation > 0.999, "{f:?}");
        // A slow common baseline (ratio 1) barely moves the slope.
        let base: [f32; 100] = core::array::from_fn(|i| 0.5 * libm::sinf(i as f32 * 0.016));
        let red2: [f32; 100] = core::array::from_fn(|i| red[i] + base[i]);
        let ir2: [f32; 100] = core::array::from_fn(|i| ir[i] + base[i]);
        let f = fit(&red2, &ir2).unwrap();
        assert!((f.slope - 0.7).abs() < 0.01, "{f:?}");
        assert_eq!(fit(&[0.0; 4], &[0.0; 4]), None);
    }
}
