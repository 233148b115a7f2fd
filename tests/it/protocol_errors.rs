//! Bad client frames: each gets 4000 with a reason naming the problem, the connection stays
//! usable, and nothing invalid is stored. Binary frames get 4000 too; text that is not UTF-8
//! closes with 1007.

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

use crate::on_both_backends;
use crate::support::{Backend, Client, TestApp, many_frames};

/// Sends `frame`, expects 4000 whose reason contains `reason`, then proves the connection
/// is still open with nothing else queued.
async fn refused(client: &mut Client, frame: &str, reason: &str) -> Value {
    client.send_text(frame).await;
    let answer = client.recv().await;
    assert_eq!(answer["code"], 4000, "{frame} -> {answer}");
    let got = answer["reason"].as_str().expect("a reason");
    assert!(
        got.contains(reason),
        "{frame}: reason {got:?} lacks {reason:?}"
    );
    assert_eq!(answer["content"], got, "{answer}");
    assert_eq!(answer["from"], "", "{answer}");
    client.expect_nothing_pending().await;
    answer
}

/// Nothing was stored between users 1 and 2: no unread for either, no history.
async fn nothing_stored(app: &TestApp) {
    for (me, peer) in [(1, 2), (2, 1)] {
        let mut client = Client::connect(app, me).await;
        let (unread, end) = client.sync().await;
        assert!(unread.is_empty(), "user {me} has unread {unread:?}");
        assert_eq!(end["count"], 0);
        let (history, _) = client.history(peer, "", None).await;
        assert!(history.is_empty(), "history {history:?}");
        client.close().await;
    }
}

async fn bad_json_gets_4000(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    for frame in [
        "{",
        "{\"type\":1,\"recipient_id\":2,\"content\":\"hi\"",
        "hello",
        "",
        "{\"type\":1,,}",
        "{'type': 7}",
    ] {
        refused(&mut alice, frame, "invalid JSON").await;
    }
    nothing_stored(&app).await;
}

async fn non_object_gets_4000(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    for frame in [
        "[1]",
        "[{\"type\":1,\"recipient_id\":2,\"content\":\"hi\"}]",
        "7",
        "\"type\"",
        "null",
        "true",
    ] {
        refused(&mut alice, frame, "JSON object").await;
    }
    nothing_stored(&app).await;
}

async fn unknown_or_missing_type_gets_4000(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    for kind in [json!(0), json!(13), json!(-1), json!(1000)] {
        let frame = json!({"type": kind, "recipient_id": 2, "content": "hi"});
        refused(&mut alice, &frame.to_string(), "unknown type").await;
    }
    for kind in [json!("1"), json!(1.5), json!(null), json!([1])] {
        let frame = json!({"type": kind, "recipient_id": 2, "content": "hi"});
        refused(&mut alice, &frame.to_string(), "type").await;
    }
    refused(
        &mut alice,
        r#"{"recipient_id":2,"content":"hi"}"#,
        "missing field: type",
    )
    .await;
    nothing_stored(&app).await;
}

async fn missing_fields_get_4000(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    let cases = [
        (json!({"type": 1, "content": "hi"}), "recipient_id"),
        (json!({"type": 1, "recipient_id": 2}), "content"),
        (
            json!({"type": 1, "recipient_id": 2, "content": null}),
            "content",
        ),
        (json!({"type": 3, "content": ""}), "recipient_id"),
        (json!({"type": 4, "content": "hi"}), "group_id"),
        (json!({"type": 4, "group_id": "g1"}), "content"),
        (json!({"type": 5}), "content"),
        (json!({"type": 5, "content": ""}), "content"),
        (json!({"type": 6, "content": ""}), "group_id"),
    ];
    for (frame, field) in cases {
        let answer = refused(&mut alice, &frame.to_string(), field).await;
        assert!(
            answer["reason"].as_str().unwrap().contains("missing field"),
            "{frame}: {answer}"
        );
    }
    nothing_stored(&app).await;
}

async fn bad_ids_get_4000(backend: Backend) {
    let app = TestApp::spawn_with(backend, many_frames).await;
    let mut alice = Client::connect(&app, 1).await;
    for id in [
        json!(0),
        json!(-2),
        json!("abc"),
        json!(1.5),
        json!(true),
        json!({}),
    ] {
        let frame = json!({"type": 1, "recipient_id": id, "content": "hi"});
        refused(&mut alice, &frame.to_string(), "recipient_id").await;
        let frame = json!({"type": 3, "recipient_id": id, "content": ""});
        refused(&mut alice, &frame.to_string(), "recipient_id").await;
    }
    for id in [
        json!("a b"),
        json!(""),
        json!("x".repeat(65)),
        json!("g/1"),
        json!(-4),
        json!(true),
    ] {
        let frame = json!({"type": 4, "group_id": id, "content": "hi"});
        refused(&mut alice, &frame.to_string(), "group_id").await;
        let frame = json!({"type": 6, "group_id": id, "content": ""});
        refused(&mut alice, &frame.to_string(), "group_id").await;
    }
    for id in ["nope", "1234", "0190a0c4-6a5e-7000-8000", "{}"] {
        let frame = json!({"type": 5, "content": id});
        refused(&mut alice, &frame.to_string(), "message id").await;
    }
    refused(
        &mut alice,
        &json!({"type": 1, "recipient_id": 1, "content": "me"}).to_string(),
        "yourself",
    )
    .await;
    nothing_stored(&app).await;
}

