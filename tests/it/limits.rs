//! Size limits: content over `limits.max_content_bytes` gets 4130 and is not stored; a
//! WebSocket frame over `server.max_frame_bytes` closes the connection with 1009.

use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::on_both_backends;
use crate::support::{Backend, Client, TestApp};

async fn content_over_the_limit_gets_4130(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.limits.max_content_bytes = 16).await;
    let group = app.create_group(1, &[2]).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut bob = Client::connect(&app, 2).await;

    let frame =
        json!({"type": 1, "recipient_id": 2, "content": "x".repeat(17), "client_msg_id": "long-1"});
    alice.send(frame).await;
    let refusal = alice.expect(4130).await;
    assert_eq!(refusal["client_msg_id"], "long-1", "{refusal}");
    assert!(
        refusal["reason"].as_str().unwrap().contains("16"),
        "{refusal}"
    );
    // Bytes, not characters: 9 two-byte characters are 18 bytes.
    alice
        .send(json!({"type": 1, "recipient_id": 2, "content": "é".repeat(9)}))
        .await;
    alice.expect(4130).await;
    alice
        .send(json!({"type": 4, "group_id": group, "content": "y".repeat(100)}))
        .await;
    alice.expect(4130).await;
    // The connection stays open, and nothing reached bob.
    alice.expect_nothing_pending().await;
    bob.expect_nothing_pending().await;

    // Exactly the limit is fine.
    let ack = alice.private(2, &"z".repeat(16)).await;
    assert_eq!(ack["code"], 2100, "{ack}");
    assert_eq!(bob.expect(2000).await["content"], "z".repeat(16));
    let ack = alice.private(2, &"é".repeat(8)).await;
    assert_eq!(ack["code"], 2100, "{ack}");
    bob.expect(2000).await;
    let (history, _) = bob.history(1, "", None).await;
    assert_eq!(
        history.len(),
        2,
        "only the messages within the limit: {history:?}"
    );
    let (history, _) = bob.group_history(&group, "", None).await;
    assert!(history.is_empty(), "{history:?}");
}

async fn default_content_limit_is_4096_bytes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    let ack = alice.private(2, &"a".repeat(4096)).await;
    assert_eq!(ack["code"], 2101, "{ack}");
    let refusal = alice.private(2, &"a".repeat(4097)).await;
    assert_eq!(refusal["code"], 4130, "{refusal}");
    let mut bob = Client::connect(&app, 2).await;
    let (unread, _) = bob.sync().await;
    assert_eq!(unread.len(), 1);
    assert_eq!(unread[0]["content"].as_str().unwrap().len(), 4096);
}

async fn frame_over_max_frame_bytes_closes_with_1009(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.server.max_frame_bytes = 2048;
        s.limits.max_content_bytes = 1024;
    })
    .await;
    let mut alice = Client::connect(&app, 1).await;
    // Just under the frame limit, over the content limit: 4130, still open.
    let frame = json!({"type": 1, "recipient_id": 2, "content": "x".repeat(1500)});
    alice.send(frame).await;
    alice.expect(4130).await;
    alice.expect_nothing_pending().await;
    // Over the frame limit: closed with 1009.
    let frame = json!({"type": 1, "recipient_id": 2, "content": "x".repeat(3000)});
    alice.send(frame).await;
    alice.expect_close_code(1009).await;
    let mut bob = Client::connect(&app, 2).await;
    let (unread, _) = bob.sync().await;
    assert!(unread.is_empty(), "{unread:?}");
}

async fn default_max_frame_is_64_kib(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    // A frame of exactly 64 KiB is read and answered; one byte more closes the connection.
    let pad = |len: usize| {
        let empty = json!({"type": 7, "pad": ""}).to_string();
        json!({"type": 7, "pad": "p".repeat(len - empty.len())}).to_string()
    };
    alice.send_text(&pad(64 * 1024)).await;
    alice.expect(1003).await;
    alice.send_text(&pad(64 * 1024 + 1)).await;
    alice.expect_close_code(1009).await;
}

async fn huge_frame_ends_the_connection(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.server.max_frame_bytes = 2048;
        s.limits.max_content_bytes = 1024;
    })
    .await;
    let mut alice = Client::connect(&app, 1).await;
    // Far over the limit: the server stops reading mid-frame and closes; the client sees
    // 1009 or, when its close frame is overtaken by the reset, just the end.
    let frame = json!({"type": 1, "recipient_id": 2, "content": "x".repeat(200_000)});
    // The server may reset the connection while this is still being written.
    let _ = alice.send_raw(Message::text(frame.to_string())).await;
    if let Some(close) = alice.expect_close().await {
        assert_eq!(u16::from(close.code), 1009, "{close:?}");
    }
    // The node is fine, and nothing was stored.
    let mut bob = Client::connect(&app, 2).await;
    let (unread, _) = bob.sync().await;
    assert!(unread.is_empty(), "{unread:?}");
}

async fn large_content_is_stored_whole(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.server.max_frame_bytes = 256 * 1024;
        s.limits.max_content_bytes = 100_000;
    })
    .await;
    let group = app.create_group(1, &[2]).await;
    let mut alice = Client::connect(&app, 1).await;
    // Multi-byte text, well over 64 KiB: stored and returned byte for byte, or refused,
    // never cut short.
    let content: String = "ß€🦀x".repeat(10_000);
    assert_eq!(content.len(), 100_000);
    assert_eq!(alice.private(2, &content).await["code"], 2101);
    assert_eq!(alice.group(&group, &content).await["code"], 2101);
    let mut bob = Client::connect(&app, 2).await;
    let (unread, _) = bob.sync().await;
    assert_eq!(unread.len(), 2);
    for message in &unread {
        assert!(
            message["content"] == content.as_str(),
            "content changed in storage"
        );
    }
    let (history, _) = bob.history(1, "", None).await;
    assert!(history[0]["content"] == content.as_str());
}

on_both_backends!(
    content_over_the_limit_gets_4130,
    default_content_limit_is_4096_bytes,
    frame_over_max_frame_bytes_closes_with_1009,
    default_max_frame_is_64_kib,
    huge_frame_ends_the_connection,
    large_content_is_stored_whole,
);
