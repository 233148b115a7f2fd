//! Server frames in, client frames out: the load tool's framing on the server's frame
//! format and rules (`chat_gateway::ws::frame`), keeping only what a client does otherwise:
//! masking what it sends, refusing masked frames, and borrowing what it reads.

use chat_gateway::ws::frame::{FrameError, check, close_code, encode, parse_head};
use std::borrow::Cow;

pub use chat_gateway::ws::frame::opcode;

/// The largest message accepted from the server (tungstenite's `max_message_size` as the
/// tool configured it before).
pub const MAX_MESSAGE: usize = 1 << 20;

/// A final client frame of `opcode` carrying `payload`, masked with a fresh random key, as
/// RFC 6455 asks of clients.
pub fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mask = rand::random::<u32>().to_ne_bytes();
    encode(&mut out, true, opcode, payload, Some(mask));
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
    /// a whole frame yet (nothing is consumed then). A frame the server's rules refuse
    /// (`chat_gateway::ws::frame::check`) ends the connection.
    pub fn parse<'b>(&mut self, buf: &'b [u8]) -> Result<Option<(Frame<'b>, usize)>, FrameError> {
        let Some(head) = parse_head(buf).map_err(FrameError::Protocol)? else {
            return Ok(None);
        };
        if head.masked {
            return Err(FrameError::Protocol("server frames must not be masked"));
        }
        let so_far = self.partial.as_ref().map(|(_, p)| p.len() as u64);
        check(&head, so_far, self.max_message)?;
        let (fin, op, at) = (head.fin, head.opcode, head.size);
        // The length fits in memory: it passed the size check.
        let end = at + head.len as usize;
        if buf.len() < end {
            return Ok(None);
        }
        let payload = &buf[at..end];
        let frame = match op {
            opcode::PING => Frame::Ping(payload),
            opcode::PONG => Frame::Pong,
            opcode::CLOSE => Frame::Close(close_code(payload)?),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An unmasked (server) frame: `first` is its first byte (the fin bit and the opcode).
    fn server_frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(&mut out, first & 0x80 != 0, first & 0x0F, payload, None);
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
    fn client_frames_are_masked_and_read_back() {
        let frame = client_frame(opcode::PONG, b"x");
        let head = parse_head(&frame).unwrap().unwrap();
        assert_eq!(
            (head.fin, head.opcode, head.masked, head.len),
            (true, opcode::PONG, true, 1)
        );
        assert_eq!(frame.len(), 2 + 4 + 1);
        let mut payload = frame[6..].to_vec();
        chat_gateway::ws::frame::apply_mask(&mut payload, frame[2..6].try_into().unwrap());
        assert_eq!(payload, b"x");
    }
}
