//! The edge's limits, each driven over raw TCP by a client that breaks it: a connection that
//! never completes its request head, an oversized head, a full node, too many handshakes,
//! too many connections from one address (behind a trusted proxy), frames over the rate,
//! a message left incomplete, a flood of slow handshakes. (The server's bounded wait for a
//! close, and floods of pings or binary frames from a client that never reads, are in
//! autobahn/pending.rs.) Each refusal is counted in /metrics. The edge does
//! not depend on the store, so these run on SQLite only.

use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::raw::{Raw, op, part, whole};
use crate::support::{Backend, Client, TestApp, eventually};

const WAIT: Duration = Duration::from_secs(10);

/// A TCP connection to the app that has sent nothing.
async fn tcp(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.addr).await.unwrap()
}

/// Reads until the server closes the connection (or resets it); how long that took.
async fn closed_within(socket: &mut TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut sink = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((started + limit).into(), socket.read(&mut sink)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("still open after {limit:?}"),
        }
    }
}

/// The first line and the rest of an HTTP answer read until the server closes or the
/// head ends.
async fn http_answer(socket: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout(WAIT, socket.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&chunk[..n]),
            Err(_) => panic!("no answer in time"),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// A handshake of `user` claiming, in `X-Forwarded-For`, to come from `forwarded`: its
/// status.
async fn forwarded_handshake(app: &TestApp, user: i64, forwarded: &str) -> u16 {
    let bearer = format!("Bearer {}", app.token(user));
    let headers = [
        ("authorization", bearer.as_str()),
        ("x-forwarded-for", forwarded),
    ];
    app.handshake("", &headers).await.0
}

/// The value of one `chat_edge_refusals_total` series.
async fn refusals(app: &TestApp, reason: &str) -> u64 {
    let metrics = app.metrics().await;
    let series = format!("chat_edge_refusals_total{{reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series.as_str()))
        .unwrap_or_else(|| panic!("no {series} in {metrics}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_half_and_endless_handshakes_are_closed_within_the_timeout() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.server.handshake_timeout = Duration::from_secs(1);
    })
    .await;
    let limit = Duration::from_secs(5);
    let mut silent = tcp(&app).await;
    let mut half = tcp(&app).await;
    half.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut endless = tcp(&app).await;
    let writer = tokio::spawn(async move {
        endless.write_all(b"GET /ws HTTP/1.1\r\n").await.unwrap();
        // A header line every 100 ms, forever: each byte arrives well within any read
        // timeout, the head never ends.
        let mut ticker = tokio::time::interval(Duration::from_millis(100));
        for i in 0.. {
            ticker.tick().await;
            if endless
                .write_all(format!("X-{i}: y\r\n").as_bytes())
                .await
                .is_err()
            {
                return i;
            }
        }
        unreachable!()
    });
    assert!(closed_within(&mut silent, limit).await >= Duration::from_millis(900));
    closed_within(&mut half, limit).await;
    let lines = tokio::time::timeout(limit, writer)
        .await
        .expect("endless head cut")
        .unwrap();
    assert!(lines < 50, "the endless head was cut after {lines} lines");
    eventually(WAIT, "three handshake timeouts counted", async || {
        refusals(&app, "handshake_timeout").await >= 3
    })
    .await;
    // A kept-alive REST connection idle past the timeout is closed too.
    let mut rest = tcp(&app).await;
    rest.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(http_answer(&mut rest).await.starts_with("HTTP/1.1 200"));
    closed_within(&mut rest, limit).await;
    // And a well-behaved client still connects and chats.
    let mut alice = Client::connect(&app, 1).await;
    assert_eq!(alice.private(2, "still here").await["code"], 2101);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_request_head_or_header_line_gets_431() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    // The whole head over server.max_header_bytes (16 KiB), in lines of 1 KiB.
    let mut socket = tcp(&app).await;
    let mut head = String::from("GET /ws HTTP/1.1\r\nHost: x\r\n");
    for i in 0..20 {
        head.push_str(&format!("X-Filler-{i}: {}\r\n", "f".repeat(1000)));
    }
    head.push_str("\r\n");
    let _ = socket.write_all(head.as_bytes()).await;
    let answer = http_answer(&mut socket).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    // One line over half of it, in a head that fits.
    let (status, body) = app.handshake("", &[("x-long", &"l".repeat(9000))]).await;
    assert_eq!(status, 431, "{body}");
    assert!(body["error"].as_str().unwrap().contains("x-long"), "{body}");
    let (status, body) = app
        .handshake(&format!("?pad={}", "p".repeat(9000)), &[])
        .await;
    assert_eq!(status, 431, "{body}");
    assert!(refusals(&app, "headers_too_large").await >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_node_refuses_with_503_and_retry_after_and_readiness_says_full() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| s.server.max_connections = 2).await;
    let (status, _) = app
        .request(reqwest::Method::GET, "/health/ready", None, None)
        .await;
    assert_eq!(status, 200);
    let _alice = Client::connect(&app, 1).await;
    let bob = Client::connect(&app, 2).await;
    let response = reqwest::Client::new()
        .get(app.url("/ws"))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .bearer_auth(app.token(3))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let (status, body) = app
        .request(reqwest::Method::GET, "/health/ready", None, None)
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (503, Some("full")),
        "{body}"
    );
    assert_eq!(refusals(&app, "node_full").await, 1);
    // A place frees when a connection ends.
    drop(bob);
    eventually(WAIT, "a place for carol", async || {
        let (status, _) = app
            .request(reqwest::Method::GET, "/health/ready", None, None)
            .await;
        status == 200
    })
    .await;
    let mut carol = Client::connect(&app, 3).await;
    assert_eq!(carol.private(1, "in").await["code"], 2100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_max_handshakes_are_shed_at_once() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.server.max_handshakes = 3;
        s.server.handshake_timeout = Duration::from_secs(2);
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(tcp(&app).await);
    }
    // The three are accepted (their places taken) before the fourth arrives.
    eventually(WAIT, "a fourth connection shed with 503", async || {
        let mut fourth = tcp(&app).await;
        let answer = http_answer(&mut fourth).await;
        answer.starts_with("HTTP/1.1 503").then_some(answer)
    })
    .await;
    // Once the idle ones time out, clients get in again.
    for mut socket in idle {
        closed_within(&mut socket, Duration::from_secs(6)).await;
    }
    assert!(refusals(&app, "handshakes_full").await >= 1);
    let mut alice = Client::connect(&app, 1).await;
    assert_eq!(alice.private(2, "in").await["code"], 2101);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_address_count_the_client_behind_a_trusted_proxy() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.server.max_connections_per_ip = 1;
        s.server.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    let open = |client: &'static str, user: i64| {
        let app = &app;
        async move {
            let request = Client::request_with(app, user, &[("x-forwarded-for", client)]);
            Client::open_with_response(request, user).await
        }
    };
    let first = open("203.0.113.1", 1).await.expect("the first from .1");
    let status = forwarded_handshake(&app, 2, "203.0.113.1").await;
    assert_eq!(status, 429, "a second connection from 203.0.113.1");
    let _other = open("203.0.113.2", 3)
        .await
        .expect("another address gets in");
    // A forged hop left of the proxy's own entry changes nothing.
    let status = forwarded_handshake(&app, 4, "198.51.100.9, 203.0.113.1").await;
    assert_eq!(status, 429);
    assert_eq!(refusals(&app, "address_full").await, 2);
    drop(first);
    eventually(WAIT, "203.0.113.1 gets back in", async || {
        open("203.0.113.1", 5).await.ok()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| s.server.max_connections_per_ip = 1).await;
    let request = Client::request_with(&app, 1, &[("x-forwarded-for", "203.0.113.1")]);
    let _first = Client::open_with_response(request, 1).await.expect("first");
    // Another claimed address, the same real peer (127.0.0.1): refused.
    let status = forwarded_handshake(&app, 2, "203.0.113.2").await;
    assert_eq!(status, 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_over_the_rate_get_4290_and_keeping_on_closes_with_1008() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.limits.frames_per_second = 1;
        s.limits.frame_burst = 5;
        s.limits.frame_strikes = 3;
    })
    .await;
    let mut alice = Client::connect(&app, 1).await;
    for _ in 0..5 {
        alice.send(json!({"type": 7})).await;
        alice.expect(1003).await;
    }
    alice.send(json!({"type": 7})).await;
    let refused = alice.expect(4290).await;
    let wait = refused["retry_after_ms"].as_u64().expect("retry_after_ms");
    assert!((1..=1000).contains(&wait), "{refused}");
    // Three strikes are forgiven; the fourth refusal in a row closes.
    for _ in 0..2 {
        alice.send(json!({"type": 7})).await;
        alice.expect(4290).await;
    }
    alice.send(json!({"type": 7})).await;
    let reason = alice.expect_close_code(1008).await;
    assert!(reason.contains("frames_per_second"), "{reason}");
    assert_eq!(refusals(&app, "frame_rate").await, 3);
    assert_eq!(refusals(&app, "frame_rate_close").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_rate_takes_a_burst_of_40_frames() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut alice = Client::connect(&app, 1).await;
    for _ in 0..40 {
        alice.send(json!({"type": 7})).await;
    }
    for _ in 0..40 {
        alice.expect(1003).await;
    }
    alice.send(json!({"type": 7})).await;
    let next = alice.recv().await;
    // 40 frames took under a second to send, so at most 20 more were earned meanwhile:
    // either the 41st is refused, or the rate let it through after a pause.
    assert!(next["code"] == 4290 || next["code"] == 1003, "{next}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_left_incomplete_closes_with_1008_after_fragment_timeout() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.server.fragment_timeout = Duration::from_secs(1);
    })
    .await;
    // A first fragment (FIN clear) and nothing more.
    let mut raw = Raw::connect(&app, 1).await;
    let started = Instant::now();
    raw.send(&part(op::TEXT, b"{\"type\":")).await;
    raw.expect_failed(1008, "fragment_timeout").await;
    assert!(started.elapsed() >= Duration::from_millis(900));
    raw.finish().await;
    // Half a frame (its header, part of the payload) is a message left incomplete too.
    let mut raw = Raw::connect(&app, 2).await;
    let frame = whole(op::TEXT, b"{\"type\": 7}");
    raw.send(&frame[..frame.len() - 3]).await;
    raw.expect_failed(1008, "fragment_timeout").await;
    assert_eq!(refusals(&app, "fragment_timeout").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_slow_handshakes_is_shed_while_clients_keep_chatting() {
    // 3,000 client sockets and as many of the node's, in this one process.
    chat_gateway::fdlimit::raise();
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.server.handshake_timeout = Duration::from_secs(2);
    })
    .await;
    let mut alice = Client::connect(&app, 1).await;
    let mut bob = Client::connect(&app, 2).await;
    // Bob writes first, so alice is not a stranger to him.
    assert_eq!(bob.private(1, "hello").await["code"], 2100);
    alice.expect(2000).await;
    // Each flood connection sends the start of a request and then nothing: past
    // server.max_handshakes (2048) they are answered 503 at once, the others wait for the
    // handshake timeout.
    let mut flood = Vec::new();
    for _ in 0..3000 {
        let mut socket = tcp(&app).await;
        let _ = socket.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n").await;
        flood.push(socket);
    }
    let flooded = Instant::now();
    // Meanwhile the connected clients chat as usual.
    for i in 0..10 {
        let ack = alice.private(2, &format!("during the flood {i}")).await;
        assert_eq!(ack["code"], 2100, "{ack}");
        assert_eq!(
            bob.expect(2000).await["content"],
            format!("during the flood {i}")
        );
    }
    // Every flood connection is closed within the timeout (plus scheduling slack).
    for socket in &mut flood {
        let left = Duration::from_secs(6).saturating_sub(flooded.elapsed());
        closed_within(socket, left.max(Duration::from_millis(1))).await;
    }
    let shed = refusals(&app, "handshakes_full").await;
    let timed_out = refusals(&app, "handshake_timeout").await;
    assert_eq!(shed + timed_out, 3000, "shed {shed}, timed out {timed_out}");
    assert!(shed >= 3000 - 2048, "{shed}");
    // And new clients get in again.
    let mut carol = Client::connect(&app, 3).await;
    assert_eq!(carol.private(1, "after the flood").await["code"], 2100);
}
