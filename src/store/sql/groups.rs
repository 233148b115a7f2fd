//! Groups and their members: creating and deleting groups, roles, joining and leaving.

use sqlx::{ColumnIndex, Encode, Executor, IntoArguments, QueryBuilder, Row, Type};
use uuid::Uuid;

use super::dialect::Value;
use super::rows::{CHUNK, GROUP_COLUMNS, group_from_row, now_millis};
use super::{Dialect, SqlStore};
use crate::ids::{GroupId, UserId};
use crate::store::{Group, NewGroup, Role, StoreError};

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
    /// Creates a group with its owner and initial members; `Conflict` if the id is taken.
    pub(super) async fn create_group(&self, group: NewGroup) -> Result<Group, StoreError> {
        let mut tx = self.pool.begin_with(D::BEGIN_WRITE).await?;
        let created_at = now_millis();
        let inserted = sqlx::query(D::INSERT_GROUP)
            .bind(&*group.id)
            .bind(&group.name)
            .bind(&group.description)
            .bind(&group.icon)
            .bind(group.owner_id)
            .bind(created_at)
            .execute(&mut *tx)
            .await?;
        if D::rows_affected(&inserted) == 0 {
            return Err(StoreError::Conflict("group"));
        }
        let members = initial_members(&group);
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
            my_role: None,
        })
    }

    /// A group with its member count.
    pub(super) async fn group(&self, id: &str) -> Result<Option<Group>, StoreError> {
        let sql = format!("SELECT {GROUP_COLUMNS} FROM chat_groups g WHERE g.id = ?");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(group_from_row).transpose()?)
    }

    /// Deletes a group, its members and its messages.
    pub(super) async fn delete_group(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin_with(D::BEGIN_WRITE).await?;
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
            .await?;
        tx.commit().await?;
        Ok(D::rows_affected(&deleted) > 0)
    }

    /// The role of `user` in `group`; `None` when the group does not exist.
    pub(super) async fn role(&self, group: &str, user: UserId) -> Result<Option<Role>, StoreError> {
        let row = sqlx::query(
            "SELECT g.owner_id, (SELECT m.role FROM group_members m WHERE m.group_id = g.id AND m.user_id = ?) \
             FROM chat_groups g WHERE g.id = ?",
        )
        .bind(user)
        .bind(group)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let owner: i64 = row.try_get(0)?;
        let stored: Option<String> = row.try_get(1)?;
        Ok(Some(match (stored, owner == user) {
            (Some(_), true) => Role::Owner,
            (Some(role), false) => Role::from_stored(&role),
            (None, _) => Role::Outsider,
        }))
    }

    /// Adds a member; false if already one.
    pub(super) async fn add_member(&self, group: &str, user: UserId) -> Result<bool, StoreError> {
        let mut conn = self.pool.acquire().await?;
        Ok(Self::add_members(&mut conn, group, &[user]).await? > 0)
    }

    /// Removes a member; false if not one.
    pub(super) async fn remove_member(
        &self,
        group: &str,
        user: UserId,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM group_members WHERE group_id = ? AND user_id = ?")
            .bind(group)
            .bind(user)
            .execute(&self.pool)
            .await?;
        Ok(D::rows_affected(&result) > 0)
    }

    /// Members of a group, ascending.
    pub(super) async fn members(&self, group: &str) -> Result<Vec<UserId>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT user_id FROM group_members WHERE group_id = ? ORDER BY user_id",
        )
        .bind(group)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Groups `user` belongs to.
    pub(super) async fn user_groups(&self, user: UserId) -> Result<Vec<Group>, StoreError> {
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

    /// Ids of the groups `user` belongs to.
    pub(super) async fn user_group_ids(&self, user: UserId) -> Result<Vec<GroupId>, StoreError> {
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT group_id FROM group_members WHERE user_id = ?")
                .bind(user)
                .fetch_all(&self.pool)
                .await?;
        Ok(ids.into_iter().map(GroupId::from).collect())
    }

    /// Every (user, group) membership of `users`, a few hundred users per request.
    pub(super) async fn memberships(
        &self,
        users: &[UserId],
    ) -> Result<Vec<(UserId, GroupId)>, StoreError> {
        let mut found = Vec::new();
        for chunk in users.chunks(CHUNK) {
            let list = chunk
                .iter()
                .map(|u| u.to_string())
                .collect::<Vec<_>>()
                .join(",");
            // Integers written by Rust: nothing in the list comes from text.
            let sql =
                format!("SELECT user_id, group_id FROM group_members WHERE user_id IN ({list})");
            let rows: Vec<(i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .fetch_all(&self.pool)
                .await?;
            found.extend(rows.into_iter().map(|(u, g)| (u, GroupId::from(g))));
        }
        Ok(found)
    }

    /// Adds `users` to `group` unless they are members already; how many were added.
    pub(super) async fn add_members(
        conn: &mut D::Connection,
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
            let mut q = QueryBuilder::<D>::new(D::INSERT_IGNORE);
            q.push(" INTO group_members (group_id, user_id, joined_at, last_read) ");
            q.push_values(chunk.iter(), |mut b, user| {
                b.push_bind(group.to_string())
                    .push_bind(*user)
                    .push_bind(joined)
                    .push_bind(marker);
            });
            added += D::rows_affected(&q.build().execute(&mut *conn).await?);
        }
        Ok(added)
    }
}

/// The owner and the initial members of a new group, each once, ascending.
fn initial_members(group: &NewGroup) -> Vec<UserId> {
    let mut members = vec![group.owner_id];
    members.extend(
        group
            .members
            .iter()
            .copied()
            .filter(|m| *m != group.owner_id),
    );
    members.sort_unstable();
    members.dedup();
    members
}
