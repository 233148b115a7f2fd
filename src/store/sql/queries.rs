// The one implementation of `Store` in SQL, compiled once per backend: `mysql.rs` and
// `sqlite.rs` each `include!` this file into a module that defines `Db` (the sqlx database)
// and `INSERT_IGNORE` (the dialect's insert-unless-duplicate). Both dialects use `?`
// placeholders, so everything else is shared text.

use async_trait::async_trait;
use sqlx::{Pool, QueryBuilder, Row};
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use uuid::Uuid;

use crate::ids::{GroupId, UserId};
use crate::message::{Message, Target};
use crate::protocol::Cursor;
use crate::store::{
    Group, InsertOutcome, NewGroup, Page, ReadOutcome, Role, Store, StoreError,
};

/// Columns of a message row, in the order `message_from_row` reads them.
const MESSAGE_COLUMNS: &str = "id, sender_id, recipient_id, group_id, content, client_msg_id, ts";
/// Columns of a group row plus its member count, in the order `group_from_row` reads them.
const GROUP_COLUMNS: &str = "g.id, g.name, g.description, g.icon, g.owner_id, g.created_at, \
     (SELECT COUNT(*) FROM group_members c WHERE c.group_id = g.id) AS member_count";
/// Rows per multi-row statement: well below both backends' bind-parameter limits.
const CHUNK: usize = 500;

/// The SQL store for this backend: a connection pool and nothing else.
#[derive(Clone)]
pub struct SqlStore {
    pool: Pool<Db>,
    /// The batching writer's own connection, kept between batches (one server thread with
    /// warm caches instead of the pool's next connection each time); dropped after an
    /// error, and taken from the pool again by the next batch.
    writer: std::sync::Arc<tokio::sync::Mutex<Option<sqlx::pool::PoolConnection<Db>>>>,
}

type Row_ = <Db as sqlx::Database>::Row;

fn message_from_row(row: &Row_) -> Result<Message, sqlx::Error> {
    let recipient: Option<i64> = row.try_get(2)?;
    let group: Option<String> = row.try_get(3)?;
    let target = match (recipient, group) {
        (Some(r), _) => Target::User(r),
        (None, Some(g)) => Target::Group(GroupId::from(g)),
        (None, None) => {
            return Err(sqlx::Error::Decode("message has neither recipient nor group".into()));
        }
    };
    Ok(Message {
        id: row.try_get(0)?,
        sender_id: row.try_get(1)?,
        target,
        content: row.try_get(4)?,
        client_msg_id: row.try_get(5)?,
        ts: row.try_get(6)?,
    })
}

fn group_from_row(row: &Row_) -> Result<Group, sqlx::Error> {
    let id: String = row.try_get(0)?;
    let count: i64 = row.try_get(6)?;
    Ok(Group {
        id: GroupId::from(id),
        name: row.try_get(1)?,
        description: row.try_get(2)?,
        icon: row.try_get(3)?,
        owner_id: row.try_get(4)?,
        created_at: row.try_get(5)?,
        member_count: count.max(0) as u64,
    })
}

