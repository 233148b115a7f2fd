//! Private messages: delivery, acknowledgements, multi-device, duplicates.

use serde_json::json;

use crate::on_both_backends;
use crate::support::{Backend, Client, TestApp};

async fn delivered_to_online_recipient(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut bob = Client::connect(&app, 2).await;
    let ack = alice.private(2, "hello bob").await;
    assert_eq!(ack["code"], 2100, "{ack}");
    let pushed = bob.expect(2000).await;
    assert_eq!(pushed["content"], "hello bob");
    assert_eq!(pushed["sender_id"], 1);
    assert_eq!(pushed["recipient_id"], 2);
    assert_eq!(pushed["from"], "1->2");
    assert_eq!(pushed["source"], "live");
    assert_eq!(pushed["id"], ack["id"]);
    assert_eq!(pushed["ts"], ack["ts"]);
}

async fn offline_recipient_gets_2101_then_sync(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    let ack = alice.private(2, "are you there").await;
    assert_eq!(ack["code"], 2101, "{ack}");
    let mut bob = Client::connect(&app, 2).await;
    let (messages, end) = bob.sync().await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["id"], ack["id"]);
    assert_eq!(messages[0]["source"], "unread");
    assert_eq!(end["count"], 1);
    assert_eq!(end["next_cursor"], "");
    let (again, _) = bob.sync().await;
    assert!(again.is_empty(), "synced messages become read: {again:?}");
}

async fn duplicate_client_msg_id_is_stored_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut bob = Client::connect(&app, 2).await;
    let frame = json!({"type": 1, "recipient_id": 2, "content": "once", "client_msg_id": "m-1"});
    alice.send(frame.clone()).await;
    let first = alice.expect(2100).await;
    bob.expect(2000).await;
    alice.send(frame).await;
    let second = alice.expect(2100).await;
    assert_eq!(first["id"], second["id"]);
    assert_eq!(first["ts"], second["ts"]);
    assert_eq!(second["client_msg_id"], "m-1");
    bob.expect_nothing_pending().await;
    let (history, _) = bob
        .page(json!({"type": 3, "recipient_id": 1, "content": ""}))
        .await;
    assert_eq!(history.len(), 1);
}

on_both_backends!(
    delivered_to_online_recipient,
    offline_recipient_gets_2101_then_sync,
    duplicate_client_msg_id_is_stored_once,
);
