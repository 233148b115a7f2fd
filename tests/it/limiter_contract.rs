//! Contract tests of the stranger-limit seam, written once and run against every
//! implementation: `MemoryLimiter`, `RedisLimiter` on one redis-server, and `RedisLimiter`
//! on a 3-master Redis Cluster (the pair's hash tag keeps the script on one slot).

use chat_gateway::limiter::{MemoryLimiter, RedisLimiter, StrangerLimiter, Verdict};
use chat_gateway::settings::BusUrl;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::contract;
use crate::support::{Backing, eventually};

use Verdict::{Allowed, Answered, OverLimit};

const HOUR: Duration = Duration::from_secs(3600);

/// A limiter (a node's view) on the test's backing.
async fn limiter_on(backing: &Backing, limit: u32, window: Duration) -> Arc<dyn StrangerLimiter> {
    let Some(settings) = backing.settings() else {
        return Arc::new(MemoryLimiter::new(limit, window));
    };
    let BusUrl::Redis(url) = &settings.url else {
        panic!("a Redis backing names a redis:// URL")
    };
    let limiter = RedisLimiter::connect(url, &settings, limit, window)
        .await
        .expect("connecting the limiter");
    Arc::new(limiter)
}

async fn sends(limiter: &dyn StrangerLimiter, from: i64, to: i64, n: usize) -> Vec<Verdict> {
    let mut verdicts = Vec::with_capacity(n);
    for _ in 0..n {
        verdicts.push(limiter.try_send(from, to).await.unwrap());
    }
    verdicts
}

async fn allows_up_to_the_limit(backing: Backing) {
    let limiter = limiter_on(&backing, 3, HOUR).await;
    let limiter = limiter.as_ref();
    assert_eq!(
        sends(limiter, 1, 2, 5).await,
        [Allowed, Allowed, Allowed, OverLimit, OverLimit]
    );
    // Other pairs have their own counters.
    assert_eq!(sends(limiter, 1, 3, 3).await, [Allowed; 3]);
    assert_eq!(sends(limiter, 4, 2, 3).await, [Allowed; 3]);
}

async fn an_answer_lifts_the_limit(backing: Backing) {
    let limiter = limiter_on(&backing, 2, HOUR).await;
    let limiter = limiter.as_ref();
    assert_eq!(sends(limiter, 1, 2, 3).await, [Allowed, Allowed, OverLimit]);
    // User 1 has written to user 2: user 2's messages are answers, and so are 1's from now.
    assert_eq!(sends(limiter, 2, 1, 1).await, [Answered]);
    assert_eq!(sends(limiter, 1, 2, 3).await, [Answered; 3]);
}

async fn undo_takes_back_one(backing: Backing) {
    let limiter = limiter_on(&backing, 3, HOUR).await;
    let limiter = limiter.as_ref();
    assert_eq!(sends(limiter, 1, 2, 3).await, [Allowed; 3]);
    limiter.undo(1, 2).await;
    assert_eq!(sends(limiter, 1, 2, 2).await, [Allowed, OverLimit]);
    // Undo of an uncounted pair gives no credit.
    limiter.undo(5, 6).await;
    assert_eq!(
        sends(limiter, 5, 6, 4).await,
        [Allowed, Allowed, Allowed, OverLimit]
    );
    // A taken-back answer does not count as an answer.
    assert_eq!(sends(limiter, 8, 7, 1).await, [Allowed]);
    limiter.undo(8, 7).await;
    assert_eq!(
        sends(limiter, 7, 8, 4).await,
        [Allowed, Allowed, Allowed, OverLimit]
    );
}

async fn the_window_expires(backing: Backing) {
    let window = Duration::from_millis(300);
    let limiter = limiter_on(&backing, 1, window).await;
    let first = Instant::now();
    assert_eq!(limiter.try_send(1, 2).await.unwrap(), Allowed);
    assert_eq!(limiter.try_send(1, 2).await.unwrap(), OverLimit);
    // Each refused try counts too; once the window is over the counter starts afresh.
    eventually(Duration::from_secs(10), "the window expiring", async || {
        limiter.try_send(1, 2).await.unwrap() != OverLimit
    })
    .await;
    assert!(
        first.elapsed() >= window - Duration::from_millis(50),
        "expired after {:?}",
        first.elapsed()
    );
    assert_eq!(limiter.try_send(1, 2).await.unwrap(), OverLimit);
}

async fn instances_share_counts(backing: Backing) {
    let (a, b) = (
        limiter_on(&backing, 3, HOUR).await,
        limiter_on(&backing, 3, HOUR).await,
    );
    assert_eq!(a.try_send(1, 2).await.unwrap(), Allowed);
    assert_eq!(b.try_send(1, 2).await.unwrap(), Allowed);
    assert_eq!(a.try_send(1, 2).await.unwrap(), Allowed);
    b.undo(1, 2).await;
    assert_eq!(b.try_send(1, 2).await.unwrap(), Allowed);
    assert_eq!(a.try_send(1, 2).await.unwrap(), OverLimit);
    assert_eq!(b.try_send(1, 2).await.unwrap(), OverLimit);
    assert_eq!(b.try_send(2, 1).await.unwrap(), Answered);
    assert_eq!(a.try_send(1, 2).await.unwrap(), Answered);
}

async fn survives_a_flushed_script_cache(mut backing: Backing) {
    let limiter = limiter_on(&backing, 1, HOUR).await;
    assert_eq!(backing.redis_server().cli(&["SCRIPT", "FLUSH"]), "OK");
    // EVALSHA answers NOSCRIPT; the limiter falls back to EVAL, which caches it again.
    assert_eq!(limiter.try_send(1, 2).await.unwrap(), Allowed);
    assert_eq!(limiter.try_send(1, 2).await.unwrap(), OverLimit);
}

contract! {
    every: [
        allows_up_to_the_limit,
        an_answer_lifts_the_limit,
        undo_takes_back_one,
        the_window_expires,
    ],
    memory: [],
    redis: [instances_share_counts, survives_a_flushed_script_cache],
    sharded: [instances_share_counts],
}
