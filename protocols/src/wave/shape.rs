//! Signal shapes for the simulators: one beat of a finger plethysmogram, one beat of ECG lead II.

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

/// One beat of ECG lead II as knots (position in the beat in 1/1000, microvolts), the R peak at
/// 290/1000: a small rounded P wave, the PR segment, the QRS complex (a small Q, R about 1.2 mV,
/// S), the ST segment and a broad T wave, then the baseline until the next beat. Drawn after
/// the textbook lead II complex (P < 0.25 mV, QRS under 120 ms at 75/min, T upright); values
/// are not a recording.
const ECG_BEAT: [(u32, i32); 20] = [
    (0, 0),
    (80, 0),
    (110, 80),
    (140, 150),
    (170, 80),
    (200, 0),
    (250, 0),
    (265, -100),
    (290, 1200),
    (315, -300),
    (335, 0),
    (420, 20),
    (480, 150),
    (540, 300),
    (600, 150),
    (660, 0),
    (700, 0),
    (800, 0),
    (900, 0),
    (1000, 0),
];

/// Where the R peak is in the beat, in 1/65536 (290/1000 of the beat).
pub const ECG_R_PHASE: u32 = 290 * 65536 / 1000;

/// ECG lead II at `phase` (0..65536 = one beat), in microvolts, linearly interpolated.
pub fn ecg_ii(phase: u32) -> i32 {
    let x = ((phase % 65536) as u64 * 1000 / 65536) as u32;
    let x_frac = (phase % 65536) as i64 * 1000 % 65536; // sub-permille part, in 1/65536
    for w in ECG_BEAT.windows(2) {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        if x >= x0 && x < x1 {
            let num = ((x - x0) as i64 * 65536 + x_frac) * (y1 - y0) as i64;
            let den = (x1 - x0) as i64 * 65536;
            return y0 + (num / den) as i32;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecg_beat_has_p_qrs_t() {
        let v: alloc::vec::Vec<i32> = (0..1000).map(|k| ecg_ii(k * 65536 / 1000)).collect();
        let (r, peak) = v.iter().enumerate().max_by_key(|(_, x)| **x).map(|(i, x)| (i, *x)).unwrap();
        assert_eq!(r, 290);
        assert!((1190..=1200).contains(&peak) && ecg_ii(ECG_R_PHASE) >= 1190, "{peak}");
        assert!((140..=150).contains(&v[140]) && (290..=300).contains(&v[540]), "P and T waves");
        assert!(v[265] < 0 && v[315] < 0, "Q and S");
        assert_eq!((v[0], v[999], v[800]), (0, 0, 0));
    }

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
