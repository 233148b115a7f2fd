//! `GET /api/conversations` (issue 16): private conversations and groups, most recent
//! activity first, each with its newest message, unread count and read positions; keyset
//! paging; kept by the message batches (a repeated client_msg_id changes nothing); 2800
//! when a membership changes.

use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::{Backend, Client, TestApp};

async fn list(app: &TestApp, user: i64, query: &str) -> Value {
    let (status, body) = app.get(&format!("/api/conversations{query}"), user).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn entries(body: &Value) -> Vec<String> {
    body["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| match c["kind"].as_str().unwrap() {
            "private" => format!("u{}", c["peer_id"]),
            _ => format!("g:{}", c["group_id"].as_str().unwrap()),
        })
        .collect()
}

async fn newest_first_with_last_message_and_unread(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut bob = Client::connect(&app, 2).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut carol = Client::connect(&app, 3).await;
    let group = app.create_group(3, &[2]).await;
    bob.expect(2800).await; // joined
    carol.expect(2800).await;
    alice.stored(2, "a1").await;
    alice.stored(2, "a2").await;
    carol.group_stored(&group, "g1").await;
    let last = carol.stored(2, "c1").await;
    let body = list(&app, 2, "").await;
    assert_eq!(entries(&body), ["u3", format!("g:{group}").as_str(), "u1"]);
    let carol_entry = &body["conversations"][0];
    assert_eq!(carol_entry["last_message"]["id"], last["id"]);
    assert_eq!(carol_entry["last_message"]["preview"], "c1");
    assert_eq!(carol_entry["last_message"]["sender_id"], 3);
    assert_eq!(carol_entry["unread"], 1);
    assert_eq!(carol_entry["read_upto"], Value::Null);
    let alice_entry = &body["conversations"][2];
    assert_eq!(alice_entry["unread"], 2);
    assert_eq!(alice_entry["last_message"]["preview"], "a2");
    let group_entry = &body["conversations"][1];
    assert_eq!(group_entry["name"], "test group");
    assert_eq!(group_entry["unread"], 1);
    // The sender's side: the same conversation, nothing unread, the peer's read position.
    let mine = list(&app, 1, "").await;
    assert_eq!(entries(&mine), ["u2"]);
    assert_eq!(mine["conversations"][0]["unread"], 0);
    assert_eq!(mine["conversations"][0]["peer_read_upto"], Value::Null);
    assert_eq!(mine["next_cursor"], "");
}

async fn reads_update_unread_and_read_positions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut bob = Client::connect(&app, 2).await;
    let first = alice.stored(2, "a1").await;
    alice.stored(2, "a2").await;
    bob.expect(2000).await;
    bob.expect(2000).await;
    bob.read(&first["id"]).await;
    alice.expect(2301).await;
    let body = list(&app, 2, "").await;
    assert_eq!(body["conversations"][0]["unread"], 1);
    assert_eq!(body["conversations"][0]["read_upto"], first["id"]);
    let mine = list(&app, 1, "").await;
    assert_eq!(mine["conversations"][0]["peer_read_upto"], first["id"]);
    // A repeated client_msg_id changes neither the count nor the newest message.
    let sent = alice.private_with_id(2, "once", "cid-1").await;
    let again = alice.private_with_id(2, "once", "cid-1").await;
    assert_eq!(sent["id"], again["id"]);
    let body = list(&app, 2, "").await;
    assert_eq!(body["conversations"][0]["unread"], 2);
    assert_eq!(body["conversations"][0]["last_message"]["id"], sent["id"]);
}

async fn pages_by_cursor(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.limits.stranger_messages = 100).await;
    // Users 10..15 each write to user 2, in order: the newest is 14.
    for user in 10..15 {
        let mut sender = Client::connect(&app, user).await;
        sender.stored(2, &format!("from {user}")).await;
    }
    let first = list(&app, 2, "?limit=2").await;
    assert_eq!(entries(&first), ["u14", "u13"]);
    let cursor = first["next_cursor"].as_str().unwrap().to_string();
    assert!(!cursor.is_empty());
    let second = list(&app, 2, &format!("?limit=2&before={cursor}")).await;
    assert_eq!(entries(&second), ["u12", "u11"]);
    let cursor = second["next_cursor"].as_str().unwrap().to_string();
    let third = list(&app, 2, &format!("?limit=2&before={cursor}")).await;
    assert_eq!(entries(&third), ["u10"]);
    assert_eq!(third["next_cursor"], "");
    for bad in ["?limit=0", "?limit=101", "?limit=x", "?before=yesterday"] {
        let (status, body) = app.get(&format!("/api/conversations{bad}"), 2).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["error"].as_str().is_some(), "{body}");
    }
    let (status, _) = app
        .request(reqwest::Method::GET, "/api/conversations", None, None)
        .await;
    assert_eq!(status, 401);
}

async fn a_new_membership_moves_the_group_and_is_pushed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut bob = Client::connect(&app, 2).await;
    alice.stored(2, "hello").await;
    bob.expect(2000).await;
    // A group without messages sits at the time Bob joined it: above the older message.
    let group = app.create_group(3, &[]).await;
    let (status, _) = app
        .post(
            &format!("/api/groups/{group}/members"),
            3,
            json!({"user_id": 2}),
        )
        .await;
    assert_eq!(status, 201);
    let update = bob.expect(2800).await;
    assert_eq!(update["change"], "joined", "{update}");
    assert_eq!(update["group_id"], group.as_str());
    let body = list(&app, 2, "").await;
    assert_eq!(entries(&body), [format!("g:{group}").as_str(), "u1"]);
    assert_eq!(body["conversations"][0]["last_message"], Value::Null);
    assert_eq!(body["conversations"][0]["unread"], 0);
    // Leaving removes it and is pushed too.
    let (status, _) = app
        .delete(&format!("/api/groups/{group}/members/2"), 2)
        .await;
    assert_eq!(status, 204);
    assert_eq!(bob.expect(2800).await["change"], "left");
    assert_eq!(entries(&list(&app, 2, "").await), ["u1"]);
}

on_both_backends!(
    newest_first_with_last_message_and_unread,
    reads_update_unread_and_read_positions,
    pages_by_cursor,
    a_new_membership_moves_the_group_and_is_pushed,
);
