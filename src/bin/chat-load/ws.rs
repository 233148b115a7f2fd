//! The client side of WebSocket (RFC 6455), as small as the load tool needs: the upgrade
//! request and the check of its answer, masked client frames out, server frames in.
//!
//! The tool frames its own sockets instead of going through tungstenite so that a send is
//! one `send` system call made by whoever sends (no writer task to wake, no sink to poll),
//! and a read is one `recv` into a buffer shared by all the connections of a thread (an idle
//! connection holds no read buffer). No extension is negotiated: reserved bits must be zero.

use chat_gateway::ws::frame::{header, parse_head};
use std::borrow::Cow;
use std::fmt;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

pub use chat_gateway::ws::frame::{apply_mask, opcode};

/// The largest message accepted from the server (tungstenite's `max_message_size` as the
/// tool configured it before).
pub const MAX_MESSAGE: usize = 1 << 20;
/// The longest upgrade response header accepted.
pub const MAX_RESPONSE_HEAD: usize = 16 * 1024;
/// The longest header of a client frame: 2 bytes, 8 of length, 4 of mask.
pub const MAX_CLIENT_HEADER: usize = 14;

/// Appends a final client frame of `opcode` carrying `payload`, masked with `mask`: the
/// server's header (`chat_gateway::ws::frame::header`) with the mask bit, then the key.
pub fn encode(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    let (mut head, used) = header(opcode, payload.len());
    head[1] |= 0x80;
    out.reserve(MAX_CLIENT_HEADER + payload.len());
    out.extend_from_slice(&head[..used]);
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], mask);
}

/// A client frame with a fresh random mask, as RFC 6455 asks of clients.
pub fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAX_CLIENT_HEADER + payload.len());
    encode(
        &mut out,
        opcode,
        payload,
        rand::random::<u32>().to_ne_bytes(),
    );
    out
}

/// What one server frame amounts to.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A complete text message (borrowed from the input when it came in one frame).
    Text(Cow<'a, str>),
    /// A complete binary message (the tool ignores them).
    Binary,
    /// A fragment of a message that is not complete yet: nothing to deliver.
    Fragment,
    /// A ping, with the payload the pong must echo.
    Ping(&'a [u8]),
    /// A pong.
    Pong,
    /// The server's close frame, with its code if it gave one.
    Close(Option<u16>),
}

/// A server frame the tool cannot accept: the connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Breaks RFC 6455; the text names the rule.
    Protocol(&'static str),
    /// A message over `MAX_MESSAGE`.
    TooBig,
    /// A text message that is not UTF-8.
    BadUtf8,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Protocol(rule) => write!(f, "protocol error: {rule}"),
            FrameError::TooBig => write!(f, "message over {MAX_MESSAGE} bytes"),
            FrameError::BadUtf8 => write!(f, "text message is not UTF-8"),
        }
    }
}

/// Parses server frames; holds the fragments of a message until its last one.
pub struct Decoder {
    /// The opcode and payload so far of a fragmented message.
    partial: Option<(u8, Vec<u8>)>,
    max_message: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(MAX_MESSAGE)
    }
}

impl Decoder {
    /// A decoder refusing messages over `max_message` bytes.
    pub fn new(max_message: usize) -> Decoder {
        Decoder {
            partial: None,
            max_message,
        }
    }

