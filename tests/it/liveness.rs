//! Keepalive: the node's sweeper pings every connection; a client that answers stays, a
//! silent one is closed after `server.idle_timeout`.

use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

use crate::on_both_backends;
use crate::support::{Backend, Client, TestApp, eventually};

fn quick_keepalive(s: &mut chat_gateway::Settings) {
    s.server.ping_interval = Duration::from_millis(100);
    s.server.idle_timeout = Duration::from_millis(400);
}

async fn answered_pings_keep_a_quiet_connection_open(backend: Backend) {
    let app = TestApp::spawn_with(backend, quick_keepalive).await;
    let mut quiet = Client::connect(&app, 1).await;
    // Read (and so answer pings) for well over the idle timeout, sending nothing.
    let pings = quiet.pings_within(Duration::from_millis(1200)).await;
    assert!(pings >= 3, "expected regular pings, got {pings}");
    // Still open and served.
    quiet.expect_nothing_pending().await;
}

async fn silent_connection_is_closed_after_the_idle_timeout(backend: Backend) {
    let app = TestApp::spawn_with(backend, quick_keepalive).await;
    let silent = Client::connect(&app, 2).await;
    let mut watcher = Client::connect(&app, 3).await;
    // The silent client reads nothing, so it never answers a ping.
    let what = "the silent connection closed";
    eventually(Duration::from_secs(10), what, async || {
        let (status, body) = app.get("/api/users/2/presence", 3).await;
        assert_eq!(status, 200);
        if body["online"] == false {
            return Ok(());
        }
        watcher.expect_nothing_pending().await;
        Err(body)
    })
    .await;
    // The socket ends. (Whether the close frame is still readable depends on the client:
    // answering the buffered pings after the server closed resets the connection.)
    let mut silent = silent;
    let mut frames = 0;
    while let Some(message) = silent.next_raw().await {
        assert!(
            matches!(message, Message::Ping(_) | Message::Close(_)),
            "{message:?}"
        );
        frames += 1;
        assert!(frames < 100, "the connection never ended");
    }
}

on_both_backends!(
    answered_pings_keep_a_quiet_connection_open,
    silent_connection_is_closed_after_the_idle_timeout,
);
