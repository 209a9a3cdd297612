//! Signal quality: whether a window supports a number, and which flag says why not.
//!
//! The checks, in the order an oximeter's user would fix them:
//! 1. contact: the IR level (DC) must be in the range a finger gives. Without a finger the
//!    photodiode sees only ambient light (a low level); a saturated ADC means ambient overload.
//!    -> [`Flags::SENSOR_OFF`].
//! 2. settling: after contact the window must fill and the filters settle -> [`Flags::PULSE_SEARCH`].
//! 3. perfusion: the perfusion index (pulsatile / DC, from the periodic power only, so noise does
//!    not count as pulse) below 0.1 % gives no reliable number -> [`Flags::LOW_PERFUSION`]; below
//!    0.3 % the number is given with [`Flags::MARGINAL_PERFUSION`].
//! 4. periodicity and consistency: a weak autocorrelation peak, a beat count that disagrees with
//!    it or beats of very unequal length, one beat-long part of the window far louder than another, a window far louder than the
//!    quietest of the last 16 s, or a pulse rate that jumps and is not confirmed (all signs of
//!    motion) -> [`Flags::ARTIFACT`].
//! 5. for SpO2 only: red and IR must move together (correlation), and the ratio of their
//!    periodic parts must match the ratio of the whole window -> [`Flags::ARTIFACT`].
//!
//! A window that fails gives no number: the observation is "absent" with the flag, never a
//! guess.

pub use medgw_protocols::quality::Flags;

/// IR DC below this (18-bit counts) is no finger: ambient light only.
pub const CONTACT_MIN: f32 = 20_000.0;
/// IR DC above this is a saturated ADC (ambient overload or no finger with strong light).
pub const CONTACT_MAX: f32 = 250_000.0;
/// Perfusion index (%) below which there is no number.
pub const PI_LOW: f32 = 0.1;
/// Perfusion index (%) below which the number is marked marginal.
pub const PI_MARGINAL: f32 = 0.3;
/// Lowest normalised autocorrelation at the period for a number.
pub const MIN_STRENGTH: f32 = 0.6;
/// Largest relative disagreement between beat counting and the autocorrelation period.
pub const MAX_BEAT_DISAGREEMENT: f32 = 0.10;
/// Largest ratio of the longest to the shortest beat interval in the window.
pub const MAX_INTERVAL_SPREAD: f32 = 1.35;
/// Largest ratio between the loudest and the quietest second of the window.
pub const MAX_SEGMENT_RATIO: f32 = 3.0;
/// Largest ratio of a window's normalised power to the quietest of the last 16 windows.
pub const MAX_POWER_JUMP: f32 = 1.6;
/// Largest change of the pulse rate between estimates one second apart (fraction) before it
/// must be confirmed.
pub const MAX_RATE_JUMP: f32 = 0.05;
/// Largest difference (% SpO2) between the saturation of the whole window and of its periodic
/// part.
pub const MAX_SPO2_DISAGREEMENT: f32 = 1.5;
/// Largest change of SpO2 (%) between estimates one second apart before it must be confirmed.
pub const MAX_SPO2_JUMP: f32 = 2.0;
/// Lowest red/IR correlation for SpO2.
pub const MIN_CORRELATION: f32 = 0.9;

/// Whether the IR level says a finger is on the sensor.
pub fn contact(dc_ir: f32) -> bool {
    (CONTACT_MIN..=CONTACT_MAX).contains(&dc_ir)
}

/// Perfusion index (%) of a pulse whose periodic power (mean square) is `periodic_power` on a
/// level `dc`: peak-to-peak taken as 2√2 × RMS (exact for a sine, close for a PPG).
pub fn perfusion_index(periodic_power: f32, dc: f32) -> f32 {
    if dc <= 0.0 {
        return 0.0;
    }
    2.0 * core::f32::consts::SQRT_2 * libm::sqrtf(periodic_power.max(0.0)) / dc * 100.0
}

/// Ratio of the largest to the smallest peak-to-peak of `segments` equal parts of `x`.
pub fn segment_ratio(x: &[f32], segments: usize) -> f32 {
    let len = x.len() / segments.max(1);
    if len == 0 {
        return f32::INFINITY;
    }
    let (mut lo, mut hi) = (f32::INFINITY, 0.0f32);
    for seg in x.chunks_exact(len) {
        let (mn, mx) = seg.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
        let pp = mx - mn;
        lo = lo.min(pp);
        hi = hi.max(pp);
    }
    if lo <= 0.0 {
        f32::INFINITY
    } else {
        hi / lo
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_range_and_perfusion_index() {
        assert!(!contact(1_500.0));
        assert!(contact(100_000.0));
        assert!(!contact(262_000.0));
        // A sine of amplitude 1000 (p-p 2000, mean square 500000) on 100000: PI 2 %.
        assert!((perfusion_index(500_000.0, 100_000.0) - 2.0).abs() < 1e-3);
        assert_eq!(perfusion_index(1.0, 0.0), 0.0);
    }

    #[test]
    fn segment_ratio_sees_a_burst() {
        let steady: [f32; 500] = core::array::from_fn(|i| libm::sinf(i as f32 * 0.1));
        assert!(segment_ratio(&steady, 5) < 1.2);
        let mut burst = steady;
        for v in &mut burst[200..300] {
            *v *= 6.0;
        }
        assert!(segment_ratio(&burst, 5) > MAX_SEGMENT_RATIO);
    }
}