    /// The first frame in `buf` and how many bytes it took; `None` when `buf` does not hold
    /// a whole frame yet (nothing is consumed then).
    pub fn parse<'b>(&mut self, buf: &'b [u8]) -> Result<Option<(Frame<'b>, usize)>, FrameError> {
        let Some(head) = parse_head(buf).map_err(FrameError::Protocol)? else {
            return Ok(None);
        };
        if head.masked {
            return Err(FrameError::Protocol("server frames must not be masked"));
        }
        let (fin, op, len, at) = (head.fin, head.opcode, head.len, head.size);
        match op {
            opcode::CLOSE | opcode::PING | opcode::PONG => {
                if !fin || len > 125 {
                    return Err(FrameError::Protocol(
                        "control frames must be whole and at most 125 bytes",
                    ));
                }
            }
            opcode::CONTINUATION | opcode::TEXT | opcode::BINARY => {
                if op == opcode::CONTINUATION && self.partial.is_none() {
                    return Err(FrameError::Protocol(
                        "continuation frame without a message to continue",
                    ));
                }
                if op != opcode::CONTINUATION && self.partial.is_some() {
                    return Err(FrameError::Protocol(
                        "new message before the last fragment of the previous one",
                    ));
                }
                let so_far = self.partial.as_ref().map_or(0, |(_, p)| p.len()) as u64;
                if so_far + len > self.max_message as u64 {
                    return Err(FrameError::TooBig);
                }
            }
            _ => return Err(FrameError::Protocol("unknown opcode")),
        }
        // The length fits in memory: it passed one of the checks above.
        let end = at + len as usize;
        if buf.len() < end {
            return Ok(None);
        }
        let payload = &buf[at..end];
        let frame = match op {
            opcode::PING => Frame::Ping(payload),
            opcode::PONG => Frame::Pong,
            opcode::CLOSE => Frame::Close(match payload {
                [] => None,
                [_] => return Err(FrameError::Protocol("close payload of one byte")),
                [hi, lo, ..] => Some(u16::from_be_bytes([*hi, *lo])),
            }),
            _ if !fin => {
                match &mut self.partial {
                    Some((_, so_far)) => so_far.extend_from_slice(payload),
                    None => self.partial = Some((op, payload.to_vec())),
                }
                Frame::Fragment
            }
            opcode::CONTINUATION => {
                let (first, mut whole) = self.partial.take().expect("checked above");
                whole.extend_from_slice(payload);
                message(first, Cow::Owned(whole))?
            }
            _ => message(op, Cow::Borrowed(payload))?,
        };
        Ok(Some((frame, end)))
    }
}

/// A complete message of opcode `op`.
fn message(op: u8, payload: Cow<'_, [u8]>) -> Result<Frame<'_>, FrameError> {
    if op == opcode::BINARY {
        return Ok(Frame::Binary);
    }
    Ok(Frame::Text(match payload {
        Cow::Borrowed(b) => Cow::Borrowed(std::str::from_utf8(b).map_err(|_| FrameError::BadUtf8)?),
        Cow::Owned(v) => Cow::Owned(String::from_utf8(v).map_err(|_| FrameError::BadUtf8)?),
    }))
}

/// The upgrade request for `path` on `host`, authenticated by `token`, and the key its
/// answer must derive its `Sec-WebSocket-Accept` from.
pub fn upgrade_request(path: &str, host: &str, token: &str) -> Result<(String, String), String> {
    if token.bytes().any(|b| b.is_ascii_control()) {
        return Err("token is not a valid header value".into());
    }
    let key = generate_key();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\
         Authorization: Bearer {token}\r\n\r\n"
    );
    Ok((request, key))
}

/// Where the response header ends (just past its `\r\n\r\n`), once it is all in `buf`.
pub fn response_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Why an upgrade was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum UpgradeError {
    /// The server answered with this status instead of 101.
    Status(u16),
    /// The answer is not a valid upgrade.
    Invalid(String),
}

