//! Follows and blocks between users, and the stranger-limit exemption they grant.

use sqlx::{ColumnIndex, Encode, Executor, IntoArguments, Type};
use uuid::Uuid;

use super::dialect::Value;
use super::rows::{now_millis, pair};
use super::{Dialect, SqlStore};
use crate::ids::UserId;
use crate::store::StoreError;

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
    /// Whether `from` may pass the stranger limit towards `to`: they follow each other, or
    /// `to` has ever sent `from` a private message.
    pub(super) async fn stranger_exempt(
        &self,
        from: UserId,
        to: UserId,
    ) -> Result<bool, StoreError> {
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

    /// See `Store::followers`: by the `ix_followee` index, at most `limit` + 1.
    pub(super) async fn followers(
        &self,
        user: UserId,
        limit: u32,
    ) -> Result<Vec<UserId>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT f.follower_id FROM follows f WHERE f.followee_id = ? AND NOT EXISTS \
             (SELECT 1 FROM blocks b WHERE b.blocker_id = ? AND b.blocked_id = f.follower_id) \
             ORDER BY f.follower_id LIMIT ?",
        )
        .bind(user)
        .bind(user)
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.pool)
        .await?)
    }

    /// `user` follows `other`; false if already.
    pub(super) async fn follow(&self, user: UserId, other: UserId) -> Result<bool, StoreError> {
        self.insert_pair(D::INSERT_FOLLOW, user, other).await
    }

    /// `user` stops following `other`; false if not following.
    pub(super) async fn unfollow(&self, user: UserId, other: UserId) -> Result<bool, StoreError> {
        self.delete_pair(
            "DELETE FROM follows WHERE follower_id = ? AND followee_id = ?",
            user,
            other,
        )
        .await
    }

    /// Whom `user` follows, ascending.
    pub(super) async fn following(&self, user: UserId) -> Result<Vec<UserId>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT followee_id FROM follows WHERE follower_id = ? ORDER BY followee_id",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await?)
    }

    /// `user` blocks `other`; false if already.
    pub(super) async fn block(&self, user: UserId, other: UserId) -> Result<bool, StoreError> {
        self.insert_pair(D::INSERT_BLOCK, user, other).await
    }

    /// `user` unblocks `other`; false if not blocked.
    pub(super) async fn unblock(&self, user: UserId, other: UserId) -> Result<bool, StoreError> {
        self.delete_pair(
            "DELETE FROM blocks WHERE blocker_id = ? AND blocked_id = ?",
            user,
            other,
        )
        .await
    }

    /// Whom `user` blocks, ascending.
    pub(super) async fn blocked(&self, user: UserId) -> Result<Vec<UserId>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT blocked_id FROM blocks WHERE blocker_id = ? ORDER BY blocked_id",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Whether `blocker` blocks `blocked`.
    pub(super) async fn blocks(
        &self,
        blocker: UserId,
        blocked: UserId,
    ) -> Result<bool, StoreError> {
        let found = sqlx::query("SELECT 1 FROM blocks WHERE blocker_id = ? AND blocked_id = ?")
            .bind(blocker)
            .bind(blocked)
            .fetch_optional(&self.pool)
            .await?;
        Ok(found.is_some())
    }

    /// Runs an insert-unless-present of (`user`, `other`, now); false if it was present.
    async fn insert_pair(
        &self,
        sql: &'static str,
        user: UserId,
        other: UserId,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(sql)
            .bind(user)
            .bind(other)
            .bind(now_millis())
            .execute(&self.pool)
            .await?;
        Ok(D::rows_affected(&result) > 0)
    }

    /// Runs a delete of the pair (`user`, `other`); false if there was none.
    async fn delete_pair(
        &self,
        sql: &'static str,
        user: UserId,
        other: UserId,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(sql)
            .bind(user)
            .bind(other)
            .execute(&self.pool)
            .await?;
        Ok(D::rows_affected(&result) > 0)
    }
}
