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
use crate::support::services::MariaDb;

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
        Fault::KillMysql,
        Fault::PauseMysql,
    ];
}

/// Injects faults drawn from `kinds` for `duration`; how many.
pub async fn run(
    cluster: Arc<Mutex<Cluster>>,
    mariadb: &mut MariaDb,
    kinds: &[Fault],
    seed: u64,
    duration: Duration,
) -> u64 {
    let mut rng = StdRng::seed_from_u64(seed);
    let end = Instant::now() + duration;
    let mut injected = 0;
    // Let the clients connect and talk first.
    tokio::time::sleep(Duration::from_millis(1500)).await;
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