/// Checks the response header `head` (up to and including its blank line) to an upgrade
/// request made with `key`.
pub fn check_response(head: &[u8], key: &str) -> Result<(), UpgradeError> {
    let invalid = |what: &str| UpgradeError::Invalid(what.to_string());
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(invalid("response header cut short")),
        Err(e) => return Err(UpgradeError::Invalid(format!("malformed response: {e}"))),
    }
    let status = response.code.unwrap_or_default();
    if status != 101 {
        return Err(UpgradeError::Status(status));
    }
    let value = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::trim)
    };
    if !value("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket")) {
        return Err(invalid("no \"Upgrade: websocket\" header"));
    }
    let upgrade_token = |v: &str| {
        v.split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
    };
    if !value("connection").is_some_and(upgrade_token) {
        return Err(invalid("no \"Connection: Upgrade\" header"));
    }
    match value("sec-websocket-accept") {
        Some(accept) if accept == derive_accept_key(key.as_bytes()) => Ok(()),
        Some(_) => Err(invalid("wrong Sec-WebSocket-Accept")),
        None => Err(invalid("no Sec-WebSocket-Accept header")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An unmasked (server) frame.
    fn server_frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![first];
        let len = payload.len();
        if len < 126 {
            out.push(len as u8);
        } else if len <= 0xFFFF {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        out.extend_from_slice(payload);
        out
    }

    /// Everything a decoder makes of `input`, fed in pieces split at `split`.
    fn decode_all(input: &[u8], cut: usize) -> Vec<String> {
        let mut dec = Decoder::default();
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for piece in [&input[..cut], &input[cut..]] {
            buf.extend_from_slice(piece);
            let mut at = 0;
            while let Some((frame, used)) = dec.parse(&buf[at..]).unwrap() {
                at += used;
                out.push(match frame {
                    Frame::Text(t) => format!("text {t}"),
                    Frame::Binary => "binary".into(),
                    Frame::Fragment => continue,
                    Frame::Ping(p) => format!("ping {}", String::from_utf8_lossy(p)),
                    Frame::Pong => "pong".into(),
                    Frame::Close(code) => format!("close {code:?}"),
                });
            }
            buf.drain(..at);
        }
        assert!(buf.is_empty(), "bytes left over");
        out
    }

    #[test]
    fn parses_7_16_and_64_bit_lengths() {
        for len in [0, 1, 125, 126, 127, 65_535, 65_536, 300_000] {
            let text = "a".repeat(len);
            let bytes = server_frame(0x81, text.as_bytes());
            let header = match len {
                0..=125 => 2,
                126..=65_535 => 4,
                _ => 10,
            };
            assert_eq!(bytes.len(), header + len);
            let mut dec = Decoder::default();
            let (frame, used) = dec.parse(&bytes).unwrap().unwrap();
            assert_eq!(used, bytes.len(), "len {len}");
            assert_eq!(frame, Frame::Text(Cow::Borrowed(text.as_str())));
            // One byte short is not a frame yet.
            assert_eq!(dec.parse(&bytes[..bytes.len() - 1]).unwrap(), None);
        }
    }

    #[test]
    fn every_split_point_gives_the_same_frames() {
        let mut input = server_frame(0x81, br#"{"code":1000}"#);
        input.extend(server_frame(0x89, b"hb"));
        input.extend(server_frame(0x01, b"frag"));
        input.extend(server_frame(0x8A, b""));
        input.extend(server_frame(0x00, b"men"));
        input.extend(server_frame(0x80, b"ted"));
        input.extend(server_frame(0x81, "é".repeat(100).as_bytes()));
        input.extend(server_frame(0x82, &[0, 1, 2]));
        input.extend(server_frame(0x88, &[0x03, 0xE9, b'b', b'y', b'e']));
        let expected = vec![
            r#"text {"code":1000}"#.to_string(),
            "ping hb".into(),
            "pong".into(),
            "text fragmented".into(),
            format!("text {}", "é".repeat(100)),
            "binary".into(),
            "close Some(1001)".into(),
        ];
        for cut in 0..=input.len() {
            assert_eq!(decode_all(&input, cut), expected, "split at {cut}");
        }
    }

    #[test]
    fn fragments_reassemble_across_control_frames() {
        let mut dec = Decoder::default();
        let a = server_frame(0x01, "ab".as_bytes());
        let ping = server_frame(0x89, b"x");
        let b = server_frame(0x80, "c".as_bytes());
        assert_eq!(dec.parse(&a).unwrap(), Some((Frame::Fragment, a.len())));
        assert_eq!(
            dec.parse(&ping).unwrap(),
            Some((Frame::Ping(b"x"), ping.len()))
        );
        let (frame, _) = dec.parse(&b).unwrap().unwrap();
        assert_eq!(frame, Frame::Text(Cow::Owned("abc".into())));
        // A UTF-8 character split across fragments is fine once whole.
        let mut dec = Decoder::default();
        let e = "é".as_bytes();
        dec.parse(&server_frame(0x01, &e[..1])).unwrap();
        let last = server_frame(0x80, &e[1..]);
        let (frame, _) = dec.parse(&last).unwrap().unwrap();
        assert_eq!(frame, Frame::Text(Cow::Owned("é".into())));
    }

    #[test]
    fn refuses_what_the_rfc_forbids() {
        let refuse = |bytes: &[u8]| Decoder::default().parse(bytes).unwrap_err();
        assert!(matches!(
            refuse(&[0x81, 0x81, 0, 0, 0, 0, 0]),
            FrameError::Protocol(_)
        ));
        assert!(matches!(refuse(&[0xC1, 0x00]), FrameError::Protocol(_)));
        assert!(matches!(refuse(&[0x80, 0x00]), FrameError::Protocol(_)));
        assert!(matches!(refuse(&[0x83, 0x00]), FrameError::Protocol(_)));
        assert!(matches!(refuse(&[0x09, 0x00]), FrameError::Protocol(_)));
        assert!(matches!(
            refuse(&[0x88, 0x01, 0x03]),
            FrameError::Protocol(_)
        ));
        assert_eq!(refuse(&[0x81, 0x02, 0xFF, 0xFE]), FrameError::BadUtf8);
        let mut big = vec![0x81, 127];
        big.extend_from_slice(&((MAX_MESSAGE as u64) + 1).to_be_bytes());
        assert_eq!(refuse(&big), FrameError::TooBig, "refused from the header");
        let mut dec = Decoder::new(4);
        dec.parse(&server_frame(0x01, b"abc")).unwrap();
        assert_eq!(
            dec.parse(&server_frame(0x80, b"de")).unwrap_err(),
            FrameError::TooBig
        );
        let mut dec = Decoder::default();
        dec.parse(&server_frame(0x01, b"a")).unwrap();
        assert!(matches!(
            dec.parse(&server_frame(0x81, b"b")).unwrap_err(),
            FrameError::Protocol(_)
        ));
        let mut top = vec![0x81, 127];
        top.extend_from_slice(&(1u64 << 63).to_be_bytes());
        assert!(matches!(refuse(&top), FrameError::Protocol(_)));
    }

    #[test]
    fn close_frames_carry_their_code() {
        let mut dec = Decoder::default();
        assert_eq!(
            dec.parse(&[0x88, 0x00]).unwrap(),
            Some((Frame::Close(None), 2))
        );
        assert_eq!(
            dec.parse(&[0x88, 0x02, 0x03, 0xF4]).unwrap(),
            Some((Frame::Close(Some(1012)), 4))
        );
    }

    #[test]
    fn client_frames_are_masked() {
        for len in [0, 5, 125, 126, 65_535, 65_536] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mask = [0x12, 0x34, 0x56, 0x78];
            let mut out = Vec::new();
            encode(&mut out, opcode::TEXT, &payload, mask);
            assert_eq!(out[0], 0x81);
            assert_eq!(out[1] & 0x80, 0x80, "mask bit");
            let (len_field, at) = match out[1] & 0x7F {
                126 => (u16::from_be_bytes([out[2], out[3]]) as usize, 4),
                127 => (
                    u64::from_be_bytes(out[2..10].try_into().unwrap()) as usize,
                    10,
                ),
                n => (n as usize, 2),
            };
            assert_eq!(len_field, len);
            assert_eq!(&out[at..at + 4], &mask);
            let mut body = out[at + 4..].to_vec();
            assert_eq!(body.len(), len);
            apply_mask(&mut body, mask);
            assert_eq!(body, payload);
        }
        let a = client_frame(opcode::PONG, b"x");
        assert_eq!(a[0], 0x8A);
        assert_eq!(a.len(), 2 + 4 + 1);
    }

    #[test]
    fn builds_the_upgrade_request() {
        let (request, key) = upgrade_request("/ws?a=1", "127.0.0.1:8080", "abc.def").unwrap();
        assert!(request.starts_with("GET /ws?a=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"));
        assert!(request.contains(&format!("\r\nSec-WebSocket-Key: {key}\r\n")));
        assert!(request.contains("\r\nAuthorization: Bearer abc.def\r\n"));
        assert!(request.ends_with("\r\n\r\n"));
        assert_eq!(key.len(), 24, "16 bytes in base64");
        assert!(upgrade_request("/", "h", "a\r\nb").is_err());
    }

    #[test]
    fn checks_the_upgrade_response() {
        // The example of RFC 6455, section 1.3.
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let ok = "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\n\
                  Connection: keep-alive, Upgrade\r\n\
                  Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        assert_eq!(response_end(ok.as_bytes()), Some(ok.len()));
        assert_eq!(response_end(&ok.as_bytes()[..ok.len() - 1]), None);
        assert_eq!(check_response(ok.as_bytes(), key), Ok(()));
        let wrong = ok.replace("s3pP", "xxxx");
        assert!(matches!(
            check_response(wrong.as_bytes(), key),
            Err(UpgradeError::Invalid(_))
        ));
        let refused = "HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(
            check_response(refused.as_bytes(), key),
            Err(UpgradeError::Status(401))
        );
        let no_upgrade = ok.replace("upgrade: WebSocket\r\n", "");
        assert!(matches!(
            check_response(no_upgrade.as_bytes(), key),
            Err(UpgradeError::Invalid(_))
        ));
        assert!(matches!(
            check_response(b"SSH-2.0-x\r\n\r\n", key),
            Err(UpgradeError::Invalid(_))
        ));
    }
}
