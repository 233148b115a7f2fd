//! Device positions: up to which message each device of a user confirmed receiving what was
//! owed to it (per-device catch-up). One row per device; a user keeps at most a bounded
//! number, the least recently confirmed forgotten first.

use sqlx::{ColumnIndex, Encode, Executor, IntoArguments, Row, Type};
use uuid::Uuid;

use super::dialect::Value;
use super::rows::{now_millis, retrying};
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
    /// The id up to which `device` of `user` confirmed receiving, if it ever confirmed.
    pub(super) async fn device_position(
        &self,
        user: UserId,
        device: &str,
    ) -> Result<Option<Uuid>, StoreError> {
        let row = sqlx::query(
            "SELECT confirmed FROM device_positions WHERE user_id = ? AND device_id = ?",
        )
        .bind(user)
        .bind(device)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(row) => Some(row.try_get::<Uuid, _>(0)?),
            None => None,
        })
    }

    /// Moves the position of `device` forward to `id` (never back), then forgets the user's
    /// least recently confirmed devices beyond `keep`.
    pub(super) async fn confirm_delivery(
        &self,
        user: UserId,
        device: &str,
        id: Uuid,
        keep: usize,
    ) -> Result<(), StoreError> {
        let now = now_millis();
        let moved = retrying(|| async {
            let result = sqlx::query(
                "UPDATE device_positions SET confirmed = ?, updated_at = ? \
                 WHERE user_id = ? AND device_id = ? AND confirmed < ?",
            )
            .bind(id)
            .bind(now)
            .bind(user)
            .bind(device)
            .bind(id)
            .execute(&self.pool)
            .await?;
            Ok(D::rows_affected(&result))
        })
        .await?;
        if moved > 0 {
            return Ok(());
        }
        // No row, or one at or past `id` already (then this insert changes nothing). Two
        // devices' first confirmations racing can leave the smaller: the device then gets a
        // few messages again, never fewer.
        let sql = format!(
            "{} INTO device_positions (user_id, device_id, confirmed, updated_at) VALUES (?, ?, ?, ?)",
            D::INSERT_IGNORE
        );
        let result = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(user)
            .bind(device)
            .bind(id)
            .bind(now)
            .execute(&self.pool)
            .await?;
        if D::rows_affected(&result) > 0 {
            self.forget_devices_beyond(user, keep).await?;
        }
        Ok(())
    }

    /// Deletes the positions of `user`'s least recently confirmed devices beyond `keep`.
    async fn forget_devices_beyond(&self, user: UserId, keep: usize) -> Result<(), StoreError> {
        let rows = sqlx::query(
            "SELECT device_id FROM device_positions WHERE user_id = ? \
             ORDER BY updated_at DESC, device_id LIMIT 1000",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await?;
        for row in rows.iter().skip(keep) {
            let device: String = row.try_get(0)?;
            sqlx::query("DELETE FROM device_positions WHERE user_id = ? AND device_id = ?")
                .bind(user)
                .bind(device)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }
}
