//! `RedisLimiter`: the stranger counters shared by every node (filled in with the
//! horizontal-scale work).

use async_trait::async_trait;

use super::{LimiterError, StrangerLimiter, Verdict};
use crate::ids::UserId;

/// Counters in Redis.
pub struct RedisLimiter;

#[async_trait]
impl StrangerLimiter for RedisLimiter {
    async fn try_send(&self, _from: UserId, _to: UserId) -> Result<Verdict, LimiterError> {
        Err(LimiterError("the redis limiter is not built yet".into()))
    }

    async fn undo(&self, _from: UserId, _to: UserId) {}
}
