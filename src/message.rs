//! A chat message as stored and delivered: the one record every layer shares.

use uuid::Uuid;

use crate::ids::{GroupId, UserId};

/// Where a message goes: one user, or every member of a group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    User(UserId),
    Group(GroupId),
}

/// A stored (or about to be stored) message. `id` is a UUIDv7 whose time is `ts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: Uuid,
    pub sender_id: UserId,
    pub target: Target,
    pub content: String,
    pub client_msg_id: Option<String>,
    /// Unix milliseconds when the server accepted it.
    pub ts: i64,
    /// Unix milliseconds of its last edit (type 11), if edited.
    pub edited_at: Option<i64>,
    /// Unix milliseconds of its deletion (type 12): a tombstone, its content `""`.
    pub deleted_at: Option<i64>,
}

impl Message {
    /// A new message from `sender`, stamped now with a fresh UUIDv7.
    pub fn new(
        sender_id: UserId,
        target: Target,
        content: String,
        client_msg_id: Option<String>,
    ) -> Message {
        let id = Uuid::now_v7();
        Message {
            id,
            sender_id,
            target,
            content,
            client_msg_id,
            ts: crate::ids::millis_of(&id),
            edited_at: None,
            deleted_at: None,
        }
    }

    /// The original protocol's `from`: "sender->recipient" or "sender->group".
    pub fn from_label(&self) -> String {
        match &self.target {
            Target::User(r) => format!("{}->{}", self.sender_id, r),
            Target::Group(g) => format!("{}->{}", self.sender_id, g),
        }
    }
}
