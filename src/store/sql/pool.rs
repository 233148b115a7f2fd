//! The pool options both backends share: size and acquire timeout from the settings, and
//! when a connection is pinged.
//!
//! sqlx pings a connection when it goes back to the pool (always, in a task of its own)
//! and, by default, again when it is taken (`test_before_acquire`). The second ping is a
//! round trip in front of every query, and on MariaDB half of the server's commands during
//! a reconnect storm (docs/performance.md). A connection taken within `IDLE_PING` of its
//! release was pinged moments ago, so it is used as it is, unless a connection failed
//! since it went idle (the server restarted, a proxy dropped connections): then it is
//! pinged first, as is one that sat idle longer. So the first query after a restart finds
//! the pool's connections dead at most once, on the connection that found out.

use sqlx::pool::PoolOptions;
use sqlx::{Connection, Database};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::settings::StorageSettings;

/// How long a connection may sit idle and still be used without a ping first.
const IDLE_PING: Duration = Duration::from_secs(1);

/// Options for a pool of at most `max_connections`.
pub(super) fn options<DB: Database>(
    settings: &StorageSettings,
    max_connections: u32,
) -> PoolOptions<DB> {
    PoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(settings.acquire_timeout)
        // A slow acquire is load, not news: counted as 5000s when it times out, not
        // logged per request.
        .acquire_slow_threshold(settings.acquire_timeout)
        .test_before_acquire(false)
        .before_acquire(|conn: &mut DB::Connection, meta| {
            Box::pin(async move {
                if meta.idle_for > IDLE_PING || failed_since(meta.idle_for) {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

/// Whether `e` says the connection itself failed (it broke, closed, or the server is
/// shutting down or killed it), rather than a statement failing on a live connection.
fn connection_lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        // SQLSTATE class 08: connection exception (MySQL's 1053 "server shutdown in
        // progress" among them); 70100: the connection was killed.
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || code == "70100"),
        _ => false,
    }
}

/// Notes `e` if it says a connection is gone (`connection_lost`, which it returns): from
/// now on, connections that were idle before it are pinged before use.
pub(crate) fn note(e: &sqlx::Error) -> bool {
    let lost = connection_lost(e);
    if lost {
        // Stored as milliseconds since `clock()` started, plus one (0: never).
        LAST_LOSS.store(millis(clock().elapsed()) + 1, Ordering::Relaxed);
    }
    lost
}

/// When a connection was last found gone, process-wide (every pool of the process shares
/// it: a needless ping at worst).
static LAST_LOSS: AtomicU64 = AtomicU64::new(0);

fn clock() -> &'static Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Whether a connection was found gone since one idle for `idle_for` went idle.
fn failed_since(idle_for: Duration) -> bool {
    went_idle_before(
        millis(clock().elapsed()),
        millis(idle_for),
        LAST_LOSS.load(Ordering::Relaxed),
    )
}

/// Whether a connection idle for `idle_for` at `now` went idle before the loss noted as
/// `loss` (milliseconds plus one, 0 for none; the same millisecond counts as before).
fn went_idle_before(now: u64, idle_for: u64, loss: u64) -> bool {
    loss != 0 && now.saturating_sub(idle_for) < loss
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_idle_since_before_a_loss_are_pinged() {
        assert!(!went_idle_before(10_000, 50, 0), "no loss yet");
        // A loss at 9,000 ms (stored as 9,001).
        assert!(went_idle_before(10_000, 2_000, 9_001), "idle since 8,000");
        assert!(
            went_idle_before(10_000, 1_000, 9_001),
            "idle since the same millisecond"
        );
        assert!(
            !went_idle_before(10_000, 500, 9_001),
            "idle since 9,500: after the loss"
        );
    }

    #[test]
    fn a_broken_connection_is_a_loss_and_a_failed_statement_is_not() {
        let eof = sqlx::Error::Io(std::io::ErrorKind::UnexpectedEof.into());
        assert!(connection_lost(&eof));
        assert!(!connection_lost(&sqlx::Error::RowNotFound));
        note(&eof);
        assert!(failed_since(Duration::from_secs(3_600)));
    }
}
