//! The push outbox and mutes (`PushOutbox`, store/push.rs): claims with a lease, retries,
//! and the outbox rows the batching writer adds to its transaction (`push_outbox_rows`).

use async_trait::async_trait;
use sqlx::{ColumnIndex, Encode, Executor, IntoArguments, Row, Type};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;
use uuid::Uuid;

use super::dialect::Value;
use super::literals::{push_id, push_ids};
use super::rows::{CHUNK, now_millis, retrying};
use super::{Dialect, SqlStore};
use crate::ids::{GroupId, UserId};
use crate::message::{Message, Target};
use crate::store::StoreError;
use crate::store::push::{Muted, OutboxRow, PushOutbox};

/// Whether the batch writes outbox rows, and which: set by `PushOutbox::enable`.
pub(super) struct Mode {
    /// `push.delay` in ms; -1 while push is off.
    delay_ms: AtomicI64,
    /// Whether group messages get a row too.
    groups: AtomicBool,
}

impl Default for Mode {
    fn default() -> Mode {
        Mode {
            delay_ms: AtomicI64::new(-1),
            groups: AtomicBool::new(false),
        }
    }
}

/// A batch's view of `Mode`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Outboxing {
    delay_ms: i64,
    groups: bool,
}

impl Mode {
    pub(super) fn get(&self) -> Outboxing {
        Outboxing {
            delay_ms: self.delay_ms.load(Ordering::Relaxed),
            groups: self.groups.load(Ordering::Relaxed),
        }
    }
}

/// Appends the INSERT of one outbox row per private message of `accepted` (its recipient)
/// and, if asked, per group message (user 0), due `push.delay` after it; the number of rows.
/// Nothing when push is off.
pub(super) fn push_outbox_rows<D: Dialect>(
    sql: &mut String,
    accepted: &[&Message],
    mode: Outboxing,
) -> u64 {
    if mode.delay_ms < 0 {
        return 0;
    }
    let delay_ms = mode.delay_ms;
    let mut rows = 0;
    let pushed = accepted.iter().filter_map(|m| match m.target {
        Target::User(r) => Some((m, r)),
        Target::Group(_) if mode.groups => Some((m, 0)),
        Target::Group(_) => None,
    });
    for (i, (m, recipient)) in pushed.enumerate() {
        if i % CHUNK == 0 {
            if i > 0 {
                sql.push(';');
            }
            sql.push_str(D::INSERT_IGNORE);
            sql.push_str(" INTO push_outbox (message_id, user_id, due_at) VALUES ");
        } else {
            sql.push(',');
        }
        sql.push('(');
        push_id(sql, &m.id);
        let _ = write!(sql, ",{recipient},{})", m.ts.saturating_add(delay_ms));
        rows += 1;
    }
    if rows > 0 {
        sql.push(';');
    }
    rows
}

/// Appends `WHERE`-able `(message_id = X'..' AND user_id = n) OR …` for `rows`.
fn push_keys(sql: &mut String, rows: &[(Uuid, UserId)]) {
    for (i, (id, user)) in rows.iter().enumerate() {
        if i > 0 {
            sql.push_str(" OR ");
        }
        sql.push_str("(message_id = ");
        push_id(sql, id);
        let _ = write!(sql, " AND user_id = {user})");
    }
}

impl<D: Dialect> SqlStore<D>
where
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    D::Arguments: IntoArguments<D>,
    usize: ColumnIndex<D::Row>,
    i64: Value<D>,
    String: Value<D>,
    Uuid: Value<D>,
    for<'a> &'a str: Encode<'a, D> + Type<D>,
{
    async fn run_raw(&self, sql: String) -> Result<u64, StoreError> {
        if sql.is_empty() {
            return Ok(0);
        }
        let result = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&self.pool)
            .await?;
        Ok(D::rows_affected(&result))
    }

    async fn claim_rows(
        &self,
        claimer: &str,
        now: i64,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let due: Vec<Uuid> = sqlx::query_scalar(
            "SELECT message_id FROM push_outbox WHERE due_at <= ? AND claimed_until <= ? ORDER BY due_at LIMIT ?",
        )
        .bind(now)
        .bind(now)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        // The conditions again: of two nodes racing for a row, only one still finds it
        // claimable (the row lock orders them), so only one claims it.
        let until = now.saturating_add(lease.as_millis() as i64);
        let mut sql = String::new();
        let _ = write!(sql, "UPDATE push_outbox SET claimed_by = ");
        D::text_literal(&mut sql, claimer);
        let _ = write!(
            sql,
            ", claimed_until = {until} WHERE due_at <= {now} AND claimed_until <= {now} AND message_id IN ("
        );
        push_ids(&mut sql, &due);
        sql.push(')');
        if retrying(|| self.run_raw(sql.clone())).await? == 0 {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT o.message_id, o.user_id, o.attempts, m.sender_id, m.group_id, m.ts \
             FROM push_outbox o LEFT JOIN messages m ON m.id = o.message_id \
             WHERE o.claimed_by = ? AND o.claimed_until = ?",
        )
        .bind(claimer)
        .bind(until)
        .fetch_all(&self.pool)
        .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in rows {
            let sender: Option<i64> = row.try_get(3)?;
            let group: Option<String> = row.try_get(4)?;
            let ts: Option<i64> = row.try_get(5)?;
            let attempts: i64 = row.try_get(2)?;
            claimed.push(OutboxRow {
                message_id: row.try_get(0)?,
                user_id: row.try_get(1)?,
                attempts: attempts.clamp(0, i64::from(u32::MAX)) as u32,
                message: sender.map(|s| (s, group.map(GroupId::from), ts.unwrap_or(0))),
            });
        }
        Ok(claimed)
    }
}

