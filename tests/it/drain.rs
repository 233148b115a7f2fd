//! Draining a node (SIGTERM): connections close with 1012 spread over
//! `server.drain_window`, each after answering the frame it was handling, so that every
//! message a client saw acknowledged is stored and nothing stored goes unacknowledged;
//! readiness answers 503 and upgrades are refused while the node drains; the process exits
//! 0. (`closing::*::shutdown_sends_1001_then_closes_1012` checks the frames themselves.)

use serde_json::json;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::support::app::SECRET;
use crate::support::cluster::http_status;
use crate::support::services::free_port;
use crate::support::{Backend, Client, TestApp, eventually, many_frames};

/// Sends messages from alice to bob without waiting for their answers until the node
/// closes the connection; how many were acknowledged as stored.
async fn send_until_closed(alice: &mut Client) -> (usize, usize) {
    let (mut sent, mut acked) = (0, 0);
    loop {
        // Keep a few frames in flight, so that the drain finds one being handled.
        while sent - acked < 8 {
            let frame = json!({"type": 1, "recipient_id": 2, "content": format!("m{sent}"), "client_msg_id": format!("c{sent}")});
            if alice.send_checked(frame).await.is_err() {
                return (sent, acked);
            }
            sent += 1;
        }
        let answer = alice.recv_or_close().await;
        match answer.as_ref().map(|a| a["code"].as_u64()) {
            Some(Some(2100 | 2101)) => acked += 1,
            Some(Some(1001)) | None => return (sent, acked),
            _ => panic!("unexpected {answer:?}"),
        }
    }
}

/// When each client got its 1001 and 1012 close, after `since`, in order; each client read
/// by a task of its own, so that one read does not delay the time of another.
fn close_times(clients: Vec<Client>, since: Instant) -> tokio::task::JoinHandle<Vec<Duration>> {
    let waits: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            tokio::spawn(async move {
                client.expect(1001).await;
                client.expect_close_code(1012).await;
                since.elapsed()
            })
        })
        .collect();
    tokio::spawn(async move {
        let mut at = Vec::new();
        for wait in waits {
            at.push(wait.await.unwrap());
        }
        at.sort();
        at
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_answers_the_frames_in_flight_and_spreads_the_closes() {
    let mut app = TestApp::spawn_with(Backend::Sqlite, |s| {
        many_frames(s);
        s.limits.stranger_messages = 1_000_000;
        s.server.drain_window = Duration::from_secs(1);
        s.server.shutdown_grace = Duration::from_secs(3);
    })
    .await;
    let mut idle = Vec::new();
    for user in 10..30 {
        idle.push(Client::connect(&app, user).await);
    }
    let mut alice = Client::connect(&app, 1).await;
    let sender = tokio::spawn(async move {
        let counts = send_until_closed(&mut alice).await;
        (alice, counts)
    });
    // Let some messages through before the drain starts.
    eventually(
        Duration::from_secs(10),
        "a few messages stored",
        async || app.sql_int("SELECT COUNT(*) FROM messages").await >= 20,
    )
    .await;
    let started = Instant::now();
    let closes = close_times(idle, started);
    tokio::time::timeout(Duration::from_secs(10), app.shutdown())
        .await
        .expect("the drain ends within the grace");
    let (_, (sent, acked)) = sender.await.unwrap();
    let stored = app.sql_int("SELECT COUNT(*) FROM messages").await as usize;
    assert_eq!(
        stored, acked,
        "{sent} sent, {acked} acknowledged, {stored} stored"
    );
    // Spread: the 20 idle connections closed over most of the 1 s window, not at once.
    let at = closes.await.unwrap();
    let spread = *at.last().unwrap() - at[0];
    assert!(
        spread >= Duration::from_millis(500),
        "closed within {spread:?}: {at:?}"
    );
}

/// The node as a process, killed on drop if the test fails first.
struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_the_node_and_it_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_chat-gateway"))
        .env("CHAT__SERVER__BIND", format!("127.0.0.1:{port}"))
        .env(
            "CHAT__STORAGE__URL",
            format!("sqlite:{}/chat.db", dir.path().display()),
        )
        .env("CHAT__AUTH__JWT_SECRET", SECRET)
        .env("CHAT__SERVER__DRAIN_WINDOW", "1s")
        .env("CHAT__SERVER__SHUTDOWN_GRACE", "4s")
        .env("CHAT__LOG__LEVEL", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("starting the gateway");
    let mut node = Node(child);
    let ready = async || {
        tokio::task::spawn_blocking(move || http_status(port, "/health/ready"))
            .await
            .unwrap()
    };
    eventually(Duration::from_secs(20), "the node ready", async || {
        ready().await == Some(200)
    })
    .await;
    let auth = chat_gateway::auth::Authenticator::new(SECRET.as_bytes());
    let url = format!("ws://127.0.0.1:{port}/ws");
    let mut clients = Vec::new();
    for user in 1..=10 {
        let token = auth.mint(user, Duration::from_secs(600));
        clients.push(Client::connect_url(&url, &token, user).await);
    }
    let status = Command::new("kill")
        .args(["-TERM", &node.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let signalled = Instant::now();
    // Readiness turns 503 at once (within a second), while the node still answers HTTP.
    eventually(Duration::from_secs(1), "readiness 503", async || {
        ready().await == Some(503)
    })
    .await;
    // A new WebSocket is refused.
    let token = auth.mint(99, Duration::from_secs(600));
    let refused = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/ws"))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    let at = close_times(clients, signalled).await.unwrap();
    assert!(
        *at.last().unwrap() - at[0] >= Duration::from_millis(500),
        "the closes were not spread: {at:?}"
    );
    let exit = tokio::task::spawn_blocking(move || {
        let status = node.0.wait().unwrap();
        std::mem::forget(node);
        status
    })
    .await
    .unwrap();
    assert_eq!(exit.code(), Some(0), "{exit:?}");
    assert!(signalled.elapsed() < Duration::from_secs(10));
}
