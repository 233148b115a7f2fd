//! Read state: syncing unread messages (which makes them read) and read receipts. A private
//! message carries its own `is_read`; a group member has read everything up to the
//! `last_read` marker of their membership.

use sqlx::{ColumnIndex, Encode, Executor, IntoArguments, Type};
use std::collections::HashMap;
use std::fmt::Write as _;
use uuid::Uuid;

use super::dialect::Value;
use super::literals::{push_id, push_ids};
use super::rows::{CHUNK, MESSAGE_COLUMNS, message_from_row, messages_from_rows, page, retrying};
use super::{Dialect, SqlStore};
use crate::ids::UserId;
use crate::message::{Message, Target};
use crate::store::{Page, ReadOutcome, Role, StoreError};

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
    /// The oldest `limit` unread messages of `user`; the returned ones become read.
    pub(super) async fn take_unread(&self, user: UserId, limit: u32) -> Result<Page, StoreError> {
        // Read first, outside any write transaction: most syncs (a reconnect storm's) find
        // nothing, and then take no write lock at all.
        let page = self.unread(user, limit).await?;
        if !page.messages.is_empty() {
            retrying(|| self.mark_returned_read(user, &page.messages)).await?;
        }
        Ok(page)
    }

    /// Marks message `id` and everything older in its conversation read for `user`.
    pub(super) async fn mark_read(
        &self,
        user: UserId,
        id: Uuid,
    ) -> Result<ReadOutcome, StoreError> {
        retrying(|| self.mark_read_once(user, id)).await
    }

    /// The oldest `limit` unread messages of `user`, private and group merged, oldest first.
    /// Both lookups go in one request (integers written as literals).
    async fn unread(&self, user: UserId, limit: u32) -> Result<Page, StoreError> {
        let fetch = i64::from(limit) + 1;
        let group_columns = MESSAGE_COLUMNS
            .split(", ")
            .map(|c| format!("m.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE recipient_id = {user} AND is_read = 0 ORDER BY id LIMIT {fetch};\
             SELECT {group_columns} FROM group_members gm JOIN messages m ON m.group_id = gm.group_id AND m.id > gm.last_read \
             WHERE gm.user_id = {user} AND m.sender_id <> {user} ORDER BY m.id LIMIT {fetch};"
        );
        let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        let mut rows = messages_from_rows(&rows)?;
        rows.sort_by_key(|m| m.id);
        Ok(page(rows, limit))
    }

    /// Marks the messages a sync returned read for `user`: one transaction, one request.
    async fn mark_returned_read(&self, user: UserId, rows: &[Message]) -> Result<(), StoreError> {
        let mut sql = String::from(D::BEGIN_WRITE);
        sql.push(';');
        push_private_read(&mut sql, user, rows);
        push_group_read::<D>(&mut sql, user, rows);
        sql.push_str("COMMIT;");
        let mut conn = self.pool.acquire().await?;
        if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut *conn)
            .await
        {
            if sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await.is_err() {
                let _ = conn.close().await;
            }
            return Err(e.into());
        }
        Ok(())
    }

    /// One attempt of `mark_read`.
    async fn mark_read_once(&self, user: UserId, id: Uuid) -> Result<ReadOutcome, StoreError> {
        let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?");
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(ReadOutcome::NotFound);
        };
        let m = message_from_row(&row)?;
        match &m.target {
            Target::User(recipient) => {
                let peer = if *recipient == user {
                    m.sender_id
                } else if m.sender_id == user {
                    *recipient
                } else {
                    return Ok(ReadOutcome::NotFound);
                };
                self.read_private_up_to(user, peer, id).await?;
                Ok(ReadOutcome::Applied(Target::User(peer)))
            }
            Target::Group(group) => {
                let moved = self.read_group_up_to(user, group, id).await?;
                if moved == 0 && self.role(group, user).await? == Some(Role::Outsider) {
                    return Ok(ReadOutcome::NotMember);
                }
                Ok(ReadOutcome::Applied(Target::Group(group.clone())))
            }
        }
    }

    /// Marks what `peer` sent `user` up to `id` read.
    async fn read_private_up_to(
        &self,
        user: UserId,
        peer: UserId,
        id: Uuid,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE messages SET is_read = 1 WHERE recipient_id = ? AND is_read = 0 AND id <= ? AND sender_id = ?",
        )
        .bind(user)
        .bind(id)
        .bind(peer)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Moves `user`'s read marker in `group` forward to `id`; 0 if it did not move.
    async fn read_group_up_to(
        &self,
        user: UserId,
        group: &str,
        id: Uuid,
    ) -> Result<u64, StoreError> {
        let result = sqlx::query(
            "UPDATE group_members SET last_read = ? WHERE group_id = ? AND user_id = ? AND last_read < ?",
        )
        .bind(id)
        .bind(group)
        .bind(user)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(D::rows_affected(&result))
    }
}

/// Appends the updates that mark the returned private messages read.
fn push_private_read(sql: &mut String, user: UserId, rows: &[Message]) {
    let private_ids: Vec<Uuid> = rows
        .iter()
        .filter(|m| matches!(m.target, Target::User(_)))
        .map(|m| m.id)
        .collect();
    for chunk in private_ids.chunks(CHUNK) {
        let _ = write!(
            sql,
            "UPDATE messages SET is_read = 1 WHERE recipient_id = {user} AND id IN ("
        );
        push_ids(sql, chunk);
        sql.push_str(");");
    }
}

/// Appends the updates that move each group's read marker to its newest returned message.
fn push_group_read<D: Dialect>(sql: &mut String, user: UserId, rows: &[Message]) {
    // Returned oldest first, so each group's returned messages are a prefix of its
    // unread ones: moving the marker to the newest returned is exact.
    let mut newest: HashMap<&str, Uuid> = HashMap::new();
    for m in rows {
        if let Target::Group(g) = &m.target {
            newest.insert(g, m.id);
        }
    }
    for (group, id) in newest {
        sql.push_str("UPDATE group_members SET last_read = ");
        push_id(sql, &id);
        sql.push_str(" WHERE group_id = ");
        D::text_literal(sql, group);
        let _ = write!(sql, " AND user_id = {user} AND last_read < ");
        push_id(sql, &id);
        sql.push(';');
    }
}
