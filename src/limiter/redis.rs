//! `RedisLimiter`: the stranger counters in Redis, shared by every node.
//!
//! One round trip per check: a Lua script (EVALSHA, falling back to EVAL when the server
//! has not cached it, as after a restart) increments the `(from, to)` counter, gives it the
//! window as expiry when it has none (so the window runs from the first message, as in
//! `MemoryLimiter`), and allows the message while the count is within the limit or while
//! the reverse counter `(to, from)` is positive. `undo` decrements a positive counter (never
//! creating one). Both counters of a pair share a hash tag, `{prefix}:stranger:{lo:hi}:…`,
//! so the script touches one slot of a Redis Cluster.
//!
//! Checks fail fast while the connection is down (instead of waiting for it for up to
//! `bus.command_timeout`): `connect` wraps these counters in a `Fallback`, which answers
//! from this node's own counters meanwhile.

use async_trait::async_trait;
use fred::prelude::{Client, ClientLike, LuaInterface, Options};
use std::time::Duration;

use super::{LimiterError, StrangerLimiter, Verdict};
use crate::bus::redis_builder;
use crate::ids::UserId;
use crate::settings::{BusSettings, Secret};

/// KEYS: the `(from, to)` counter, the `(to, from)` counter. ARGV: `send` or `undo`, the
/// window in milliseconds, the limit. Returns 2 (allowed: `to` has written to `from`),
/// 1 (allowed: within the limit) or 0 (over the limit).
const SCRIPT: &str = r"
if ARGV[1] == 'undo' then
  if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then
    redis.call('DECR', KEYS[1])
  end
  return 1
end
local sent = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then
  return 2
end
if sent <= tonumber(ARGV[3]) then
  return 1
end
return 0
";

/// Counters in Redis, checked with one script call each.
pub struct RedisLimiter {
    /// Its own connection; fred pipelines the checks of concurrent senders on it.
    client: Client,
    /// The script's SHA1, from SCRIPT LOAD at connect.
    sha: String,
    prefix: String,
    limit: u32,
    window_ms: u64,
}

impl RedisLimiter {
    /// Connects to the Redis at `url` (a cluster when `settings.sharded`, keys under
    /// `settings.prefix`) and loads the script; `limit` messages per `window` to someone who
    /// has not answered.
    pub async fn connect(
        url: &Secret,
        settings: &BusSettings,
        limit: u32,
        window: Duration,
    ) -> Result<RedisLimiter, LimiterError> {
        let failed = |e: fred::error::Error| LimiterError(e.to_string());
        let client = redis_builder(url, settings)
            .map_err(|e| LimiterError(e.to_string()))?
            .build()
            .map_err(failed)?;
        client.init().await.map_err(failed)?;
        let sha: String = client.script_load(SCRIPT).await.map_err(failed)?;
        Ok(RedisLimiter {
            client,
            sha,
            prefix: settings.prefix.clone(),
            limit,
            window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1),
        })
    }

    /// The counter of messages from `from` to `to`, tagged by the unordered pair.
    fn key(&self, from: UserId, to: UserId) -> String {
        let (lo, hi) = if from <= to { (from, to) } else { (to, from) };
        format!("{}:stranger:{{{lo}:{hi}}}:{from}:{to}", self.prefix)
    }

    /// Runs the script; EVAL (which also caches it) when the server does not know the SHA.
    async fn call(&self, op: &str, from: UserId, to: UserId) -> Result<i64, fred::error::Error> {
        let keys = vec![self.key(from, to), self.key(to, from)];
        let args = vec![
            op.to_string(),
            self.window_ms.to_string(),
            self.limit.to_string(),
        ];
        let client = self.client.with_options(&Options {
            fail_fast: true,
            ..Options::default()
        });
        match client
            .evalsha(self.sha.as_str(), keys.clone(), args.clone())
            .await
        {
            Err(e) if e.details().starts_with("NOSCRIPT") => client.eval(SCRIPT, keys, args).await,
            result => result,
        }
    }
}

#[async_trait]
impl StrangerLimiter for RedisLimiter {
    async fn try_send(&self, from: UserId, to: UserId) -> Result<Verdict, LimiterError> {
        match self.call("send", from, to).await {
            Ok(2) => Ok(Verdict::Answered),
            Ok(1) => Ok(Verdict::Allowed),
            Ok(_) => Ok(Verdict::OverLimit),
            Err(e) => Err(LimiterError(e.to_string())),
        }
    }

    async fn undo(&self, from: UserId, to: UserId) {
        if let Err(error) = self.call("undo", from, to).await {
            tracing::warn!(%error, "could not take back a stranger-limit count");
        }
    }
}
