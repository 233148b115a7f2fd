//! Client frames: parsing and validating the JSON a client sends, with a precise reason
//! for everything refused.

use serde_json::Value;
use std::borrow::Cow;
use uuid::Uuid;

use super::cursor::Cursor;
use crate::ids::{GroupId, UserId, parse_group_id};
use crate::message::Target;
use crate::settings::Secret;

/// Longest accepted `client_msg_id`, in characters.
pub const MAX_CLIENT_MSG_ID: usize = 64;
/// Default and maximum `limit` of an unread sync (type 2).
pub const UNREAD_LIMIT: (u32, u32) = (100, 500);
/// Default and maximum `limit` of a history page (types 3 and 6).
pub const HISTORY_LIMIT: (u32, u32) = (10, 100);

/// One validated client request.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    /// Type 1: a private message.
    Private {
        recipient: UserId,
        content: String,
        client_msg_id: Option<String>,
    },
    /// Type 2: unread sync.
    SyncUnread { limit: u32 },
    /// Type 3: history of my conversation with `peer`.
    PrivateHistory {
        peer: UserId,
        before: Cursor,
        limit: u32,
    },
    /// Type 4: a group message.
    Group {
        group: GroupId,
        content: String,
        client_msg_id: Option<String>,
    },
    /// Type 5: read receipt for a message and everything older in its conversation.
    Read { id: Uuid },
    /// Type 6: group history.
    GroupHistory {
        group: GroupId,
        before: Cursor,
        limit: u32,
    },
    /// Type 7: application ping.
    Ping,
    /// Type 8: a fresh token for this connection, in `content` (never printed).
    Refresh { token: Secret },
    /// Type 9: this connection's device holds every message owed to it up to `id`
    /// (per-device catch-up).
    Confirm { id: Uuid },
    /// Type 10: I am typing (`typing`) or stopped, in a private conversation or a group.
    Typing { target: Target, typing: bool },
    /// Type 11: my message `id` now reads `content`.
    Edit {
        id: Uuid,
        content: String,
        client_msg_id: Option<String>,
    },
    /// Type 12: delete my message `id`.
    Delete {
        id: Uuid,
        client_msg_id: Option<String>,
    },
}

/// Why a frame was refused: a 4000 (or 4130) with a reason naming the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Invalid frame; the string is the reason sent to the client.
    Invalid(Cow<'static, str>),
    /// Content longer than the configured maximum (code 4130).
    TooLong { limit: usize },
}

impl DecodeError {
    fn invalid(reason: impl Into<Cow<'static, str>>) -> Self {
        DecodeError::Invalid(reason.into())
    }
}

/// The raw shape: every field optional and untyped, so that the error names the exact field.
struct RawFrame {
    kind: Option<Value>,
    recipient_id: Option<Value>,
    group_id: Option<Value>,
    content: Option<Value>,
    client_msg_id: Option<Value>,
    limit: Option<Value>,
    id: Option<Value>,
}

impl RawFrame {
    fn from_json(text: &str) -> Result<RawFrame, DecodeError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| DecodeError::invalid(format!("invalid JSON: {e}")))?;
        let Value::Object(mut map) = value else {
            return Err(DecodeError::invalid("frame must be a JSON object"));
        };
        Ok(RawFrame {
            kind: map.remove("type"),
            recipient_id: map.remove("recipient_id"),
            group_id: map.remove("group_id"),
            content: map.remove("content"),
            client_msg_id: map.remove("client_msg_id"),
            limit: map.remove("limit"),
            id: map.remove("id"),
        })
    }

    /// `content` as text; absent and null read as empty.
    fn content_str(&self) -> Result<&str, DecodeError> {
        match &self.content {
            None | Some(Value::Null) => Ok(""),
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(DecodeError::invalid("content must be a string")),
        }
    }
}

