//! Group administration: member roles, ownership transfer, editing a group, and adding a
//! member within the group size limit.

use sqlx::{ColumnIndex, Encode, Executor, IntoArguments, Row, Type};
use uuid::Uuid;

use super::dialect::Value;
use super::{Dialect, SqlStore};
use crate::ids::UserId;
use crate::store::{Group, GroupPatch, Joined, Role, StoreError, Transfer};

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
    /// See `Store::add_member_within`: the group's row is locked first (MySQL; SQLite's
    /// write transaction is exclusive), then the members are counted and the new one
    /// inserted, so two concurrent adds are counted one after the other.
    pub(super) async fn add_member_within(
        &self,
        group: &str,
        user: UserId,
        max: u64,
    ) -> Result<Joined, StoreError> {
        let mut tx = self.pool.begin_with(D::BEGIN_WRITE).await?;
        let lock = format!("SELECT id FROM chat_groups WHERE id = ?{}", D::FOR_UPDATE);
        let found = sqlx::query(sqlx::AssertSqlSafe(lock))
            .bind(group)
            .fetch_optional(&mut *tx)
            .await?;
        if found.is_none() {
            return Ok(Joined::NoGroup);
        }
        let row = sqlx::query(
            "SELECT COUNT(*), (SELECT COUNT(*) FROM group_members WHERE group_id = ? AND user_id = ?) \
             FROM group_members WHERE group_id = ?",
        )
        .bind(group)
        .bind(user)
        .bind(group)
        .fetch_one(&mut *tx)
        .await?;
        let (count, already): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        if already > 0 {
            return Ok(Joined::Already);
        }
        if count.max(0) as u64 >= max {
            return Ok(Joined::Full);
        }
        Self::add_members(&mut tx, group, &[user]).await?;
        tx.commit().await?;
        Ok(Joined::Added)
    }

    /// Members with their roles, ascending.
    pub(super) async fn member_roles(
        &self,
        group: &str,
    ) -> Result<Vec<(UserId, Role)>, StoreError> {
        let rows: Vec<(i64, String, i64)> = sqlx::query_as(
            "SELECT m.user_id, m.role, g.owner_id FROM group_members m \
             JOIN chat_groups g ON g.id = m.group_id WHERE m.group_id = ? ORDER BY m.user_id",
        )
        .bind(group)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(user, role, owner)| {
                let role = if user == owner {
                    Role::Owner
                } else {
                    Role::from_stored(&role)
                };
                (user, role)
            })
            .collect())
    }

    /// Changes the fields `patch` names; the group as it is now, `None` if there is none.
    pub(super) async fn update_group(
        &self,
        id: &str,
        patch: &GroupPatch,
    ) -> Result<Option<Group>, StoreError> {
        let fields = [
            ("name", &patch.name),
            ("description", &patch.description),
            ("icon", &patch.icon),
        ];
        let set: Vec<String> = fields
            .iter()
            .filter(|(_, v)| v.is_some())
            .map(|(column, _)| format!("{column} = ?"))
            .collect();
        if !set.is_empty() {
            // Column names come from the list above, never from input.
            let sql = format!("UPDATE chat_groups SET {} WHERE id = ?", set.join(", "));
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for value in fields.iter().filter_map(|(_, v)| v.as_deref()) {
                query = query.bind(value);
            }
            query.bind(id).execute(&self.pool).await?;
        }
        self.group(id).await
    }

    /// See `Store::set_admin`.
    pub(super) async fn set_admin(
        &self,
        group: &str,
        user: UserId,
        admin: bool,
    ) -> Result<bool, StoreError> {
        let role = if admin { "admin" } else { "member" };
        // A repeat of the same role changes no row on MySQL: check membership apart.
        sqlx::query("UPDATE group_members SET role = ? WHERE group_id = ? AND user_id = ?")
            .bind(role)
            .bind(group)
            .bind(user)
            .execute(&self.pool)
            .await?;
        let member: Option<i64> = sqlx::query_scalar(
            "SELECT user_id FROM group_members WHERE group_id = ? AND user_id = ?",
        )
        .bind(group)
        .bind(user)
        .fetch_optional(&self.pool)
        .await?;
        Ok(member.is_some())
    }

    /// See `Store::transfer_owner`: in one transaction, under a lock of the group's row.
    pub(super) async fn transfer_owner(
        &self,
        group: &str,
        from: UserId,
        to: UserId,
    ) -> Result<Transfer, StoreError> {
        let mut tx = self.pool.begin_with(D::BEGIN_WRITE).await?;
        let lock = format!(
            "SELECT owner_id FROM chat_groups WHERE id = ?{}",
            D::FOR_UPDATE
        );
        let owner: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(lock))
            .bind(group)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(owner) = owner else {
            return Ok(Transfer::NoGroup);
        };
        if owner != from {
            return Ok(Transfer::NotOwner);
        }
        let member: Option<i64> = sqlx::query_scalar(
            "SELECT user_id FROM group_members WHERE group_id = ? AND user_id = ?",
        )
        .bind(group)
        .bind(to)
        .fetch_optional(&mut *tx)
        .await?;
        if member.is_none() {
            return Ok(Transfer::NotMember);
        }
        sqlx::query("UPDATE chat_groups SET owner_id = ? WHERE id = ?")
            .bind(to)
            .bind(group)
            .execute(&mut *tx)
            .await?;
        // The old owner becomes an admin; the new owner's stored role no longer counts
        // (ownership is `owner_id`) but is kept `admin` so a later transfer away reads right.
        sqlx::query(
            "UPDATE group_members SET role = 'admin' WHERE group_id = ? AND user_id IN (?, ?)",
        )
        .bind(group)
        .bind(owner)
        .bind(to)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Transfer::Done)
    }
}
