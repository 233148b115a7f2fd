//! The `Store` seam: messages, read state, groups, members, follows and blocks.
//!
//! Contract, for every implementation (`MySqlStore`, `SqliteStore`; one conformance suite in
//! tests/ runs against both):
//! - `insert_messages` is atomic per batch: every message of the batch is either stored or
//!   refused with a reason, all in one transaction; an `Err` means nothing was stored.
//! - A message whose (`sender_id`, `client_msg_id`) exists already is not stored again: its
//!   outcome names the first message, even if the sender is now blocked or not a member.
//! - Ids are UUIDv7 and order messages by time; history pages and unread syncs order by id.
//! - Read state: a private message is unread until its recipient reads it (type 5); a group
//!   member has read everything up to a per-member marker, set to "now" on joining. Reading
//!   unread messages changes nothing.
//! - Device positions only move forward; at most `keep` devices per user are remembered.

pub mod push;
mod sql;
pub mod writer;

pub use push::PushOutbox;
pub use sql::{MySqlStore, SqlStore, SqliteStore};
pub use writer::MessageWriter;

use async_trait::async_trait;
use serde::Serialize;
use std::sync::Arc;
use uuid::Uuid;

use crate::ids::{GroupId, UserId};
use crate::message::Message;
use crate::protocol::Cursor;

/// A storage failure: the operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0} already exists")]
    Conflict(&'static str),
    #[error("storage writer stopped")]
    Stopped,
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        sql::note_connection_error(&e);
        match &e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e),
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict("row"),
            _ => StoreError::Database(e),
        }
    }
}

/// What became of one message of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsertOutcome {
    /// Stored now.
    Stored,
    /// Its `client_msg_id` was used before by the same sender: the first message's id and
    /// time, and whether it reached an online device then.
    Duplicate { id: Uuid, ts: i64, delivered: bool },
    /// The recipient blocks the sender; nothing stored.
    Blocked,
    /// The sender is not a member of the group (or it does not exist); nothing stored.
    NotMember,
}

/// A group as the REST API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"id": "team-1", "name": "Team", "description": "our team", "icon": "", "owner_id": 7, "member_count": 3, "created_at": 1795634562264_i64}))]
pub struct Group {
    #[schema(value_type = String)]
    pub id: GroupId,
    pub name: String,
    pub description: String,
    pub icon: String,
    #[schema(value_type = i64)]
    pub owner_id: UserId,
    pub member_count: u64,
    /// When it was created, Unix milliseconds.
    pub created_at: i64,
    /// The asking user's role (`owner`, `admin`, `member`), where the answer is for one user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub my_role: Option<Role>,
}

/// A change of a group's name, description or icon; `None` keeps the field.
#[derive(Debug, Clone, Default)]
pub struct GroupPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub icon: Option<String>,
}

/// What adding a member did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joined {
    Added,
    /// A member already.
    Already,
    /// The group holds `max` members already: nobody was added.
    Full,
    /// No such group.
    NoGroup,
}

/// What an ownership transfer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    /// The new owner owns the group; the old one is an admin.
    Done,
    /// The new owner is not a member: nothing changed.
    NotMember,
    /// The asking user does not own the group (any more): nothing changed.
    NotOwner,
    /// No such group.
    NoGroup,
}

/// A group to create.
#[derive(Debug, Clone)]
pub struct NewGroup {
    pub id: GroupId,
    pub name: String,
    pub description: String,
    pub icon: String,
    pub owner_id: UserId,
    /// Initial members besides the owner.
    pub members: Vec<UserId>,
}

/// One page of messages and whether more lie beyond it.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub messages: Vec<Message>,
    pub more: bool,
}

