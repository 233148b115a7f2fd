//! Read state: what is unread (the catch-up's source) and read receipts. A private message
//! carries its own `is_read`; a group member has read everything up to the `last_read`
//! marker of their membership. Only a read receipt moves either.

use sqlx::{ColumnIndex, Encode, Executor, IntoArguments, Row, Type};
use uuid::Uuid;

use super::dialect::Value;
use super::literals::{push_id, push_ids};
use super::rows::{MESSAGE_COLUMNS, message_from_row, messages_from_rows, page, retrying};
use super::{Dialect, SqlStore};
use crate::ids::UserId;
use crate::message::Target;
use crate::store::{GroupReads, Page, ReadOutcome, Role, StoreError};

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
    /// Marks message `id` and everything older in its conversation read for `user`.
    pub(super) async fn mark_read(
        &self,
        user: UserId,
        id: Uuid,
    ) -> Result<ReadOutcome, StoreError> {
        retrying(|| self.mark_read_once(user, id)).await
    }

    /// See `Store::private_read_upto`: two index lookups on `ix_unread_from`.
    pub(super) async fn private_read_upto(
        &self,
        user: UserId,
        peer: UserId,
    ) -> Result<(Option<Uuid>, Option<Uuid>), StoreError> {
        let row = sqlx::query(
            "SELECT (SELECT MAX(id) FROM messages WHERE recipient_id = ? AND sender_id = ? AND is_read = 1), \
             (SELECT MAX(id) FROM messages WHERE recipient_id = ? AND sender_id = ? AND is_read = 1)",
        )
        .bind(user)
        .bind(peer)
        .bind(peer)
        .bind(user)
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    /// See `Store::group_read_upto`.
    pub(super) async fn group_read_upto(
        &self,
        group: &str,
        user: UserId,
    ) -> Result<Option<Uuid>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT last_read FROM group_members WHERE group_id = ? AND user_id = ?",
        )
        .bind(group)
        .bind(user)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The oldest `limit` messages unread by `user` with ids above `after` and not in `sent`,
    /// private and group merged, oldest first. Both lookups go in one request (integers and ids written as
    /// literals). Reading changes nothing: only a read receipt makes a message read.
    pub(super) async fn unread(
        &self,
        user: UserId,
        after: Option<Uuid>,
        sent: &[Uuid],
        limit: u32,
    ) -> Result<Page, StoreError> {
        let fetch = i64::from(limit) + 1;
        let group_columns = MESSAGE_COLUMNS
            .split(", ")
            .map(|c| format!("m.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let (mut private_after, mut group_after) = (String::new(), String::new());
        if let Some(after) = &after {
            private_after.push_str(" AND id > ");
            push_id(&mut private_after, after);
            group_after.push_str(" AND m.id > ");
            push_id(&mut group_after, after);
        }
        if !sent.is_empty() {
            private_after.push_str(" AND id NOT IN (");
            push_ids(&mut private_after, sent);
            private_after.push(')');
            group_after.push_str(" AND m.id NOT IN (");
            push_ids(&mut group_after, sent);
            group_after.push(')');
        }
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE recipient_id = {user} AND is_read = 0{private_after} ORDER BY id LIMIT {fetch};\
             SELECT {group_columns} FROM group_members gm JOIN messages m ON m.group_id = gm.group_id AND m.id > gm.last_read \
             WHERE gm.user_id = {user} AND m.sender_id <> {user}{group_after} ORDER BY m.id LIMIT {fetch};"
        );
        let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        let mut rows = messages_from_rows(&rows)?;
        rows.sort_by_key(|m| m.id);
        Ok(page(rows, limit))
    }

    /// See `Store::group_reads`: the readers come from the members' read markers
    /// (`group_members.last_read`), never from rows per message.
    pub(super) async fn group_reads(
        &self,
        group: &str,
        id: Uuid,
        after: UserId,
        limit: u32,
    ) -> Result<Option<GroupReads>, StoreError> {
        let Some(sender) =
            sqlx::query("SELECT sender_id FROM messages WHERE id = ? AND group_id = ?")
                .bind(id)
                .bind(group)
                .fetch_optional(&self.pool)
                .await?
        else {
            return Ok(None);
        };
        let sender: i64 = sender.try_get(0)?;
        let counts = sqlx::query(
            "SELECT COUNT(*), COUNT(CASE WHEN last_read >= ? THEN 1 END) \
             FROM group_members WHERE group_id = ? AND user_id <> ?",
        )
        .bind(id)
        .bind(group)
        .bind(sender)
        .fetch_one(&self.pool)
        .await?;
        let member_count: i64 = counts.try_get(0)?;
        let read_count: i64 = counts.try_get(1)?;
        let rows = sqlx::query(
            "SELECT user_id FROM group_members WHERE group_id = ? AND user_id <> ? \
             AND last_read >= ? AND user_id > ? ORDER BY user_id LIMIT ?",
        )
        .bind(group)
        .bind(sender)
        .bind(id)
        .bind(after)
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.pool)
        .await?;
        let mut readers = rows
            .iter()
            .map(|r| r.try_get::<i64, _>(0))
            .collect::<Result<Vec<_>, _>>()?;
        let more = readers.len() > limit as usize;
        readers.truncate(limit as usize);
        Ok(Some(GroupReads {
            message_id: id,
            next_after: if more { readers.last().copied() } else { None },
            readers,
            read_count: read_count.max(0) as u64,
            member_count: member_count.max(0) as u64,
        }))
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