/// The two users of a private conversation, smaller first: the conversation's key.
fn pair(a: UserId, b: UserId) -> (UserId, UserId) {
    (a.min(b), a.max(b))
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Messages sorted newest first, cut to `limit`, saying whether more lay beyond.
fn page(mut rows: Vec<Message>, limit: u32) -> Page {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    Page { messages: rows, more }
}

/// Runs `op` again, up to 3 attempts in all, when the database reports a transient
/// conflict: a deadlock or serialization failure (MySQL SQLSTATE 40001) or a busy SQLite
/// database. Each attempt is a whole transaction, so a retry never applies half of one.
async fn retrying<T, F, Fut>(mut op: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut attempt = 1;
    loop {
        match op().await {
            Err(StoreError::Database(sqlx::Error::Database(e)))
                if attempt < 3
                    && matches!(e.code().as_deref(), Some("40001" | "5" | "6" | "517" | "261")) =>
            {
                attempt += 1;
            }
            other => return other,
        }
    }
}

impl SqlStore {
    /// The pool, for the backend module's connect and migrate code.
    pub fn pool(&self) -> &Pool<Db> {
        &self.pool
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
        let mut rows = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(message_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        rows.sort_by_key(|m| m.id);
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        Ok(Page {
            messages: rows,
            more,
        })
    }

    /// Marks the messages a sync returned read for `user`: one transaction, one request.
    async fn mark_returned_read(&self, user: UserId, rows: &[Message]) -> Result<(), StoreError> {
        let mut sql = String::from(BEGIN_WRITE);
        sql.push(';');
        let private_ids: Vec<Uuid> = rows
            .iter()
            .filter(|m| matches!(m.target, Target::User(_)))
            .map(|m| m.id)
            .collect();
        for chunk in private_ids.chunks(CHUNK) {
            let _ = write!(sql, "UPDATE messages SET is_read = 1 WHERE recipient_id = {user} AND id IN (");
            for (i, id) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(',');
                }
                push_id(&mut sql, id);
            }
            sql.push_str(");");
        }
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
            push_id(&mut sql, &id);
            sql.push_str(" WHERE group_id = ");
            text_literal(&mut sql, group);
            let _ = write!(sql, " AND user_id = {user} AND last_read < ");
            push_id(&mut sql, &id);
            sql.push(';');
        }
        sql.push_str("COMMIT;");
        let mut conn = self.pool.acquire().await?;
        if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut *conn).await {
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
                sqlx::query(
                    "UPDATE messages SET is_read = 1 WHERE recipient_id = ? AND is_read = 0 AND id <= ? AND sender_id = ?",
                )
                .bind(user)
                .bind(id)
                .bind(peer)
                .execute(&self.pool)
                .await?;
                Ok(ReadOutcome::Applied(Target::User(peer)))
            }
            Target::Group(group) => {
                let done = sqlx::query(
                    "UPDATE group_members SET last_read = ? WHERE group_id = ? AND user_id = ? AND last_read < ?",
                )
                .bind(id)
                .bind(&**group)
                .bind(user)
                .bind(id)
                .execute(&self.pool)
                .await?
                .rows_affected();
                if done == 0 && self.role(group, user).await? == Some(Role::Outsider) {
                    return Ok(ReadOutcome::NotMember);
                }
                Ok(ReadOutcome::Applied(Target::Group(group.clone())))
            }
        }
    }

    /// The first message of each (sender, client_msg_id) among `keys`: id, ts, delivered.
    async fn first_by_client_id(
        tx: &mut <Db as sqlx::Database>::Connection,
        keys: &[(UserId, &str)],
    ) -> Result<HashMap<(UserId, String), (Uuid, i64, bool)>, sqlx::Error> {
        let mut found = HashMap::new();
        for chunk in keys.chunks(CHUNK) {
            let mut q = QueryBuilder::<Db>::new(
                "SELECT sender_id, client_msg_id, id, ts, delivered FROM messages WHERE ",
            );
            let mut sep = q.separated(" OR ");
            for (sender, client_id) in chunk {
                sep.push("(sender_id = ")
                    .push_bind_unseparated(*sender)
                    .push_unseparated(" AND client_msg_id = ")
                    .push_bind_unseparated(client_id.to_string())
                    .push_unseparated(")");
            }
            for row in q.build().fetch_all(&mut *tx).await? {
                let delivered: i64 = row.try_get(4)?;
                found.insert(
                    (row.try_get(0)?, row.try_get(1)?),
                    (row.try_get(2)?, row.try_get(3)?, delivered != 0),
                );
            }
        }
        Ok(found)
    }

    async fn add_members(
        tx: &mut <Db as sqlx::Database>::Connection,
        group: &str,
        users: &[UserId],
    ) -> Result<u64, sqlx::Error> {
        let joined = now_millis();
        // A new member has read everything that was said before they joined: every id
        // generated before this one (UUIDv7 ids of one process are strictly increasing), but
        // nothing said later in the same millisecond.
        let marker = Uuid::now_v7();
        let mut added = 0;
        for chunk in users.chunks(CHUNK) {
            let mut q = QueryBuilder::<Db>::new(INSERT_IGNORE);
            q.push(" INTO group_members (group_id, user_id, joined_at, last_read) ");
            q.push_values(chunk.iter(), |mut b, user| {
                b.push_bind(group.to_string())
                    .push_bind(*user)
                    .push_bind(joined)
                    .push_bind(marker);
            });
            added += q.build().execute(&mut *tx).await?.rows_affected();
        }
        Ok(added)
    }
}

