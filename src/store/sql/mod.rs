//! The SQL store: one generic implementation of `Store`, `SqlStore<D>`, over a `Dialect`
//! (MySQL/MariaDB or SQLite), which differ only in connecting, migrating, a few statements
//! and the text literal. The queries live in files named after what they touch.

mod batch;
mod conversations;
mod devices;
mod dialect;
mod edits;
mod groups;
mod literals;
mod messages;
mod mysql;
mod pool;
mod push;
mod read_state;
mod roles;
mod rows;
mod social;
mod sqlite;

pub use dialect::{Dialect, Value};

use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::{ColumnIndex, Encode, Executor, IntoArguments, Pool, Type};
use std::sync::Arc;
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::ids::{GroupId, UserId};
use crate::message::Message;
use crate::protocol::Cursor;
use crate::settings::StorageSettings;
use crate::store::{
    Conversation, Edit, EditOutcome, Group, GroupPatch, GroupReads, InsertOutcome, Joined,
    NewGroup, Page, ReadOutcome, Role, Store, StoreError, Transfer,
};
/// Notes a failed query: when it says a connection is gone, the pools ping the connections
/// that were idle before it before using them (pool.rs).
pub(super) use pool::note as note_connection_error;
use rows::retrying;

/// The store on MySQL or MariaDB; migrations in migrations/mysql.
pub type MySqlStore = SqlStore<sqlx::MySql>;
/// The store on SQLite, the embedded default; migrations in migrations/sqlite.
pub type SqliteStore = SqlStore<sqlx::Sqlite>;

/// The SQL store for dialect `D`: a connection pool and the batching writer's connection.
pub struct SqlStore<D: Dialect> {
    pool: Pool<D>,
    /// The batching writer's own connection, kept between batches (one server thread with
    /// warm caches instead of the pool's next connection each time); dropped after an
    /// error, and taken from the pool again by the next batch.
    writer: Arc<Mutex<Option<PoolConnection<D>>>>,
    /// Whether and which push outbox rows the batch writes (`PushOutbox::enable`).
    push: Arc<push::Mode>,
}

impl<D: Dialect> Clone for SqlStore<D> {
    fn clone(&self) -> Self {
        SqlStore {
            pool: self.pool.clone(),
            writer: self.writer.clone(),
            push: self.push.clone(),
        }
    }
}

impl<D: Dialect> SqlStore<D> {
    /// Connects to `settings.url`, migrating first if `settings.migrate`.
    pub async fn connect(settings: &StorageSettings) -> Result<Self, StoreError> {
        D::connect(settings).await
    }

    /// A store over `pool`, its writer connection not taken yet.
    fn new(pool: Pool<D>) -> Self {
        SqlStore {
            pool,
            writer: Default::default(),
            push: Arc::default(),
        }
    }

    /// The pool, for the backend module's connect and migrate code.
    pub fn pool(&self) -> &Pool<D> {
        &self.pool
    }
}

