//! `Backing`: what the contract suites of the Redis-backed seams (the bus, the stranger
//! limiter) run on: nothing (the in-memory implementation), a redis-server of the test's
//! own, or the shared 3-master Redis Cluster; and the `BusSettings` that reach it. Plus
//! `contract!`, which turns a suite's test functions into one test per backing.

use chat_gateway::settings::BusSettings;
use std::sync::atomic::{AtomicU32, Ordering};

use super::services::{Redis, RedisCluster};

/// The backing of one contract test.
pub struct Backing {
    kind: Kind,
    /// Keeps tests on the shared cluster apart.
    prefix: String,
}

enum Kind {
    Memory,
    Redis(Redis),
    Cluster(&'static RedisCluster),
}

static NEXT_PREFIX: AtomicU32 = AtomicU32::new(1);

impl Backing {
    fn with(kind: Kind) -> Backing {
        let n = NEXT_PREFIX.fetch_add(1, Ordering::Relaxed);
        Backing {
            kind,
            prefix: format!("t{}x{n}", std::process::id()),
        }
    }

    /// No Redis: the in-memory implementation.
    pub fn memory() -> Backing {
        Backing::with(Kind::Memory)
    }

    /// A redis-server of this test's own.
    pub fn redis() -> Backing {
        Backing::with(Kind::Redis(Redis::start()))
    }

    /// The shared Redis Cluster, with sharded pub/sub.
    pub fn sharded() -> Backing {
        Backing::with(Kind::Cluster(RedisCluster::shared()))
    }

    /// The settings that reach the Redis (URL, this test's prefix, sharded or not);
    /// `None` for the in-memory backing.
    pub fn settings(&self) -> Option<BusSettings> {
        let (url, sharded) = match &self.kind {
            Kind::Memory => return None,
            Kind::Redis(redis) => (redis.url(), false),
            Kind::Cluster(cluster) => (cluster.url(), true),
        };
        Some(BusSettings {
            url: url.parse().expect("a redis:// URL"),
            prefix: self.prefix.clone(),
            sharded,
            ..BusSettings::default()
        })
    }

    /// The test's own redis-server (to kill, restart or inspect it); a panic for the
    /// other backings.
    pub fn redis_server(&mut self) -> &mut Redis {
        match &mut self.kind {
            Kind::Redis(redis) => redis,
            _ => panic!("this test needs a single redis-server"),
        }
    }
}

/// Runs a contract suite: `contract! { every: [tests…], memory: [more…], redis: […],
/// sharded: […] }` makes, for each backing named, a module of that name with one
/// `#[tokio::test]` per test in `every` and in its own list, each calling
/// `super::test(Backing::backing())`.
#[macro_export]
macro_rules! contract {
    (every: $every:tt, $($backing:ident: [$($own:ident),* $(,)?]),* $(,)?) => {
        $( $crate::contract!(@suite $backing, $every, [$($own),*]); )*
    };
    (@suite $backing:ident, [$($every:ident),* $(,)?], [$($own:ident),*]) => {
        mod $backing {
            $crate::contract!(@tests $backing, [$($every,)* $($own,)*]);
        }
    };
    (@tests $backing:ident, [$($name:ident,)*]) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name($crate::support::Backing::$backing()).await
            }
        )*
    };
}