#[async_trait]
impl Store for SqlStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn insert_messages(
        &self,
        batch: &[Message],
        undelivered: &[Uuid],
    ) -> Result<Vec<InsertOutcome>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        retrying(|| self.insert_batch(batch, undelivered)).await
    }

    async fn find_duplicate(
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

    async fn mark_undelivered(&self, ids: &[Uuid]) -> Result<(), StoreError> {
        let mut sql = String::new();
        push_undelivered(&mut sql, ids);
        if !sql.is_empty() {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&self.pool).await?;
        }
        Ok(())
    }

    async fn take_unread(&self, user: UserId, limit: u32) -> Result<Page, StoreError> {
        // Read first, outside any write transaction: most syncs (a reconnect storm's) find
        // nothing, and then take no write lock at all.
        let page = self.unread(user, limit).await?;
        if !page.messages.is_empty() {
            retrying(|| self.mark_returned_read(user, &page.messages)).await?;
        }
        Ok(page)
    }

    async fn private_history(
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
        let rows = rows
            .iter()
            .map(message_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page(rows, limit))
    }

    async fn group_history(
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
        let rows = rows
            .iter()
            .map(message_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page(rows, limit))
    }

    async fn mark_read(&self, user: UserId, id: Uuid) -> Result<ReadOutcome, StoreError> {
        retrying(|| self.mark_read_once(user, id)).await
    }

    async fn stranger_exempt(&self, from: UserId, to: UserId) -> Result<bool, StoreError> {
        let follows: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM follows WHERE (follower_id = ? AND followee_id = ?) OR (follower_id = ? AND followee_id = ?)",
        )
        .bind(from)
        .bind(to)
        .bind(to)
        .bind(from)
        .fetch_one(&self.pool)
        .await?;
        if follows == 2 {
            return Ok(true);
        }
        let (lo, hi) = pair(from, to);
        let answered = sqlx::query(
            "SELECT 1 FROM messages WHERE peer_lo = ? AND peer_hi = ? AND sender_id = ? LIMIT 1",
        )
        .bind(lo)
        .bind(hi)
        .bind(to)
        .fetch_optional(&self.pool)
        .await?;
        Ok(answered.is_some())
    }

    async fn create_group(&self, group: NewGroup) -> Result<Group, StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        let created_at = now_millis();
        let inserted = sqlx::query(INSERT_GROUP)
            .bind(&*group.id)
            .bind(&group.name)
            .bind(&group.description)
            .bind(&group.icon)
            .bind(group.owner_id)
            .bind(created_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if inserted == 0 {
            return Err(StoreError::Conflict("group"));
        }
        let mut members = vec![group.owner_id];
        members.extend(group.members.iter().copied().filter(|m| *m != group.owner_id));
        members.sort_unstable();
        members.dedup();
        Self::add_members(&mut tx, &group.id, &members).await?;
        tx.commit().await?;
        Ok(Group {
            id: group.id,
            name: group.name,
            description: group.description,
            icon: group.icon,
            owner_id: group.owner_id,
            member_count: members.len() as u64,
            created_at,
        })
    }

    async fn group(&self, id: &str) -> Result<Option<Group>, StoreError> {
        let sql = format!("SELECT {GROUP_COLUMNS} FROM chat_groups g WHERE g.id = ?");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(group_from_row).transpose()?)
    }

    async fn delete_group(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        sqlx::query("DELETE FROM group_members WHERE group_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM messages WHERE group_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let deleted = sqlx::query("DELETE FROM chat_groups WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(deleted > 0)
    }

    async fn role(&self, group: &str, user: UserId) -> Result<Option<Role>, StoreError> {
        let row = sqlx::query(
            "SELECT g.owner_id, (SELECT COUNT(*) FROM group_members m WHERE m.group_id = g.id AND m.user_id = ?) \
             FROM chat_groups g WHERE g.id = ?",
        )
        .bind(user)
        .bind(group)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let owner: i64 = row.try_get(0)?;
        let member: i64 = row.try_get(1)?;
        Ok(Some(match (member > 0, owner == user) {
            (true, true) => Role::Owner,
            (true, false) => Role::Member,
            (false, _) => Role::Outsider,
        }))
    }

    async fn add_member(&self, group: &str, user: UserId) -> Result<bool, StoreError> {
        let mut conn = self.pool.acquire().await?;
        Ok(Self::add_members(&mut conn, group, &[user]).await? > 0)
    }

    async fn remove_member(&self, group: &str, user: UserId) -> Result<bool, StoreError> {
        let n = sqlx::query("DELETE FROM group_members WHERE group_id = ? AND user_id = ?")
            .bind(group)
            .bind(user)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    async fn members(&self, group: &str) -> Result<Vec<UserId>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT user_id FROM group_members WHERE group_id = ? ORDER BY user_id")
                .bind(group)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn user_groups(&self, user: UserId) -> Result<Vec<Group>, StoreError> {
        let sql = format!(
            "SELECT {GROUP_COLUMNS} FROM group_members gm JOIN chat_groups g ON g.id = gm.group_id \
             WHERE gm.user_id = ? ORDER BY g.created_at, g.id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(user)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(group_from_row).collect::<Result<_, _>>()?)
    }

    async fn user_group_ids(&self, user: UserId) -> Result<Vec<GroupId>, StoreError> {
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT group_id FROM group_members WHERE user_id = ?")
                .bind(user)
                .fetch_all(&self.pool)
                .await?;
        Ok(ids.into_iter().map(GroupId::from).collect())
    }

    async fn follow(&self, user: UserId, other: UserId) -> Result<bool, StoreError> {
        let n = sqlx::query(INSERT_FOLLOW)
            .bind(user)
            .bind(other)
            .bind(now_millis())
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    async fn unfollow(&self, user: UserId, other: UserId) -> Result<bool, StoreError> {
        let n = sqlx::query("DELETE FROM follows WHERE follower_id = ? AND followee_id = ?")
            .bind(user)
            .bind(other)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    async fn following(&self, user: UserId) -> Result<Vec<UserId>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT followee_id FROM follows WHERE follower_id = ? ORDER BY followee_id",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn block(&self, user: UserId, other: UserId) -> Result<bool, StoreError> {
        let n = sqlx::query(INSERT_BLOCK)
            .bind(user)
            .bind(other)
            .bind(now_millis())
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    async fn unblock(&self, user: UserId, other: UserId) -> Result<bool, StoreError> {
        let n = sqlx::query("DELETE FROM blocks WHERE blocker_id = ? AND blocked_id = ?")
            .bind(user)
            .bind(other)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    async fn blocked(&self, user: UserId) -> Result<Vec<UserId>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT blocked_id FROM blocks WHERE blocker_id = ? ORDER BY blocked_id",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await?)
    }
}