// Each method runs the inherent method of the same name in the file of its concept.
#[async_trait]
impl<D: Dialect> Store for SqlStore<D>
where
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    D::Arguments: IntoArguments<D>,
    usize: ColumnIndex<D::Row>,
    i64: Value<D>,
    String: Value<D>,
    Uuid: Value<D>,
    for<'a> &'a str: Encode<'a, D> + Type<D>,
{
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
        SqlStore::find_duplicate(self, sender, client_msg_id).await
    }

    async fn mark_undelivered(&self, ids: &[Uuid]) -> Result<(), StoreError> {
        SqlStore::mark_undelivered(self, ids).await
    }

    async fn unread(
        &self,
        user: UserId,
        after: Option<Uuid>,
        sent: &[Uuid],
        limit: u32,
    ) -> Result<Page, StoreError> {
        SqlStore::unread(self, user, after, sent, limit).await
    }

    async fn group_reads(
        &self,
        group: &str,
        id: Uuid,
        after: UserId,
        limit: u32,
    ) -> Result<Option<GroupReads>, StoreError> {
        SqlStore::group_reads(self, group, id, after, limit).await
    }

    async fn conversations(
        &self,
        user: UserId,
        before: Uuid,
        limit: u32,
    ) -> Result<(Vec<Conversation>, bool), StoreError> {
        SqlStore::conversations(self, user, before, limit).await
    }

    async fn memberships(&self, users: &[UserId]) -> Result<Vec<(UserId, GroupId)>, StoreError> {
        SqlStore::memberships(self, users).await
    }

    async fn device_position(
        &self,
        user: UserId,
        device: &str,
    ) -> Result<Option<Uuid>, StoreError> {
        SqlStore::device_position(self, user, device).await
    }

    async fn confirm_delivery(
        &self,
        user: UserId,
        device: &str,
        id: Uuid,
        keep: usize,
    ) -> Result<(), StoreError> {
        SqlStore::confirm_delivery(self, user, device, id, keep).await
    }

    async fn private_history(
        &self,
        user: UserId,
        peer: UserId,
        before: Cursor,
        limit: u32,
    ) -> Result<Page, StoreError> {
        SqlStore::private_history(self, user, peer, before, limit).await
    }

    async fn group_history(
        &self,
        group: &str,
        before: Cursor,
        limit: u32,
    ) -> Result<Page, StoreError> {
        SqlStore::group_history(self, group, before, limit).await
    }

    async fn mark_read(&self, user: UserId, id: Uuid) -> Result<ReadOutcome, StoreError> {
        SqlStore::mark_read(self, user, id).await
    }

    async fn stranger_exempt(&self, from: UserId, to: UserId) -> Result<bool, StoreError> {
        SqlStore::stranger_exempt(self, from, to).await
    }

    async fn create_group(&self, group: NewGroup) -> Result<Group, StoreError> {
        SqlStore::create_group(self, group).await
    }

    async fn group(&self, id: &str) -> Result<Option<Group>, StoreError> {
        SqlStore::group(self, id).await
    }

    async fn delete_group(&self, id: &str) -> Result<bool, StoreError> {
        SqlStore::delete_group(self, id).await
    }

    async fn role(&self, group: &str, user: UserId) -> Result<Option<Role>, StoreError> {
        SqlStore::role(self, group, user).await
    }

    async fn add_member(&self, group: &str, user: UserId) -> Result<bool, StoreError> {
        SqlStore::add_member(self, group, user).await
    }

    async fn remove_member(&self, group: &str, user: UserId) -> Result<bool, StoreError> {
        SqlStore::remove_member(self, group, user).await
    }

    async fn members(&self, group: &str) -> Result<Vec<UserId>, StoreError> {
        SqlStore::members(self, group).await
    }

    async fn add_member_within(
        &self,
        group: &str,
        user: UserId,
        max: u64,
    ) -> Result<Joined, StoreError> {
        SqlStore::add_member_within(self, group, user, max).await
    }

    async fn member_roles(&self, group: &str) -> Result<Vec<(UserId, Role)>, StoreError> {
        SqlStore::member_roles(self, group).await
    }

    async fn update_group(
        &self,
        id: &str,
        patch: &GroupPatch,
    ) -> Result<Option<Group>, StoreError> {
        SqlStore::update_group(self, id, patch).await
    }

    async fn set_admin(&self, group: &str, user: UserId, admin: bool) -> Result<bool, StoreError> {
        SqlStore::set_admin(self, group, user, admin).await
    }

    async fn transfer_owner(
        &self,
        group: &str,
        from: UserId,
        to: UserId,
    ) -> Result<Transfer, StoreError> {
        SqlStore::transfer_owner(self, group, from, to).await
    }

    async fn private_read_upto(
        &self,
        user: UserId,
        peer: UserId,
    ) -> Result<(Option<Uuid>, Option<Uuid>), StoreError> {
        SqlStore::private_read_upto(self, user, peer).await
    }

    async fn group_read_upto(&self, group: &str, user: UserId) -> Result<Option<Uuid>, StoreError> {
        SqlStore::group_read_upto(self, group, user).await
    }

    async fn followers(&self, user: UserId, limit: u32) -> Result<Vec<UserId>, StoreError> {
        SqlStore::followers(self, user, limit).await
    }

    async fn user_groups(&self, user: UserId) -> Result<Vec<Group>, StoreError> {
        SqlStore::user_groups(self, user).await
    }

    async fn user_group_ids(&self, user: UserId) -> Result<Vec<GroupId>, StoreError> {
        SqlStore::user_group_ids(self, user).await
    }

    async fn follow(&self, user: UserId, other: UserId) -> Result<bool, StoreError> {
        SqlStore::follow(self, user, other).await
    }

    async fn unfollow(&self, user: UserId, other: UserId) -> Result<bool, StoreError> {
        SqlStore::unfollow(self, user, other).await
    }

    async fn following(&self, user: UserId) -> Result<Vec<UserId>, StoreError> {
        SqlStore::following(self, user).await
    }

    async fn block(&self, user: UserId, other: UserId) -> Result<bool, StoreError> {
        SqlStore::block(self, user, other).await
    }

    async fn unblock(&self, user: UserId, other: UserId) -> Result<bool, StoreError> {
        SqlStore::unblock(self, user, other).await
    }

    async fn blocked(&self, user: UserId) -> Result<Vec<UserId>, StoreError> {
        SqlStore::blocked(self, user).await
    }

    async fn blocks(&self, blocker: UserId, blocked: UserId) -> Result<bool, StoreError> {
        SqlStore::blocks(self, blocker, blocked).await
    }

    async fn edit_message(&self, edit: &Edit) -> Result<EditOutcome, StoreError> {
        retrying(|| self.edit_once(edit)).await
    }

    fn push(&self) -> Arc<dyn crate::store::PushOutbox> {
        Arc::new(self.clone())
    }
}