async fn empty_content_gets_4000(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let app_group = app.create_group(1, &[2]).await;
    let mut alice = Client::connect(&app, 1).await;
    for content in ["", " ", "\n\t  "] {
        let frame = json!({"type": 1, "recipient_id": 2, "content": content});
        refused(&mut alice, &frame.to_string(), "empty").await;
        let frame = json!({"type": 4, "group_id": app_group, "content": content});
        refused(&mut alice, &frame.to_string(), "empty").await;
    }
    for content in [json!(5), json!(["hi"]), json!({"text": "hi"})] {
        let frame = json!({"type": 1, "recipient_id": 2, "content": content});
        refused(&mut alice, &frame.to_string(), "content must be a string").await;
    }
    nothing_stored(&app).await;
    let mut bob = Client::connect(&app, 2).await;
    let (history, _) = bob.group_history(&app_group, "", None).await;
    assert!(history.is_empty(), "{history:?}");
}

async fn bad_client_msg_id_gets_4000(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    let long = "c".repeat(65);
    let frame = json!({"type": 1, "recipient_id": 2, "content": "hi", "client_msg_id": long});
    refused(&mut alice, &frame.to_string(), "client_msg_id").await;
    let frame = json!({"type": 1, "recipient_id": 2, "content": "hi", "client_msg_id": 12});
    refused(&mut alice, &frame.to_string(), "client_msg_id").await;
    nothing_stored(&app).await;
    // Exactly 64 characters (not bytes) is fine.
    let max = "é".repeat(64);
    let ack = alice.private_with_id(2, "hi", &max).await;
    assert_eq!(ack["code"], 2101, "{ack}");
    assert_eq!(ack["client_msg_id"], max);
}

async fn bad_limits_and_cursors_get_4000(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let group = app.create_group(1, &[]).await;
    let mut alice = Client::connect(&app, 1).await;
    for limit in [json!(0), json!(501), json!(-1), json!("10"), json!(2.5)] {
        let frame = json!({"type": 2, "limit": limit});
        refused(&mut alice, &frame.to_string(), "limit").await;
    }
    for limit in [json!(0), json!(101), json!("5")] {
        let frame = json!({"type": 3, "recipient_id": 2, "content": "", "limit": limit});
        refused(&mut alice, &frame.to_string(), "limit").await;
        let frame = json!({"type": 6, "group_id": group, "content": "", "limit": limit});
        refused(&mut alice, &frame.to_string(), "limit").await;
    }
    for cursor in ["yesterday", "2024-13-45T00:00:00Z", "12ab", "-5"] {
        let frame = json!({"type": 3, "recipient_id": 2, "content": cursor});
        refused(&mut alice, &frame.to_string(), "cursor").await;
        let frame = json!({"type": 6, "group_id": group, "content": cursor});
        refused(&mut alice, &frame.to_string(), "cursor").await;
    }
    // The largest limits are accepted.
    let (_, end) = alice.sync_limit(500).await;
    assert_eq!(end["count"], 0);
    let (_, end) = alice.history(2, "", Some(100)).await;
    assert_eq!(end["count"], 0);
}

async fn binary_frame_gets_4000_and_stays_open(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut bob = Client::connect(&app, 2).await;
    let valid = json!({"type": 1, "recipient_id": 2, "content": "as binary"});
    alice
        .send_raw(Message::binary(valid.to_string().into_bytes()))
        .await
        .unwrap();
    let answer = alice.expect(4000).await;
    assert!(
        answer["reason"].as_str().unwrap().contains("binary"),
        "{answer}"
    );
    alice.expect_nothing_pending().await;
    bob.expect_nothing_pending().await;
    // Still usable: a text frame goes through.
    alice.private(2, "as text").await;
    assert_eq!(bob.expect(2000).await["content"], "as text");
    let (history, _) = bob.history(1, "", None).await;
    assert_eq!(history.len(), 1, "{history:?}");
}

async fn connection_stays_usable_after_every_refusal(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut bob = Client::connect(&app, 2).await;
    // Bob answers first, so the stranger limit does not interfere.
    bob.private(1, "hi alice").await;
    alice.expect(2000).await;
    for (i, bad) in [
        "{",
        "[]",
        r#"{"type":10}"#,
        r#"{"type":1,"recipient_id":2,"content":""}"#,
    ]
    .into_iter()
    .enumerate()
    {
        alice.send_text(bad).await;
        alice.expect(4000).await;
        let ack = alice.private(2, &format!("after {i}")).await;
        assert_eq!(ack["code"], 2100, "{ack}");
        assert_eq!(bob.expect(2000).await["content"], format!("after {i}"));
    }
    let (history, _) = bob.history(1, "", None).await;
    assert_eq!(history.len(), 5, "only the valid messages are stored");
}

async fn invalid_utf8_closes_with_1007(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    let frame = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
    alice.send_raw(Message::Frame(frame)).await.unwrap();
    alice.expect_close_code(1007).await;
    nothing_stored(&app).await;
}

on_both_backends!(
    bad_json_gets_4000,
    non_object_gets_4000,
    unknown_or_missing_type_gets_4000,
    missing_fields_get_4000,
    bad_ids_get_4000,
    empty_content_gets_4000,
    bad_client_msg_id_gets_4000,
    bad_limits_and_cursors_get_4000,
    binary_frame_gets_4000_and_stays_open,
    connection_stays_usable_after_every_refusal,
    invalid_utf8_closes_with_1007,
);
