//! The stranger rule: unless two users follow each other, at most
//! `limits.stranger_messages` private messages (default 3) to someone who never sent you
//! one, within `limits.stranger_window`; the next gets 4029 and is not stored. An answer
//! lifts the limit for both.

use serde_json::json;
use std::time::Duration;

use crate::on_both_backends;
use crate::support::client::WAIT;
use crate::support::{Backend, Client, TestApp, eventually};

/// Sends `n` messages from `from` to `to` that must all be stored.
async fn send_stored(from: &mut Client, to: i64, n: usize) {
    for i in 0..n {
        from.stored(to, &format!("message {i} to {to}")).await;
    }
}

/// The next message from `from` to `to` gets 4029.
async fn limited(from: &mut Client, to: i64) {
    let refusal = from.private(to, "one too many").await;
    assert_eq!(refusal["code"], 4029, "{refusal}");
    assert!(refusal["reason"].is_string(), "{refusal}");
}

/// How many messages `user` has waiting.
async fn unread_count(app: &TestApp, user: i64) -> usize {
    let mut client = Client::connect(app, user).await;
    let (unread, _) = client.sync_limit(500).await;
    client.close().await;
    unread.len()
}

async fn three_messages_then_4029_not_stored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    send_stored(&mut alice, 2, 3).await;
    alice
        .send(json!({"type": 1, "recipient_id": 2, "content": "4th", "client_msg_id": "s-4"}))
        .await;
    let refusal = alice.expect(4029).await;
    assert_eq!(refusal["client_msg_id"], "s-4");
    limited(&mut alice, 2).await;
    alice.expect_nothing_pending().await;
    assert_eq!(
        unread_count(&app, 2).await,
        3,
        "the refused ones are not stored"
    );
    let (history, _) = alice.history(2, "", None).await;
    assert_eq!(history.len(), 3);
}

async fn limit_counts_per_recipient(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    send_stored(&mut alice, 2, 3).await;
    limited(&mut alice, 2).await;
    send_stored(&mut alice, 3, 3).await;
    limited(&mut alice, 3).await;
    // Somebody else may still write to bob.
    let mut dave = Client::connect(&app, 4).await;
    send_stored(&mut dave, 2, 3).await;
    assert_eq!(unread_count(&app, 2).await, 6);
}

async fn reply_lifts_the_limit_for_both(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    send_stored(&mut alice, 2, 3).await;
    limited(&mut alice, 2).await;
    let mut bob = Client::connect(&app, 2).await;
    let (unread, _) = bob.sync().await;
    assert_eq!(unread.len(), 3);
    let reply = bob.private(1, "who are you?").await;
    assert_eq!(reply["code"], 2100, "{reply}");
    alice.expect(2000).await;
    for i in 0..5 {
        let ack = alice.private(2, &format!("now we talk {i}")).await;
        assert_eq!(ack["code"], 2100, "{ack}");
        bob.expect(2000).await;
        let ack = bob.private(1, &format!("we do {i}")).await;
        assert_eq!(ack["code"], 2100, "{ack}");
        alice.expect(2000).await;
    }
}

async fn reply_lifts_the_limit_after_a_restart(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut bob = Client::connect(&app, 2).await;
    bob.stored(1, "hello alice").await;
    alice.expect(2000).await;
    // The counters live in memory; a new node over the same storage starts without them
    // and must find the answer in storage.
    let settings = app.settings.clone();
    drop((alice, bob));
    let fresh = TestApp::spawn_with(app.backend, |s| s.storage = settings.storage.clone()).await;
    let mut alice = Client::connect(&fresh, 1).await;
    send_stored(&mut alice, 2, 6).await;
}

async fn mutual_follow_lifts_the_limit(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (me, other) in [(1, 2), (2, 1)] {
        let (status, body) = app
            .post("/api/follows", me, json!({"user_id": other}))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let mut alice = Client::connect(&app, 1).await;
    send_stored(&mut alice, 2, 6).await;
    // Once one of them unfollows, they are strangers again.
    let (status, _) = app.delete("/api/follows/1", 2).await;
    assert_eq!(status, 204);
    limited(&mut alice, 2).await;
}

async fn one_way_follow_does_not_lift_the_limit(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Alice follows bob; dave follows carol (the recipient follows the sender).
    let (status, _) = app.post("/api/follows", 1, json!({"user_id": 2})).await;
    assert_eq!(status, 201);
    let (status, _) = app.post("/api/follows", 4, json!({"user_id": 3})).await;
    assert_eq!(status, 201);
    let mut alice = Client::connect(&app, 1).await;
    send_stored(&mut alice, 2, 3).await;
    limited(&mut alice, 2).await;
    let mut carol = Client::connect(&app, 3).await;
    send_stored(&mut carol, 4, 3).await;
    limited(&mut carol, 4).await;
}

async fn limit_is_configurable(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.limits.stranger_messages = 1).await;
    let mut alice = Client::connect(&app, 1).await;
    send_stored(&mut alice, 2, 1).await;
    limited(&mut alice, 2).await;
    let roomy = TestApp::spawn_with(backend, |s| s.limits.stranger_messages = 7).await;
    let mut alice = Client::connect(&roomy, 1).await;
    send_stored(&mut alice, 2, 7).await;
    limited(&mut alice, 2).await;
}

async fn limit_window_is_configurable(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.limits.stranger_messages = 1;
        s.limits.stranger_window = Duration::from_secs(1);
    })
    .await;
    let mut alice = Client::connect(&app, 1).await;
    send_stored(&mut alice, 2, 1).await;
    limited(&mut alice, 2).await;
    // Once the window has passed, the count starts again: poll until a message goes through.
    eventually(WAIT, "the window ending", async || {
        let ack = alice.private(2, "a new window").await;
        match ack["code"].as_u64() {
            Some(2101) => Ok(()),
            Some(4029) => Err(ack),
            _ => panic!("{ack}"),
        }
    })
    .await;
    limited(&mut alice, 2).await;
    assert_eq!(unread_count(&app, 2).await, 2);
}

async fn blocked_messages_do_not_count(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, _) = app.post("/api/blocks", 2, json!({"user_id": 1})).await;
    assert_eq!(status, 201);
    let mut alice = Client::connect(&app, 1).await;
    for _ in 0..4 {
        assert_eq!(alice.private(2, "blocked").await["code"], 4003);
    }
    let (status, _) = app.delete("/api/blocks/1", 2).await;
    assert_eq!(status, 204);
    send_stored(&mut alice, 2, 3).await;
    limited(&mut alice, 2).await;
}

on_both_backends!(
    three_messages_then_4029_not_stored,
    limit_counts_per_recipient,
    reply_lifts_the_limit_for_both,
    reply_lifts_the_limit_after_a_restart,
    mutual_follow_lifts_the_limit,
    one_way_follow_does_not_lift_the_limit,
    limit_is_configurable,
    limit_window_is_configurable,
    blocked_messages_do_not_count,
);
