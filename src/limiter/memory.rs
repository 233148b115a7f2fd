//! `MemoryLimiter`: the stranger counters of a single node, in process.

use async_trait::async_trait;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{LimiterError, StrangerLimiter, Verdict};
use crate::ids::UserId;

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

#[async_trait]
impl StrangerLimiter for MemoryLimiter {
    async fn try_send(&self, from: UserId, to: UserId) -> Result<Verdict, LimiterError> {
        let now = Instant::now();
        let mut counts = self.counts.lock();
        if counts.len() >= 4096 && counts.len().is_power_of_two() {
            counts.retain(|_, c| c.expires > now);
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
