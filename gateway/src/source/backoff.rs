//! Exponential back-off with jitter for reconnects, so that 32 devices on a gateway that lost
//! its USB hub do not retry in lock-step.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
    seed: u64,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration, seed: u64) -> Backoff {
        Backoff { initial, max, current: initial, seed: seed | 1 }
    }

    /// The next delay: doubles up to `max`, with ±20 % jitter.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.current;
        self.current = (self.current * 2).min(self.max);
        // xorshift64 for jitter.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let jitter = (self.seed % 401) as i64 - 200; // -200..=200 per mille
        let ms = base.as_millis() as i64;
        Duration::from_millis((ms + ms * jitter / 1000).max(1) as u64)
    }

    pub fn reset(&mut self) {
        self.current = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_with_bounded_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(8), 42);
        let delays: Vec<u128> = (0..8).map(|_| b.next_delay().as_millis()).collect();
        let bases = [500u128, 1000, 2000, 4000, 8000, 8000, 8000, 8000];
        for (d, base) in delays.iter().zip(bases) {
            assert!(*d >= base * 8 / 10 && *d <= base * 12 / 10, "{d} vs {base}");
        }
        b.reset();
        assert!(b.next_delay().as_millis() <= 600);
    }
}
