//! Group messages over the WebSocket (type 4): acknowledgements, authorisation (4003, 4004),
//! the legacy numeric group id, and membership changes taking effect on live connections.

use serde_json::json;

use crate::on_both_backends;
use crate::support::{Backend, Client, TestApp};

async fn acknowledgement_says_whether_a_member_was_online(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let group = app.create_group(1, &[2]).await;
    let mut alice = Client::connect(&app, 1).await;
    let ack = alice.group(&group, "anyone?").await;
    assert_eq!(ack["code"], 2101, "{ack}");
    assert_eq!(ack["group_id"], group.as_str());
    assert_eq!(ack["from"], format!("1->{group}"));
    assert!(ack["id"].is_string() && ack["ts"].is_i64(), "{ack}");
    let mut bob = Client::connect(&app, 2).await;
    let ack = alice.group(&group, "hi bob").await;
    assert_eq!(ack["code"], 2100, "{ack}");
    let pushed = bob.expect(2000).await;
    assert_eq!(pushed["id"], ack["id"]);
    assert_eq!(pushed["ts"], ack["ts"]);
    assert_eq!(pushed["content"], "hi bob");
    let (history, _) = bob.group_history(&group, "", None).await;
    let contents: Vec<_> = history.iter().map(|m| m["content"].clone()).collect();
    assert_eq!(contents, [json!("hi bob"), json!("anyone?")]);
}

async fn non_member_cannot_post(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let group = app.create_group(1, &[2]).await;
    let mut bob = Client::connect(&app, 2).await;
    let mut mallory = Client::connect(&app, 9).await;
    mallory
        .send(json!({"type": 4, "group_id": group, "content": "let me in", "client_msg_id": "x-1"}))
        .await;
    let refusal = mallory.expect(4003).await;
    assert_eq!(refusal["client_msg_id"], "x-1");
    assert!(
        refusal["reason"].as_str().unwrap().contains("member"),
        "{refusal}"
    );
    mallory.expect_nothing_pending().await;
    bob.expect_nothing_pending().await;
    let (history, _) = bob.group_history(&group, "", None).await;
    assert!(history.is_empty(), "nothing stored: {history:?}");
    let (unread, _) = bob.sync().await;
    assert!(unread.is_empty(), "{unread:?}");
}

async fn non_member_cannot_read_history(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let group = app.create_group(1, &[2]).await;
    let mut alice = Client::connect(&app, 1).await;
    alice.group_stored(&group, "members only").await;
    let mut mallory = Client::connect(&app, 9).await;
    mallory
        .send(json!({"type": 6, "group_id": group, "content": ""}))
        .await;
    let refusal = mallory.expect(4003).await;
    assert!(
        refusal["reason"].as_str().unwrap().contains("member"),
        "{refusal}"
    );
    mallory.expect_nothing_pending().await;
    // Nor through an unread sync.
    let (unread, _) = mallory.sync().await;
    assert!(unread.is_empty(), "{unread:?}");
}

async fn unknown_group_is_4004(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    alice
        .send(json!({"type": 4, "group_id": "no-such-group", "content": "hello?", "client_msg_id": "u-1"}))
        .await;
    let refusal = alice.expect(4004).await;
    assert_eq!(refusal["client_msg_id"], "u-1");
    alice
        .send(json!({"type": 6, "group_id": "no-such-group", "content": ""}))
        .await;
    alice.expect(4004).await;
    alice.expect_nothing_pending().await;
}

