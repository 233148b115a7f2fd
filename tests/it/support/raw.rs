//! `Raw`: a WebSocket client written by hand over plain TCP, for the frames a WebSocket
//! library refuses to send (reserved bits, unknown opcodes, broken fragments, bad UTF-8,
//! bad close frames) and for reading exactly what the server writes, frame by frame. It
//! frames independently of the server's own code (src/ws/frame), so the two cannot share a
//! mistake.

use serde_json::Value;
use std::io::ErrorKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::app::TestApp;
use super::client::{WAIT, small_buffer_stream};

/// Frame opcodes (RFC 6455 section 5.2).
pub use chat_gateway::ws::frame::opcode as op;

/// The FIN bit of a frame's first byte.
pub const FIN: u8 = 0x80;

/// The masking key of every frame the raw client sends: four different bytes, so that a
/// payload unmasked at the wrong offset cannot come out right.
const MASK: [u8; 4] = [0x37, 0xFA, 0x21, 0x3D];

/// A masked client frame of any payload length; `first` is the whole first byte (FIN,
/// reserved bits, opcode), the length takes the shortest of its three encodings.
pub fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    match payload.len() {
        len @ 0..=125 => out.push(0x80 | len as u8),
        len @ 126..=65_535 => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&MASK);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    out
}

/// A whole (final) frame of `opcode`.
pub fn whole(opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame(FIN | opcode, payload)
}

/// A fragment of `opcode` that is not the last of its message.
pub fn part(opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame(opcode, payload)
}

/// A message of `opcode` in fragments carrying `pieces` in order: the first fragment with
/// the opcode, continuations after it, the last one final.
pub fn fragments(opcode: u8, pieces: &[&[u8]]) -> Vec<Vec<u8>> {
    let last = pieces.len() - 1;
    pieces
        .iter()
        .enumerate()
        .map(|(i, piece)| {
            let opcode = if i == 0 { opcode } else { op::CONTINUATION };
            let fin = if i == last { FIN } else { 0 };
            frame(fin | opcode, piece)
        })
        .collect()
}

/// A close frame's payload: `code`, then `reason`.
pub fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason);
    payload
}

/// A frame from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl Frame {
    /// A text frame's payload as JSON.
    pub fn json(&self) -> Value {
        assert_eq!(self.opcode, op::TEXT, "expected a text frame, got {self:?}");
        serde_json::from_slice(&self.payload).expect("a server text frame is JSON")
    }

    /// A close frame's code (`None` for an empty payload) and reason.
    pub fn close(&self) -> (Option<u16>, String) {
        assert_eq!(
            self.opcode,
            op::CLOSE,
            "expected a close frame, got {self:?}"
        );
        match &self.payload[..] {
            [] => (None, String::new()),
            [hi, lo, reason @ ..] => (
                Some(u16::from_be_bytes([*hi, *lo])),
                String::from_utf8(reason.to_vec()).expect("a UTF-8 close reason"),
            ),
            [_] => panic!("a close frame with a 1-byte payload from the server"),
        }
    }
}

/// How frames go out: in one write, a write per frame, or a write per byte (each write its
/// own TCP segment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    OneWrite,
    FrameByFrame,
    ByteByByte,
}

impl Delivery {
    pub const ALL: [Delivery; 3] = [
        Delivery::OneWrite,
        Delivery::FrameByFrame,
        Delivery::ByteByByte,
    ];
}

/// How a server's connection ended, as the client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The server closed TCP cleanly (FIN).
    Eof,
    /// The server reset the connection: whatever it had not yet delivered is lost.
    Reset,
}

/// A raw WebSocket connection to the gateway.
pub struct Raw {
    socket: TcpStream,
    /// Bytes read but not yet parsed into frames.
    buf: Vec<u8>,
    /// How the connection ended, once it has.
    pub ended: Option<End>,
}

impl Raw {
    /// Connects `user` (handshake by hand, with RFC 6455 section 1.3's example key, whose
    /// answer it checks) and reads the server's first frame, the 1000 "connected".
    pub async fn connect(app: &TestApp, user: i64) -> Raw {
        let mut raw = Raw::upgrade(app, user).await;
        let hello = raw.expect_json().await;
        assert_eq!(hello["code"], 1000, "{hello}");
        assert_eq!(hello["user_id"], user, "{hello}");
        raw
    }

    /// Connects `user` over a socket with a tiny receive buffer (and reads the 1000
    /// frame), so that a client that stops reading fills the server's side quickly.
    pub async fn connect_small_buffer(app: &TestApp, user: i64) -> Raw {
        let socket = small_buffer_stream(app).await;
        let mut raw = Raw::upgrade_on(app, user, socket).await;
        raw.expect_code(1000).await;
        raw
    }

