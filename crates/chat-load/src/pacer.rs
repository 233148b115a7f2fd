//! An open-loop pacer: events at a fixed rate from a start instant, never waiting for
//! answers, so a slow server shows up as latency rather than as a lower offered load.

use std::time::Duration;
use tokio::time::Instant;

/// Most events released by one call when the pacer has fallen behind.
const MAX_BURST: u64 = 10_000;

/// Releases events at `rate` per second.
pub struct Pacer {
    start: Instant,
    rate: f64,
    issued: u64,
}

impl Pacer {
    /// A pacer starting now; a rate of 0 or less releases nothing.
    pub fn new(rate: f64) -> Pacer {
        Pacer {
            start: Instant::now(),
            rate,
            issued: 0,
        }
    }

    /// Waits until at least one event is due and returns how many are (at most `MAX_BURST`;
    /// `None` when the rate is zero).
    pub async fn due(&mut self) -> Option<u64> {
        if self.rate <= 0.0 || !self.rate.is_finite() {
            return None;
        }
        loop {
            let elapsed = self.start.elapsed().as_secs_f64();
            let owed = (elapsed * self.rate) as u64 + 1;
            if owed > self.issued {
                let n = (owed - self.issued).min(MAX_BURST);
                self.issued += n;
                return Some(n);
            }
            let next = self.start + Duration::from_secs_f64(self.issued as f64 / self.rate);
            tokio::time::sleep_until(next).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keeps_the_rate() {
        let mut p = Pacer::new(1000.0);
        let deadline = Instant::now() + Duration::from_millis(300);
        while Instant::now() < deadline {
            p.due().await;
        }
        // Late wake-ups are caught up in bursts, so the count tracks the clock.
        assert!((250..=400).contains(&p.issued), "{}", p.issued);
        assert_eq!(Pacer::new(0.0).due().await, None);
    }
}
