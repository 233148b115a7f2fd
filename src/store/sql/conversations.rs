//! The conversation list: a user's private conversations (`conversations`, one row per user
//! and peer, kept by each batch of messages) and groups (`group_members` with each group's
//! newest message in `group_activity`), merged by most recent activity, then each entry's
//! unread count and read positions in one more request. docs/protocol.md shows the query
//! plans.

use sqlx::{ColumnIndex, Encode, Executor, IntoArguments, Row, Type};
use std::fmt::Write as _;
use uuid::Uuid;

use super::dialect::Value;
use super::literals::push_id;
use super::{Dialect, SqlStore};
use crate::ids::{GroupId, UserId};
use crate::store::{Conversation, LastMessage, StoreError, UNREAD_CAP};

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
    /// See `Store::conversations`.
    pub(super) async fn conversations(
        &self,
        user: UserId,
        before: Uuid,
        limit: u32,
    ) -> Result<(Vec<Conversation>, bool), StoreError> {
        let fetch = i64::from(limit) + 1;
        let private = sqlx::query(
            "SELECT peer_id, last_id, last_sender, last_preview, last_ts FROM conversations \
             WHERE user_id = ? AND last_id < ? ORDER BY last_id DESC LIMIT ?",
        )
        .bind(user)
        .bind(before)
        .bind(fetch)
        .fetch_all(&self.pool)
        .await?;
        let groups = sqlx::query(
            "SELECT gm.group_id, g.name, gm.last_read, a.last_id, a.last_sender, a.last_preview, a.last_ts \
             FROM group_members gm JOIN chat_groups g ON g.id = gm.group_id \
             LEFT JOIN group_activity a ON a.group_id = gm.group_id \
             WHERE gm.user_id = ? AND COALESCE(a.last_id, gm.last_read) < ? \
             ORDER BY COALESCE(a.last_id, gm.last_read) DESC LIMIT ?",
        )
        .bind(user)
        .bind(before)
        .bind(fetch)
        .fetch_all(&self.pool)
        .await?;
        let mut list = Vec::with_capacity(private.len() + groups.len());
        for row in &private {
            let last = LastMessage {
                id: row.try_get(1)?,
                sender_id: row.try_get(2)?,
                preview: row.try_get(3)?,
                ts: row.try_get(4)?,
            };
            list.push(Conversation {
                kind: "private",
                peer_id: Some(row.try_get(0)?),
                group_id: None,
                name: None,
                activity: last.id,
                last_message: Some(last),
                unread: 0,
                read_upto: None,
                peer_read_upto: Some(None),
            });
        }
        for row in &groups {
            let group: String = row.try_get(0)?;
            let last_read: Uuid = row.try_get(2)?;
            let last = match row.try_get::<Option<Uuid>, _>(3)? {
                Some(id) => Some(LastMessage {
                    id,
                    sender_id: row.try_get(4)?,
                    preview: row.try_get(5)?,
                    ts: row.try_get(6)?,
                }),
                None => None,
            };
            list.push(Conversation {
                kind: "group",
                peer_id: None,
                group_id: Some(GroupId::from(group)),
                name: Some(row.try_get(1)?),
                activity: last.as_ref().map_or(last_read, |l| l.id),
                last_message: last,
                unread: 0,
                read_upto: Some(last_read),
                peer_read_upto: None,
            });
        }
        list.sort_by_key(|c| std::cmp::Reverse(c.activity));
        let more = list.len() > limit as usize;
        list.truncate(limit as usize);
        self.read_state_of(user, &mut list).await?;
        Ok((list, more))
    }

    /// Fills in the unread counts and read positions of `list`, in one request: per private
    /// conversation three index lookups on `ix_unread_from`, per group a count on
    /// `ix_group` from the member's read marker. Counts stop at `UNREAD_CAP`.
    async fn read_state_of(
        &self,
        user: UserId,
        list: &mut [Conversation],
    ) -> Result<(), StoreError> {
        if list.is_empty() {
            return Ok(());
        }
        let cap = UNREAD_CAP;
        let mut sql = String::new();
        for (i, c) in list.iter().enumerate() {
            if i > 0 {
                sql.push_str(" UNION ALL ");
            }
            match (c.peer_id, &c.group_id) {
                (Some(peer), _) => {
                    let _ = write!(
                        sql,
                        "SELECT {i}, \
                         (SELECT COUNT(*) FROM (SELECT 1 FROM messages WHERE recipient_id = {user} AND sender_id = {peer} AND is_read = 0 LIMIT {cap}) u), \
                         (SELECT MAX(id) FROM messages WHERE recipient_id = {user} AND sender_id = {peer} AND is_read = 1), \
                         (SELECT MAX(id) FROM messages WHERE recipient_id = {peer} AND sender_id = {user} AND is_read = 1)"
                    );
                }
                (None, Some(group)) => {
                    let _ = write!(
                        sql,
                        "SELECT {i}, (SELECT COUNT(*) FROM (SELECT 1 FROM messages WHERE group_id = "
                    );
                    D::text_literal(&mut sql, group);
                    sql.push_str(" AND id > ");
                    push_id(&mut sql, &c.read_upto.unwrap_or_default());
                    let _ = write!(sql, " AND sender_id <> {user} LIMIT {cap}) u), NULL, NULL");
                }
                (None, None) => {}
            }
        }
        let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        for row in rows {
            let i: i64 = row.try_get(0)?;
            let Some(c) = list.get_mut(i as usize) else {
                continue;
            };
            let unread: i64 = row.try_get(1)?;
            c.unread = unread.clamp(0, i64::from(cap)) as u32;
            if c.peer_id.is_some() {
                c.read_upto = row.try_get(2)?;
                c.peer_read_upto = Some(row.try_get(3)?);
            }
        }
        Ok(())
    }
}