    /// The handshake alone: the connection right after the 101 answer.
    pub async fn upgrade(app: &TestApp, user: i64) -> Raw {
        let socket = TcpStream::connect(app.addr).await.expect("connecting");
        Raw::upgrade_on(app, user, socket).await
    }

    /// The handshake with `then` in the same write (the server reads it ahead of the
    /// handshake's end): the connection right after the 101 answer.
    pub async fn upgrade_with(app: &TestApp, user: i64, then: &[u8]) -> Raw {
        let socket = TcpStream::connect(app.addr).await.expect("connecting");
        Raw::upgrade_sending(app, user, socket, then).await
    }

    /// The handshake on a connected `socket`.
    async fn upgrade_on(app: &TestApp, user: i64, socket: TcpStream) -> Raw {
        Raw::upgrade_sending(app, user, socket, &[]).await
    }

    /// The handshake on a connected `socket`, `then` written with it.
    async fn upgrade_sending(app: &TestApp, user: i64, socket: TcpStream, then: &[u8]) -> Raw {
        let addr = app.addr.to_string();
        // Each write its own segment: the byte-by-byte cases really arrive byte by byte.
        socket.set_nodelay(true).expect("TCP_NODELAY");
        let mut raw = Raw {
            socket,
            buf: Vec::new(),
            ended: None,
        };
        let request = format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Authorization: Bearer {}\r\n\r\n",
            app.token(user)
        );
        let mut request = request.into_bytes();
        request.extend_from_slice(then);
        raw.send(&request).await;
        while !raw.buf.windows(4).any(|w| w == b"\r\n\r\n") {
            assert!(
                raw.fill().await,
                "the connection ended during the handshake"
            );
        }
        let end = raw.buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8(raw.buf.drain(..end).collect()).unwrap();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
            "{head}"
        );
        raw
    }

    /// Writes `bytes` in one write.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.socket.write_all(bytes).await.expect("writing");
    }

    /// Writes `bytes` in writes of `chunk` bytes each (1: byte by byte), each its own TCP
    /// segment.
    pub async fn send_chopped(&mut self, bytes: &[u8], chunk: usize) {
        for piece in bytes.chunks(chunk) {
            self.send(piece).await;
        }
    }

    /// Writes `bytes` unless the server stops taking them for `patience`: whether they
    /// were all written (a client that floods the server without reading uses it to
    /// notice that the server has stopped reading).
    pub async fn send_within(&mut self, bytes: &[u8], patience: std::time::Duration) -> bool {
        matches!(
            tokio::time::timeout(patience, self.socket.write_all(bytes)).await,
            Ok(Ok(()))
        )
    }

    /// Writes `bytes` in writes of `chunk` bytes, stopping at the first write that fails:
    /// for bytes after a violation, which the server may no longer be there to read.
    pub async fn send_until_refused(&mut self, bytes: &[u8], chunk: usize) {
        for piece in bytes.chunks(chunk) {
            if self.socket.write_all(piece).await.is_err() {
                return;
            }
        }
    }

    /// Writes each frame with a write of its own.
    pub async fn send_each(&mut self, frames: &[Vec<u8>]) {
        for frame in frames {
            self.send(frame).await;
        }
    }

    /// Writes `frames` as `how` says.
    pub async fn deliver(&mut self, frames: &[Vec<u8>], how: Delivery) {
        match how {
            Delivery::OneWrite => self.send(&frames.concat()).await,
            Delivery::FrameByFrame => self.send_each(frames).await,
            Delivery::ByteByByte => self.send_chopped(&frames.concat(), 1).await,
        }
    }

    /// Reads more bytes; `false` once the connection has ended (recorded in `ended`).
    /// Panics if nothing arrives within `WAIT`.
    async fn fill(&mut self) -> bool {
        if self.ended.is_some() {
            return false;
        }
        let mut chunk = [0u8; 16 * 1024];
        let read = tokio::time::timeout(WAIT, self.socket.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("nothing from the server within {WAIT:?}"));
        match read {
            Ok(0) => self.ended = Some(End::Eof),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                return true;
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => self.ended = Some(End::Reset),
            Err(e) => panic!("reading: {e}"),
        }
        false
    }

    /// The next frame from the server, or `None` once the connection has ended. Checks
    /// what RFC 6455 asks of every server frame: no reserved bits, no mask. Skips the
    /// server's own pings: the sweeper pings each connection once per
    /// `server.ping_interval`, at a phase of its own, so one may come at any time (they go
    /// unanswered: no test lasts the idle timeout).
    pub async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = self.parse() {
                if frame.opcode == op::PING {
                    continue;
                }
                return Some(frame);
            }
            if !self.fill().await {
                assert!(
                    self.buf.is_empty(),
                    "the connection ended inside a frame: {:?}",
                    self.buf
                );
                return None;
            }
        }
    }

    fn parse(&mut self) -> Option<Frame> {
        let b = &self.buf;
        if b.len() < 2 {
            return None;
        }
        assert_eq!(b[0] & 0x70, 0, "reserved bits set by the server: {b:?}");
        assert_eq!(b[1] & 0x80, 0, "a masked frame from the server: {b:?}");
        let (len, at) = match b[1] & 0x7F {
            126 if b.len() < 4 => return None,
            126 => (usize::from(u16::from_be_bytes([b[2], b[3]])), 4),
            127 if b.len() < 10 => return None,
            127 => (
                u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
                10,
            ),
            len => (usize::from(len), 2),
        };
        if b.len() < at + len {
            return None;
        }
        let frame = Frame {
            fin: b[0] & 0x80 != 0,
            opcode: b[0] & 0x0F,
            payload: b[at..at + len].to_vec(),
        };
        assert!(
            frame.fin,
            "the server fragments nothing it sends: {frame:?}"
        );
        self.buf.drain(..at + len);
        Some(frame)
    }

    /// The next frame, which must exist.
    pub async fn expect_frame(&mut self) -> Frame {
        match self.next().await {
            Some(frame) => frame,
            None => panic!(
                "the connection ended ({:?}) where a frame was due",
                self.ended
            ),
        }
    }

    /// The next frame, which must be a JSON text frame.
    pub async fn expect_json(&mut self) -> Value {
        self.expect_frame().await.json()
    }

    /// The next frame, which must be a JSON text frame carrying `code`.
    pub async fn expect_code(&mut self, code: u16) -> Value {
        let frame = self.expect_json().await;
        assert_eq!(frame["code"], code, "{frame}");
        frame
    }

    /// The next frame, which must be a pong; its payload.
    pub async fn expect_pong(&mut self) -> Vec<u8> {
        let frame = self.expect_frame().await;
        assert_eq!(frame.opcode, op::PONG, "expected a pong, got {frame:?}");
        frame.payload
    }

    /// The next frame, which must be a close frame; its code and reason.
    pub async fn expect_close(&mut self) -> (Option<u16>, String) {
        self.expect_frame().await.close()
    }

    /// The server fails the connection: the very next frames are a 1001 JSON frame whose
    /// reason contains `reason`, then a close frame with `code` and the same reason.
    pub async fn expect_failed(&mut self, code: u16, reason: &str) {
        let closing = self.expect_json().await;
        assert_eq!(closing["code"], 1001, "{closing}");
        let said = closing["reason"].as_str().unwrap_or_default();
        assert!(said.contains(reason), "expected {reason:?} in {closing}");
        let (got, why) = self.expect_close().await;
        assert_eq!(got, Some(code), "close reason {why:?}");
        assert_eq!(why, said, "the close frame names the 1001 frame's reason");
    }

    /// Completes a closing handshake the server started: sends the client's close frame
    /// (the write may fail if the server has already gone) and expects the end of the
    /// connection with nothing more from the server.
    pub async fn finish(&mut self) {
        let _ = self
            .socket
            .write_all(&whole(op::CLOSE, &close_payload(1000, b"")))
            .await;
        self.expect_end().await;
    }

    /// Expects the server to end the connection with no frame before.
    pub async fn expect_end(&mut self) -> End {
        if let Some(frame) = self.next().await {
            panic!("expected the end of the connection, got {frame:?}");
        }
        self.ended.expect("ended")
    }

    /// Client-initiated close: sends a close frame with `payload` and expects the server's
    /// close frame answering it (its code and reason), then the end of the connection (the
    /// server, RFC 6455 section 7.1.1, closes TCP first).
    pub async fn close_with(&mut self, payload: &[u8]) -> (Option<u16>, String) {
        self.send(&whole(op::CLOSE, payload)).await;
        let answer = self.expect_close().await;
        assert_eq!(self.expect_end().await, End::Eof);
        answer
    }
}

/// A JSON type 7 frame (application ping, answered with 1003) of exactly `len` bytes (at
/// least 10), padded inside a string so that every length from 17 on carries varied text,
/// and with trailing whitespace below that.
pub fn ping_json(len: usize) -> Vec<u8> {
    const BARE: &[u8] = b"{\"type\":7}";
    const OPEN: &[u8] = b"{\"type\":7,\"p\":\"";
    assert!(len >= BARE.len(), "a type 7 frame is at least 10 bytes");
    let mut out = Vec::with_capacity(len);
    if len < OPEN.len() + 2 {
        out.extend_from_slice(BARE);
        out.resize(len, b' ');
    } else {
        out.extend_from_slice(OPEN);
        let pad = len - OPEN.len() - 2;
        out.extend((0..pad).map(|i| b'a' + (i % 26) as u8));
        out.extend_from_slice(b"\"}");
    }
    assert_eq!(out.len(), len);
    out
}