impl ClientFrame {
    /// Parses and validates one text frame. `max_content_bytes` bounds message content.
    pub fn parse(text: &str, max_content_bytes: usize) -> Result<ClientFrame, DecodeError> {
        let mut raw = RawFrame::from_json(text)?;
        let kind = match &raw.kind {
            None => return Err(DecodeError::invalid("missing field: type")),
            Some(v) => v
                .as_i64()
                .ok_or_else(|| DecodeError::invalid("type must be an integer"))?,
        };
        match kind {
            1 => Ok(ClientFrame::Private {
                recipient: user_field(&raw.recipient_id, "recipient_id")?,
                client_msg_id: client_msg_id(&raw.client_msg_id)?,
                content: message_content(raw.content.take(), max_content_bytes)?,
            }),
            2 => Ok(ClientFrame::SyncUnread {
                limit: limit(&raw.limit, UNREAD_LIMIT)?,
            }),
            3 => Ok(ClientFrame::PrivateHistory {
                peer: user_field(&raw.recipient_id, "recipient_id")?,
                before: cursor(raw.content_str()?)?,
                limit: limit(&raw.limit, HISTORY_LIMIT)?,
            }),
            4 => Ok(ClientFrame::Group {
                group: group_field(&raw)?,
                client_msg_id: client_msg_id(&raw.client_msg_id)?,
                content: message_content(raw.content.take(), max_content_bytes)?,
            }),
            5 => Ok(ClientFrame::Read {
                id: message_id(raw.content_str()?)?,
            }),
            6 => Ok(ClientFrame::GroupHistory {
                group: group_field(&raw)?,
                before: cursor(raw.content_str()?)?,
                limit: limit(&raw.limit, HISTORY_LIMIT)?,
            }),
            7 => Ok(ClientFrame::Ping),
            8 => match raw.content.take() {
                Some(Value::String(token)) if !token.trim().is_empty() => {
                    Ok(ClientFrame::Refresh {
                        token: Secret::from(token),
                    })
                }
                Some(Value::String(_)) | None | Some(Value::Null) => {
                    Err(DecodeError::invalid("missing field: content (a token)"))
                }
                Some(_) => Err(DecodeError::invalid("content must be a string")),
            },
            9 => Ok(ClientFrame::Confirm {
                id: message_id(raw.content_str()?)?,
            }),
            10 => Ok(ClientFrame::Typing {
                target: typing_target(&raw)?,
                typing: typing_state(raw.content_str()?)?,
            }),
            11 => Ok(ClientFrame::Edit {
                id: id_field(&raw.id)?,
                client_msg_id: client_msg_id(&raw.client_msg_id)?,
                content: message_content(raw.content.take(), max_content_bytes)?,
            }),
            12 => Ok(ClientFrame::Delete {
                id: id_field(&raw.id)?,
                client_msg_id: client_msg_id(&raw.client_msg_id)?,
            }),
            other => Err(DecodeError::invalid(format!(
                "unknown type {other}: expected 1 to 12"
            ))),
        }
    }
}

fn user_field(value: &Option<Value>, name: &'static str) -> Result<UserId, DecodeError> {
    let value = value
        .as_ref()
        .ok_or_else(|| DecodeError::invalid(format!("missing field: {name}")))?;
    let id = match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    match id {
        Some(id) if id > 0 => Ok(id),
        _ => Err(DecodeError::invalid(format!(
            "{name} must be a positive integer"
        ))),
    }
}

/// The message id in `content` (types 5 and 9).
fn message_id(content: &str) -> Result<Uuid, DecodeError> {
    let id = content.trim();
    if id.is_empty() {
        return Err(DecodeError::invalid(
            "missing field: content (a message id)",
        ));
    }
    Uuid::try_parse(id).map_err(|_| DecodeError::invalid("content must be a message id (a UUID)"))
}

/// The message id in `id` (types 11 and 12).
fn id_field(value: &Option<Value>) -> Result<Uuid, DecodeError> {
    match value {
        None | Some(Value::Null) => Err(DecodeError::invalid("missing field: id (a message id)")),
        Some(Value::String(s)) => Uuid::try_parse(s.trim())
            .map_err(|_| DecodeError::invalid("id must be a message id (a UUID)")),
        Some(_) => Err(DecodeError::invalid("id must be a message id (a UUID)")),
    }
}

