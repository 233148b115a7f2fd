//! The fleet: every simulated user of a run, opened at the ramp rate, reconnected when the
//! server drops them, synced, marked read and closed together.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::backoff::{Backoff, jitter};
use crate::client::User;
use crate::context::Ctx;
use crate::ledger::Audit;
use crate::pacer::Pacer;
use crate::stats::lock;

/// How long an unread sync may take before it is abandoned.
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(30);
/// Delays between attempts when the server dropped a connection.
const RECONNECT_MIN: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// The users of a run.
#[derive(Clone)]
pub struct Fleet {
    /// The run's context.
    pub ctx: Arc<Ctx>,
    /// Users, indexed as the ledger indexes them; ids are `--user-base` + index.
    pub users: Arc<[Arc<User>]>,
}

/// What opening a batch of connections gave.
#[derive(Debug, Default, Clone, Copy)]
pub struct Opened {
    /// Connections established.
    pub established: u64,
    /// Users that could not connect.
    pub failed: u64,
    /// From the first attempt to the last answer.
    pub elapsed: Duration,
}

impl Fleet {
    /// `count` users with consecutive ids from `--user-base`.
    pub fn new(ctx: Arc<Ctx>, count: u32) -> Fleet {
        let base = ctx.opts.user_base;
        let users = (0..count)
            .map(|i| Arc::new(User::new(i, base + i64::from(i))))
            .collect();
        Fleet { ctx, users }
    }

    /// Opens connections for `users` at the ramp rate, at most `--handshake-concurrency`
    /// handshakes at once, each user trying up to `attempts` times.
    pub async fn open(&self, users: impl IntoIterator<Item = u32>, attempts: u32) -> Opened {
        let started = Instant::now();
        let permits = Arc::new(Semaphore::new(self.ctx.opts.handshake_concurrency.max(1)));
        let mut pacer = Pacer::new(self.ctx.opts.ramp);
        let mut tasks = JoinSet::new();
        let mut users = users.into_iter();
        let mut budget = 0;
        'spawn: loop {
            if budget == 0 {
                // A ramp of 0 means "as fast as the concurrency allows".
                budget = pacer.due().await.map_or(u64::MAX, |d| d.count);
            }
            let Some(idx) = users.next() else {
                break 'spawn;
            };
            budget -= 1;
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break 'spawn;
            };
            let (user, ctx) = (self.users[idx as usize].clone(), self.ctx.clone());
            tasks.spawn(async move {
                let _permit = permit;
                let mut backoff = Backoff::new(RECONNECT_MIN, RECONNECT_MAX);
                for attempt in 0..attempts.max(1) {
                    if attempt > 0 {
                        tokio::time::sleep(backoff.next_delay()).await;
                    }
                    if user.connect(&ctx).await.is_ok() {
                        return true;
                    }
                }
                false
            });
        }
        let mut opened = Opened::default();
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(true) => opened.established += 1,
                _ => opened.failed += 1,
            }
        }
        opened.elapsed = started.elapsed();
        opened
    }

    /// Every user index.
    pub fn all(&self) -> impl Iterator<Item = u32> + use<> {
        0..self.users.len() as u32
    }

    /// Runs an unread sync for each of `users` that is online; how many completed.
    pub async fn sync(&self, users: impl IntoIterator<Item = u32>) -> u64 {
        let mut tasks = JoinSet::new();
        for idx in users {
            let user = self.users[idx as usize].clone();
            if user.is_online() {
                tasks.spawn(async move { user.sync(SYNC_TIMEOUT).await });
            }
        }
        let mut done = 0;
        while let Some(ok) = tasks.join_next().await {
            done += u64::from(matches!(ok, Ok(true)));
        }
        done
    }

    /// From now on, reopens (and resyncs) every connection the server ends.
    pub fn start_reconnecting(&self) {
        let Some(mut dropped) = self.ctx.take_disconnects() else {
            return;
        };
        self.ctx
            .reconnect
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let fleet = self.clone();
        tokio::spawn(async move {
            while let Some(idx) = dropped.recv().await {
                if fleet.ctx.reconnecting() {
                    let delay = jitter(RECONNECT_MIN);
                    tokio::spawn(fleet.clone().reconnect(idx, delay));
                }
            }
        });
    }

    /// Stops reopening dropped connections.
    pub fn stop_reconnecting(&self) {
        self.ctx
            .reconnect
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }

    /// Reconnects user `idx` after `delay`, backing off on failure, then syncs it; whether
    /// it is back.
    pub async fn reconnect(self, idx: u32, mut delay: Duration) -> bool {
        let user = self.users[idx as usize].clone();
        let mut backoff = Backoff::new(RECONNECT_MIN, RECONNECT_MAX);
        loop {
            tokio::time::sleep(delay).await;
            if user.is_online() {
                return true;
            }
            if user.connect(&self.ctx).await.is_ok() {
                self.ctx.stats.reconnects.inc();
                return user.sync(SYNC_TIMEOUT).await;
            }
            if !self.ctx.reconnecting() {
                return false;
            }
            delay = backoff.next_delay();
        }
    }

    /// Unacknowledged messages of all users.
    pub fn inflight(&self) -> u64 {
        self.users
            .iter()
            .map(|u| u64::from(u.inflight.load(std::sync::atomic::Ordering::Relaxed)))
            .sum()
    }

    /// Compares what was acknowledged with what each user received.
    pub fn audit(&self) -> Audit {
        self.ctx.ledger().audit(
            |i, f| f(&lock(&self.users[i as usize].inbox)),
            |i| self.users[i as usize].is_online(),
        )
    }

    /// Waits until every acknowledgement is in and every owed delivery arrived, or
    /// `--drain` passed; the audit at that point.
    pub async fn drain(&self) -> Audit {
        let deadline = Instant::now() + self.ctx.opts.drain;
        loop {
            let settled = self.inflight() == 0
                && self.ctx.stats.delivered.get() >= self.ctx.ledger().expected();
            if settled || Instant::now() >= deadline {
                let audit = self.audit();
                if audit.lost == 0 || Instant::now() >= deadline {
                    return audit;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Marks read, for every online user, the newest message it received in each
    /// conversation (so a later run with the same ids starts with nothing unread), and
    /// waits up to 5 s for the 2300 answers.
    pub async fn mark_read(&self) {
        if self.ctx.opts.no_mark_read {
            return;
        }
        let before = self.ctx.stats.reads_applied.get();
        let mut sent = 0;
        for user in self.users.iter().filter(|u| u.is_online()) {
            let ids: Vec<String> = lock(&user.inbox).newest.values().cloned().collect();
            sent += user.send_receipts(ids);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.ctx.stats.reads_applied.get() - before < sent && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Closes every connection and stops reconnecting.
    pub async fn close(&self) {
        self.stop_reconnecting();
        for user in self.users.iter() {
            user.close(&self.ctx);
        }
        // Waits for the close handshakes (each reader ends on the server's close frame).
        let deadline = Instant::now() + Duration::from_secs(3);
        while self
            .ctx
            .stats
            .readers
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
