//! An open-loop pacer: events at a fixed rate from a start instant, never waiting for
//! answers, so a slow server shows up as latency rather than as a lower offered load.
//!
//! Each event has a due time (start + i / rate), which the sender stamps on the message:
//! latency is measured from it, not from the moment the tool got round to sending
//! (coordinated omission, as wrk2 corrects it). A pacer with a `max_lag` does not catch up
//! in bursts: events more than `max_lag` overdue are skipped and counted, so the server
//! never sees a load the schedule did not offer, and the run says it fell behind.
//!
//! Waits are precise to about a tenth of a millisecond: tokio's timer counts whole
//! milliseconds and wakes up to one late, which the latency measured from each due time
//! would count against the server (0.6 ms at the median at 4,000/s). The last two
//! milliseconds of a wait are slept on a thread of the pacer's own (`FineTimer`).

use std::sync::mpsc as std_mpsc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Waits longer than this go through tokio's timer first (to within a millisecond).
const COARSE: Duration = Duration::from_millis(2);
/// The shortest fine wait: at high rates one wake-up releases several events, so the
/// pacer's thread wakes at most 10,000 times a second.
const MIN_FINE_WAIT: Duration = Duration::from_micros(100);

/// A thread that sleeps to a deadline with the OS's precision and then wakes the waiting
/// task; it ends with its `FineTimer`.
struct FineTimer {
    requests: std_mpsc::Sender<(std::time::Instant, oneshot::Sender<()>)>,
}

impl FineTimer {
    fn start() -> Option<FineTimer> {
        let (requests, rx) = std_mpsc::channel::<(std::time::Instant, oneshot::Sender<()>)>();
        std::thread::Builder::new()
            .name("pacer".into())
            .spawn(move || {
                while let Ok((deadline, done)) = rx.recv() {
                    let now = std::time::Instant::now();
                    if deadline > now {
                        std::thread::sleep(deadline - now);
                    }
                    let _ = done.send(());
                }
            })
            .ok()?;
        Some(FineTimer { requests })
    }

    /// Waits until `deadline`: tokio's timer to within a millisecond, then this thread.
    async fn sleep_until(&self, deadline: Instant) {
        let now = Instant::now();
        if deadline > now + COARSE {
            tokio::time::sleep_until(deadline - Duration::from_millis(1)).await;
        }
        let deadline = deadline.max(Instant::now() + MIN_FINE_WAIT);
        let (done, woken) = oneshot::channel();
        if self.requests.send((deadline.into_std(), done)).is_ok() {
            let _ = woken.await;
        } else {
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// Most events released by one call of a pacer without `max_lag` that has fallen behind.
const MAX_BURST: u64 = 10_000;

/// Releases events at `rate` per second.
pub struct Pacer {
    start: Instant,
    rate: f64,
    /// Index of the next event to release.
    next: u64,
    /// Events more overdue than this are skipped; `None`: released late, in a burst.
    max_lag: Option<Duration>,
    /// Sub-millisecond waits (pacers of sends); `None`: tokio's timer alone.
    fine: Option<FineTimer>,
}

/// The events one call released: `first .. first + count`, after `skipped` overdue ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// Index of the first released event.
    pub first: u64,
    /// Events released.
    pub count: u64,
    /// Events skipped before them because they were more than `max_lag` overdue.
    pub skipped: u64,
}

impl Pacer {
    /// A pacer starting now that catches up late events in bursts (for opening connections,
    /// where a burst is harmless); a rate of 0 or less releases nothing.
    pub fn new(rate: f64) -> Pacer {
        Pacer {
            start: Instant::now(),
            rate,
            next: 0,
            max_lag: None,
            fine: None,
        }
    }

    /// A pacer starting now that skips events more than `max_lag` overdue, and releases
    /// events within about a tenth of a millisecond of their due time (its own thread).
    pub fn with_max_lag(rate: f64, max_lag: Duration) -> Pacer {
        Pacer {
            max_lag: Some(max_lag),
            fine: FineTimer::start(),
            ..Pacer::new(rate)
        }
    }

    /// When event `i` is due.
    pub fn due_at(&self, i: u64) -> Instant {
        self.start + Duration::from_secs_f64(i as f64 / self.rate)
    }

    /// Events released or skipped so far.
    pub fn scheduled(&self) -> u64 {
        self.next
    }

    /// Waits until at least one event is due and returns which are (`None` when the rate
    /// is zero).
    pub async fn due(&mut self) -> Option<Due> {
        if self.rate <= 0.0 || !self.rate.is_finite() {
            return None;
        }
        loop {
            let elapsed = self.start.elapsed().as_secs_f64();
            // Events 0 ..= elapsed * rate are due.
            let owed = (elapsed * self.rate) as u64 + 1;
            if owed > self.next {
                let skipped = match self.max_lag {
                    Some(lag) => {
                        let oldest = ((elapsed - lag.as_secs_f64()) * self.rate).ceil();
                        (oldest.max(0.0) as u64)
                            .min(owed - 1)
                            .saturating_sub(self.next)
                    }
                    None => 0,
                };
                self.next += skipped;
                let count = match self.max_lag {
                    Some(_) => owed - self.next,
                    None => (owed - self.next).min(MAX_BURST),
                };
                let first = self.next;
                self.next += count;
                return Some(Due {
                    first,
                    count,
                    skipped,
                });
            }
            let due = self.due_at(self.next);
            match &self.fine {
                Some(fine) => fine.sleep_until(due).await,
                None => tokio::time::sleep_until(due).await,
            }
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
        let mut released = 0;
        while Instant::now() < deadline {
            released += p.due().await.unwrap().count;
        }
        assert!((250..=400).contains(&released), "{released}");
        assert_eq!(Pacer::new(0.0).due().await, None);
    }

    #[tokio::test]
    async fn sends_are_released_within_a_fraction_of_a_millisecond() {
        // 2,000/s: an event every 500 µs, between the ticks of tokio's millisecond timer.
        let mut p = Pacer::with_max_lag(2000.0, Duration::from_secs(1));
        let mut lags = Vec::new();
        while lags.len() < 400 {
            let due = p.due().await.unwrap();
            let now = Instant::now();
            for i in due.first..due.first + due.count {
                lags.push(now.saturating_duration_since(p.due_at(i)));
            }
        }
        lags.sort();
        let median = lags[lags.len() / 2];
        // tokio's timer alone wakes up to a millisecond late (half of one at the median).
        assert!(median < Duration::from_micros(400), "median lag {median:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_pacer_skips_instead_of_bursting() {
        let mut p = Pacer::with_max_lag(1000.0, Duration::from_millis(10));
        assert_eq!(p.due().await.unwrap().first, 0);
        // The tool stalls for a second: about 1,000 events are overdue.
        tokio::time::advance(Duration::from_secs(1)).await;
        let due = p.due().await.unwrap();
        // Only the last 10 ms of them go out; the rest are skipped, not sent at once.
        assert!((10..=12).contains(&due.count), "{due:?}");
        assert!((985..=992).contains(&due.skipped), "{due:?}");
        assert_eq!(due.first + due.count, p.scheduled());
        // Each released event keeps its own due time: latency is measured from it.
        assert!(p.due_at(due.first) < Instant::now());

        let mut bursty = Pacer::new(1000.0);
        bursty.due().await;
        tokio::time::advance(Duration::from_secs(1)).await;
        let due = bursty.due().await.unwrap();
        assert_eq!(due.skipped, 0);
        assert!(due.count >= 1000, "{due:?}");
    }
}
