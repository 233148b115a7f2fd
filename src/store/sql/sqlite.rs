//! The SQLite dialect (`SqliteStore`): the embedded default, one local file in WAL mode;
//! migrations in migrations/sqlite.

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteQueryResult, SqliteSynchronous,
};
use sqlx::{Connection as _, Sqlite};
use std::str::FromStr;
use std::time::Duration;

use super::literals::push_hex;
use super::{Dialect, SqlStore};
use crate::settings::StorageSettings;
use crate::store::StoreError;

/// Page cache per connection, in KiB (`PRAGMA cache_size` takes a negative count of KiB).
/// Larger is slower here: every commit walks the whole hash table of the committing
/// connection's cache (`pcache1TruncateUnsafe`), and pages it misses come from the OS page
/// cache; 8 MiB measured about as fast as SQLite's 2 MiB default and faster than 32 or 128
/// MiB (docs/performance.md, item 27).
const CACHE_KIB: i64 = -8 * 1024;
/// How often the log is copied into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// Log size (pages) at which a committing connection checkpoints by itself: only when the
/// background checkpoints fall far behind.
const BACKSTOP_PAGES: u32 = 50_000;
/// The write-ahead log's size once it is reset. Cutting the file back costs a truncate
/// (a discard on the disk, and new blocks to allocate as it grows again) that stalled the
/// writer with a 64 MiB limit: the log is cut only after a burst far above the steady state
/// (docs/performance.md, item 23).
const WAL_LIMIT_BYTES: u64 = 512 << 20;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

impl Dialect for Sqlite {
    const INSERT_IGNORE: &'static str = "INSERT OR IGNORE";
    /// Take the write lock at the start, so a transaction that reads then writes cannot fail
    /// with SQLITE_BUSY halfway.
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    const FOR_UPDATE: &'static str = "";
    const INSERT_GROUP: &'static str = "INSERT OR IGNORE INTO chat_groups (id, name, description, icon, owner_id, created_at) VALUES (?, ?, ?, ?, ?, ?)";
    const INSERT_FOLLOW: &'static str =
        "INSERT OR IGNORE INTO follows (follower_id, followee_id, created_at) VALUES (?, ?, ?)";
    const INSERT_BLOCK: &'static str =
        "INSERT OR IGNORE INTO blocks (blocker_id, blocked_id, created_at) VALUES (?, ?, ?)";
    /// Every assignment reads the row as it was.
    const NEWEST_WINS: &'static str = " ON CONFLICT DO UPDATE SET \
        last_sender = CASE WHEN excluded.last_id > last_id THEN excluded.last_sender ELSE last_sender END, \
        last_preview = CASE WHEN excluded.last_id > last_id THEN excluded.last_preview ELSE last_preview END, \
        last_ts = CASE WHEN excluded.last_id > last_id THEN excluded.last_ts ELSE last_ts END, \
        last_id = MAX(last_id, excluded.last_id)";

    /// A hexadecimal blob cast to text, whatever bytes it holds.
    fn text_literal(sql: &mut String, s: &str) {
        sql.push_str("CAST(");
        push_hex(sql, s.as_bytes());
        sql.push_str(" AS TEXT)");
    }

    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }

    async fn connect(settings: &StorageSettings) -> Result<SqlStore<Sqlite>, StoreError> {
        open(settings).await
    }
}

/// Opens (creating if missing) the file of `settings.url` (`sqlite:PATH`), migrating first
/// if `settings.migrate`, and starts the checkpoint task.
async fn open(settings: &StorageSettings) -> Result<SqlStore<Sqlite>, StoreError> {
    let url = settings.url.expose();
    if let Some(dir) = settings
        .url
        .sqlite_path()
        .and_then(|p| std::path::Path::new(p).parent())
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Unavailable(sqlx::Error::Io(e)))?;
    }
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // WAL with NORMAL is durable against process crashes; a power loss may drop the
        // last transactions. The embedded default is for trying the gateway out.
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(false)
        // Memory is taken as pages are used, up to this much per connection. (Reads go
        // through the OS page cache: a memory map of the file cost more, in page faults,
        // than the copies it saves.)
        .pragma("cache_size", CACHE_KIB.to_string())
        // After a checkpoint resets the log, it is cut back to this size.
        .pragma("journal_size_limit", WAL_LIMIT_BYTES.to_string())
        // Checkpoints run on a connection of their own (`checkpoints`), so that the
        // writer's commits never wait for their writes and fsyncs; a committing
        // connection checkpoints itself only when the log grows past this many pages.
        .pragma("wal_autocheckpoint", BACKSTOP_PAGES.to_string());
    let checkpointer = SqliteConnection::connect_with(&options).await?;
    let pool = super::pool::options::<Sqlite>(settings, settings.max_connections.clamp(1, 8))
        .connect_with(options)
        .await?;
    if settings.migrate {
        MIGRATOR.run(&pool).await?;
    }
    let store = SqlStore::new(pool);
    tokio::spawn(checkpoints(
        checkpointer,
        std::sync::Arc::downgrade(&store.writer),
    ));
    Ok(store)
}

/// Copies the write-ahead log into the database file every `CHECKPOINT_EVERY` while the
/// store is in use. PASSIVE: never waits for readers or the writer; what it cannot copy yet
/// is copied next time. Once everything is copied, the next commit starts the log over.
/// It ends, closing its connection, when the store (`alive`) is gone.
async fn checkpoints<T>(mut conn: SqliteConnection, alive: std::sync::Weak<T>) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if alive.strong_count() == 0 {
            break;
        }
        if let Err(e) = sqlx::raw_sql("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&mut conn)
            .await
        {
            tracing::warn!(error = %e, "sqlite checkpoint failed");
        }
    }
    let _ = conn.close().await;
}
