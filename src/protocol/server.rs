//! Server frames: every JSON frame the server sends, built in one place.
//!
//! All frames carry `code`, `content` and `from` (the original protocol's fields); the rest
//! appear only where they apply. Builders return the encoded text, ready to share.

use serde::Serialize;
use uuid::Uuid;

use super::codes;
use crate::ids::UserId;
use crate::message::{Message, Target};

/// Why a message frame is being sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Live,
    Unread,
    History,
}

#[derive(Serialize, Default)]
struct Frame<'a> {
    code: u16,
    content: &'a str,
    from: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<UserId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sender_id: Option<UserId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recipient_id: Option<UserId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reader_id: Option<UserId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ts: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<Source>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_msg_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    change: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    position: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    edited_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deleted: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deleted_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    icon: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    online: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    read_upto: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer_read_upto: Option<&'a str>,
}

impl Frame<'_> {
    fn encode(&self) -> String {
        // Serialising a struct of plain fields into a String cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// 1000: connected, first frame of every connection.
pub fn connected(user_id: UserId) -> String {
    Frame {
        code: codes::CONNECTED,
        content: "connected to server",
        user_id: Some(user_id),
        ..Frame::default()
    }
    .encode()
}

/// 1001: the server is closing this connection; `reason` says why.
pub fn closing(reason: &str) -> String {
    Frame {
        code: codes::CLOSING,
        content: "connection closed",
        reason: Some(reason),
        ..Frame::default()
    }
    .encode()
}

/// 1002: deliveries may have been missed; the client should send a type 2 sync.
pub fn sync_needed() -> String {
    Frame {
        code: codes::SYNC_NEEDED,
        content: "deliveries may have been missed: send a type 2 sync",
        ..Frame::default()
    }
    .encode()
}

/// 1003: pong.
pub fn pong() -> String {
    Frame {
        code: codes::PONG,
        content: "pong",
        ..Frame::default()
    }
    .encode()
}

/// 2000: a message.
pub fn message(m: &Message, source: Source) -> String {
    let (recipient_id, group_id) = match &m.target {
        Target::User(r) => (Some(*r), None),
        Target::Group(g) => (None, Some(&**g)),
    };
    Frame {
        code: codes::MESSAGE,
        content: &m.content,
        from: &m.from_label(),
        id: Some(m.id),
        sender_id: Some(m.sender_id),
        recipient_id,
        group_id,
        ts: Some(m.ts),
        source: Some(source),
        client_msg_id: m.client_msg_id.as_deref(),
        edited_at: m.edited_at,
        deleted: m.deleted_at.map(|_| true),
        deleted_at: m.deleted_at,
        ..Frame::default()
    }
    .encode()
}

/// 2100 or 2101: the sender's message is stored (and delivered or not).
pub fn stored(m: &Message, delivered: bool) -> String {
    let (code, content) = if delivered {
        (codes::STORED_DELIVERED, "delivered")
    } else {
        (codes::STORED_OFFLINE, "recipient is offline")
    };
    let (recipient_id, group_id) = match &m.target {
        Target::User(r) => (Some(*r), None),
        Target::Group(g) => (None, Some(&**g)),
    };
    Frame {
        code,
        content,
        from: &m.from_label(),
        id: Some(m.id),
        recipient_id,
        group_id,
        ts: Some(m.ts),
        client_msg_id: Some(m.client_msg_id.as_deref().unwrap_or("")),
        ..Frame::default()
    }
    .encode()
}

/// 2200: end of an unread sync or a history page.
pub fn page_end(count: u32, next_cursor: Option<Uuid>) -> String {
    let next = next_cursor.map(|id| id.to_string()).unwrap_or_default();
    Frame {
        code: codes::PAGE_END,
        content: if next.is_empty() { "end" } else { "more" },
        count: Some(count),
        next_cursor: Some(&next),
        ..Frame::default()
    }
    .encode()
}

/// 2200 ending an unread sync page: as `page_end`, plus `last_id`, the newest message this
/// page sent (`""` if none): what the client confirms (type 9) once it holds the page.
pub fn unread_page_end(count: u32, more: bool, last: Option<Uuid>) -> String {
    let last = last.map(|id| id.to_string()).unwrap_or_default();
    let next = if more { last.as_str() } else { "" };
    Frame {
        code: codes::PAGE_END,
        content: if more { "more" } else { "end" },
        count: Some(count),
        next_cursor: Some(next),
        last_id: Some(&last),
        ..Frame::default()
    }
    .encode()
}

/// 2800: the user's conversation list changed: `change` is `joined`, `left` or `deleted`
/// for group `group`.
pub fn conversation_update(change: &str, group: &str) -> String {
    Frame {
        code: codes::CONVERSATION_UPDATE,
        content: "conversation update",
        change: Some(change),
        group_id: Some(group),
        ..Frame::default()
    }
    .encode()
}

/// 2800 `updated`: group `group` got a new name, description or icon (each field is the
/// group's current value).
pub fn group_updated(group: &str, name: &str, description: &str, icon: &str) -> String {
    Frame {
        code: codes::CONVERSATION_UPDATE,
        content: "conversation update",
        change: Some("updated"),
        group_id: Some(group),
        name: Some(name),
        description: Some(description),
        icon: Some(icon),
        ..Frame::default()
    }
    .encode()
}

/// 2800 `role`: member `user` of group `group` now holds `role` (`owner`, `admin`,
/// `member`).
pub fn role_changed(group: &str, user: UserId, role: &str) -> String {
    Frame {
        code: codes::CONVERSATION_UPDATE,
        content: "conversation update",
        change: Some("role"),
        group_id: Some(group),
        user_id: Some(user),
        role: Some(role),
        ..Frame::default()
    }
    .encode()
}

/// 2900: a user the receiver follows came online (first connection anywhere) or went
/// offline (no connection anywhere).
pub fn presence(user: UserId, online: bool) -> String {
    Frame {
        code: codes::PRESENCE,
        content: if online { "online" } else { "offline" },
        user_id: Some(user),
        online: Some(online),
        ..Frame::default()
    }
    .encode()
}

/// 2200 ending a history page, with the read positions a client draws ticks from:
/// `read_upto` (the newest message of the conversation the receiver has read; for a group,
/// their read marker) and, for a private conversation, `peer_read_upto` (the newest of the
/// receiver's messages the peer has read). `""` for none.
pub fn history_page_end(
    count: u32,
    next_cursor: Option<Uuid>,
    read_upto: Option<Uuid>,
    peer_read_upto: Option<Option<Uuid>>,
) -> String {
    let next = next_cursor.map(|id| id.to_string()).unwrap_or_default();
    let text = |id: Option<Uuid>| id.map(|id| id.to_string()).unwrap_or_default();
    let read = text(read_upto);
    let peer = peer_read_upto.map(text);
    Frame {
        code: codes::PAGE_END,
        content: if next.is_empty() { "end" } else { "more" },
        count: Some(count),
        next_cursor: Some(&next),
        read_upto: Some(&read),
        peer_read_upto: peer.as_deref(),
        ..Frame::default()
    }
    .encode()
}

/// 2500: a delivery confirmation (type 9) for `id` was taken; the device's catch-up now
/// starts after `position` (`""`: from its oldest unread message).
pub fn delivery_confirmed(id: Uuid, position: Option<Uuid>) -> String {
    let position = position.map(|p| p.to_string()).unwrap_or_default();
    Frame {
        code: codes::DELIVERY_CONFIRMED,
        content: "delivery confirmed",
        id: Some(id),
        position: Some(&position),
        ..Frame::default()
    }
    .encode()
}

/// 2300: read receipt applied.
pub fn read_applied(id: Uuid) -> String {
    let text = id.to_string();
    Frame {
        code: codes::READ_APPLIED,
        content: &text,
        id: Some(id),
        ..Frame::default()
    }
    .encode()
}

/// 2301: `reader` has read `id` and everything older in a conversation with the receiver.
pub fn read_by(reader: UserId, id: Uuid, target: &Target) -> String {
    let text = id.to_string();
    let (recipient_id, group_id, from) = match target {
        Target::User(r) => (Some(*r), None, format!("{reader}->{r}")),
        Target::Group(g) => (None, Some(&**g), format!("{reader}->{g}")),
    };
    Frame {
        code: codes::READ_BY_PEER,
        content: &text,
        from: &from,
        id: Some(id),
        reader_id: Some(reader),
        recipient_id,
        group_id,
        ..Frame::default()
    }
    .encode()
}

/// A refusal (4xxx) or failure (5000): `reason` names the problem. `client_msg_id` echoes the
/// refused message's, so a client can tell which of its messages it concerns.
pub fn error(code: u16, reason: &str, client_msg_id: Option<&str>) -> String {
    Frame {
        code,
        content: reason,
        reason: Some(reason),
        client_msg_id,
        ..Frame::default()
    }
    .encode()
}

/// 1004: the connection's token expires at `expires_at` (unix seconds).
pub fn token_expiring(expires_at: u64) -> String {
    Frame {
        code: codes::TOKEN_EXPIRING,
        content: "token expiring: send a fresh one (type 8) before expires_at",
        expires_at: Some(expires_at),
        ..Frame::default()
    }
    .encode()
}

/// 2400: a fresh token was accepted; the connection lasts until `expires_at` (absent: no
/// expiry).
pub fn token_refreshed(expires_at: Option<u64>) -> String {
    Frame {
        code: codes::TOKEN_REFRESHED,
        content: "token refreshed",
        expires_at,
        ..Frame::default()
    }
    .encode()
}

/// 4290: a frame over the connection's rate, dropped unread; the next is taken in
/// `retry_after_ms`.
pub fn rate_limited(retry_after_ms: u64) -> String {
    let reason = "too many frames: slow down";
    Frame {
        code: codes::RATE_LIMITED,
        content: reason,
        reason: Some(reason),
        retry_after_ms: Some(retry_after_ms),
        ..Frame::default()
    }
    .encode()
}

/// The conversation fields of a frame: `recipient_id` or `group_id`, and `from`.
fn conversation(sender: UserId, target: &Target) -> (Option<UserId>, Option<&str>, String) {
    match target {
        Target::User(r) => (Some(*r), None, format!("{sender}->{r}")),
        Target::Group(g) => (None, Some(&**g), format!("{sender}->{g}")),
    }
}

/// 2600: `sender` started (or stopped) typing in `target`.
pub fn typing(sender: UserId, target: &Target, typing: bool) -> String {
    let state = if typing { "start" } else { "stop" };
    let (recipient_id, group_id, from) = conversation(sender, target);
    Frame {
        code: codes::TYPING,
        content: state,
        from: &from,
        sender_id: Some(sender),
        recipient_id,
        group_id,
        state: Some(state),
        ..Frame::default()
    }
    .encode()
}

/// 4291: a typing start for `target` too soon after the last one forwarded.
pub fn typing_too_fast(target: &Target, retry_after_ms: u64) -> String {
    let reason = "typing: at most one start every 3 s per conversation";
    let (recipient_id, group_id) = match target {
        Target::User(r) => (Some(*r), None),
        Target::Group(g) => (None, Some(&**g)),
    };
    Frame {
        code: codes::TYPING_TOO_FAST,
        content: reason,
        reason: Some(reason),
        recipient_id,
        group_id,
        retry_after_ms: Some(retry_after_ms),
        ..Frame::default()
    }
    .encode()
}

/// 2700 (`content: Some`, edited) or 2710 (deleted), pushed: `sender`'s message `id` in
/// `target` changed at `at`.
pub fn message_changed(
    sender: UserId,
    target: &Target,
    id: Uuid,
    content: Option<&str>,
    at: i64,
) -> String {
    let (recipient_id, group_id, from) = conversation(sender, target);
    Frame {
        code: if content.is_some() {
            codes::MESSAGE_EDITED
        } else {
            codes::MESSAGE_DELETED
        },
        content: content.unwrap_or(""),
        from: &from,
        id: Some(id),
        sender_id: Some(sender),
        recipient_id,
        group_id,
        edited_at: content.map(|_| at),
        deleted: content.is_none().then_some(true),
        deleted_at: content.is_none().then_some(at),
        ..Frame::default()
    }
    .encode()
}

/// 2701 (edit) or 2711 (delete) applied: the answer to the sender's request.
pub fn change_applied(
    sender: UserId,
    target: &Target,
    id: Uuid,
    deleted: bool,
    at: i64,
    client_msg_id: Option<&str>,
) -> String {
    let (recipient_id, group_id, from) = conversation(sender, target);
    let (code, content) = if deleted {
        (codes::DELETE_APPLIED, "deleted")
    } else {
        (codes::EDIT_APPLIED, "edited")
    };
    Frame {
        code,
        content,
        from: &from,
        id: Some(id),
        recipient_id,
        group_id,
        edited_at: (!deleted).then_some(at),
        deleted_at: deleted.then_some(at),
        client_msg_id: Some(client_msg_id.unwrap_or("")),
        ..Frame::default()
    }
    .encode()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn every_frame_has_code_content_from() {
        let m = Message::new(1, Target::User(2), "hi".into(), None);
        for text in [
            connected(1),
            closing("drain"),
            pong(),
            sync_needed(),
            message(&m, Source::Live),
            stored(&m, true),
            page_end(0, None),
            read_applied(m.id),
            read_by(2, m.id, &Target::User(1)),
            error(codes::BAD_FRAME, "bad", None),
            typing(1, &m.target, true),
            typing_too_fast(&m.target, 10),
            message_changed(1, &m.target, m.id, Some("new"), 5),
            message_changed(1, &m.target, m.id, None, 5),
            change_applied(1, &m.target, m.id, true, 5, None),
        ] {
            let v: Value = serde_json::from_str(&text).unwrap();
            assert!(v["code"].is_u64(), "{text}");
            assert!(v["content"].is_string(), "{text}");
            assert!(v["from"].is_string(), "{text}");
        }
    }

    #[test]
    fn message_frame_fields() {
        let m = Message::new(
            1,
            Target::Group("g1".into()),
            "hi".into(),
            Some("c1".into()),
        );
        let v: Value = serde_json::from_str(&message(&m, Source::Unread)).unwrap();
        assert_eq!(v["code"], 2000);
        assert_eq!(v["from"], "1->g1");
        assert_eq!(v["group_id"], "g1");
        assert_eq!(v["source"], "unread");
        assert_eq!(v["client_msg_id"], "c1");
        assert_eq!(v["id"], m.id.to_string());
        assert!(v.get("recipient_id").is_none());
    }
}