/// A typing frame's conversation: `group_id` if present, else `recipient_id`.
fn typing_target(raw: &RawFrame) -> Result<Target, DecodeError> {
    match (&raw.group_id, &raw.recipient_id) {
        (Some(_), Some(_)) => Err(DecodeError::invalid(
            "give recipient_id or group_id, not both",
        )),
        (Some(_), None) => Ok(Target::Group(group_field(raw)?)),
        (None, Some(_)) => Ok(Target::User(user_field(&raw.recipient_id, "recipient_id")?)),
        (None, None) => Err(DecodeError::invalid(
            "missing field: recipient_id or group_id",
        )),
    }
}

/// A typing frame's `content`: "start" (also when absent or empty) or "stop".
fn typing_state(content: &str) -> Result<bool, DecodeError> {
    match content {
        "" | "start" => Ok(true),
        "stop" => Ok(false),
        _ => Err(DecodeError::invalid(
            "content must be \"start\" or \"stop\"",
        )),
    }
}

fn group_field(raw: &RawFrame) -> Result<GroupId, DecodeError> {
    match (&raw.group_id, &raw.recipient_id) {
        (Some(Value::String(s)), _) => parse_group_id(s).map_err(DecodeError::invalid),
        (Some(Value::Number(n)), _) | (None, Some(Value::Number(n))) => match n.as_i64() {
            Some(id) if id > 0 => Ok(GroupId::from(id.to_string())),
            _ => Err(DecodeError::invalid("group_id must be a string id")),
        },
        (None, Some(Value::String(s))) => parse_group_id(s).map_err(DecodeError::invalid),
        (None, None) => Err(DecodeError::invalid("missing field: group_id")),
        _ => Err(DecodeError::invalid("group_id must be a string id")),
    }
}

fn message_content(content: Option<Value>, max: usize) -> Result<String, DecodeError> {
    let content = match content {
        None | Some(Value::Null) => return Err(DecodeError::invalid("missing field: content")),
        Some(Value::String(s)) => s,
        Some(_) => return Err(DecodeError::invalid("content must be a string")),
    };
    if content.trim().is_empty() {
        return Err(DecodeError::invalid("content must not be empty"));
    }
    if content.len() > max {
        return Err(DecodeError::TooLong { limit: max });
    }
    Ok(content)
}

fn client_msg_id(value: &Option<Value>) -> Result<Option<String>, DecodeError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= MAX_CLIENT_MSG_ID => Ok(Some(s.clone())),
        Some(Value::String(_)) => Err(DecodeError::invalid(format!(
            "client_msg_id longer than {MAX_CLIENT_MSG_ID} characters"
        ))),
        Some(_) => Err(DecodeError::invalid("client_msg_id must be a string")),
    }
}

fn limit(value: &Option<Value>, (default, max): (u32, u32)) -> Result<u32, DecodeError> {
    match value {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(n) if n >= 1 && n <= u64::from(max) => Ok(n as u32),
            _ => Err(DecodeError::invalid(format!(
                "limit must be an integer from 1 to {max}"
            ))),
        },
        Some(_) => Err(DecodeError::invalid(format!(
            "limit must be an integer from 1 to {max}"
        ))),
    }
}

