//! Property tests of the JSON frame decoder (`ClientFrame::parse`): any text, any JSON
//! value, numbers of any size and sign in any field, and deep nesting decode without a
//! panic into a frame that keeps the documented limits or a refusal naming the problem.

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::client::{ClientFrame, DecodeError, HISTORY_LIMIT, MAX_CLIENT_MSG_ID, UNREAD_LIMIT};

/// `limits.max_content_bytes` in these tests: small, so that generated content crosses it.
const MAX: usize = 32;

fn parse(text: &str) -> Result<ClientFrame, DecodeError> {
    ClientFrame::parse(text, MAX)
}

/// The refusal's reason; panics on anything else.
fn reason(text: &str) -> String {
    match parse(text) {
        Err(DecodeError::Invalid(reason)) => reason.into_owned(),
        other => panic!("expected a refusal of {text}, got {other:?}"),
    }
}

/// What every decoded frame keeps: positive user ids, content within the limit and not
/// blank, a client_msg_id within its limit, limits within their ranges; and every refusal
/// has a reason.
fn assert_sound(outcome: &Result<ClientFrame, DecodeError>) {
    let content_ok = |content: &str| content.len() <= MAX && !content.trim().is_empty();
    let id_ok = |id: &Option<String>| {
        id.as_ref()
            .is_none_or(|id| !id.is_empty() && id.chars().count() <= MAX_CLIENT_MSG_ID)
    };
    match outcome {
        Ok(ClientFrame::Private {
            recipient,
            content,
            client_msg_id,
        }) => {
            assert!(*recipient > 0 && content_ok(content) && id_ok(client_msg_id));
        }
        Ok(ClientFrame::Group {
            content,
            client_msg_id,
            ..
        }) => assert!(content_ok(content) && id_ok(client_msg_id)),
        Ok(ClientFrame::SyncUnread { limit }) => assert!((1..=UNREAD_LIMIT.1).contains(limit)),
        Ok(ClientFrame::PrivateHistory { peer, limit, .. }) => {
            assert!(*peer > 0 && (1..=HISTORY_LIMIT.1).contains(limit));
        }
        Ok(ClientFrame::GroupHistory { limit, .. }) => {
            assert!((1..=HISTORY_LIMIT.1).contains(limit));
        }
        Ok(ClientFrame::Read { .. } | ClientFrame::Confirm { .. } | ClientFrame::Ping) => {}
        Ok(ClientFrame::Refresh { token }) => assert!(!token.expose().trim().is_empty()),
        Ok(ClientFrame::Typing { target, .. }) => {
            assert!(!matches!(target, crate::message::Target::User(u) if *u <= 0));
        }
        Ok(ClientFrame::Edit {
            content,
            client_msg_id,
            ..
        }) => assert!(content_ok(content) && id_ok(client_msg_id)),
        Ok(ClientFrame::Delete { client_msg_id, .. }) => assert!(id_ok(client_msg_id)),
        Err(DecodeError::Invalid(reason)) => assert!(!reason.is_empty()),
        Err(DecodeError::TooLong { limit }) => assert_eq!(*limit, MAX),
    }
}

/// Any JSON number: integers of every size and sign, and floats.
fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        (-3i64..14).prop_map(Value::from),
        Just(json!(1e300)),
        Just(json!(-0.0)),
    ]
}

/// Any JSON value, nested a few levels.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        number(),
        "\\PC{0,40}".prop_map(Value::from),
        "[0-9a-f-]{36}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(key(), inner, 0..6).prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// A field name: one the decoder reads, mostly.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("type".to_string()),
        Just("recipient_id".to_string()),
        Just("group_id".to_string()),
        Just("content".to_string()),
        Just("client_msg_id".to_string()),
        Just("limit".to_string()),
        Just("id".to_string()),
        "\\PC{0,8}",
    ]
}

