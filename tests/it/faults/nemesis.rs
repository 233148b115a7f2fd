//! The nemesis: on a schedule drawn from a seed, breaks one part after another and heals it
//! (a node crashed or drained then restarted, Redis or MariaDB crashed then restarted, or
//! frozen with SIGSTOP then let go), with quiet time between faults.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::support::cluster::Cluster;
use crate::support::services::{MariaDb, RedisCluster};

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL a gateway node; restart it after the fault's length.
    KillNode,
    /// SIGTERM a gateway node (it drains: 1012 spread over the drain window, exit 0);
    /// restart it.
    DrainNode,
    /// SIGKILL redis-server; restart it on its port.
    KillRedis,
    /// SIGSTOP redis-server (connections stay open, nothing answers); SIGCONT.
    PauseRedis,
    /// `CLIENT PAUSE` for the fault's length: Redis holds every client's commands.
    ClientPause,
    /// `client-output-buffer-limit pubsub` set to one byte: Redis cuts every subscriber
    /// the moment anything is published to it, as it cuts a slow one; restored after.
    SubscriberCut,
    /// Sharded pub/sub on a Redis Cluster: move the slot of a user's channel to another
    /// master (its subscribers there get SUNSUBSCRIBE).
    MigrateSlot,
    /// SIGKILL mariadbd; restart it on its data.
    KillMysql,
    /// SIGSTOP mariadbd; SIGCONT.
    PauseMysql,
}

impl Fault {
    pub const ALL: &'static [Fault] = &[
        Fault::KillNode,
        Fault::DrainNode,
        Fault::KillRedis,
        Fault::PauseRedis,
        Fault::ClientPause,
        Fault::SubscriberCut,
        Fault::KillMysql,
        Fault::PauseMysql,
    ];
}

/// Injects faults drawn from `kinds` for `duration`; how many.
pub async fn run(
    cluster: Arc<Mutex<Cluster>>,
    mariadb: &mut MariaDb,
    sharded: Option<&RedisCluster>,
    kinds: &[Fault],
    seed: u64,
    duration: Duration,
) -> u64 {
    let mut rng = StdRng::seed_from_u64(seed);
    let end = Instant::now() + duration;
    let mut injected = 0;
    while Instant::now() + Duration::from_secs(1) < end {
        let fault = kinds[rng.random_range(0..kinds.len())];
        let length = Duration::from_millis(rng.random_range(500..3000));
        let node = rng.random_range(0..2usize);
        eprintln!("nemesis: {fault:?} for {length:?} (node {node})");
        injected += 1;
        match fault {
            Fault::KillNode | Fault::DrainNode => {
                let signal = if fault == Fault::KillNode {
                    "KILL"
                } else {
                    "TERM"
                };
                let c = cluster.clone();
                blocking(move || c.blocking_lock().nodes[node].signal(signal)).await;
                tokio::time::sleep(length).await;
                let c = cluster.clone();
                blocking(move || {
                    let mut c = c.blocking_lock();
                    c.nodes[node].restart();
                    c.wait_all_ready();
                })
                .await;
            }
            Fault::KillRedis => {
                let c = cluster.clone();
                blocking(move || c.blocking_lock().redis.kill()).await;
                tokio::time::sleep(length).await;
                let c = cluster.clone();
                blocking(move || c.blocking_lock().redis.restart()).await;
            }
            Fault::PauseRedis => {
                cluster.lock().await.redis.pause();
                tokio::time::sleep(length).await;
                cluster.lock().await.redis.resume();
            }
            Fault::ClientPause => {
                let ms = length.as_millis().to_string();
                let c = cluster.clone();
                blocking(move || {
                    let answer = c
                        .blocking_lock()
                        .redis
                        .cli(&["CLIENT", "PAUSE", &ms, "ALL"]);
                    assert_eq!(answer, "OK", "CLIENT PAUSE");
                })
                .await;
                tokio::time::sleep(length).await;
            }
            Fault::SubscriberCut => {
                let c = cluster.clone();
                blocking(move || {
                    let limit = "pubsub 1 1 0";
                    let answer = c.blocking_lock().redis.cli(&[
                        "CONFIG",
                        "SET",
                        "client-output-buffer-limit",
                        limit,
                    ]);
                    assert_eq!(answer, "OK", "CONFIG SET client-output-buffer-limit");
                })
                .await;
                tokio::time::sleep(length).await;
                let c = cluster.clone();
                blocking(move || {
                    let default = "pubsub 33554432 8388608 60";
                    let answer = c.blocking_lock().redis.cli(&[
                        "CONFIG",
                        "SET",
                        "client-output-buffer-limit",
                        default,
                    ]);
                    assert_eq!(answer, "OK", "restoring client-output-buffer-limit");
                })
                .await;
            }
            Fault::MigrateSlot => {
                let redis = sharded.expect("slot migrations need the sharded cluster");
                let user = rng.random_range(1..=6);
                let slot = redis.slot(&format!("chat:u:{{{user}}}"));
                let to = (redis.owner(slot) + rng.random_range(1..redis.nodes.len()))
                    % redis.nodes.len();
                tokio::task::block_in_place(|| redis.migrate_slot(slot, to));
                tokio::time::sleep(length).await;
            }
            Fault::KillMysql => {
                mariadb.stop("KILL");
                tokio::time::sleep(length).await;
                tokio::task::block_in_place(|| mariadb.restart());
            }
            Fault::PauseMysql => {
                mariadb.pause();
                tokio::time::sleep(length).await;
                mariadb.resume();
            }
        }
        // Quiet time, so that clients recover between faults.
        let quiet = Duration::from_millis(rng.random_range(1000..3000));
        tokio::time::sleep(quiet.min(end.saturating_duration_since(Instant::now()))).await;
    }
    injected
}

async fn blocking(f: impl FnOnce() + Send + 'static) {
    tokio::task::spawn_blocking(f)
        .await
        .expect("a nemesis step");
}