fn cursor(content: &str) -> Result<Cursor, DecodeError> {
    Cursor::parse(content).map_err(DecodeError::invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ClientFrame, DecodeError> {
        ClientFrame::parse(s, 10)
    }

    fn reason(s: &str) -> String {
        match parse(s) {
            Err(DecodeError::Invalid(r)) => r.into_owned(),
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    #[test]
    fn private_message() {
        assert_eq!(
            parse(r#"{"type":1,"recipient_id":2,"content":"hi","client_msg_id":"a"}"#),
            Ok(ClientFrame::Private {
                recipient: 2,
                content: "hi".into(),
                client_msg_id: Some("a".into())
            })
        );
        assert_eq!(
            parse(r#"{"type":1,"recipient_id":"7","content":"hi"}"#),
            Ok(ClientFrame::Private {
                recipient: 7,
                content: "hi".into(),
                client_msg_id: None
            })
        );
    }

    #[test]
    fn refusals_name_the_problem() {
        assert!(reason("{").starts_with("invalid JSON"));
        assert_eq!(reason("[1]"), "frame must be a JSON object");
        assert_eq!(reason(r#"{"content":"x"}"#), "missing field: type");
        assert_eq!(reason(r#"{"type":"1"}"#), "type must be an integer");
        assert_eq!(
            reason(r#"{"type":13}"#),
            "unknown type 13: expected 1 to 12"
        );
        assert_eq!(
            reason(r#"{"type":9}"#),
            "missing field: content (a message id)"
        );
        assert_eq!(reason(r#"{"type":8}"#), "missing field: content (a token)");
        assert_eq!(
            reason(r#"{"type":8,"content":5}"#),
            "content must be a string"
        );
        // A refresh's token never prints, so no log line can carry it.
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOjF9.c2lnbmF0dXJl";
        let frame = ClientFrame::parse(&format!(r#"{{"type":8,"content":"{jwt}"}}"#), 64).unwrap();
        assert!(!format!("{frame:?}").contains("eyJ"), "{frame:?}");
        assert_eq!(
            reason(r#"{"type":1,"content":"x"}"#),
            "missing field: recipient_id"
        );
        assert_eq!(
            reason(r#"{"type":1,"recipient_id":-3,"content":"x"}"#),
            "recipient_id must be a positive integer"
        );
        assert_eq!(
            reason(r#"{"type":1,"recipient_id":3,"content":"  "}"#),
            "content must not be empty"
        );
        assert_eq!(
            reason(r#"{"type":1,"recipient_id":3,"content":5}"#),
            "content must be a string"
        );
        assert_eq!(
            reason(r#"{"type":2,"limit":501}"#),
            "limit must be an integer from 1 to 500"
        );
        assert_eq!(
            reason(r#"{"type":5,"content":"nope"}"#),
            "content must be a message id (a UUID)"
        );
        assert_eq!(
            reason(r#"{"type":4,"content":"x"}"#),
            "missing field: group_id"
        );
    }

    #[test]
    fn typing_edit_and_delete() {
        let id = "01890000-0000-7000-8000-000000000001";
        assert_eq!(
            parse(r#"{"type":10,"recipient_id":2}"#),
            Ok(ClientFrame::Typing {
                target: Target::User(2),
                typing: true
            })
        );
        assert_eq!(
            parse(r#"{"type":10,"group_id":"g1","content":"stop"}"#),
            Ok(ClientFrame::Typing {
                target: Target::Group("g1".into()),
                typing: false
            })
        );
        assert_eq!(
            reason(r#"{"type":10,"recipient_id":2,"content":"maybe"}"#),
            r#"content must be "start" or "stop""#
        );
        assert_eq!(
            reason(r#"{"type":10}"#),
            "missing field: recipient_id or group_id"
        );
        assert_eq!(
            parse(&format!(
                r#"{{"type":11,"id":"{id}","content":"new","client_msg_id":"e"}}"#
            )),
            Ok(ClientFrame::Edit {
                id: Uuid::parse_str(id).unwrap(),
                content: "new".into(),
                client_msg_id: Some("e".into())
            })
        );
        assert_eq!(
            parse(&format!(r#"{{"type":12,"id":"{id}"}}"#)),
            Ok(ClientFrame::Delete {
                id: Uuid::parse_str(id).unwrap(),
                client_msg_id: None
            })
        );
        assert_eq!(
            reason(r#"{"type":11,"content":"x"}"#),
            "missing field: id (a message id)"
        );
        assert_eq!(
            reason(r#"{"type":12,"id":"nope"}"#),
            "id must be a message id (a UUID)"
        );
        assert_eq!(
            reason(&format!(r#"{{"type":11,"id":"{id}","content":" "}}"#)),
            "content must not be empty"
        );
    }

    #[test]
    fn too_long_content_is_its_own_error() {
        assert_eq!(
            parse(r#"{"type":1,"recipient_id":2,"content":"12345678901"}"#),
            Err(DecodeError::TooLong { limit: 10 })
        );
    }

    #[test]
    fn group_id_from_legacy_recipient_id() {
        assert_eq!(
            parse(r#"{"type":4,"recipient_id":12,"content":"hi"}"#),
            Ok(ClientFrame::Group {
                group: GroupId::from("12".to_string()),
                content: "hi".into(),
                client_msg_id: None
            })
        );
    }
}