/// A frame-shaped object: a type, mostly a known one, and fields of any value.
fn frame() -> impl Strategy<Value = Value> {
    let kind = prop_oneof![4 => (1i64..=12).prop_map(Value::from), 1 => value()];
    (kind, btree_map(key(), value(), 0..6)).prop_map(|(kind, fields)| {
        let mut object: serde_json::Map<String, Value> = fields.into_iter().collect();
        object.insert("type".into(), kind);
        Value::Object(object)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_text_decodes_to_a_frame_or_a_reason(text in "\\PC{0,200}") {
        assert_sound(&parse(&text));
    }

    #[test]
    fn any_json_value_decodes_to_a_frame_or_a_reason(value in prop_oneof![value(), frame()]) {
        let text = value.to_string();
        let outcome = parse(&text);
        assert_sound(&outcome);
        // The shape's refusals name the shape.
        let Value::Object(object) = &value else {
            prop_assert_eq!(reason(&text), "frame must be a JSON object");
            return Ok(());
        };
        match object.get("type").map(Value::as_i64) {
            None => prop_assert_eq!(reason(&text), "missing field: type"),
            Some(None) => prop_assert_eq!(reason(&text), "type must be an integer"),
            Some(Some(kind)) if !(1..=12).contains(&kind) => {
                prop_assert_eq!(reason(&text), format!("unknown type {kind}: expected 1 to 12"));
            }
            Some(Some(_)) => {}
        }
    }

    #[test]
    fn any_recipient_number_is_taken_only_when_positive(id in number(), as_string in any::<bool>()) {
        let field = if as_string { Value::from(id.to_string()) } else { id.clone() };
        let text = json!({"type": 1, "recipient_id": field, "content": "hi"}).to_string();
        match id.as_i64().filter(|id| *id > 0) {
            Some(id) => prop_assert_eq!(
                parse(&text),
                Ok(ClientFrame::Private { recipient: id, content: "hi".into(), client_msg_id: None })
            ),
            None => prop_assert_eq!(reason(&text), "recipient_id must be a positive integer"),
        }
    }

    #[test]
    fn any_limit_number_is_taken_only_within_its_range(limit in number(), kind in prop_oneof![Just(2), Just(3)]) {
        let text = json!({"type": kind, "limit": limit, "recipient_id": 5, "content": ""}).to_string();
        let max = if kind == 2 { UNREAD_LIMIT.1 } else { HISTORY_LIMIT.1 };
        let within = limit.as_u64().filter(|n| (1..=u64::from(max)).contains(n));
        match (within, parse(&text)) {
            (Some(n), Ok(ClientFrame::SyncUnread { limit })) => prop_assert_eq!(u64::from(limit), n),
            (Some(n), Ok(ClientFrame::PrivateHistory { limit, .. })) => prop_assert_eq!(u64::from(limit), n),
            (None, Err(DecodeError::Invalid(reason))) => {
                prop_assert_eq!(reason, format!("limit must be an integer from 1 to {max}"));
            }
            (within, outcome) => prop_assert!(false, "{limit} ({within:?}): {outcome:?}"),
        }
    }

    #[test]
    fn content_is_taken_when_not_blank_and_within_the_limit(content in "\\PC{0,40}|[ \t\n]{0,5}") {
        let text = json!({"type": 1, "recipient_id": 2, "content": content}).to_string();
        let outcome = parse(&text);
        if content.trim().is_empty() {
            prop_assert_eq!(reason(&text), "content must not be empty");
        } else if content.len() > MAX {
            prop_assert_eq!(outcome, Err(DecodeError::TooLong { limit: MAX }));
        } else {
            prop_assert_eq!(
                outcome,
                Ok(ClientFrame::Private { recipient: 2, content, client_msg_id: None })
            );
        }
    }
}

#[test]
fn deep_nesting_is_refused_by_the_json_recursion_limit() {
    // 10,000 nested arrays, alone and as a field's value: serde_json stops at 128 levels
    // with an error (no stack overflow), which the refusal names.
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    for text in [
        deep.clone(),
        format!(r#"{{"type":7,"content":{deep}}}"#),
        format!(r#"{{"type":1,"recipient_id":2,"content":"x","extra":{deep}}}"#),
        "{\"a\":".repeat(10_000),
    ] {
        let reason = reason(&text);
        assert!(reason.starts_with("invalid JSON"), "{reason}");
        assert!(reason.contains("recursion limit exceeded"), "{reason}");
    }
    // Nesting within the limit is only an unknown field.
    let nested = format!("{}{}", "[".repeat(100), "]".repeat(100));
    let text = format!(r#"{{"type":7,"extra":{nested}}}"#);
    assert_eq!(parse(&text), Ok(ClientFrame::Ping));
}
