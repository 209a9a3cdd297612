//! The application: sampling, estimates, batches and the link, driven by a time passed in.
//!
//! The board's main loop calls [`App::step`] with its uptime in ms as often as it likes (every
//! millisecond on the QEMU image); the app catches up on the 10 ms sampling ticks that are due,
//! makes an estimate and a batch every second, hands received bytes to the link and sends at
//! most one frame. Nothing here sleeps, reads a clock or touches hardware, so the host tests run
//! the same code in simulated time.

use medgw_protocols::quality::Flags;

use crate::dsp::{Estimate, Estimator, Reading};
use crate::identity::Identity;
use crate::link::{Item, NodeLink, TX_BUF};

/// Sampling period: 100 samples/s.
pub const SAMPLE_MS: u64 = 10;
/// Estimate and batch period.
pub const ESTIMATE_MS: u64 = 1_000;
/// Most sampling ticks caught up in one step; beyond, the gap is skipped (a stalled loop must
/// not turn into a burst of stale samples).
pub const MAX_CATCH_UP: u32 = 100;

/// The PPG front end: one (red, IR) pair per call, at 100 samples/s; `None` when no sample.
pub trait PpgSource {
    fn sample(&mut self) -> Option<(u32, u32)>;
}

/// The body-temperature sensor, in 1/100 °C.
pub trait TemperatureSource {
    fn centi_celsius(&mut self) -> Option<i32>;
}

/// The UART to the gateway.
pub trait Serial {
    /// Writes all of `bytes` (blocking is fine: at most one frame per step).
    fn write(&mut self, bytes: &[u8]);
    /// Reads what has arrived, without blocking; returns the count.
    fn read(&mut self, buf: &mut [u8]) -> usize;
}

/// The node.
#[derive(Debug, Clone)]
pub struct App {
    pub estimator: Estimator,
    pub link: NodeLink,
    next_sample: u64,
    next_estimate: u64,
    last: (u32, u32),
    pub missed_samples: u32,
    pub last_estimate: Option<Estimate>,
    /// The temperature read with the previous estimate, sent with the delayed estimate.
    pending_temperature: Item,
}

/// An estimate reading as a stored item: value rounded to the slot's resolution (integers for
/// SpO2 and pulse rate).
fn item(r: &Reading) -> Item {
    match r.value {
        Some(v) => Item::value(libm::roundf(v) as i16, r.flags),
        None => Item::absent(r.flags),
    }
}

impl App {
    pub fn new(identity: Identity, now_ms: u64) -> App {
        App {
            estimator: Estimator::new(),
            link: NodeLink::new(identity),
            next_sample: now_ms,
            next_estimate: now_ms + ESTIMATE_MS,
            last: (0, 0),
            missed_samples: 0,
            last_estimate: None,
            pending_temperature: Item::absent(Flags::NONE),
        }
    }

    /// Advances the node to `now_ms` (uptime).
    pub fn step(&mut self, now_ms: u64, ppg: &mut impl PpgSource, temp: &mut impl TemperatureSource, serial: &mut impl Serial) {
        let mut n = 0;
        while self.next_sample <= now_ms {
            if n == MAX_CATCH_UP {
                self.next_sample = now_ms + SAMPLE_MS;
                break;
            }
            match ppg.sample() {
                Some(s) => self.last = s,
                // Hold the last sample: a dropped sample must not look like a pulse.
                None => self.missed_samples = self.missed_samples.saturating_add(1),
            }
            self.estimator.push(self.last.0, self.last.1);
            self.next_sample += SAMPLE_MS;
            n += 1;
        }
        if now_ms >= self.next_estimate {
            let e = self.estimator.estimate();
            let t = match temp.centi_celsius() {
                Some(c) => Item::value(c.clamp(i16::MIN as i32, i16::MAX as i32) as i16, Flags::NONE),
                None => Item::absent(Flags::NONE),
            };
            // The estimate describes the window that ended RELEASE_DELAY_MS (one period) ago;
            // the temperature read then goes with it, so the batch has one true time.
            let at = self.next_estimate.saturating_sub(crate::dsp::RELEASE_DELAY_MS);
            let t_then = core::mem::replace(&mut self.pending_temperature, t);
            self.link.record(at, [item(&e.spo2), item(&e.pulse_rate), t_then]);
            self.last_estimate = Some(e);
            self.next_estimate += ESTIMATE_MS;
            if self.next_estimate <= now_ms {
                self.next_estimate = now_ms + ESTIMATE_MS;
            }
        }
        let mut rx = [0u8; 64];
        loop {
            let n = serial.read(&mut rx);
            if n == 0 {
                break;
            }
            self.link.receive(rx.get(..n).unwrap_or_default(), now_ms);
        }
        let mut tx = [0u8; TX_BUF];
        let n = self.link.poll(now_ms, &mut tx);
        if n > 0 {
            serial.write(tx.get(..n).unwrap_or_default());
        }
    }
}
