//! Duplicates by `client_msg_id`: a repeat from the same sender gets the first message's id,
//! time and code, is not stored again and is not pushed again, whatever happened since.

use serde_json::{Value, json};
use std::time::Duration;

use crate::on_both_backends;
use crate::support::{Backend, Client, TestApp, eventually};

fn private(to: i64, content: &str, cid: &str) -> Value {
    json!({"type": 1, "recipient_id": to, "content": content, "client_msg_id": cid})
}

/// Every message waiting for `user`, read with a fresh connection.
async fn unread_of(app: &TestApp, user: i64) -> Vec<Value> {
    let mut client = Client::connect(app, user).await;
    let (unread, _) = client.sync_limit(500).await;
    client.close().await;
    unread
}

fn same_message(first: &Value, again: &Value) {
    assert_eq!(again["id"], first["id"], "{first} / {again}");
    assert_eq!(again["ts"], first["ts"], "{first} / {again}");
    assert_eq!(again["code"], first["code"], "{first} / {again}");
    assert_eq!(again["client_msg_id"], first["client_msg_id"]);
}

async fn offline_first_repeats_2101(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    alice.send(private(2, "first try", "d-1")).await;
    let first = alice.expect(2101).await;
    assert_eq!(first["client_msg_id"], "d-1");
    // Bob is online now, but the answer is still the first one's, and he gets no push.
    let mut bob = Client::connect(&app, 2).await;
    alice.send(private(2, "second try", "d-1")).await;
    let again = alice.recv().await;
    same_message(&first, &again);
    bob.expect_nothing_pending().await;
    let (unread, _) = bob.sync().await;
    assert_eq!(unread.len(), 1);
    assert_eq!(unread[0]["content"], "first try");
    assert_eq!(unread[0]["client_msg_id"], "d-1");
    // Once the offline flag has reached the database (it is written in bulk), a repeat from
    // a new connection, answered from storage, is still told 2101.
    let written = "SELECT COUNT(*) FROM messages WHERE client_msg_id = 'd-1' AND delivered = 0";
    eventually(
        Duration::from_secs(10),
        "offline flag written",
        async || app.sql_int(written).await == 1,
    )
    .await;
    let mut again_from = Client::connect(&app, 1).await;
    again_from.send(private(2, "third try", "d-1")).await;
    same_message(&first, &again_from.recv().await);
}

async fn delivered_first_repeats_2100(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut bob = Client::connect(&app, 2).await;
    alice.send(private(2, "hello", "d-2")).await;
    let first = alice.expect(2100).await;
    assert_eq!(bob.expect(2000).await["client_msg_id"], "d-2");
    bob.close().await;
    // From a new connection, with bob offline: still the first answer.
    let mut again_from = Client::connect(&app, 1).await;
    again_from.send(private(2, "hello", "d-2")).await;
    same_message(&first, &again_from.recv().await);
    assert_eq!(unread_of(&app, 2).await.len(), 1);
}

async fn group_duplicates_are_stored_and_pushed_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let group = app.create_group(1, &[2]).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut bob = Client::connect(&app, 2).await;
    let frame = json!({"type": 4, "group_id": group, "content": "once", "client_msg_id": "g-1"});
    alice.send(frame.clone()).await;
    let first = alice.expect(2100).await;
    bob.expect(2000).await;
    for _ in 0..3 {
        alice.send(frame.clone()).await;
        same_message(&first, &alice.recv().await);
    }
    bob.expect_nothing_pending().await;
    let (history, _) = bob.group_history(&group, "", None).await;
    assert_eq!(history.len(), 1);
}

async fn client_msg_id_is_scoped_to_the_sender(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut carol = Client::connect(&app, 3).await;
    alice.send(private(2, "from alice", "same")).await;
    let from_alice = alice.expect(2101).await;
    carol.send(private(2, "from carol", "same")).await;
    let from_carol = carol.expect(2101).await;
    assert_ne!(from_alice["id"], from_carol["id"]);
    assert_eq!(unread_of(&app, 2).await.len(), 2);
    // The same id from the same sender to someone else is still the first message.
    alice.send(private(4, "to dave", "same")).await;
    same_message(&from_alice, &alice.recv().await);
    assert!(unread_of(&app, 4).await.is_empty());
}

async fn concurrent_duplicates_from_two_devices_store_one(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut phone = Client::connect(&app, 1).await;
    let mut laptop = Client::connect(&app, 1).await;
    let mut bob = Client::connect(&app, 2).await;
    let frame = private(2, "from both", "race-1");
    phone.send(frame.clone()).await;
    laptop.send(frame).await;
    // Each device gets an acknowledgement, and possibly the other's push first.
    let mut acks = Vec::new();
    for device in [&mut phone, &mut laptop] {
        loop {
            let frame = device.recv().await;
            match frame["code"].as_u64() {
                Some(2000) => continue,
                Some(2100 | 2101) => break acks.push(frame),
                _ => panic!("unexpected {frame}"),
            }
        }
    }
    assert_eq!(acks[0]["id"], acks[1]["id"], "one message: {acks:?}");
    assert_eq!(bob.expect(2000).await["id"], acks[0]["id"]);
    bob.expect_nothing_pending().await;
    let (history, _) = bob.history(1, "", None).await;
    assert_eq!(history.len(), 1);
}

async fn retry_past_the_stranger_limit_gets_the_first_answer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut acks = Vec::new();
    for i in 1..=3 {
        alice
            .send(private(2, "hello stranger", &format!("s-{i}")))
            .await;
        acks.push(alice.expect(2101).await);
    }
    // The third acknowledgement was lost on the way: alice retries it. It was stored, so
    // the answer is its acknowledgement, not the stranger limit.
    alice.send(private(2, "hello stranger", "s-3")).await;
    same_message(&acks[2], &alice.recv().await);
    // A new message is still over the limit.
    alice.send(private(2, "one more", "s-4")).await;
    alice.expect(4029).await;
    assert_eq!(unread_of(&app, 2).await.len(), 3);
}

async fn retry_after_being_blocked_gets_the_first_answer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    alice.send(private(2, "before the block", "b-1")).await;
    let first = alice.expect(2101).await;
    let (status, _) = app.post("/api/blocks", 2, json!({"user_id": 1})).await;
    assert_eq!(status, 201);
    // The first was stored before the block: a retry is told so.
    alice.send(private(2, "before the block", "b-1")).await;
    same_message(&first, &alice.recv().await);
    // A new message is refused.
    alice.send(private(2, "after the block", "b-2")).await;
    alice.expect(4003).await;
    assert_eq!(unread_of(&app, 2).await.len(), 1);
}

on_both_backends!(
    offline_first_repeats_2101,
    delivered_first_repeats_2100,
    group_duplicates_are_stored_and_pushed_once,
    client_msg_id_is_scoped_to_the_sender,
    concurrent_duplicates_from_two_devices_store_one,
    retry_past_the_stranger_limit_gets_the_first_answer,
    retry_after_being_blocked_gets_the_first_answer,
);
