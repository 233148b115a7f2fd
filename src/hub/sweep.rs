//! The liveness sweep: one task per node pings every local connection once per
//! `server.ping_interval`, closes those silent past `server.idle_timeout` and aborts writes
//! stuck too long, so that no connection needs a timer of its own.

use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use super::Hub;
use crate::ws::close::CloseReason;

/// The liveness sweeper visits the connections in this many slices per `ping_interval`.
pub const SWEEP_SLICES: u64 = 16;

/// A write to a client blocked this long (the client stopped reading) ends the connection.
pub const STUCK_WRITE: Duration = Duration::from_secs(15);

impl Hub {
    /// The sweeper task: a slice of the connections (`sweep`) every
    /// `ping_interval / SWEEP_SLICES`, until `shutdown` is cancelled.
    pub async fn run_sweeper(
        self: Arc<Self>,
        ping_interval: Duration,
        idle_timeout: Duration,
        shutdown: CancellationToken,
    ) {
        let every = (ping_interval / SWEEP_SLICES as u32).max(Duration::from_millis(1));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut slice = 0;
        while !shutdown.is_cancelled() {
            tick.tick().await;
            self.sweep(slice, idle_timeout, STUCK_WRITE);
            slice += 1;
        }
    }

    /// One pass of the liveness sweeper over slice `slice` of `SWEEP_SLICES` of the local
    /// connections: closes those silent for `idle_after`, aborts those whose write has been
    /// blocked for `stuck_after`, and asks the others for a WebSocket ping. Run every
    /// `server.ping_interval / SWEEP_SLICES`, a slice after the other, so each connection is
    /// visited once per `ping_interval` and the pings (and their pongs) are spread over the
    /// interval instead of all leaving at once: with tens of thousands of connections one
    /// burst would hold up live messages (see docs/performance.md, item 10).
    pub fn sweep(&self, slice: u64, idle_after: Duration, stuck_after: Duration) {
        let (idle_after, stuck_after) = (
            idle_after.as_millis() as u64,
            stuck_after.as_millis() as u64,
        );
        let slice = slice % SWEEP_SLICES;
        let state = self.state.read();
        for local in state.users.values() {
            for conn in &local.conns {
                if conn.id % SWEEP_SLICES != slice {
                    continue;
                }
                self.metrics.queued(conn.outbox.len());
                if conn.outbox.write_stuck_for() > stuck_after {
                    conn.outbox.abort();
                } else if conn.outbox.silent_for() > idle_after {
                    conn.outbox.close(CloseReason::Idle);
                } else {
                    conn.outbox.request_ping();
                }
            }
        }
    }
}
