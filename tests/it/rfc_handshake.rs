//! RFC 6455 section 4 from outside, over raw TCP so every header is exactly as written: the
//! key must be the base64 of 16 bytes, Host is required, a wrong or missing version gets
//! 426 naming version 13, and the answer names only a subprotocol the client offered.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Backend, TestApp};

const WAIT: Duration = Duration::from_secs(10);
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// Sends a handshake with `lines` (header lines, each ending in CRLF) and the user's token
/// in an `Authorization` header; the response's status and its header block, lower-cased.
async fn handshake(app: &TestApp, lines: &str) -> (u16, String) {
    let authorization = format!("Authorization: Bearer {}\r\n", app.token(7));
    raw(app, &format!("{lines}{authorization}")).await
}

/// Sends a handshake with exactly `lines` after the upgrade headers.
async fn raw(app: &TestApp, lines: &str) -> (u16, String) {
    let addr = app.ws_url().trim_start_matches("ws://").replace("/ws", "");
    let mut socket = TcpStream::connect(&addr).await.unwrap();
    let request =
        format!("GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{lines}\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        tokio::time::timeout(WAIT, socket.read_exact(&mut byte))
            .await
            .expect("an answer within the deadline")
            .expect("the answer's head");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
    let status = head[9..12].parse().expect("a status code");
    (status, head)
}

fn with_host(app: &TestApp, rest: &str) -> String {
    let host = app.ws_url().trim_start_matches("ws://").replace("/ws", "");
    format!("Host: {host}\r\n{rest}")
}

#[tokio::test]
async fn a_key_that_is_not_16_bytes_of_base64_gets_400() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for key in [
        "abc",
        "dGhlIHNhbXBsZSBub25jZQ",
        "AAAAAAAAAAAAAAAAAAAAAAAA",
        "%%%%",
    ] {
        let lines = with_host(
            &app,
            &format!("Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n"),
        );
        let (status, head) = handshake(&app, &lines).await;
        assert_eq!(status, 400, "{key}: {head}");
    }
    let missing = with_host(&app, "Sec-WebSocket-Version: 13\r\n");
    assert_eq!(handshake(&app, &missing).await.0, 400);
    let good = with_host(
        &app,
        &format!("Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n"),
    );
    let (status, head) = handshake(&app, &good).await;
    assert_eq!(status, 101, "{head}");
    assert!(
        head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
}

#[tokio::test]
async fn a_missing_host_gets_400() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let lines = format!("Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n");
    let (status, head) = handshake(&app, &lines).await;
    assert_eq!(status, 400, "{head}");
}

#[tokio::test]
async fn a_wrong_or_missing_version_gets_426_naming_13() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for version in ["Sec-WebSocket-Version: 8\r\n", ""] {
        let lines = with_host(&app, &format!("{version}Sec-WebSocket-Key: {KEY}\r\n"));
        let (status, head) = handshake(&app, &lines).await;
        assert_eq!(status, 426, "{version:?}: {head}");
        assert!(head.contains("sec-websocket-version: 13\r\n"), "{head}");
    }
}

#[tokio::test]
async fn only_an_offered_subprotocol_is_named() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let base = format!("Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n");
    // Only the token offered, as the only credential: no subprotocol in the answer (and
    // never the token).
    let bearer = with_host(
        &app,
        &format!("{base}Sec-WebSocket-Protocol: bearer.{}\r\n", app.token(7)),
    );
    let (status, head) = raw(&app, &bearer).await;
    assert_eq!(status, 101, "{head}");
    assert!(!head.contains("sec-websocket-protocol"), "{head}");
    // chat.v1 offered: named.
    let both = with_host(
        &app,
        &format!(
            "{base}Sec-WebSocket-Protocol: chat.v1, bearer.{}\r\n",
            app.token(7)
        ),
    );
    let (status, head) = raw(&app, &both).await;
    assert_eq!(status, 101, "{head}");
    assert!(
        head.contains("sec-websocket-protocol: chat.v1\r\n"),
        "{head}"
    );
}
