//! The frame rate of one connection: a token bucket (GCRA, from governor) of
//! `limits.frames_per_second` with a burst of `limits.frame_burst`, and a second bucket of
//! strikes, so that a client that keeps sending over its rate is closed rather than answered
//! forever.

use governor::clock::{Clock, MonotonicClock};
use governor::{Quota, RateLimiter};
use std::num::NonZeroU32;
use std::time::Duration;

type Bucket = RateLimiter<
    governor::state::NotKeyed,
    governor::state::InMemoryState,
    MonotonicClock,
    governor::middleware::NoOpMiddleware<<MonotonicClock as Clock>::Instant>,
>;

/// One connection's frame budget.
pub struct FrameRate {
    frames: Bucket,
    strikes: Bucket,
}

/// What to do with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the rate: handle it.
    Take,
    /// Over the rate: drop it and say when the next will be taken.
    Refuse(Duration),
    /// Over the rate for too long: close the connection.
    Close,
}

impl FrameRate {
    /// `per_second` frames a second on average, `burst` at once; `strikes` refused frames
    /// (one forgiven a second) before the connection is closed. Zeros count as one.
    pub fn new(per_second: u32, burst: u32, strikes: u32) -> FrameRate {
        let nonzero = |n: u32| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        let bucket = |quota| RateLimiter::direct_with_clock(quota, MonotonicClock);
        FrameRate {
            frames: bucket(Quota::per_second(nonzero(per_second)).allow_burst(nonzero(burst))),
            strikes: bucket(Quota::per_second(NonZeroU32::MIN).allow_burst(nonzero(strikes))),
        }
    }

    /// Takes one frame from the budget.
    pub fn check(&self) -> Verdict {
        match self.frames.check() {
            Ok(()) => Verdict::Take,
            Err(_) if self.strikes.check().is_err() => Verdict::Close,
            Err(not_until) => Verdict::Refuse(not_until.wait_time_from(MonotonicClock.now())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_refusals_then_close() {
        let rate = FrameRate::new(1, 3, 2);
        for _ in 0..3 {
            assert_eq!(rate.check(), Verdict::Take);
        }
        match rate.check() {
            Verdict::Refuse(wait) => assert!(wait <= Duration::from_secs(1), "{wait:?}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(rate.check(), Verdict::Refuse(_)));
        assert_eq!(rate.check(), Verdict::Close);
    }
}
