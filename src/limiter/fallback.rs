//! `Fallback`: the shared stranger counters (Redis), with this node's own counters behind
//! them for when the shared ones cannot answer.
//!
//! A message is never refused because the counters are unreachable: the stranger rule is a
//! limit on spam, the store is the record, and an outage of the counters must not turn
//! sends into 5000s. So a check the shared counters do not answer (an error, a dropped
//! link, or `bus.command_timeout` passing) is answered by a `MemoryLimiter` of this node,
//! and so is every check after it while the outage lasts: once per `RETRY_INTERVAL` one
//! check tries the shared counters again (on a hung server that one check waits for the
//! command timeout; on a closed link it fails at once), and the first answer from them ends
//! the outage. Each check answered locally is counted in
//! `chat_stranger_limiter_fallbacks_total`.
//!
//! The bound this keeps: local counters start from what this node counted in earlier
//! outages (not from the shared counts), so during an outage a stranger may send up to
//! `limits.stranger_messages` more messages per node. The local counters are bounded
//! (`MemoryLimiter` keeps at most 2^20 pairs).

use async_trait::async_trait;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{LimiterError, MemoryLimiter, StrangerLimiter, Verdict};
use crate::ids::UserId;
use crate::metrics::Metrics;

/// During an outage, how often one check tries the shared counters again.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// Shared counters first, this node's own while they are out.
pub struct Fallback<S> {
    shared: S,
    local: MemoryLimiter,
    /// `None` while the shared counters answer; during an outage, when the next check may
    /// try them again.
    retry_at: Mutex<Option<Instant>>,
    metrics: Arc<Metrics>,
}

impl<S: StrangerLimiter> Fallback<S> {
    /// `shared` counters, with local ones of `limit` messages per `window` behind them.
    pub fn new(shared: S, limit: u32, window: Duration, metrics: Arc<Metrics>) -> Fallback<S> {
        Fallback {
            shared,
            local: MemoryLimiter::new(limit, window),
            retry_at: Mutex::new(None),
            metrics,
        }
    }

    /// Whether this check goes to the shared counters: always outside an outage, and during
    /// one for the first check after each `RETRY_INTERVAL`.
    fn try_shared(&self) -> bool {
        let mut retry_at = self.retry_at.lock();
        match *retry_at {
            None => true,
            Some(at) if Instant::now() >= at => {
                *retry_at = Some(Instant::now() + RETRY_INTERVAL);
                true
            }
            Some(_) => false,
        }
    }

    /// Whether an outage is going on.
    fn out(&self) -> bool {
        self.retry_at.lock().is_some()
    }

    fn shared_failed(&self, error: &LimiterError) {
        let mut retry_at = self.retry_at.lock();
        if retry_at.is_none() {
            tracing::warn!(
                %error,
                "the shared stranger counters do not answer: counting on this node until they do"
            );
        }
        *retry_at = Some(Instant::now() + RETRY_INTERVAL);
    }

    fn shared_answered(&self) {
        if self.retry_at.lock().take().is_some() {
            tracing::info!("the shared stranger counters answer again");
        }
    }
}

#[async_trait]
impl<S: StrangerLimiter> StrangerLimiter for Fallback<S> {
    async fn try_send(&self, from: UserId, to: UserId) -> Result<Verdict, LimiterError> {
        if self.try_shared() {
            match self.shared.try_send(from, to).await {
                Ok(verdict) => {
                    self.shared_answered();
                    return Ok(verdict);
                }
                Err(e) => self.shared_failed(&e),
            }
        }
        self.metrics.stranger_fallbacks.inc();
        self.local.try_send(from, to).await
    }

    /// Takes the count back where it was most likely made: locally during an outage, else
    /// in the shared counters. (A count made just before the outage began or ended may be
    /// taken back from the other side: at most one message more or less for that pair.)
    async fn undo(&self, from: UserId, to: UserId) {
        let out = self.out();
        if out {
            self.local.undo(from, to).await;
        } else {
            self.shared.undo(from, to).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    /// Shared counters that answer `Allowed` while `up`, else fail; counting the calls.
    #[derive(Default)]
    struct Flaky {
        up: AtomicBool,
        calls: AtomicU32,
    }

    #[async_trait]
    impl StrangerLimiter for Arc<Flaky> {
        async fn try_send(&self, _: UserId, _: UserId) -> Result<Verdict, LimiterError> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            if self.up.load(Ordering::Relaxed) {
                Ok(Verdict::Allowed)
            } else {
                Err(LimiterError("down".into()))
            }
        }

        async fn undo(&self, _: UserId, _: UserId) {}
    }

    #[tokio::test]
    async fn an_outage_is_counted_locally_and_the_shared_counters_asked_once() {
        let shared = Arc::new(Flaky::default());
        let metrics = Arc::new(Metrics::default());
        let limiter = Fallback::new(shared.clone(), 2, Duration::from_secs(60), metrics.clone());
        let verdicts = [
            limiter.try_send(1, 2).await.unwrap(),
            limiter.try_send(1, 2).await.unwrap(),
            limiter.try_send(1, 2).await.unwrap(),
        ];
        assert_eq!(
            verdicts,
            [Verdict::Allowed, Verdict::Allowed, Verdict::OverLimit]
        );
        assert_eq!(
            shared.calls.load(Ordering::Relaxed),
            1,
            "one try per interval"
        );
        assert_eq!(metrics.stranger_fallbacks.get(), 3);
        // Once the interval has passed and the shared counters answer, they are used again.
        shared.up.store(true, Ordering::Relaxed);
        *limiter.retry_at.lock() = Some(Instant::now());
        assert_eq!(limiter.try_send(1, 3).await.unwrap(), Verdict::Allowed);
        assert!(!limiter.out());
        assert_eq!(limiter.try_send(1, 3).await.unwrap(), Verdict::Allowed);
        assert_eq!(shared.calls.load(Ordering::Relaxed), 3);
        assert_eq!(metrics.stranger_fallbacks.get(), 3);
    }
}