async fn legacy_numeric_group_id(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = app
        .post(
            "/api/groups",
            1,
            json!({"id": "4242", "name": "legacy", "members": [2]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let mut alice = Client::connect(&app, 1).await;
    let mut bob = Client::connect(&app, 2).await;
    // The original's numeric recipient_id, and a numeric group_id, both name group "4242".
    alice
        .send(json!({"type": 4, "recipient_id": 4242, "content": "old client"}))
        .await;
    let ack = alice.expect(2100).await;
    assert_eq!(ack["group_id"], "4242");
    let pushed = bob.expect(2000).await;
    assert_eq!(pushed["group_id"], "4242");
    assert_eq!(pushed["content"], "old client");
    alice
        .send(json!({"type": 4, "group_id": 4242, "content": "numeric id"}))
        .await;
    alice.expect(2100).await;
    bob.expect(2000).await;
    let (history, _) = bob
        .page(json!({"type": 6, "recipient_id": 4242, "content": ""}))
        .await;
    assert_eq!(history.len(), 2);
    // A numeric id of a group that does not exist is 4004, as any other.
    alice
        .send(json!({"type": 4, "recipient_id": 4343, "content": "nobody"}))
        .await;
    alice.expect(4004).await;
}

async fn added_member_starts_receiving_at_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let group = app.create_group(1, &[]).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut carol = Client::connect(&app, 3).await;
    let ack = alice.group(&group, "before carol").await;
    assert_eq!(ack["code"], 2101, "{ack}");
    carol.expect_nothing_pending().await;
    let (status, body) = app
        .post(
            &format!("/api/groups/{group}/members"),
            1,
            json!({"user_id": 3}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let ack = alice.group(&group, "welcome carol").await;
    assert_eq!(ack["code"], 2100, "{ack}");
    assert_eq!(carol.expect(2000).await["content"], "welcome carol");
    let ack = carol.group(&group, "thanks").await;
    assert_eq!(ack["code"], 2100, "{ack}");
    assert_eq!(alice.expect(2000).await["content"], "thanks");
}

async fn removed_member_stops_receiving_and_posting(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let group = app.create_group(1, &[2, 3]).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut bob = Client::connect(&app, 2).await;
    let mut carol = Client::connect(&app, 3).await;
    alice.group_stored(&group, "all three").await;
    bob.expect(2000).await;
    carol.expect(2000).await;
    let (status, _) = app
        .delete(&format!("/api/groups/{group}/members/2"), 1)
        .await;
    assert_eq!(status, 204);
    let (status, _) = app
        .request(
            reqwest::Method::POST,
            &format!("/api/groups/{group}/leave"),
            Some(3),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let ack = alice.group(&group, "just me").await;
    assert_eq!(ack["code"], 2101, "nobody else is a member: {ack}");
    bob.expect_nothing_pending().await;
    carol.expect_nothing_pending().await;
    for former in [&mut bob, &mut carol] {
        let refusal = former.group(&group, "can I still?").await;
        assert_eq!(refusal["code"], 4003, "{refusal}");
        former
            .send(json!({"type": 6, "group_id": group, "content": ""}))
            .await;
        former.expect(4003).await;
    }
}

async fn deleted_group_is_gone(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let group = app.create_group(1, &[2]).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut bob = Client::connect(&app, 2).await;
    alice.group_stored(&group, "last words").await;
    bob.expect(2000).await;
    let (status, _) = app.delete(&format!("/api/groups/{group}"), 1).await;
    assert_eq!(status, 204);
    for member in [&mut alice, &mut bob] {
        assert_eq!(member.group(&group, "hello?").await["code"], 4004);
        member
            .send(json!({"type": 6, "group_id": group, "content": ""}))
            .await;
        member.expect(4004).await;
    }
    bob.expect_nothing_pending().await;
    let (unread, _) = bob.sync().await;
    assert!(unread.is_empty(), "{unread:?}");
}

async fn group_messages_are_not_stranger_limited(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let group = app.create_group(1, &[2]).await;
    let mut alice = Client::connect(&app, 1).await;
    for i in 0..6 {
        let ack = alice.group(&group, &format!("announcement {i}")).await;
        assert_eq!(ack["code"], 2101, "{ack}");
    }
    let mut bob = Client::connect(&app, 2).await;
    let (unread, _) = bob.sync().await;
    assert_eq!(unread.len(), 6);
}

on_both_backends!(
    acknowledgement_says_whether_a_member_was_online,
    non_member_cannot_post,
    non_member_cannot_read_history,
    unknown_group_is_4004,
    legacy_numeric_group_id,
    added_member_starts_receiving_at_once,
    removed_member_stops_receiving_and_posting,
    deleted_group_is_gone,
    group_messages_are_not_stranger_limited,
);
