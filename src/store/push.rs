//! `PushOutbox`: the store's side of push (src/push): the outbox rows the batching writer
//! writes with private messages, their claims, and the users' mutes.
//!
//! Contract, for every implementation:
//! - Once `enable` was called, `Store::insert_messages` writes one outbox row per private
//!   message it accepts (and per group message, if asked), in the same transaction, due
//!   `delay` after it. A repeat of a `client_msg_id` leaves a row whose `message` is `None`
//!   (its message was not stored); the dispatcher drops it.
//! - `claim` hands each due, unclaimed (or lease-expired) row to one claimer at a time.
//! - Rows stay until `remove`d: whatever happens to a claimer, a row is claimed again once
//!   its lease ran out (at least once).

use async_trait::async_trait;
use std::time::Duration;
use uuid::Uuid;

use super::StoreError;
use crate::ids::{GroupId, UserId};

/// One claimed outbox row with what the event needs of its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub message_id: Uuid,
    /// The user to notify; 0 for a group message (its members are found when it is due).
    pub user_id: UserId,
    /// Attempts made before this claim.
    pub attempts: u32,
    /// The message's sender, group and time; `None` when the message is gone (a repeated
    /// `client_msg_id` that was not stored, or a deleted group).
    pub message: Option<(UserId, Option<GroupId>, i64)>,
}

/// A conversation a user can mute.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Muted {
    /// The private conversation with this user.
    User(UserId),
    /// This group.
    Group(GroupId),
}

/// The store's side of push; see the module docs for the contract.
#[async_trait]
pub trait PushOutbox: Send + Sync + 'static {
    /// From now on, `insert_messages` writes an outbox row per private message (user_id
    /// its recipient) and, with `groups`, per group message (user_id 0: its members are
    /// found when it is due), due `delay` after it is stored.
    fn enable(&self, delay: Duration, groups: bool);
    /// The members of `group`, at most `limit` of them (more means the group is larger).
    async fn members_up_to(&self, group: &str, limit: usize) -> Result<Vec<UserId>, StoreError>;
    /// Deletes the rows of these messages (they reached an online device).
    async fn delivered_live(&self, ids: &[Uuid]) -> Result<(), StoreError>;
    /// Claims at most `limit` rows due at `now` (ms) for `claimer` until `now + lease`.
    async fn claim(
        &self,
        claimer: &str,
        now: i64,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<OutboxRow>, StoreError>;
    /// Deletes these rows (sent, dropped or muted).
    async fn remove(&self, rows: &[(Uuid, UserId)]) -> Result<(), StoreError>;
    /// Releases these rows for another attempt at `due_at` (ms), counting the attempt.
    async fn retry_at(&self, rows: &[(Uuid, UserId)], due_at: i64) -> Result<(), StoreError>;
    /// Rows in the outbox (the queue depth).
    async fn depth(&self) -> Result<u64, StoreError>;
    /// Of these (user, conversation) pairs, the ones the user muted.
    async fn muted(&self, pairs: &[(UserId, Muted)]) -> Result<Vec<(UserId, Muted)>, StoreError>;
    /// `user` mutes `what`; false if muted already.
    async fn mute(&self, user: UserId, what: &Muted) -> Result<bool, StoreError>;
    /// `user` unmutes `what`; false if not muted.
    async fn unmute(&self, user: UserId, what: &Muted) -> Result<bool, StoreError>;
    /// What `user` muted, users first, each ascending.
    async fn mutes(&self, user: UserId) -> Result<Vec<Muted>, StoreError>;
}
