//! Token expiry of live connections: one task per node keeps the instants at which a
//! connection must be warned that its token is about to expire (1004) and at which it is
//! closed for an expired token (1008), in time order, and acts on each when it comes. A
//! connection costs one map entry (the warning, then the close), no timer of its own.

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::ids::ConnId;
use crate::protocol::server;
use crate::ws::close::CloseReason;
use crate::ws::outbox::Outbox;

/// What is due for a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    /// Tell it its token expires at this instant (unix seconds).
    Warn(u64),
    /// Close it: its token has expired.
    Expire,
}

/// The node's expiry schedule.
#[derive(Default)]
pub struct Expiries {
    /// (unix milliseconds, connection, what) → the connection's outbox.
    schedule: Mutex<BTreeMap<(u64, ConnId, Due), Weak<Outbox>>>,
    /// Wakes the task when an earlier instant is scheduled.
    changed: Notify,
}

impl Expiries {
    /// Schedules the warning (`warning` before `expires_at`, unix seconds, or at once when
    /// that has passed) and the close of connection `conn`.
    pub fn schedule(&self, conn: ConnId, outbox: &Arc<Outbox>, expires_at: u64, warning: Duration) {
        let warn_ms = expires_at
            .saturating_mul(1000)
            .saturating_sub(warning.as_millis() as u64);
        let mut schedule = self.schedule.lock();
        let earliest = schedule.keys().next().map(|k| k.0);
        // One entry at a time per connection: the warning, which schedules the close when
        // it fires.
        let warn = (warn_ms, conn, Due::Warn(expires_at));
        schedule.insert(warn, Arc::downgrade(outbox));
        drop(schedule);
        if earliest.is_none_or(|earliest| warn_ms < earliest) {
            self.changed.notify_one();
        }
    }

    /// Forgets what was scheduled for connection `conn` with a token expiring at
    /// `expires_at` (the same arguments as `schedule`).
    pub fn cancel(&self, conn: ConnId, expires_at: u64, warning: Duration) {
        let expire_ms = expires_at.saturating_mul(1000);
        let warn_ms = expire_ms.saturating_sub(warning.as_millis() as u64);
        let mut schedule = self.schedule.lock();
        schedule.remove(&(warn_ms, conn, Due::Warn(expires_at)));
        schedule.remove(&(expire_ms, conn, Due::Expire));
    }

    /// Entries scheduled: one per connection with a token.
    pub fn len(&self) -> usize {
        self.schedule.lock().len()
    }

    /// Whether nothing is scheduled.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Acts on every instant as it comes, until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let changed = self.changed.notified();
            let next = self.fire(now_ms());
            let wait = match next {
                Some(at) => Duration::from_millis(at.saturating_sub(now_ms())),
                // Nothing scheduled: sleep until something is.
                None => Duration::from_secs(3600),
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = changed => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Does what is due at `now` (unix milliseconds); the next instant scheduled.
    fn fire(&self, now: u64) -> Option<u64> {
        let due = {
            let mut schedule = self.schedule.lock();
            let later = schedule.split_off(&(now + 1, 0, Due::Warn(0)));
            std::mem::replace(&mut *schedule, later)
        };
        let mut closes = Vec::new();
        for ((_, conn, what), weak) in due {
            let Some(outbox) = weak.upgrade() else {
                continue;
            };
            match what {
                Due::Warn(expires_at) => {
                    outbox.answer(server::token_expiring(expires_at));
                    closes.push((expires_at.saturating_mul(1000), conn, weak));
                }
                Due::Expire => outbox.close(CloseReason::Policy("token expired")),
            }
        }
        let mut schedule = self.schedule.lock();
        for (at, conn, weak) in closes {
            schedule.insert((at, conn, Due::Expire), weak);
        }
        // A close already due (the warning came at its expiry) fires on the task's next
        // turn, at once.
        schedule.keys().next().map(|k| k.0)
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_instants_fire_in_order_and_cancelled_ones_do_not() {
        let expiries = Expiries::default();
        let outbox = Arc::new(Outbox::new(None, 16));
        let other = Arc::new(Outbox::new(None, 16));
        expiries.schedule(1, &outbox, 100, Duration::from_secs(60));
        expiries.schedule(2, &other, 100, Duration::from_secs(60));
        expiries.cancel(2, 100, Duration::from_secs(60));
        assert_eq!(expiries.len(), 1);
        // Before the warning: nothing; the next instant is the warning.
        assert_eq!(expiries.fire(39_999), Some(40_000));
        assert!(outbox.is_empty());
        // The warning.
        assert_eq!(expiries.fire(40_000), Some(100_000));
        assert_eq!(outbox.len(), 1);
        assert!(!outbox.is_stopped());
        // The expiry.
        assert_eq!(expiries.fire(100_000), None);
        assert!(outbox.is_stopped());
        assert!(other.is_empty() && !other.is_stopped());
        assert!(expiries.is_empty());
    }
}
