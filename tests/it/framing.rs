//! WebSocket framing as RFC 6455 asks of a server, driven over raw TCP where a WebSocket
//! library would refuse to send the frame: pings answered with their payload, fragmented
//! messages reassembled, protocol violations closed with 1002 and a reason, an oversized
//! message refused from its header, and a large group fan-out (written after
//! `server.group_write_delay`) reaching every member. Framing does not depend on the store,
//! so these run on SQLite only.

use serde_json::json;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

use crate::support::{Backend, Client, TestApp};

const WAIT: Duration = Duration::from_secs(10);

/// A handshake by hand; returns the socket right after the 101 response.
pub(crate) async fn raw_connect(app: &TestApp, user: i64) -> TcpStream {
    raw_handshake(TcpStream::connect(app.addr).await.unwrap(), app, user).await
}

/// A handshake by hand on a connected `socket`; returns it right after the 101 response.
pub(crate) async fn raw_handshake(mut socket: TcpStream, app: &TestApp, user: i64) -> TcpStream {
    let addr = app.addr;
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Authorization: Bearer {}\r\n\r\n",
        app.token(user)
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        tokio::time::timeout(WAIT, socket.read_exact(&mut byte))
            .await
            .expect("handshake answer")
            .unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // RFC 6455 section 1.3's example key and answer.
    assert!(
        head.to_ascii_lowercase().contains(
            "sec-websocket-accept: s3ppLMBiTxaQ9kYGzzhZRbK+xOo="
                .to_ascii_lowercase()
                .as_str()
        ),
        "{head}"
    );
    socket
}

/// A masked client frame, its header bits as given.
pub(crate) fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [9, 8, 7, 6];
    let mut out = vec![first];
    assert!(payload.len() < 126);
    out.push(0x80 | payload.len() as u8);
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// Reads server frames until the close frame (or the end): each frame's opcode and payload.
pub(crate) async fn frames_until_close(socket: &mut TcpStream) -> Vec<(u8, Vec<u8>)> {
    let mut bytes = Vec::new();
    let mut frames = Vec::new();
    loop {
        // Parse what is complete.
        while bytes.len() >= 2 {
            assert_eq!(bytes[0] & 0x70, 0, "reserved bits from the server");
            assert_eq!(bytes[1] & 0x80, 0, "server frames are not masked");
            let (len, at) = match bytes[1] & 0x7F {
                126 if bytes.len() >= 4 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
                126 => break,
                127 => panic!("no frame this large expected"),
                n => (n as usize, 2),
            };
            if bytes.len() < at + len {
                break;
            }
            let opcode = bytes[0] & 0x0F;
            frames.push((opcode, bytes[at..at + len].to_vec()));
            bytes.drain(..at + len);
            if opcode == 0x8 {
                return frames;
            }
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(WAIT, socket.read(&mut chunk))
            .await
            .expect("the server closes in time")
            .unwrap_or(0);
        if n == 0 {
            return frames;
        }
        bytes.extend_from_slice(&chunk[..n]);
    }
}

/// The close code and reason of the last frame, which must be a close frame.
pub(crate) fn close_of(frames: &[(u8, Vec<u8>)]) -> (u16, String) {
    let (opcode, payload) = frames.last().expect("frames");
    assert_eq!(*opcode, 0x8, "{frames:?}");
    let code = u16::from_be_bytes([payload[0], payload[1]]);
    (code, String::from_utf8(payload[2..].to_vec()).unwrap())
}

async fn assert_closed_with(first: u8, payload: &[u8], code: u16, reason: &str) {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut socket = raw_connect(&app, 1).await;
    socket.write_all(&masked(first, payload)).await.unwrap();
    let frames = frames_until_close(&mut socket).await;
    // 1000 (connected), 1001 with the reason, then the close frame.
    let texts: Vec<serde_json::Value> = frames
        .iter()
        .filter(|(op, _)| *op == 0x1)
        .map(|(_, p)| serde_json::from_slice(p).unwrap())
        .collect();
    assert_eq!(texts[0]["code"], 1000, "{texts:?}");
    assert_eq!(texts.last().unwrap()["code"], 1001, "{texts:?}");
    assert!(
        texts.last().unwrap()["reason"]
            .as_str()
            .unwrap()
            .contains(reason),
        "{texts:?}"
    );
    assert_eq!(close_of(&frames), (code, close_of(&frames).1.clone()));
    assert!(close_of(&frames).1.contains(reason), "{frames:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmasked_frame_closes_with_1002() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut socket = raw_connect(&app, 1).await;
    socket.write_all(&[0x81, 0x02, b'{', b'}']).await.unwrap();
    let frames = frames_until_close(&mut socket).await;
    let (code, reason) = close_of(&frames);
    assert_eq!(code, 1002);
    assert!(reason.contains("masked"), "{reason}");
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
    let mut socket = raw_connect(&app, 1).await;
    // Announce 10 MB and send none of it: the server answers 1009 without waiting for it.
    let mut header = vec![0x81, 0x80 | 127];
    header.extend_from_slice(&(10_000_000u64).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    socket.write_all(&header).await.unwrap();
    let frames = frames_until_close(&mut socket).await;
    assert_eq!(close_of(&frames).0, 1009, "{frames:?}");
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
    // 70 members on one node: over the 64 that makes a fan-out wait for
    // server.group_write_delay; each member gets each message once, in order.
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
