//! The MySQL/MariaDB dialect (`MySqlStore`): a connection pool; migrations in
//! migrations/mysql.

use sqlx::MySql;
use sqlx::mysql::{MySqlConnectOptions, MySqlQueryResult};
use std::str::FromStr;

use super::literals::push_hex;
use super::{Dialect, SqlStore};
use crate::settings::StorageSettings;
use crate::store::StoreError;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/mysql");

impl Dialect for MySql {
    const INSERT_IGNORE: &'static str = "INSERT IGNORE";
    const BEGIN_WRITE: &'static str = "BEGIN";
    const FOR_UPDATE: &'static str = " FOR UPDATE";
    const INSERT_GROUP: &'static str = "INSERT IGNORE INTO chat_groups (id, name, description, icon, owner_id, created_at) VALUES (?, ?, ?, ?, ?, ?)";
    const INSERT_FOLLOW: &'static str =
        "INSERT IGNORE INTO follows (follower_id, followee_id, created_at) VALUES (?, ?, ?)";
    const INSERT_BLOCK: &'static str =
        "INSERT IGNORE INTO blocks (blocker_id, blocked_id, created_at) VALUES (?, ?, ?)";
    /// Assignments run left to right on the updated row: `last_id` goes last.
    const NEWEST_WINS: &'static str = " ON DUPLICATE KEY UPDATE \
        last_sender = IF(VALUES(last_id) > last_id, VALUES(last_sender), last_sender), \
        last_preview = IF(VALUES(last_id) > last_id, VALUES(last_preview), last_preview), \
        last_ts = IF(VALUES(last_id) > last_id, VALUES(last_ts), last_ts), \
        last_id = GREATEST(last_id, VALUES(last_id))";

    /// Hexadecimal with a character set introducer, so it compares and stores as text (with
    /// the column's collation) whatever bytes it holds.
    fn text_literal(sql: &mut String, s: &str) {
        sql.push_str("_utf8mb4 ");
        push_hex(sql, s.as_bytes());
    }

    fn rows_affected(result: &MySqlQueryResult) -> u64 {
        result.rows_affected()
    }

    async fn connect(settings: &StorageSettings) -> Result<SqlStore<MySql>, StoreError> {
        open(settings).await
    }
}

/// Connects to `settings.url` (`mysql://…`), migrating first if `settings.migrate`.
async fn open(settings: &StorageSettings) -> Result<SqlStore<MySql>, StoreError> {
    // `mariadb://` was rewritten to `mysql://` when the settings loaded.
    let options = MySqlConnectOptions::from_str(settings.url.expose())?
        .charset("utf8mb4")
        .collation("utf8mb4_unicode_ci")
        .timezone(Some(String::from("+00:00")));
    let pool = super::pool::options::<MySql>(settings, settings.max_connections)
        // READ COMMITTED: no gap locks, so concurrent read receipts and syncs of
        // different users do not deadlock on the unread index (REPEATABLE READ does).
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::query("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                    .execute(conn)
                    .await
                    .map(|_| ())
            })
        })
        .connect_with(options)
        .await?;
    if settings.migrate {
        migrate(&pool).await?;
    }
    Ok(SqlStore::new(pool))
}

/// Applies pending migrations under a named lock, so nodes starting together take turns.
/// (sqlx's own migration lock calls `GET_LOCK(name, -1)`, which MariaDB treats as "do not
/// wait": two nodes would both apply migration 1.)
async fn migrate(pool: &sqlx::MySqlPool) -> Result<(), StoreError> {
    let mut conn = pool.acquire().await?;
    let locked: Option<i64> =
        sqlx::query_scalar("SELECT GET_LOCK(CONCAT('chat-gateway-migrate:', DATABASE()), 60)")
            .fetch_one(&mut *conn)
            .await?;
    if locked != Some(1) {
        return Err(StoreError::Unavailable(sqlx::Error::Protocol(
            "timed out waiting for another node's migrations (GET_LOCK)".into(),
        )));
    }
    let result = MIGRATOR.run(&mut *conn).await;
    let _ = sqlx::query("SELECT RELEASE_LOCK(CONCAT('chat-gateway-migrate:', DATABASE()))")
        .execute(&mut *conn)
        .await;
    result.map_err(StoreError::from)
}
