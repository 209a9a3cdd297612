//! Pulse period: the peak of the autocorrelation, confirmed by counting beats.
//!
//! The autocorrelation of a window of the band-passed PPG peaks at the beat period whatever the
//! pulse shape, and its height says how periodic the window is (1 for a clean pulse, low for
//! motion or noise). The first peak that reaches most of the highest one is the period (the
//! later ones are its multiples); parabolic interpolation gives the sub-sample lag, which matters
//! at 180 /min where one sample is 5 /min.
//!
//! Beat detection on the same window is the independent check: the systolic troughs of the
//! raw signal (peaks of its negation) are found with a threshold and a refractory time, and the
//! median interval between them must agree with the autocorrelation period. Motion makes
//! irregular, unequal "beats", and then the two disagree.

/// The period found in a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Period {
    /// In samples, interpolated.
    pub lag: f32,
    /// Normalised autocorrelation at the period, -1..=1: how periodic the window is.
    pub strength: f32,
    /// Autocorrelation at the period (power of the periodic part, in signal units squared).
    pub periodic_power: f32,
    /// Power of the whole window (autocorrelation at lag 0).
    pub power: f32,
}

/// Normalised (unbiased) autocorrelation of `x` at `lag`: the mean of `x[t]·x[t+lag]`.
pub fn acf(x: &[f32], lag: usize) -> f32 {
    xcf(x, x, lag)
}

/// Normalised cross-correlation: the mean of `x[t]·y[t+lag]`.
pub fn xcf(x: &[f32], y: &[f32], lag: usize) -> f32 {
    let n = x.len().min(y.len()).saturating_sub(lag);
    if n == 0 {
        return 0.0;
    }
    let s: f32 = x.iter().zip(y.iter().skip(lag)).map(|(a, b)| a * b).sum();
    s / n as f32
}

/// The beat period of `x` (zero-mean, band-passed), searched in `min_lag..=max_lag` samples.
/// `scratch` must hold `max_lag + 2` values.
pub fn period(x: &[f32], min_lag: usize, max_lag: usize, scratch: &mut [f32]) -> Option<Period> {
    let r0 = acf(x, 0);
    if r0 <= 0.0 || min_lag < 2 || max_lag + 2 > x.len() || scratch.len() < max_lag + 2 {
        return None;
    }
    for lag in min_lag - 1..=max_lag + 1 {
        *scratch.get_mut(lag)? = acf(x, lag) / r0;
    }
    let r = |k: usize| scratch.get(k).copied().unwrap_or(0.0);
    let is_peak = |k: usize| r(k) > r(k - 1) && r(k) >= r(k + 1);
    let best = (min_lag..=max_lag).filter(|&k| is_peak(k)).map(r).fold(f32::MIN, f32::max);
    if best <= 0.0 {
        return None;
    }
    let k = (min_lag..=max_lag).find(|&k| is_peak(k) && r(k) >= 0.8 * best)?;
    let (a, b, c) = (r(k - 1), r(k), r(k + 1));
    let denom = a - 2.0 * b + c;
    let delta = if denom < 0.0 { (0.5 * (a - c) / denom).clamp(-0.5, 0.5) } else { 0.0 };
    let strength = b - 0.25 * (a - c) * delta;
    // Refine on the highest multiple of the period in range: its lag, divided by the multiple,
    // has that many times less interpolation error (5 /min per sample at 180 /min otherwise).
    let mut lag = k as f32 + delta;
    let mut m = 4usize;
    while m > 1 {
        let centre = libm::roundf(lag * m as f32) as usize;
        if centre + 4 <= max_lag + 1 {
            let km = (centre - 3..=centre + 3).filter(|&j| is_peak(j)).max_by(|&x, &y| r(x).total_cmp(&r(y)));
            if let Some(km) = km {
                let (a, b, c) = (r(km - 1), r(km), r(km + 1));
                let denom = a - 2.0 * b + c;
                let d = if denom < 0.0 { (0.5 * (a - c) / denom).clamp(-0.5, 0.5) } else { 0.0 };
                lag = (km as f32 + d) / m as f32;
            }
            break;
        }
        m -= 1;
    }
    Some(Period { lag, strength, periodic_power: strength.max(0.0) * r0, power: r0 })
}

/// Longest window [`beat_intervals`] looks at.
pub const MAX_BEAT_WINDOW: usize = 512;

/// Beat intervals found by [`beat_intervals`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Beats {
    /// Median interval, samples.
    pub median: f32,
    /// Longest interval over the shortest: 1 for a steady rhythm, large when motion makes
    /// false beats.
    pub spread: f32,
}

/// Median beat interval (samples) from the troughs of `x` (see [`beat_intervals`]).
pub fn median_beat_interval(x: &[f32], refractory: usize) -> Option<f32> {
    beat_intervals(x, refractory, refractory).map(|b| b.median)
}

