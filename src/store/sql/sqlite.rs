//! `SqliteStore`: the embedded default, one local file in WAL mode; migrations in
//! migrations/sqlite.

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::time::Duration;

use crate::settings::StorageSettings;

type Db = sqlx::Sqlite;
const INSERT_IGNORE: &str = "INSERT OR IGNORE";
/// Take the write lock at the start, so a transaction that reads then writes cannot fail
/// with SQLITE_BUSY halfway.
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";
/// SQLite reports the previous statement's changes again for COMMIT: commit on its own.
const COMMIT_WITH_INSERT: bool = false;
const INSERT_GROUP: &str = "INSERT OR IGNORE INTO chat_groups (id, name, description, icon, owner_id, created_at) VALUES (?, ?, ?, ?, ?, ?)";
const INSERT_FOLLOW: &str =
    "INSERT OR IGNORE INTO follows (follower_id, followee_id, created_at) VALUES (?, ?, ?)";
const INSERT_BLOCK: &str =
    "INSERT OR IGNORE INTO blocks (blocker_id, blocked_id, created_at) VALUES (?, ?, ?)";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

include!("queries.rs");
include!("batch.rs");

/// A UTF-8 string literal: a hexadecimal blob cast to text, whatever bytes it holds.
fn text_literal(sql: &mut String, s: &str) {
    sql.push_str("CAST(");
    push_hex(sql, s.as_bytes());
    sql.push_str(" AS TEXT)");
}

impl SqlStore {
    /// Opens (creating if missing) the file of `settings.url` (`sqlite:PATH`), migrating
    /// first if `settings.migrate`.
    pub async fn connect(settings: &StorageSettings) -> Result<SqlStore, StoreError> {
        let url = settings.url.expose();
        let path = url
            .trim_start_matches("sqlite://")
            .trim_start_matches("sqlite:");
        let path = path.split('?').next().unwrap_or(path);
        if let Some(dir) = std::path::Path::new(path).parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Unavailable(sqlx::Error::Io(e)))?;
        }
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL with NORMAL is durable against process crashes; a power loss may drop the
            // last transactions. The embedded default is for trying the gateway out.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(false);
        let pool = SqlitePoolOptions::new()
            .max_connections(settings.max_connections.clamp(1, 8))
            .acquire_timeout(settings.acquire_timeout)
            // A slow acquire is load, not news: counted as 5000s when it times out, not
            // logged per request.
            .acquire_slow_threshold(settings.acquire_timeout)
            .connect_with(options)
            .await?;
        if settings.migrate {
            MIGRATOR.run(&pool).await?;
        }
        Ok(SqlStore {
            pool,
            writer: Default::default(),
        })
    }
}
