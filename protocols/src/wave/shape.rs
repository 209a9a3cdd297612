//! Signal shapes for the simulators: one beat of a finger plethysmogram.

/// One pleth beat, sampled at 32 equal steps of the beat, 0–1000: a fast systolic upstroke to
/// the peak at about a fifth of the beat, the fall to the dicrotic notch, the small reflected
/// wave after it, and the slow diastolic run-off back to the baseline. Drawn after the textbook
/// photoplethysmogram (systolic peak, dicrotic notch, diastolic peak); values are not a
/// recording.
const PLETH_BEAT: [u16; 33] = [
    0, 60, 250, 520, 780, 950, 1000, 970, 900, 810, 720, 640, 585, 560, 575, 600, 598, 575, 540, 500, 455, 410, 365, 320, 275, 232, 190,
    150, 112, 76, 44, 18, 0,
];

/// The pleth at `phase` (0..65536 = one beat), 0–1000, linearly interpolated.
pub fn pleth(phase: u32) -> u32 {
    let phase = phase % 65536;
    let i = (phase / 2048) as usize;
    let frac = phase % 2048;
    let a = PLETH_BEAT.get(i).copied().unwrap_or(0) as u32;
    let b = PLETH_BEAT.get(i + 1).copied().unwrap_or(0) as u32;
    (a * (2048 - frac) + b * frac) / 2048
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beat_has_peak_notch_and_returns_to_baseline() {
        let v: alloc::vec::Vec<u32> = (0..64).map(|k| pleth(k * 1024)).collect();
        let peak = v.iter().enumerate().max_by_key(|(_, x)| **x).map(|(i, _)| i).unwrap();
        assert!((10..=14).contains(&peak), "peak at {peak}");
        // Falls, then rises again (dicrotic wave), then falls to zero.
        assert!(v[26] < v[24] && v[30] > v[26]);
        assert_eq!(pleth(0), 0);
        assert!(pleth(65535) < 10);
    }
}
