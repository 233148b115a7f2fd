//! What follows a failed connection, and the floods. Each of these failed before the edge
//! limits of issue 15 (all but the prompt close):
//!
//! 1. After failing a connection (1002, 1007, 1009) the server waits a bounded time (2 s)
//!    for the client's close frame, reading and discarding what comes before it, and then
//!    ends TCP cleanly: the client never gets a reset, which could cost it the close frame.
//! 2. A client that floods pings or binary frames without reading is closed with 1013 once
//!    its outbound queue (`server.outbound_queue`) is full, like one that does not read its
//!    deliveries: the answers it does not read cost bounded memory.
//! 3. A fragmented message left incomplete longer than `server.fragment_timeout` is closed
//!    with 1008.

use std::time::{Duration, Instant};

use super::{connect, node, user};
use crate::support::raw::{End, FIN, Frame, Raw, close_payload, frame, op, part, whole};
use crate::support::{Backend, TestApp, many_frames};

/// What the server waits for the client's close frame after failing a connection.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Three ways to fail a connection: the bytes, the close code, a word of the reason.
fn violations() -> [(Vec<u8>, u16, &'static str); 3] {
    [
        (frame(FIN | 0x40 | op::TEXT, b"{}"), 1002, "reserved bits"),
        (whole(op::TEXT, b"\xff"), 1007, "not valid UTF-8"),
        (whole(op::TEXT, &[b' '; 70_000]), 1009, "max_frame_bytes"),
    ]
}

/// 16 KiB of pings: more than the server reads at once (`server.read_buffer_bytes`), so
/// some are still unread when it fails the connection.
fn trailing_pings() -> Vec<u8> {
    (0..1_000)
        .flat_map(|_| whole(op::PING, b"0123456789"))
        .collect()
}

/// A new connection that `bad` got failed with `code`: the connection, and when its close
/// frame arrived.
async fn failed(app: &TestApp, bad: Vec<u8>, code: u16, reason: &str) -> (Raw, Instant) {
    let mut raw = connect(app).await;
    raw.send(&bad).await;
    raw.expect_failed(code, reason).await;
    (raw, Instant::now())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_failing_a_connection_the_server_reads_until_the_close_frame_and_ends_cleanly() {
    let app = node().await;
    for (bad, code, reason) in violations() {
        // The violation, frames after it that the server has not read when it fails the
        // connection, and then the client's close frame, as a client that has not read
        // the server's close yet would send them.
        let mut raw = connect(&app).await;
        let close = whole(op::CLOSE, &close_payload(1000, b""));
        raw.send(&[bad, trailing_pings(), close].concat()).await;
        raw.expect_failed(code, reason).await;
        assert_eq!(raw.expect_end().await, End::Eof, "after {code}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_failing_a_connection_the_server_waits_for_the_close_frame_a_bounded_time() {
    let app = node().await;
    for (bad, code, reason) in violations() {
        // The client reads the server's close and then sends data but never its own close
        // frame: the server ends the connection (cleanly) once its wait is over.
        let (mut raw, closed_at) = failed(&app, bad, code, reason).await;
        raw.send_until_refused(&trailing_pings(), 4096).await;
        assert_eq!(raw.expect_end().await, End::Eof, "after {code}");
        let waited = closed_at.elapsed();
        assert!(waited < CLOSE_WAIT * 2, "{code}: ended after {waited:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_failing_a_connection_a_prompt_close_frame_ends_it_at_once() {
    let app = node().await;
    for (bad, code, reason) in violations() {
        let (mut raw, closed_at) = failed(&app, bad, code, reason).await;
        raw.send(&whole(op::CLOSE, &close_payload(1000, b""))).await;
        assert_eq!(raw.expect_end().await, End::Eof, "after {code}");
        assert!(
            closed_at.elapsed() < CLOSE_WAIT,
            "{code}: the server sat out its wait"
        );
    }
}

/// A node whose connections may queue 32 frames (and send frames at any rate: over the
/// rate, answers would be 4290s and the close a 1008, edge.rs's case).
async fn small_queue_node() -> TestApp {
    TestApp::spawn_with(Backend::Sqlite, |settings| {
        many_frames(settings);
        settings.server.outbound_queue = 32;
    })
    .await
}

/// Floods `frame` without reading (until the server stops taking bytes, or 20 MB), then
/// reads: the answers that fitted, then a 1001 naming the slow reader and a 1013 close.
async fn flood_is_closed_with_1013(app: &TestApp, frame: Vec<u8>) {
    let mut raw = Raw::connect_small_buffer(app, user()).await;
    let batch: Vec<u8> = (0..1_000).flat_map(|_| frame.clone()).collect();
    let mut sent = 0;
    while sent < 20_000_000 && raw.send_within(&batch, Duration::from_secs(1)).await {
        sent += batch.len();
    }
    let closing = loop {
        let Frame {
            opcode, payload, ..
        } = raw.expect_frame().await;
        match opcode {
            op::PONG => continue,
            op::TEXT => {
                let json: serde_json::Value = serde_json::from_slice(&payload).unwrap();
                if json["code"] == 4000 {
                    continue;
                }
                break json;
            }
            _ => panic!("expected the answers, then the 1001 frame: opcode {opcode}"),
        }
    };
    assert_eq!(closing["code"], 1001, "{closing}");
    assert!(
        closing["reason"].as_str().unwrap().contains("too slow"),
        "{closing}"
    );
    assert_eq!(raw.expect_close().await.0, Some(1013));
    let metrics = app.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("chat_slow_consumers_total") && !line.ends_with(" 0")),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_flooding_pings_without_reading_is_closed_with_1013() {
    let app = small_queue_node().await;
    flood_is_closed_with_1013(&app, whole(op::PING, b"flood")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_flooding_binary_frames_without_reading_is_closed_with_1013() {
    let app = small_queue_node().await;
    flood_is_closed_with_1013(&app, whole(op::BINARY, b"flood")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fragmented_message_left_incomplete_is_closed_with_1008() {
    let app = TestApp::spawn_with(Backend::Sqlite, |settings| {
        settings.server.fragment_timeout = Duration::from_millis(300);
    })
    .await;
    let mut raw = connect(&app).await;
    // A complete fragmented message is fine; one left incomplete is not, pings and all.
    raw.send(
        &[
            part(op::TEXT, b"{\"type\""),
            whole(op::CONTINUATION, b":7}"),
        ]
        .concat(),
    )
    .await;
    raw.expect_code(1003).await;
    let started = Instant::now();
    raw.send(&part(op::TEXT, b"{\"type\"")).await;
    raw.send(&whole(op::PING, b"still here")).await;
    assert_eq!(raw.expect_pong().await, b"still here");
    raw.expect_failed(1008, "fragment").await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    raw.finish().await;
}
