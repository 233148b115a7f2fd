//! A token's life on a live connection: warned (1004) `auth.expiry_warning` before its
//! `exp`, closed with 1008 "token expired" at it, unless the client sends a fresh token of
//! the same user (type 8, answered 2400), which moves the expiry; a refused refresh (4001)
//! leaves the old expiry in place. Token handling does not depend on the store: SQLite only.

use serde_json::json;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::{Backend, Client, TestApp};

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn app(warning: Duration) -> TestApp {
    TestApp::spawn_with(Backend::Sqlite, |s| s.auth.expiry_warning = warning).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_is_warned_then_closed_when_its_token_expires() {
    let app = app(Duration::from_secs(2)).await;
    let token = app.token_for(1, Duration::from_secs(3));
    let started = Instant::now();
    let mut alice = Client::connect_url(&app.ws_url(), &token, 1).await;
    let warning = alice.expect(1004).await;
    let expires_at = warning["expires_at"].as_u64().expect("expires_at");
    assert!(
        expires_at > now_s() && expires_at <= now_s() + 3,
        "{warning}"
    );
    // The connection still works between the warning and the expiry.
    assert_eq!(alice.private(2, "before expiry").await["code"], 2101);
    let closing = alice.expect(1001).await;
    assert_eq!(closing["reason"], "token expired", "{closing}");
    assert_eq!(alice.expect_close_code(1008).await, "token expired");
    // Closed at the expiry, not before: exp is whole seconds, so at least 2 s after connecting.
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(SystemTime::now() >= UNIX_EPOCH + Duration::from_secs(expires_at));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_token_moves_the_expiry() {
    let app = app(Duration::from_secs(60)).await;
    let token = app.token_for(1, Duration::from_secs(2));
    let started = Instant::now();
    let mut alice = Client::connect_url(&app.ws_url(), &token, 1).await;
    // Expiring within the warning: warned at once.
    let first = alice.expect(1004).await["expires_at"].as_u64().unwrap();
    let fresh = app.token_for(1, Duration::from_secs(5));
    alice.send(json!({"type": 8, "content": fresh})).await;
    let refreshed = alice.expect(2400).await;
    let second = refreshed["expires_at"].as_u64().expect("expires_at");
    assert!(second > first, "{refreshed}");
    // Warned again for the new expiry (it is within the warning too), and closed at it,
    // not at the first.
    assert_eq!(alice.expect(1004).await["expires_at"], second);
    assert_eq!(alice.expect(1001).await["reason"], "token expired");
    alice.expect_close_code(1008).await;
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_refresh_gets_4001_and_keeps_the_old_expiry() {
    let app = app(Duration::from_secs(1)).await;
    let token = app.token_for(1, Duration::from_secs(3));
    let mut alice = Client::connect_url(&app.ws_url(), &token, 1).await;
    alice
        .send(json!({"type": 8, "content": app.token(2)}))
        .await;
    let refused = alice.expect(4001).await;
    assert!(
        refused["reason"].as_str().unwrap().contains("another user"),
        "{refused}"
    );
    alice
        .send(json!({"type": 8, "content": "not.a.token"}))
        .await;
    assert_eq!(alice.expect(4001).await["reason"], "malformed token");
    alice.send(json!({"type": 8})).await;
    let bad = alice.expect(4000).await;
    assert_eq!(bad["reason"], "missing field: content (a token)", "{bad}");
    // The old token still rules: warned, then closed.
    alice.expect(1004).await;
    alice.expect(1001).await;
    alice.expect_close_code(1008).await;
}
