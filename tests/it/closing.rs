//! The server closing a connection, always with a 1001 frame saying why and then the close
//! code: draining on shutdown (1012), replaced by a newer device (1008), too slow to read its
//! outbound queue (1013).

use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::on_both_backends;
use crate::support::client::WAIT;
use crate::support::{Backend, Client, TestApp, many_frames};

async fn shutdown_sends_1001_then_closes_1012(backend: Backend) {
    let mut app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut bob = Client::connect(&app, 2).await;
    let ack = alice.private(2, "before the drain").await;
    assert_eq!(ack["code"], 2100);
    bob.expect(2000).await;
    tokio::time::timeout(WAIT, app.shutdown())
        .await
        .expect("the drain finishes without the clients' help");
    for client in [&mut alice, &mut bob] {
        let closing = client.expect(1001).await;
        assert_eq!(closing["from"], "");
        assert!(
            closing["reason"]
                .as_str()
                .unwrap()
                .contains("shutting down"),
            "{closing}"
        );
        client.expect_close_code(1012).await;
    }
    let refused = Client::open(app.ws_url().into_client_request().unwrap(), 3).await;
    assert!(refused.is_err(), "a drained node accepts no connections");
}

async fn device_limit_replaces_the_oldest(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.server.max_devices_per_user = 2).await;
    let mut first = Client::connect(&app, 1).await;
    let mut second = Client::connect(&app, 1).await;
    first.expect_nothing_pending().await;
    let mut third = Client::connect(&app, 1).await;
    let closing = first.expect(1001).await;
    assert!(
        closing["reason"].as_str().unwrap().contains("replaced"),
        "{closing}"
    );
    first.expect_close_code(1008).await;
    // The two newest stay connected and get pushes.
    let mut bob = Client::connect(&app, 2).await;
    let ack = bob.private(1, "still here?").await;
    assert_eq!(ack["code"], 2100, "{ack}");
    assert_eq!(second.expect(2000).await["content"], "still here?");
    assert_eq!(third.expect(2000).await["content"], "still here?");
    // Other users are not affected by user 1's limit.
    let mut bob2 = Client::connect(&app, 2).await;
    bob.expect_nothing_pending().await;
    bob2.expect_nothing_pending().await;
}

async fn slow_reader_gets_1001_then_1013(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        many_frames(s);
        s.server.outbound_queue = 4;
        s.limits.max_content_bytes = 60_000;
        s.limits.stranger_messages = 1_000_000;
    })
    .await;
    let mut alice = Client::connect(&app, 1).await;
    // Bob connects and then stops reading.
    let mut bob = Client::connect_small_buffer(&app, 2).await;
    let content = "s".repeat(60_000);
    let mut sent = 0;
    loop {
        let ack = alice.private(2, &content).await;
        sent += 1;
        match ack["code"].as_u64() {
            Some(2100) => assert!(sent < 2000, "bob's queue never overflowed"),
            // The server gave up on bob: he is offline now.
            Some(2101) => break,
            _ => panic!("unexpected answer {ack}"),
        }
    }
    // Bob reads again: what was queued, then why, then the close code.
    let mut pushed = 0;
    let closing = loop {
        let frame = bob.recv().await;
        match frame["code"].as_u64() {
            Some(2000) => pushed += 1,
            Some(1001) => break frame,
            _ => panic!("unexpected frame {frame}"),
        }
    };
    assert!(
        closing["reason"].as_str().unwrap().contains("too slow"),
        "{closing}"
    );
    bob.expect_close_code(1013).await;
    assert!(
        pushed < sent,
        "some pushes were dropped: {pushed} of {sent}"
    );
    // Nothing is lost: every message waits in bob's unread sync.
    let mut bob = Client::connect(&app, 2).await;
    let (unread, end) = bob.sync_limit(500).await;
    assert_eq!(unread.len(), sent, "{end}");
    let text = app.metrics().await;
    assert!(text.contains("chat_slow_consumers_total 1"), "{text}");
}

on_both_backends!(
    shutdown_sends_1001_then_closes_1012,
    device_limit_replaces_the_oldest,
    slow_reader_gets_1001_then_1013,
);