/// Beat intervals of `x` from its troughs (the systolic upstrokes of the raw PPG).
///
/// Each sample is first taken relative to the mean of the `span` samples around it (one beat
/// period): what is slower than the pulse, like the remains of the respiratory baseline, no
/// longer lifts some troughs above the threshold. A trough is a local minimum deeper than half
/// the deepest; the deepest point in the `refractory` samples that follow it is the beat, and
/// the next beat is searched after those (the dicrotic wave falls inside).
pub fn beat_intervals(x: &[f32], refractory: usize, span: usize) -> Option<Beats> {
    // Detrend into a stack buffer (2 KiB) with a running sum: O(n).
    let mut d = [0.0f32; MAX_BEAT_WINDOW];
    let n = x.len().min(MAX_BEAT_WINDOW);
    let half = (span / 2).max(1);
    let (mut lo, mut hi, mut sum) = (0usize, 0usize, 0.0f32);
    for (i, slot) in d.iter_mut().enumerate().take(n) {
        let (want_lo, want_hi) = (i.saturating_sub(half), (i + half + 1).min(n));
        while hi < want_hi {
            sum += x.get(hi).copied().unwrap_or(0.0);
            hi += 1;
        }
        while lo < want_lo {
            sum -= x.get(lo).copied().unwrap_or(0.0);
            lo += 1;
        }
        *slot = x.get(i).copied().unwrap_or(0.0) - sum / (hi - lo) as f32;
    }
    let detrended = |i: usize| d.get(i).copied().unwrap_or(0.0);
    let deepest = d.iter().take(n).copied().fold(0.0f32, f32::min);
    if deepest >= 0.0 {
        return None;
    }
    let threshold = 0.5 * deepest;
    let mut beats = [0usize; 32];
    let mut count = 0;
    let mut i = 1;
    let (mut p, mut c) = (detrended(0), detrended(1));
    while i + 1 < n {
        let q = detrended(i + 1);
        if c < threshold && c <= p && c < q {
            // The deepest point within the refractory span that follows is the beat.
            let end = (i + refractory).min(n);
            let (mut bj, mut bv) = (i, c);
            for j in i..end {
                let v = detrended(j);
                if v < bv {
                    bj = j;
                    bv = v;
                }
            }
            if count < beats.len() {
                beats[count] = bj;
                count += 1;
            }
            i = bj + refractory.max(1);
            if i + 1 >= n {
                break;
            }
            p = detrended(i - 1);
            c = detrended(i);
            continue;
        }
        p = c;
        c = q;
        i += 1;
    }
    if count < 3 {
        return None;
    }
    let mut intervals = [0usize; 31];
    for k in 1..count {
        intervals[k - 1] = beats[k] - beats[k - 1];
    }
    let iv = intervals.get_mut(..count - 1)?;
    iv.sort_unstable();
    let m = iv.len();
    let median = if m % 2 == 1 { iv[m / 2] as f32 } else { (iv[m / 2 - 1] + iv[m / 2]) as f32 / 2.0 };
    let spread = iv[m - 1] as f32 / (iv[0].max(1)) as f32;
    Some(Beats { median, spread })
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::f32::consts::PI;

    fn pulse(period: f32, n: usize) -> [f32; 500] {
        let mut x = [0.0f32; 500];
        for (i, v) in x.iter_mut().enumerate().take(n) {
            let ph = 2.0 * PI * i as f32 / period;
            // A fundamental with a second harmonic, like a PPG with its dicrotic wave.
            *v = -libm::sinf(ph) - 0.4 * libm::sinf(2.0 * ph + 0.8);
        }
        x
    }

    #[test]
    fn finds_the_period_across_the_range() {
        let mut scratch = [0.0f32; 170];
        for period_samples in [33.3f32, 40.0, 60.0, 75.0, 100.0, 150.0] {
            let x = pulse(period_samples, 500);
            let p = period(&x, 30, 160, &mut scratch).unwrap();
            assert!((p.lag - period_samples).abs() < 0.01 * period_samples + 0.3, "{period_samples}: {p:?}");
            assert!(p.strength > 0.8, "{p:?}");
            let beats = median_beat_interval(&x, (0.6 * p.lag) as usize).unwrap();
            assert!((beats - period_samples).abs() <= 1.5, "{period_samples}: {beats}");
        }
    }

    #[test]
    fn noise_is_not_periodic() {
        let mut x = [0.0f32; 500];
        let mut s = 12345u32;
        for v in x.iter_mut() {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            *v = (s as f32 / u32::MAX as f32) - 0.5;
        }
        let mut scratch = [0.0f32; 170];
        if let Some(p) = period(&x, 30, 160, &mut scratch) {
            assert!(p.strength < 0.3, "{p:?}");
        }
        assert_eq!(period(&[0.0; 500], 30, 160, &mut scratch), None);
    }
}
