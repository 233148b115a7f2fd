//! `Health`: what a node knows of its dependencies, so readiness answers at once.
//!
//! One task per node (`Health::run`) checks storage and bus every `CHECK_INTERVAL`, each with
//! at most `CHECK_TIMEOUT`, and records the outcome. `GET /health/ready` answers from that
//! record and never waits on a dependency itself: a probe is answered in microseconds even
//! while the database does not answer (the pool would make it wait
//! `storage.acquire_timeout`) or Redis hangs (`bus.command_timeout`).
//!
//! A dependency that fails is `Failing` for `server.ready_tolerance`, and only then `Down`,
//! which makes the node unready (503). Every node shares the same database and Redis: if
//! readiness followed each failed check, a blip of a few seconds would take every node out
//! of the load balancer at once, and clients would have nowhere to go even after it ended
//! (until the balancer's own checks saw the nodes back). Within the tolerance a node keeps
//! its clients; sends during the blip get honest answers (2101, or 5000 and a retry).

use parking_lot::Mutex;
use serde::Serialize;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

use crate::bus::Bus;
use crate::store::Store;

/// How often the dependencies are checked.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Longest wait for one check's answer; no answer by then is a failure.
pub const CHECK_TIMEOUT: Duration = Duration::from_millis(500);

/// What the checks of one dependency say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Condition {
    /// The last check succeeded.
    Ok,
    /// Checks have been failing for at most `server.ready_tolerance`: still ready.
    Failing,
    /// Checks have been failing for longer: not ready.
    Down,
}

/// One dependency as readiness reports it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DependencyReport {
    pub status: Condition,
    /// Since when (Unix milliseconds) the checks have been succeeding, or failing.
    pub since: u64,
    /// The last failure, while failing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Both dependencies.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub store: DependencyReport,
    pub bus: DependencyReport,
}

impl Report {
    /// Whether no dependency is down.
    pub fn ready(&self) -> bool {
        self.store.status != Condition::Down && self.bus.status != Condition::Down
    }
}

/// The record of one dependency's checks.
struct Record {
    /// When the current run of failed checks began; `None` while the checks succeed.
    failing_since: Option<Instant>,
    /// When the current run (of successes or failures) began, in Unix milliseconds.
    since: u64,
    error: Option<String>,
    /// Whether the current run of failures has been logged as past the tolerance.
    down_logged: bool,
}

struct Dependency {
    name: &'static str,
    record: Mutex<Record>,
}

impl Dependency {
    fn new(name: &'static str) -> Dependency {
        Dependency {
            name,
            record: Mutex::new(Record {
                failing_since: None,
                since: unix_ms(),
                error: None,
                down_logged: false,
            }),
        }
    }

    /// Records one check's outcome; logs the changes (never each check).
    fn record(&self, outcome: Result<(), String>, tolerance: Duration) {
        let mut record = self.record.lock();
        match outcome {
            Ok(()) => {
                if let Some(failing_since) = record.failing_since.take() {
                    tracing::info!(
                        dependency = self.name,
                        failed_for_ms = failing_since.elapsed().as_millis() as u64,
                        "health check succeeds again"
                    );
                    record.since = unix_ms();
                    record.error = None;
                    record.down_logged = false;
                }
            }
            Err(error) => {
                let failing_since = match record.failing_since {
                    Some(since) => since,
                    None => {
                        tracing::warn!(dependency = self.name, %error, "health check failed");
                        record.since = unix_ms();
                        *record.failing_since.insert(Instant::now())
                    }
                };
                if failing_since.elapsed() > tolerance && !record.down_logged {
                    tracing::warn!(
                        dependency = self.name,
                        %error,
                        "health checks failing for longer than server.ready_tolerance: not ready"
                    );
                    record.down_logged = true;
                }
                record.error = Some(error);
            }
        }
    }

    fn report(&self, tolerance: Duration) -> DependencyReport {
        let record = self.record.lock();
        let status = match record.failing_since {
            None => Condition::Ok,
            Some(since) if since.elapsed() > tolerance => Condition::Down,
            Some(_) => Condition::Failing,
        };
        DependencyReport {
            status,
            since: record.since,
            error: record.error.clone(),
        }
    }
}

/// The node's record of its dependencies' health.
pub struct Health {
    store: Dependency,
    bus: Dependency,
    tolerance: Duration,
}

impl Health {
    /// Both dependencies fine (the node has just connected to them), failures tolerated for
    /// `tolerance` (`server.ready_tolerance`).
    pub fn new(tolerance: Duration) -> Health {
        Health {
            store: Dependency::new("store"),
            bus: Dependency::new("bus"),
            tolerance,
        }
    }

    /// What the checks say now; never waits for a dependency.
    pub fn report(&self) -> Report {
        Report {
            store: self.store.report(self.tolerance),
            bus: self.bus.report(self.tolerance),
        }
    }

    /// Checks both dependencies every `CHECK_INTERVAL` until `shutdown` is cancelled.
    pub async fn run(
        self: Arc<Self>,
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        shutdown: CancellationToken,
    ) {
        let mut ticks = tokio::time::interval(CHECK_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let (stored, bussed) = tokio::join!(check(store.ping()), check(bus.ping()));
            self.store.record(stored, self.tolerance);
            self.bus.record(bussed, self.tolerance);
        }
    }
}

/// One check: `ping`'s outcome within `CHECK_TIMEOUT`.
async fn check<E: std::fmt::Display>(
    ping: impl Future<Output = Result<(), E>>,
) -> Result<(), String> {
    match tokio::time::timeout(CHECK_TIMEOUT, ping).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_turns_down_after_the_tolerance_and_ok_at_the_first_success() {
        let health = Health::new(Duration::from_secs(60));
        assert_eq!(health.report().bus.status, Condition::Ok);
        health.bus.record(Err("gone".into()), health.tolerance);
        let report = health.report();
        assert_eq!(report.bus.status, Condition::Failing);
        assert_eq!(report.bus.error.as_deref(), Some("gone"));
        assert!(report.ready());
        // Failing for longer than the tolerance.
        health.bus.record.lock().failing_since = Some(Instant::now() - Duration::from_secs(61));
        let report = health.report();
        assert_eq!(report.bus.status, Condition::Down);
        assert_eq!(report.store.status, Condition::Ok);
        assert!(!report.ready());
        health.bus.record(Ok(()), health.tolerance);
        let report = health.report();
        assert_eq!(report.bus.status, Condition::Ok);
        assert!(report.bus.error.is_none());
        assert!(report.ready());
    }
}
