//! Edits and deletes of stored messages by their sender: the content replaced (with
//! `edited_at`) or removed (a tombstone with `deleted_at`), and the `edits` record that makes
//! a repeated `client_msg_id` answer the first result instead of applying again.

use sqlx::{ColumnIndex, Encode, Executor, IntoArguments, Row, Type};
use uuid::Uuid;

use super::dialect::Value;
use super::{Dialect, SqlStore};
use crate::ids::{GroupId, UserId};
use crate::message::Target;
use crate::store::{Edit, EditOutcome, StoreError};

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
    /// One attempt of an edit or delete, in one transaction. The `edits` record goes first:
    /// of two requests with the same `client_msg_id`, the second waits for the first and
    /// then finds its record. A refused request rolls back, its record with it, so the
    /// `client_msg_id` stays free for a corrected retry.
    pub(super) async fn edit_once(&self, edit: &Edit) -> Result<EditOutcome, StoreError> {
        let deleting = edit.content.is_none();
        let mut tx = self.pool.begin_with(D::BEGIN_WRITE).await?;
        if let Some(cid) = &edit.client_msg_id {
            let sql = format!(
                "{} INTO edits (sender_id, client_msg_id, message_id, deleted, at) VALUES (?, ?, ?, ?, ?)",
                D::INSERT_IGNORE
            );
            let inserted = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(edit.sender)
                .bind(cid.as_str())
                .bind(edit.id)
                .bind(i64::from(deleting))
                .bind(edit.now)
                .execute(&mut *tx)
                .await?;
            if D::rows_affected(&inserted) == 0 {
                tx.rollback().await?;
                return self.repeated(edit.sender, cid).await;
            }
        }
        let Some(row) = sqlx::query(
            "SELECT sender_id, recipient_id, group_id, ts, deleted_at FROM messages WHERE id = ?",
        )
        .bind(edit.id)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(EditOutcome::NotFound);
        };
        let sender: i64 = row.try_get(0)?;
        let target = target(row.try_get(1)?, row.try_get(2)?)?;
        let ts: i64 = row.try_get(3)?;
        let deleted_at: Option<i64> = row.try_get(4)?;
        if sender != edit.sender {
            return Ok(EditOutcome::NotSender);
        }
        if let Some(at) = deleted_at {
            if !deleting {
                return Ok(EditOutcome::Deleted);
            }
            // Deleting twice: the first delete's answer (and this client_msg_id now names it).
            tx.commit().await?;
            return Ok(applied(edit.id, target, at, true, true));
        }
        if ts < edit.not_before {
            return Ok(EditOutcome::TooLate);
        }
        // `deleted_at IS NULL`: a delete committed since the read above wins over an edit.
        let updated = match &edit.content {
            Some(content) => sqlx::query(
                "UPDATE messages SET content = ?, edited_at = ? WHERE id = ? AND deleted_at IS NULL",
            )
            .bind(content.as_str())
            .bind(edit.now)
            .bind(edit.id),
            None => sqlx::query(
                "UPDATE messages SET content = '', deleted_at = ? WHERE id = ? AND deleted_at IS NULL",
            )
            .bind(edit.now)
            .bind(edit.id),
        }
        .execute(&mut *tx)
        .await?;
        if D::rows_affected(&updated) == 0 {
            return Ok(EditOutcome::Deleted);
        }
        // The conversation list shows the new text (or none) where this is the newest.
        let preview: String = edit
            .content
            .as_deref()
            .map(|c| super::batch::preview(c).to_string())
            .unwrap_or_default();
        let list = match &target {
            // Both users' rows, by their keys.
            Target::User(recipient) => sqlx::query(
                "UPDATE conversations SET last_preview = ? WHERE last_id = ? \
                 AND ((user_id = ? AND peer_id = ?) OR (user_id = ? AND peer_id = ?))",
            )
            .bind(preview.as_str())
            .bind(edit.id)
            .bind(sender)
            .bind(*recipient)
            .bind(*recipient)
            .bind(sender),
            Target::Group(group) => sqlx::query(
                "UPDATE group_activity SET last_preview = ? WHERE group_id = ? AND last_id = ?",
            )
            .bind(preview.as_str())
            .bind(group.as_ref())
            .bind(edit.id),
        };
        list.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(applied(edit.id, target, edit.now, deleting, false))
    }

    /// The first result of `sender`'s request `client_msg_id`.
    async fn repeated(&self, sender: UserId, cid: &str) -> Result<EditOutcome, StoreError> {
        let row = sqlx::query(
            "SELECT e.message_id, e.deleted, e.at, m.recipient_id, m.group_id FROM edits e \
             JOIN messages m ON m.id = e.message_id WHERE e.sender_id = ? AND e.client_msg_id = ?",
        )
        .bind(sender)
        .bind(cid)
        .fetch_optional(&self.pool)
        .await?;
        // The message went with its group since.
        let Some(row) = row else {
            return Ok(EditOutcome::NotFound);
        };
        let deleted: i64 = row.try_get(1)?;
        let target = target(row.try_get(3)?, row.try_get(4)?)?;
        Ok(applied(
            row.try_get(0)?,
            target,
            row.try_get(2)?,
            deleted != 0,
            true,
        ))
    }
}

fn applied(id: Uuid, target: Target, at: i64, deleted: bool, repeat: bool) -> EditOutcome {
    EditOutcome::Applied {
        id,
        target,
        at,
        deleted,
        repeat,
    }
}

/// A message's conversation from its `recipient_id` and `group_id` columns.
fn target(recipient: Option<i64>, group: Option<String>) -> Result<Target, sqlx::Error> {
    match (recipient, group) {
        (Some(r), _) => Ok(Target::User(r)),
        (None, Some(g)) => Ok(Target::Group(GroupId::from(g))),
        (None, None) => Err(sqlx::Error::Decode(
            "message has neither recipient nor group".into(),
        )),
    }
}
