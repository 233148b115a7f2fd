//! Rows: the column lists, decoding a row into a `Message` or `Group`, and the small helpers
//! every query file shares (conversation key, clock, paging, retry on transient conflicts).

use sqlx::{ColumnIndex, Row};
use uuid::Uuid;

use super::dialect::Value;
use crate::ids::{GroupId, UserId};
use crate::message::{Message, Target};
use crate::store::{Group, Page, StoreError};

/// Columns of a message row, in the order `message_from_row` reads them.
pub(super) const MESSAGE_COLUMNS: &str =
    "id, sender_id, recipient_id, group_id, content, client_msg_id, ts, edited_at, deleted_at";
/// Columns of a group row plus its member count, in the order `group_from_row` reads them.
pub(super) const GROUP_COLUMNS: &str = "g.id, g.name, g.description, g.icon, g.owner_id, g.created_at, \
     (SELECT COUNT(*) FROM group_members c WHERE c.group_id = g.id) AS member_count";
/// Rows per multi-row statement: well below both backends' bind-parameter limits.
pub(super) const CHUNK: usize = 500;

/// A message from a row of `MESSAGE_COLUMNS`.
pub(super) fn message_from_row<R: Row>(row: &R) -> Result<Message, sqlx::Error>
where
    usize: ColumnIndex<R>,
    i64: Value<R::Database>,
    String: Value<R::Database>,
    Uuid: Value<R::Database>,
{
    let recipient: Option<i64> = row.try_get(2)?;
    let group: Option<String> = row.try_get(3)?;
    let target = match (recipient, group) {
        (Some(r), _) => Target::User(r),
        (None, Some(g)) => Target::Group(GroupId::from(g)),
        (None, None) => {
            return Err(sqlx::Error::Decode(
                "message has neither recipient nor group".into(),
            ));
        }
    };
    Ok(Message {
        id: row.try_get(0)?,
        sender_id: row.try_get(1)?,
        target,
        content: row.try_get(4)?,
        client_msg_id: row.try_get(5)?,
        ts: row.try_get(6)?,
        edited_at: row.try_get(7)?,
        deleted_at: row.try_get(8)?,
    })
}

/// Messages from rows of `MESSAGE_COLUMNS`.
pub(super) fn messages_from_rows<R: Row>(rows: &[R]) -> Result<Vec<Message>, sqlx::Error>
where
    usize: ColumnIndex<R>,
    i64: Value<R::Database>,
    String: Value<R::Database>,
    Uuid: Value<R::Database>,
{
    rows.iter().map(message_from_row).collect()
}

/// A group from a row of `GROUP_COLUMNS`.
pub(super) fn group_from_row<R: Row>(row: &R) -> Result<Group, sqlx::Error>
where
    usize: ColumnIndex<R>,
    i64: Value<R::Database>,
    String: Value<R::Database>,
{
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
        my_role: None,
    })
}

/// The two users of a private conversation, smaller first: the conversation's key.
pub(super) fn pair(a: UserId, b: UserId) -> (UserId, UserId) {
    (a.min(b), a.max(b))
}

/// Milliseconds since the Unix epoch.
pub(super) fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Messages in page order, cut to `limit`, saying whether more lay beyond.
pub(super) fn page(mut rows: Vec<Message>, limit: u32) -> Page {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    Page {
        messages: rows,
        more,
    }
}

/// Runs `op` again, up to 3 attempts in all, when the database reports a transient
/// conflict: a deadlock or serialization failure (MySQL SQLSTATE 40001) or a busy SQLite
/// database. Each attempt is a whole transaction, so a retry never applies half of one.
pub(super) async fn retrying<T, F, Fut>(mut op: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut attempt = 1;
    loop {
        match op().await {
            Err(StoreError::Database(sqlx::Error::Database(e)))
                if attempt < 3
                    && matches!(
                        e.code().as_deref(),
                        Some("40001" | "5" | "6" | "517" | "261")
                    ) =>
            {
                attempt += 1;
            }
            other => return other,
        }
    }
}