/// One entry of a user's conversation list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Conversation {
    /// `private` or `group`.
    #[schema(value_type = String, pattern = "^(private|group)$")]
    pub kind: &'static str,
    /// The other user of a private conversation.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<i64>)]
    pub peer_id: Option<UserId>,
    /// The group, with its name.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub group_id: Option<GroupId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its newest message (none for a group without messages yet).
    #[schema(required = true)]
    pub last_message: Option<LastMessage>,
    /// Messages from others the user has not read (counted up to `UNREAD_CAP`).
    pub unread: u32,
    /// The newest message of the conversation the user has read (`null`: none).
    #[schema(required = true)]
    pub read_upto: Option<Uuid>,
    /// Private only: the newest of the user's messages the peer has read.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Uuid>)]
    pub peer_read_upto: Option<Option<Uuid>>,
    /// Where the list is ordered and paged: the newest message's id, or for a group without
    /// messages the moment the user joined.
    #[serde(skip)]
    #[schema(ignore)]
    pub activity: Uuid,
}

/// A conversation's newest message, as the list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LastMessage {
    pub id: Uuid,
    #[schema(value_type = i64)]
    pub sender_id: UserId,
    /// The first 100 characters of its content.
    pub preview: String,
    /// When it was stored, Unix milliseconds.
    pub ts: i64,
}

/// Who of a group has read one of its messages: a page of readers (ascending ids, the
/// sender excluded) and the counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct GroupReads {
    pub message_id: Uuid,
    #[schema(value_type = Vec<i64>)]
    pub readers: Vec<UserId>,
    /// Members other than the sender whose read marker is at or past the message.
    pub read_count: u64,
    /// Members other than the sender.
    pub member_count: u64,
    /// Pass as `after` for the next page; `null` on the last.
    #[schema(value_type = Option<i64>, required = true)]
    pub next_after: Option<UserId>,
}

/// Unread counts stop at this many (a client shows "999+").
pub const UNREAD_CAP: u32 = 999;

/// What a read receipt (type 5) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Applied to the conversation of that message: the peer (private) or the group.
    Applied(crate::message::Target),
    /// No such message visible to the reader.
    NotFound,
    /// A message of a group the reader is not a member of.
    NotMember,
}

/// An edit (type 11) or delete (type 12) of a stored message, asked by `sender`.
#[derive(Debug, Clone)]
pub struct Edit {
    pub sender: UserId,
    pub id: Uuid,
    /// The new content; `None` deletes (the content becomes `""`).
    pub content: Option<String>,
    pub client_msg_id: Option<String>,
    /// Now, unix milliseconds: the time of the edit.
    pub now: i64,
    /// Messages stamped before this (unix milliseconds) are past `chat.edit_window`.
    pub not_before: i64,
}

/// What an edit or delete did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EditOutcome {
    /// Applied to message `id` of conversation `target` at `at`; `repeat`: applied before
    /// (the same `client_msg_id`, or a delete of a deleted message), nothing changed now.
    Applied {
        id: Uuid,
        target: crate::message::Target,
        at: i64,
        deleted: bool,
        repeat: bool,
    },
    /// No such message.
    NotFound,
    /// The message is someone else's.
    NotSender,
    /// The message is older than the edit window.
    TooLate,
    /// An edit of a deleted message.
    Deleted,
}

/// Membership of a user in an existing group, for authorisation checks. The owner is the
/// group's `owner_id`; admins and members are stored per membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Outsider,
    Member,
    Admin,
    Owner,
}

impl Role {
    /// A member's stored role: `admin` or `member` (the owner is `chat_groups.owner_id`).
    pub fn from_stored(role: &str) -> Role {
        if role == "admin" {
            Role::Admin
        } else {
            Role::Member
        }
    }
}

