//! WebSocket framing as RFC 6455 asks of a server, driven over raw TCP where a WebSocket
//! library would refuse to send the frame: pings answered with their payload, fragmented
//! messages reassembled, protocol violations closed with 1002 and a reason, an oversized
//! message refused from its header, and a large group fan-out (written by the paced
//! flusher, at most `server.group_write_delay` later) reaching every member. Framing does not depend on the store,
//! so these run on SQLite only.

use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

use crate::support::raw::{Raw, frame, whole};
use crate::support::{Backend, Client, TestApp};

async fn assert_closed_with(first: u8, payload: &[u8], code: u16, reason: &str) {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut raw = Raw::connect(&app, 1).await;
    raw.send(&frame(first, payload)).await;
    // A 1001 frame with the reason, then the close frame with the code and reason.
    raw.expect_failed(code, reason).await;
    raw.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmasked_frame_closes_with_1002() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut raw = Raw::connect(&app, 1).await;
    raw.send(&[0x81, 0x02, b'{', b'}']).await;
    raw.expect_failed(1002, "masked").await;
    raw.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_bits_close_with_1002() {
    assert_closed_with(0x80 | 0x40 | 0x1, b"{}", 1002, "reserved bits").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_opcode_closes_with_1002() {
    assert_closed_with(0x80 | 0x3, b"{}", 1002, "unknown opcode").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_code_that_may_not_travel_closes_with_1002() {
    for code in [999u16, 1005, 1006, 1016, 5000] {
        assert_closed_with(0x88, &code.to_be_bytes(), 1002, "close code").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_reason_that_is_not_utf8_closes_with_1007() {
    assert_closed_with(0x88, &[0x03, 0xE8, 0xFF, 0xFE], 1007, "UTF-8").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuation_without_a_message_closes_with_1002() {
    assert_closed_with(0x80, b"{}", 1002, "continuation").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_message_is_refused_from_its_header() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut raw = Raw::connect(&app, 1).await;
    // Announce 10 MB and send none of it: the server answers 1009 without waiting for it.
    let mut header = vec![0x81, 0x80 | 127];
    header.extend_from_slice(&(10_000_000u64).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    raw.send(&header).await;
    raw.expect_failed(1009, "max_frame_bytes").await;
}

/// A frame written together with the handshake reaches the server with it, ahead of the
/// upgrade; it is answered, and so is the next one, read once the connection is idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_sent_with_the_handshake_is_answered() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let heartbeat = whole(0x1, br#"{"type":7}"#);
    let mut raw = Raw::upgrade_with(&app, 1, &heartbeat).await;
    raw.expect_code(1000).await;
    raw.expect_code(1003).await;
    raw.send(&heartbeat).await;
    raw.expect_code(1003).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_is_answered_with_its_payload() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut alice = Client::connect(&app, 1).await;
    alice
        .send_raw(Message::Ping(b"are you there"[..].into()))
        .await
        .unwrap();
    match alice.next_raw().await {
        Some(Message::Pong(payload)) => assert_eq!(&payload[..], b"are you there"),
        other => panic!("expected the pong, got {other:?}"),
    }
    // Still serving.
    alice.send(json!({"type": 7})).await;
    alice.expect(1003).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragmented_message_is_reassembled_around_a_ping() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut bob = Client::connect(&app, 2).await;
    let text = json!({"type": 1, "recipient_id": 2, "content": "in three pieces"}).to_string();
    let (a, rest) = text.as_bytes().split_at(10);
    let (b, c) = rest.split_at(10);
    let frames = [
        Frame::message(a.to_vec(), OpCode::Data(Data::Text), false),
        Frame::ping(b"between".to_vec()),
        Frame::message(b.to_vec(), OpCode::Data(Data::Continue), false),
        Frame::message(c.to_vec(), OpCode::Data(Data::Continue), true),
    ];
    for frame in frames {
        alice.send_raw(Message::Frame(frame)).await.unwrap();
    }
    let ack = alice.recv().await;
    assert_eq!(ack["code"], 2100, "{ack}");
    assert_eq!(bob.expect(2000).await["content"], "in three pieces");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_group_fan_out_reaches_every_member() {
    // 70 members on one node: over the 64 that makes a fan-out paced (at most
    // server.group_write_delay); each member gets each message once, in order.
    let app = TestApp::spawn(Backend::Sqlite).await;
    let members: Vec<i64> = (2..=70).collect();
    let group = app.create_group(1, &members).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut clients = Vec::new();
    for &member in &members {
        clients.push(Client::connect(&app, member).await);
    }
    for n in 0..3 {
        let ack = alice.group(&group, &format!("hello {n}")).await;
        assert_eq!(ack["code"], 2100, "{ack}");
    }
    // A private message to a member goes out as well, whatever is pending for the group.
    assert_eq!(alice.private(2, "just you").await["code"], 2100);
    for (client, &member) in clients.iter_mut().zip(&members) {
        let expected = if member == 2 { 4 } else { 3 };
        let mut got = Vec::new();
        for _ in 0..expected {
            got.push(
                client.expect(2000).await["content"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
        let group_only: Vec<&String> = got.iter().filter(|c| c.starts_with("hello")).collect();
        assert_eq!(
            group_only,
            ["hello 0", "hello 1", "hello 2"],
            "member {member}"
        );
        assert_eq!(
            got.len() - group_only.len(),
            expected - 3,
            "member {member}: {got:?}"
        );
        client.expect_nothing_pending().await;
    }
}
