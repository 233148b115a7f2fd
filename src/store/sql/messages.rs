//! Messages once stored: the history pages of a conversation, the first copy of a repeated
//! `client_msg_id`, and the undelivered marks.

use sqlx::{ColumnIndex, Encode, Executor, IntoArguments, Row, Type};
use std::collections::HashMap;
use std::fmt::Write as _;
use uuid::Uuid;

use super::dialect::Value;
use super::literals::push_undelivered;
use super::rows::{CHUNK, MESSAGE_COLUMNS, messages_from_rows, page, pair};
use super::{Dialect, SqlStore};
use crate::ids::UserId;
use crate::protocol::Cursor;
use crate::store::{InsertOutcome, Page, StoreError};

/// A (sender, client_msg_id) key.
pub(super) type ClientKey = (UserId, String);
/// A first copy: its id, time and whether it was delivered.
pub(super) type FirstCopy = (Uuid, i64, bool);
/// The first copy of each (sender, client_msg_id).
pub(super) type FirstCopies = HashMap<ClientKey, FirstCopy>;

/// Appends the lookups of the first copies of `keys` (one probe of the unique key each),
/// rows tagged `d`: tag, sender_id, client_msg_id, id, ts, delivered (read by `first_copy`).
pub(super) fn push_first_copies<D: Dialect>(sql: &mut String, keys: &[(UserId, &str)]) {
    for chunk in keys.chunks(CHUNK) {
        sql.push_str(
            "SELECT 'd', sender_id, client_msg_id, id, ts, delivered FROM messages WHERE ",
        );
        for (i, (sender, client_id)) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push_str(" OR ");
            }
            let _ = write!(sql, "(sender_id = {sender} AND client_msg_id = ");
            D::text_literal(sql, client_id);
            sql.push(')');
        }
        sql.push(';');
    }
}

/// One row of `push_first_copies`.
pub(super) fn first_copy<R: Row>(row: &R) -> Result<(ClientKey, FirstCopy), sqlx::Error>
where
    usize: ColumnIndex<R>,
    i64: Value<R::Database>,
    String: Value<R::Database>,
    Uuid: Value<R::Database>,
{
    let delivered: i64 = row.try_get(5)?;
    Ok((
        (row.try_get(1)?, row.try_get(2)?),
        (row.try_get(3)?, row.try_get(4)?, delivered != 0),
    ))
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
    /// Messages between `user` and `peer`, newest first, ids strictly below `before`.
    pub(super) async fn private_history(
        &self,
        user: UserId,
        peer: UserId,
        before: Cursor,
        limit: u32,
    ) -> Result<Page, StoreError> {
        let (lo, hi) = pair(user, peer);
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE peer_lo = ? AND peer_hi = ? AND id < ? ORDER BY id DESC LIMIT ?"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(lo)
            .bind(hi)
            .bind(before.0)
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.pool)
            .await?;
        Ok(page(messages_from_rows(&rows)?, limit))
    }

    /// Messages of `group`, newest first, ids strictly below `before`.
    pub(super) async fn group_history(
        &self,
        group: &str,
        before: Cursor,
        limit: u32,
    ) -> Result<Page, StoreError> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE group_id = ? AND id < ? ORDER BY id DESC LIMIT ?"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(group)
            .bind(before.0)
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.pool)
            .await?;
        Ok(page(messages_from_rows(&rows)?, limit))
    }

    /// The first message `sender` sent with `client_msg_id`, as a `Duplicate` outcome.
    pub(super) async fn find_duplicate(
        &self,
        sender: UserId,
        client_msg_id: &str,
    ) -> Result<Option<InsertOutcome>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let first = Self::first_by_client_id(&mut conn, &[(sender, client_msg_id)]).await?;
        Ok(first
            .into_values()
            .next()
            .map(|(id, ts, delivered)| InsertOutcome::Duplicate { id, ts, delivered }))
    }

    /// The first message of each (sender, client_msg_id) among `keys`: id, ts, delivered.
    pub(super) async fn first_by_client_id(
        conn: &mut D::Connection,
        keys: &[(UserId, &str)],
    ) -> Result<FirstCopies, sqlx::Error> {
        let mut sql = String::new();
        push_first_copies::<D>(&mut sql, keys);
        let mut found = HashMap::new();
        if sql.is_empty() {
            return Ok(found);
        }
        for row in sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut *conn)
            .await?
        {
            let (key, copy) = first_copy(&row)?;
            found.insert(key, copy);
        }
        Ok(found)
    }

    /// Records that these messages reached no online device.
    pub(super) async fn mark_undelivered(&self, ids: &[Uuid]) -> Result<(), StoreError> {
        let mut sql = String::new();
        push_undelivered(&mut sql, ids);
        if !sql.is_empty() {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }
}
