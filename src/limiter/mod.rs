//! The stranger-limit seam: counters of private messages per ordered pair of users.
//!
//! Contract, for every implementation (`MemoryLimiter`, `RedisLimiter`):
//! - `try_send(from, to)` counts one message and allows it while `from` has sent at most
//!   `limit` within the window (counted from the first), or while `to` has sent to `from`
//!   within the window (they are talking: `Verdict::Answered`).
//! - `undo(from, to)` takes back one counted message that was not stored after all.
//! - The counters are a fast path, not the record: when they refuse, the caller asks the
//!   store whether the pair is exempt (mutual follows, or `to` ever answered).
//! - Shared counters are wrapped in `Fallback` by `connect`: when they do not answer, this
//!   node's own counters do, so a send is never refused because the counters are out.

mod answered;
mod fallback;
mod memory;
mod redis;

pub use answered::Answered;
pub use fallback::Fallback;
pub use memory::MemoryLimiter;
pub use redis::RedisLimiter;

use async_trait::async_trait;
use std::sync::Arc;

use crate::ids::UserId;
use crate::metrics::Metrics;
use crate::settings::{BusUrl, Settings};

/// What the counters say about one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed: `to` has written to `from`, so the limit is gone for good (callers may
    /// remember it: see `Answered`).
    Answered,
    /// Allowed: within the limit.
    Allowed,
    /// Refused by the counters (the store may still exempt the pair).
    OverLimit,
}

/// The counters could not be read (`Fallback` then answers from this node's own).
#[derive(Debug, thiserror::Error)]
#[error("stranger-limit counters unavailable: {0}")]
pub struct LimiterError(pub String);

/// The stranger-limit seam; see the module docs for the contract.
#[async_trait]
pub trait StrangerLimiter: Send + Sync + 'static {
    /// Counts a private message from `from` to `to`.
    async fn try_send(&self, from: UserId, to: UserId) -> Result<Verdict, LimiterError>;
    /// Takes back one counted message.
    async fn undo(&self, from: UserId, to: UserId);
}

/// Builds the counters that `limits.stranger_counters_url` names (by default the bus's URL):
/// one match arm per implementation. Shared counters come wrapped in a `Fallback` that
/// counts its fallbacks in `metrics`.
pub async fn connect(
    settings: &Settings,
    metrics: Arc<Metrics>,
) -> Result<Arc<dyn StrangerLimiter>, LimiterError> {
    let (limit, window) = (
        settings.limits.stranger_messages,
        settings.limits.stranger_window,
    );
    Ok(match settings.stranger_counters() {
        BusUrl::Memory => Arc::new(MemoryLimiter::new(limit, window)),
        BusUrl::Redis(url) => {
            let shared = RedisLimiter::connect(url, &settings.bus, limit, window).await?;
            Arc::new(Fallback::new(shared, limit, window, metrics))
        }
    })
}
