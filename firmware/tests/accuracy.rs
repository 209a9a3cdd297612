//! Accuracy of the on-node pulse rate and SpO2 on synthetic PPG of known values.
//!
//! Grid: pulse rate 40–180 /min × SpO2 70–100 %, each run 40 s at 100 samples/s, one estimate
//! per second; the first 14 s are not counted (window, filter settling, the three agreeing
//! estimates the first number needs and the one-second release delay: about 12 s). Conditions:
//! - `clean`: PI 2 %, 10 counts noise, ±2 % beat-to-beat variation, 0.5 % respiratory baseline;
//! - `noisy`: PI 1 %, 60 counts noise, ±4 % variation, 2 % baseline;
//! - `marginal`: PI 0.25 %, 10 counts noise (marginal perfusion: numbers, flagged marginal);
//! - `motion`: as clean, plus motion bursts (1–4 s, 2.5–7.5 % of DC) every ~8 s;
//! - `low-perfusion`: PI 0.04 %, 20 counts noise: no number may be given;
//! - `sensor-off`: no finger.
//!
//! The pulse-rate reference is the synthetic pulse's true mean rate over each estimate's 5 s
//! window (beat-to-beat variation makes it differ from the configured rate by up to ~2 %).
//!
//! Requirement (firmware issue): within ±3 /min and ±2 % where the signal is good, and flagged,
//! not a wrong number, where it is not. So: every number given, in every condition, is within
//! tolerance; in `clean` and `noisy` at least 90 % of the estimates are numbers; in
//! `low-perfusion` and `sensor-off` none is.
//! Run with `--nocapture` to print the error table.

use medgw_firmware::dsp::{Estimator, Flags, Reading};
use medgw_firmware::synth::{PpgSynth, SynthConfig};

const RATES: [f32; 10] = [40.0, 50.0, 60.0, 75.0, 90.0, 110.0, 130.0, 150.0, 165.0, 180.0];
const SATS: [f32; 7] = [70.0, 75.0, 80.0, 85.0, 90.0, 95.0, 100.0];
const SECONDS: usize = 40;
const FIRST: usize = 14;

#[derive(Default, Clone, Copy)]
struct Stats {
    estimates: u32,
    hr_given: u32,
    spo2_given: u32,
    hr_abs_sum: f32,
    hr_max: f32,
    spo2_abs_sum: f32,
    spo2_max: f32,
    flagged: u32,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.estimates += o.estimates;
        self.hr_given += o.hr_given;
        self.spo2_given += o.spo2_given;
        self.hr_abs_sum += o.hr_abs_sum;
        self.spo2_abs_sum += o.spo2_abs_sum;
        self.hr_max = self.hr_max.max(o.hr_max);
        self.spo2_max = self.spo2_max.max(o.spo2_max);
        self.flagged += o.flagged;
    }
    fn hr_mae(&self) -> f32 {
        self.hr_abs_sum / self.hr_given.max(1) as f32
    }
    fn spo2_mae(&self) -> f32 {
        self.spo2_abs_sum / self.spo2_given.max(1) as f32
    }
    fn availability(&self) -> f32 {
        100.0 * self.hr_given.min(self.spo2_given) as f32 / self.estimates.max(1) as f32
    }
}

