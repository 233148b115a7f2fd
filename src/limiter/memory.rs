//! `MemoryLimiter`: the stranger counters of a single node, in process.

use async_trait::async_trait;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{LimiterError, StrangerLimiter, Verdict};
use crate::ids::UserId;

/// Most (sender, recipient) pairs counted at once: about 48 bytes each, so at most ~64 MiB
/// with the map's slack (docs/security.md).
const MAX_PAIRS: usize = 1 << 20;

struct Count {
    sent: u32,
    expires: Instant,
}

/// Counters in a map, swept of expired entries as it grows.
pub struct MemoryLimiter {
    limit: u32,
    window: Duration,
    counts: Mutex<HashMap<(UserId, UserId), Count>>,
}

impl MemoryLimiter {
    /// `limit` messages per `window` to someone who has not answered.
    pub fn new(limit: u32, window: Duration) -> MemoryLimiter {
        MemoryLimiter {
            limit,
            window,
            counts: Mutex::new(HashMap::new()),
        }
    }
}

/// Makes room in a full map: drops the expired pairs, and if that frees less than an
/// eighth, arbitrary pairs until an eighth is free. A forgotten pair counts from zero again,
/// so its sender may send up to `limits.stranger_messages` more: the price of a bound on a
/// map that every new pair would otherwise grow for the whole window.
fn forget_some(counts: &mut HashMap<(UserId, UserId), Count>, now: Instant) {
    counts.retain(|_, c| c.expires > now);
    let target = MAX_PAIRS - MAX_PAIRS / 8;
    let mut excess = counts.len().saturating_sub(target);
    if excess > 0 {
        tracing::warn!(
            pairs = counts.len(),
            "the in-memory stranger counters are full: forgetting an eighth of them"
        );
        counts.retain(|_, _| {
            if excess == 0 {
                return true;
            }
            excess -= 1;
            false
        });
    }
}

#[async_trait]
impl StrangerLimiter for MemoryLimiter {
    async fn try_send(&self, from: UserId, to: UserId) -> Result<Verdict, LimiterError> {
        let now = Instant::now();
        let mut counts = self.counts.lock();
        if counts.len() >= 4096 && counts.len().is_power_of_two() {
            counts.retain(|_, c| c.expires > now);
        }
        if counts.len() >= MAX_PAIRS && !counts.contains_key(&(from, to)) {
            forget_some(&mut counts, now);
        }
        let count = counts.entry((from, to)).or_insert(Count {
            sent: 0,
            expires: now + self.window,
        });
        if count.expires <= now {
            *count = Count {
                sent: 0,
                expires: now + self.window,
            };
        }
        count.sent = count.sent.saturating_add(1);
        let sent = count.sent;
        let answered = counts
            .get(&(to, from))
            .is_some_and(|c| c.expires > now && c.sent > 0);
        Ok(if answered {
            Verdict::Answered
        } else if sent <= self.limit {
            Verdict::Allowed
        } else {
            Verdict::OverLimit
        })
    }

    async fn undo(&self, from: UserId, to: UserId) {
        if let Some(count) = self.counts.lock().get_mut(&(from, to)) {
            count.sent = count.sent.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_pair_map_is_bounded() {
        let limiter = MemoryLimiter::new(3, Duration::from_secs(3600));
        for to in 0..(MAX_PAIRS as i64 + 10) {
            limiter.try_send(1, to + 2).await.unwrap();
        }
        let pairs = limiter.counts.lock().len();
        assert!(pairs <= MAX_PAIRS, "{pairs}");
        assert!(pairs > MAX_PAIRS / 2, "{pairs}");
    }
}
