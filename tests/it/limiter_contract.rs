//! Contract tests of the stranger-limit seam, written once and run against every
//! implementation: `MemoryLimiter`, `RedisLimiter` on one redis-server, and `RedisLimiter`
//! on a 3-master Redis Cluster (the pair's hash tag keeps the script on one slot).

use chat_gateway::limiter::{MemoryLimiter, RedisLimiter, StrangerLimiter, Verdict};
use chat_gateway::settings::{BusSettings, Secret};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::support::services::{Redis, RedisCluster};

use Verdict::{Allowed, Answered, OverLimit};

const HOUR: Duration = Duration::from_secs(3600);

enum Backing {
    Memory,
    Redis(Redis),
    Cluster(&'static RedisCluster),
}

/// One implementation under test; `limiter()` makes an instance (a node's view).
struct Fixture {
    backing: Backing,
    /// Keeps tests on the shared cluster apart.
    prefix: String,
}

static NEXT_PREFIX: AtomicU32 = AtomicU32::new(1);

impl Fixture {
    fn with(backing: Backing) -> Fixture {
        let n = NEXT_PREFIX.fetch_add(1, Ordering::Relaxed);
        Fixture {
            backing,
            prefix: format!("lim{}x{n}", std::process::id()),
        }
    }

    fn memory() -> Fixture {
        Fixture::with(Backing::Memory)
    }

    fn redis() -> Fixture {
        Fixture::with(Backing::Redis(Redis::start()))
    }

    fn sharded() -> Fixture {
        Fixture::with(Backing::Cluster(RedisCluster::shared()))
    }

    async fn limiter(&self, limit: u32, window: Duration) -> Arc<dyn StrangerLimiter> {
        let (url, sharded) = match &self.backing {
            Backing::Memory => return Arc::new(MemoryLimiter::new(limit, window)),
            Backing::Redis(redis) => (redis.url(), false),
            Backing::Cluster(cluster) => (cluster.url(), true),
        };
        let settings = BusSettings {
            url: Secret::from(url),
            prefix: self.prefix.clone(),
            sharded,
            ..BusSettings::default()
        };
        let limiter = RedisLimiter::connect(&settings, limit, window)
            .await
            .expect("connecting the limiter");
        Arc::new(limiter)
    }
}

async fn sends(limiter: &dyn StrangerLimiter, from: i64, to: i64, n: usize) -> Vec<Verdict> {
    let mut verdicts = Vec::with_capacity(n);
    for _ in 0..n {
        verdicts.push(limiter.try_send(from, to).await.unwrap());
    }
    verdicts
}

async fn allows_up_to_the_limit(fixture: Fixture) {
    let limiter = fixture.limiter(3, HOUR).await;
    let limiter = limiter.as_ref();
    assert_eq!(
        sends(limiter, 1, 2, 5).await,
        [Allowed, Allowed, Allowed, OverLimit, OverLimit]
    );
    // Other pairs have their own counters.
    assert_eq!(sends(limiter, 1, 3, 3).await, [Allowed; 3]);
    assert_eq!(sends(limiter, 4, 2, 3).await, [Allowed; 3]);
}

async fn an_answer_lifts_the_limit(fixture: Fixture) {
    let limiter = fixture.limiter(2, HOUR).await;
    let limiter = limiter.as_ref();
    assert_eq!(sends(limiter, 1, 2, 3).await, [Allowed, Allowed, OverLimit]);
    // User 1 has written to user 2: user 2's messages are answers, and so are 1's from now.
    assert_eq!(sends(limiter, 2, 1, 1).await, [Answered]);
    assert_eq!(sends(limiter, 1, 2, 3).await, [Answered; 3]);
}

async fn undo_takes_back_one(fixture: Fixture) {
    let limiter = fixture.limiter(3, HOUR).await;
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

async fn the_window_expires(fixture: Fixture) {
    let window = Duration::from_millis(300);
    let limiter = fixture.limiter(1, window).await;
    let first = Instant::now();
    assert_eq!(limiter.try_send(1, 2).await.unwrap(), Allowed);
    assert_eq!(limiter.try_send(1, 2).await.unwrap(), OverLimit);
    // Each refused try counts too; once the window is over the counter starts afresh.
    while limiter.try_send(1, 2).await.unwrap() == OverLimit {
        assert!(first.elapsed() < Duration::from_secs(10), "never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        first.elapsed() >= window - Duration::from_millis(50),
        "expired after {:?}",
        first.elapsed()
    );
    assert_eq!(limiter.try_send(1, 2).await.unwrap(), OverLimit);
}

async fn instances_share_counts(fixture: Fixture) {
    let (a, b) = (
        fixture.limiter(3, HOUR).await,
        fixture.limiter(3, HOUR).await,
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

async fn survives_a_flushed_script_cache(fixture: Fixture) {
    let limiter = fixture.limiter(1, HOUR).await;
    let Backing::Redis(redis) = &fixture.backing else {
        panic!("this test needs a single redis-server");
    };
    assert_eq!(redis.cli(&["SCRIPT", "FLUSH"]), "OK");
    // EVALSHA answers NOSCRIPT; the limiter falls back to EVAL, which caches it again.
    assert_eq!(limiter.try_send(1, 2).await.unwrap(), Allowed);
    assert_eq!(limiter.try_send(1, 2).await.unwrap(), OverLimit);
}

/// `contract!(module, fixture constructor, [tests…])`: one `#[tokio::test]` per test.
macro_rules! contract {
    ($module:ident, $fixture:ident, [$($name:ident),* $(,)?]) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Fixture::$fixture()).await
                }
            )*
        }
    };
}

contract!(
    memory,
    memory,
    [
        allows_up_to_the_limit,
        an_answer_lifts_the_limit,
        undo_takes_back_one,
        the_window_expires,
    ]
);

contract!(
    redis,
    redis,
    [
        allows_up_to_the_limit,
        an_answer_lifts_the_limit,
        undo_takes_back_one,
        the_window_expires,
        instances_share_counts,
        survives_a_flushed_script_cache,
    ]
);

contract!(
    sharded,
    sharded,
    [
        allows_up_to_the_limit,
        an_answer_lifts_the_limit,
        undo_takes_back_one,
        the_window_expires,
        instances_share_counts,
    ]
);