/// `ACCURACY_SEED=n` shifts every seed, to try the grid on other noise and motion.
fn seed_offset() -> u32 {
    std::env::var("ACCURACY_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn condition(name: &str, rate: f32, spo2: f32, seed: u32) -> SynthConfig {
    let seed = seed.wrapping_add(seed_offset());
    let base = SynthConfig { pulse_rate: rate, spo2, seed, ..SynthConfig::default() };
    match name {
        "clean" => base,
        "noisy" => SynthConfig { perfusion_index: 1.0, noise: 60.0, hrv: 0.04, baseline: 0.02, ..base },
        "marginal" => SynthConfig { perfusion_index: 0.25, noise: 10.0, ..base },
        "motion" => SynthConfig { motion_every_s: 8.0, motion_amplitude: 0.05, ..base },
        "low-perfusion" => SynthConfig { perfusion_index: 0.04, noise: 20.0, ..base },
        "sensor-off" => SynthConfig { finger: false, ..base },
        _ => unreachable!(),
    }
}

/// Runs one scenario; panics on a wrong number.
fn run(name: &str, rate: f32, spo2: f32, seed: u32) -> Stats {
    let cfg = condition(name, rate, spo2, seed);
    let mut synth = PpgSynth::new(cfg);
    let mut est = Estimator::new();
    let mut s = Stats::default();
    let mut cycles = [0.0f64; SECONDS + 1];
    for second in 0..SECONDS {
        for _ in 0..100 {
            let (r, i) = synth.next_sample();
            est.push(r, i);
        }
        cycles[second + 1] = synth.cycles();
        let e = est.estimate();
        if second < FIRST {
            continue;
        }
        // The reference pulse rate is the true mean over the estimate's 5 s window (as an ECG
        // reference averaged over the same time would be), the window that ended one second
        // ago (estimates are released one second late); SpO2 is constant.
        let window_rate = ((cycles[second] - cycles[second - 5]) * 12.0) as f32;
        s.estimates += 1;
        let check = |r: &Reading, truth: f32, tol: f32, what: &str| -> Option<f32> {
            let v = r.value?;
            let err = v - truth;
            assert!(err.abs() <= tol, "{name} {what}: {v:.1} for {truth} (rate {rate}, SpO2 {spo2}, seed {seed}, t {second}) {r:?}");
            Some(err.abs())
        };
        // Rounded as the node sends them.
        let hr = Reading { value: e.pulse_rate.value.map(libm::roundf), ..e.pulse_rate };
        let sp = Reading { value: e.spo2.value.map(libm::roundf), ..e.spo2 };
        assert!(!cfg.finger || (window_rate - rate).abs() < 0.06 * rate, "{window_rate} vs {rate}");
        if let Some(err) = check(&hr, window_rate, 3.0, "pulse rate") {
            s.hr_given += 1;
            s.hr_abs_sum += err;
            s.hr_max = s.hr_max.max(err);
        } else {
            assert!(!hr.flags.is_empty(), "an absent pulse rate must say why");
        }
        if let Some(err) = check(&sp, spo2, 2.0, "SpO2") {
            s.spo2_given += 1;
            s.spo2_abs_sum += err;
            s.spo2_max = s.spo2_max.max(err);
        } else {
            assert!(!sp.flags.is_empty(), "an absent SpO2 must say why");
        }
        if hr.value.is_none() || sp.value.is_none() {
            s.flagged += 1;
        }
        if name == "sensor-off" {
            assert!(hr.flags.contains(Flags::SENSOR_OFF) && sp.flags.contains(Flags::SENSOR_OFF));
        }
        if name == "marginal" && hr.value.is_some() {
            assert!(hr.flags.contains(Flags::MARGINAL_PERFUSION), "{hr:?}");
        }
    }
    s
}

#[test]
fn accuracy_over_the_grid() {
    let mut table = String::new();
    table.push_str("| pulse rate /min | clean: PR MAE / max | clean: SpO2 MAE / max | clean avail % | noisy: PR MAE / max | noisy: SpO2 MAE / max | noisy avail % | motion avail % (flagged) |\n");
    table.push_str("|---|---|---|---|---|---|---|---|\n");
    let mut totals = [Stats::default(); 3];
    for (i, &rate) in RATES.iter().enumerate() {
        let mut row = [Stats::default(); 3];
        for (j, &sat) in SATS.iter().enumerate() {
            let seed = (i * 31 + j * 7 + 1) as u32;
            for (k, name) in ["clean", "noisy", "motion"].iter().enumerate() {
                row[k].add(&run(name, rate, sat, seed));
            }
        }
        for k in 0..3 {
            totals[k].add(&row[k]);
        }
        let [c, n, m] = row;
        table.push_str(&format!(
            "| {rate} | {:.2} / {:.0} | {:.2} / {:.0} | {:.1} | {:.2} / {:.0} | {:.2} / {:.0} | {:.1} | {:.1} ({}) |\n",
            c.hr_mae(),
            c.hr_max,
            c.spo2_mae(),
            c.spo2_max,
            c.availability(),
            n.hr_mae(),
            n.hr_max,
            n.spo2_mae(),
            n.spo2_max,
            n.availability(),
            m.availability(),
            m.flagged
        ));
    }
    let [c, n, m] = totals;
    table.push_str(&format!(
        "| all | {:.2} / {:.0} | {:.2} / {:.0} | {:.1} | {:.2} / {:.0} | {:.2} / {:.0} | {:.1} | {:.1} ({}) |\n",
        c.hr_mae(),
        c.hr_max,
        c.spo2_mae(),
        c.spo2_max,
        c.availability(),
        n.hr_mae(),
        n.hr_max,
        n.spo2_mae(),
        n.spo2_max,
        n.availability(),
        m.availability(),
        m.flagged
    ));
    println!("{table}");
    assert!(c.availability() >= 90.0, "clean availability {}", c.availability());
    assert!(n.availability() >= 90.0, "noisy availability {}", n.availability());
    assert!(m.flagged > 0, "motion was never flagged");
}

#[test]
fn by_saturation() {
    // The same grid seen by SpO2 (clean and noisy together).
    let mut out = String::from("| SpO2 % | SpO2 MAE | SpO2 max err | estimates with SpO2 % |\n|---|---|---|---|\n");
    for (j, &sat) in SATS.iter().enumerate() {
        let mut s = Stats::default();
        for (i, &rate) in RATES.iter().enumerate().step_by(3) {
            for name in ["clean", "noisy"] {
                s.add(&run(name, rate, sat, (i * 13 + j * 5 + 100) as u32));
            }
        }
        out.push_str(&format!(
            "| {sat} | {:.2} | {:.0} | {:.1} |\n",
            s.spo2_mae(),
            s.spo2_max,
            100.0 * s.spo2_given as f32 / s.estimates as f32
        ));
    }
    println!("{out}");
}

#[test]
fn marginal_perfusion_is_accurate_and_flagged() {
    let mut s = Stats::default();
    for (i, &rate) in RATES.iter().enumerate().step_by(2) {
        for &sat in &[75.0, 90.0, 98.0] {
            s.add(&run("marginal", rate, sat, i as u32 + 500));
        }
    }
    println!(
        "marginal: PR MAE {:.2} max {:.0}, SpO2 MAE {:.2} max {:.0}, availability {:.1} %",
        s.hr_mae(),
        s.hr_max,
        s.spo2_mae(),
        s.spo2_max,
        s.availability()
    );
    assert!(s.availability() >= 80.0, "{}", s.availability());
}

#[test]
fn no_number_without_perfusion_or_finger() {
    for (i, &rate) in RATES.iter().enumerate().step_by(3) {
        for name in ["low-perfusion", "sensor-off"] {
            let s = run(name, rate, 95.0, i as u32 + 900);
            assert_eq!(s.hr_given + s.spo2_given, 0, "{name} at {rate}: a number without a usable signal");
            assert_eq!(s.flagged, s.estimates);
        }
    }
}

#[test]
fn finger_on_off_on() {
    // Off for 10 s, on for 20 s, off, on: numbers come within 14 s of contact.
    let mut synth = PpgSynth::new(SynthConfig { pulse_rate: 88.0, spo2: 93.0, ..SynthConfig::default() });
    let mut est = Estimator::new();
    let mut first_number = None;
    for second in 0..60 {
        synth.config.finger = !(second < 10 || (30..40).contains(&second));
        for _ in 0..100 {
            let (r, i) = synth.next_sample();
            est.push(r, i);
        }
        let e = est.estimate();
        // Estimates are released one second late: the second after the finger left.
        if !synth.config.finger && second != 0 && second != 30 {
            assert!(e.pulse_rate.flags.contains(Flags::SENSOR_OFF), "{second}: {e:?}");
        }
        if let Some(v) = e.pulse_rate.value {
            assert!((v - 88.0).abs() <= 3.0, "{second}: {v}");
            first_number.get_or_insert(second);
        }
    }
    assert!(first_number.is_some_and(|s| s <= 24), "{first_number:?}");
}

#[test]
fn real_changes_are_tracked_not_flagged() {
    // Pulse rate 60 -> 120 /min and SpO2 98 -> 86 % over 30 s (a fast tachycardia with a
    // desaturation), then steady. Each number must match the truth averaged over its 5 s window
    // (the window is what the estimate measures); most estimates during the ramp must be numbers.
    let truth = |t: f32| -> (f32, f32) {
        let f = ((t - 15.0) / 30.0).clamp(0.0, 1.0);
        (60.0 + 60.0 * f, 98.0 - 12.0 * f)
    };
    let mut synth = PpgSynth::new(SynthConfig { pulse_rate: 60.0, spo2: 98.0, seed: 77, ..SynthConfig::default() });
    let mut est = Estimator::new();
    let (mut given, mut total) = (0, 0);
    for second in 0..70 {
        for k in 0..100 {
            let t = second as f32 + k as f32 / 100.0;
            let (hr, sp) = truth(t);
            synth.config.pulse_rate = hr;
            synth.config.spo2 = sp;
            let (r, i) = synth.next_sample();
            est.push(r, i);
        }
        let e = est.estimate();
        // Released one second late: the window ended at `second`.
        let end = second as f32;
        let (mut hr_mean, mut sp_mean) = (0.0, 0.0);
        for k in 0..50 {
            let (h, s) = truth(end - 5.0 + k as f32 * 0.1);
            hr_mean += h / 50.0;
            sp_mean += s / 50.0;
        }
        if (15..50).contains(&second) {
            total += 1;
            if e.pulse_rate.value.is_some() && e.spo2.value.is_some() {
                given += 1;
            }
        }
        if let Some(v) = e.pulse_rate.value {
            assert!((libm::roundf(v) - hr_mean).abs() <= 3.0, "t {second}: pulse rate {v} for {hr_mean}");
        }
        if let Some(v) = e.spo2.value {
            assert!((libm::roundf(v) - sp_mean).abs() <= 2.0, "t {second}: SpO2 {v} for {sp_mean}");
        }
    }
    println!("ramp: {given} of {total} estimates with numbers");
    assert!(given * 10 >= total * 7, "{given} of {total}");
}