#[async_trait]
impl<D: Dialect> PushOutbox for SqlStore<D>
where
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    D::Arguments: IntoArguments<D>,
    usize: ColumnIndex<D::Row>,
    i64: Value<D>,
    String: Value<D>,
    Uuid: Value<D>,
    for<'a> &'a str: Encode<'a, D> + Type<D>,
{
    fn enable(&self, delay: Duration, groups: bool) {
        let ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
        self.push.groups.store(groups, Ordering::Relaxed);
        self.push.delay_ms.store(ms, Ordering::Relaxed);
    }

    async fn members_up_to(&self, group: &str, limit: usize) -> Result<Vec<UserId>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT user_id FROM group_members WHERE group_id = ? ORDER BY user_id LIMIT ?",
        )
        .bind(group)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn delivered_live(&self, ids: &[Uuid]) -> Result<(), StoreError> {
        let mut sql = String::new();
        for chunk in ids.chunks(CHUNK) {
            sql.push_str("DELETE FROM push_outbox WHERE message_id IN (");
            push_ids(&mut sql, chunk);
            sql.push_str(");");
        }
        retrying(|| self.run_raw(sql.clone())).await.map(|_| ())
    }

    async fn claim(
        &self,
        claimer: &str,
        now: i64,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        self.claim_rows(claimer, now, lease, limit).await
    }

    async fn remove(&self, rows: &[(Uuid, UserId)]) -> Result<(), StoreError> {
        let mut sql = String::new();
        for chunk in rows.chunks(CHUNK) {
            sql.push_str("DELETE FROM push_outbox WHERE ");
            push_keys(&mut sql, chunk);
            sql.push(';');
        }
        retrying(|| self.run_raw(sql.clone())).await.map(|_| ())
    }

    async fn retry_at(&self, rows: &[(Uuid, UserId)], due_at: i64) -> Result<(), StoreError> {
        let mut sql = String::new();
        for chunk in rows.chunks(CHUNK) {
            let _ = write!(
                sql,
                "UPDATE push_outbox SET attempts = attempts + 1, due_at = {due_at}, claimed_by = '', claimed_until = 0 WHERE "
            );
            push_keys(&mut sql, chunk);
            sql.push(';');
        }
        retrying(|| self.run_raw(sql.clone())).await.map(|_| ())
    }

    async fn depth(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM push_outbox")
            .fetch_one(&self.pool)
            .await?;
        Ok(n.max(0) as u64)
    }

    async fn muted(&self, pairs: &[(UserId, Muted)]) -> Result<Vec<(UserId, Muted)>, StoreError> {
        let mut users: Vec<UserId> = pairs.iter().map(|(u, _)| *u).collect();
        users.sort_unstable();
        users.dedup();
        let mut found = std::collections::HashSet::new();
        for chunk in users.chunks(CHUNK) {
            let mut sql = String::from(
                "SELECT user_id, peer_id, group_id FROM push_mutes WHERE user_id IN (",
            );
            for (i, u) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(',');
                }
                let _ = write!(sql, "{u}");
            }
            sql.push(')');
            for row in sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .fetch_all(&self.pool)
                .await?
            {
                let user: i64 = row.try_get(0)?;
                found.insert((user, muted_from(row.try_get(1)?, row.try_get(2)?)));
            }
        }
        Ok(pairs
            .iter()
            .filter(|p| found.contains(*p))
            .cloned()
            .collect())
    }

    async fn mute(&self, user: UserId, what: &Muted) -> Result<bool, StoreError> {
        let (peer, group) = muted_key(what);
        let sql = format!(
            "{} INTO push_mutes (user_id, peer_id, group_id, created_at) VALUES (?, ?, ?, ?)",
            D::INSERT_IGNORE
        );
        let result = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(user)
            .bind(peer)
            .bind(group)
            .bind(now_millis())
            .execute(&self.pool)
            .await?;
        Ok(D::rows_affected(&result) > 0)
    }

    async fn unmute(&self, user: UserId, what: &Muted) -> Result<bool, StoreError> {
        let (peer, group) = muted_key(what);
        let result = sqlx::query(
            "DELETE FROM push_mutes WHERE user_id = ? AND peer_id = ? AND group_id = ?",
        )
        .bind(user)
        .bind(peer)
        .bind(group)
        .execute(&self.pool)
        .await?;
        Ok(D::rows_affected(&result) > 0)
    }

    async fn mutes(&self, user: UserId) -> Result<Vec<Muted>, StoreError> {
        let rows = sqlx::query(
            "SELECT peer_id, group_id FROM push_mutes WHERE user_id = ? ORDER BY group_id, peer_id",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok(muted_from(row.try_get(0)?, row.try_get(1)?)))
            .collect()
    }
}

/// The (peer_id, group_id) columns of a mute.
fn muted_key(what: &Muted) -> (i64, &str) {
    match what {
        Muted::User(peer) => (*peer, ""),
        Muted::Group(group) => (0, group),
    }
}

/// A mute from its (peer_id, group_id) columns.
fn muted_from(peer: i64, group: String) -> Muted {
    if group.is_empty() {
        Muted::User(peer)
    } else {
        Muted::Group(GroupId::from(group))
    }
}