/// The storage seam; see the module docs for the contract.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Checks the database answers (readiness).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Stores a batch atomically, refusing blocked senders and non-members, and naming
    /// duplicates of earlier `client_msg_id`s. One outcome per message, in order. Messages are
    /// stored as delivered; in the same transaction and first, records `undelivered` (see
    /// `mark_undelivered`).
    async fn insert_messages(
        &self,
        batch: &[Message],
        undelivered: &[Uuid],
    ) -> Result<Vec<InsertOutcome>, StoreError>;
    /// The first message `sender` sent with `client_msg_id`, as the `Duplicate` outcome a
    /// repeat of it gets; `None` if there is none. For refusals decided before storing (the
    /// stranger limit), so that a retry of a stored message is still told it was stored.
    async fn find_duplicate(
        &self,
        sender: UserId,
        client_msg_id: &str,
    ) -> Result<Option<InsertOutcome>, StoreError>;
    /// Records that these messages reached no online device (the code a duplicate gets:
    /// 2101 rather than 2100). Messages are stored as delivered because most are; only the
    /// others are written twice.
    async fn mark_undelivered(&self, ids: &[Uuid]) -> Result<(), StoreError>;

    /// The oldest `limit` messages unread by `user` (private and group) with ids above
    /// `after`, except those in `sent`, oldest first. Changes nothing: only `mark_read`
    /// makes messages read.
    async fn unread(
        &self,
        user: UserId,
        after: Option<Uuid>,
        sent: &[Uuid],
        limit: u32,
    ) -> Result<Page, StoreError>;
    /// The id up to which `device` of `user` confirmed receiving what it was owed; `None`
    /// for a device that never confirmed (or was forgotten).
    async fn device_position(&self, user: UserId, device: &str)
    -> Result<Option<Uuid>, StoreError>;
    /// Moves `device`'s confirmed position forward to `id` (never back), keeping the
    /// positions of at most `keep` devices per user (the least recently confirmed go).
    async fn confirm_delivery(
        &self,
        user: UserId,
        device: &str,
        id: Uuid,
        keep: usize,
    ) -> Result<(), StoreError>;
    /// Messages between `user` and `peer`, newest first, ids strictly below `before`.
    async fn private_history(
        &self,
        user: UserId,
        peer: UserId,
        before: Cursor,
        limit: u32,
    ) -> Result<Page, StoreError>;
    /// Messages of `group`, newest first, ids strictly below `before`.
    async fn group_history(
        &self,
        group: &str,
        before: Cursor,
        limit: u32,
    ) -> Result<Page, StoreError>;
    /// Who of `group` has read its message `id` (members past it, the sender excluded):
    /// readers with ids above `after`, at most `limit`. `None` when `id` is not a message of
    /// the group.
    async fn group_reads(
        &self,
        group: &str,
        id: Uuid,
        after: UserId,
        limit: u32,
    ) -> Result<Option<GroupReads>, StoreError>;
    /// Marks message `id` and everything older in its conversation read for `user`.
    async fn mark_read(&self, user: UserId, id: Uuid) -> Result<ReadOutcome, StoreError>;

    /// Whether `from` may pass the stranger limit towards `to`: they follow each other, or
    /// `to` has ever sent `from` a private message.
    async fn stranger_exempt(&self, from: UserId, to: UserId) -> Result<bool, StoreError>;

    /// Creates a group with its owner and initial members; `Conflict` if the id is taken.
    async fn create_group(&self, group: NewGroup) -> Result<Group, StoreError>;
    /// A group with its member count.
    async fn group(&self, id: &str) -> Result<Option<Group>, StoreError>;
    /// Deletes a group, its members and its messages.
    async fn delete_group(&self, id: &str) -> Result<bool, StoreError>;
    /// The role of `user` in `group`; `None` when the group does not exist.
    async fn role(&self, group: &str, user: UserId) -> Result<Option<Role>, StoreError>;
    /// Adds a member; false if already one.
    async fn add_member(&self, group: &str, user: UserId) -> Result<bool, StoreError>;
    /// Adds a member unless the group holds `max` members already: counted in the same
    /// transaction as the insert, under a lock of the group's row, so concurrent adds never
    /// pass `max` together.
    async fn add_member_within(
        &self,
        group: &str,
        user: UserId,
        max: u64,
    ) -> Result<Joined, StoreError>;
    /// Removes a member; false if not one.
    async fn remove_member(&self, group: &str, user: UserId) -> Result<bool, StoreError>;
    /// Members of a group, ascending.
    async fn members(&self, group: &str) -> Result<Vec<UserId>, StoreError>;
    /// Members of a group with their roles, ascending by user id.
    async fn member_roles(&self, group: &str) -> Result<Vec<(UserId, Role)>, StoreError>;
    /// Changes a group's name, description or icon; `None` when there is no such group.
    async fn update_group(&self, id: &str, patch: &GroupPatch)
    -> Result<Option<Group>, StoreError>;
    /// Makes member `user` an admin (`admin`) or a plain member; false if `user` is not a
    /// member. The owner's role is not changed by this (it stays owner).
    async fn set_admin(&self, group: &str, user: UserId, admin: bool) -> Result<bool, StoreError>;
    /// Makes member `to` the owner if `from` owns the group now; `from` stays a member, as
    /// an admin.
    async fn transfer_owner(
        &self,
        group: &str,
        from: UserId,
        to: UserId,
    ) -> Result<Transfer, StoreError>;
    /// Read positions of `user` in the private conversation with `peer`: the newest message
    /// from `peer` that `user` has read, and the newest of `user`'s the peer has read.
    async fn private_read_upto(
        &self,
        user: UserId,
        peer: UserId,
    ) -> Result<(Option<Uuid>, Option<Uuid>), StoreError>;
    /// `user`'s read marker in `group` (`None`: not a member).
    async fn group_read_upto(&self, group: &str, user: UserId) -> Result<Option<Uuid>, StoreError>;
    /// Who follows `user`, except those `user` blocks, ascending; at most `limit` + 1 (so
    /// the caller can tell "more than `limit`").
    async fn followers(&self, user: UserId, limit: u32) -> Result<Vec<UserId>, StoreError>;
    /// Groups `user` belongs to.
    async fn user_groups(&self, user: UserId) -> Result<Vec<Group>, StoreError>;
    /// `user`'s conversations (private and groups), most recent activity first, those whose
    /// activity is strictly before `before`; at most `limit`, and whether more remain.
    async fn conversations(
        &self,
        user: UserId,
        before: Uuid,
        limit: u32,
    ) -> Result<(Vec<Conversation>, bool), StoreError>;
    /// Ids of the groups `user` belongs to (cheaper than `user_groups`, used on connect).
    async fn user_group_ids(&self, user: UserId) -> Result<Vec<GroupId>, StoreError>;
    /// Every (user, group) membership of `users`, in no order (reconciling a node's
    /// memberships after a bus outage).
    async fn memberships(&self, users: &[UserId]) -> Result<Vec<(UserId, GroupId)>, StoreError>;

    /// `user` follows `other`; false if already.
    async fn follow(&self, user: UserId, other: UserId) -> Result<bool, StoreError>;
    /// `user` stops following `other`; false if not following.
    async fn unfollow(&self, user: UserId, other: UserId) -> Result<bool, StoreError>;
    /// Whom `user` follows, ascending.
    async fn following(&self, user: UserId) -> Result<Vec<UserId>, StoreError>;

    /// `user` blocks `other`; false if already.
    async fn block(&self, user: UserId, other: UserId) -> Result<bool, StoreError>;
    /// `user` unblocks `other`; false if not blocked.
    async fn unblock(&self, user: UserId, other: UserId) -> Result<bool, StoreError>;
    /// Whom `user` blocks, ascending.
    async fn blocked(&self, user: UserId) -> Result<Vec<UserId>, StoreError>;
    /// Whether `blocker` blocks `blocked` (typing, chat/typing.rs).
    async fn blocks(&self, blocker: UserId, blocked: UserId) -> Result<bool, StoreError>;

    /// Applies an edit or delete by the message's sender, atomically with its
    /// `client_msg_id` record (sql/edits.rs).
    async fn edit_message(&self, edit: &Edit) -> Result<EditOutcome, StoreError>;

    /// The push outbox and mutes on the same database (store/push.rs).
    fn push(&self) -> Arc<dyn PushOutbox>;
}

/// Connects to the store that `settings.url` names, migrating if asked: one match arm per
/// implementation.
pub async fn connect(
    settings: &crate::settings::StorageSettings,
) -> Result<Arc<dyn Store>, StoreError> {
    use crate::settings::StoreUrl;
    Ok(match &settings.url {
        StoreUrl::Sqlite(_) => Arc::new(SqliteStore::connect(settings).await?),
        StoreUrl::MySql(_) => Arc::new(MySqlStore::connect(settings).await?),
    })
}

/// Applies pending migrations of the store named by `url` and returns.
pub async fn migrate(settings: &crate::settings::StorageSettings) -> Result<(), StoreError> {
    let mut settings = settings.clone();
    settings.migrate = true;
    connect(&settings).await.map(|_| ())
}
