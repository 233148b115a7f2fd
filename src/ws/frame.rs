//! WebSocket framing (RFC 6455), server side: client frames in, server frames out.
//!
//! The gateway frames its own sockets instead of going through a general WebSocket library,
//! for two reasons. Out: a delivery is written straight to an idle socket by whoever
//! delivers it (outbox.rs), with a header built on the stack in front of payload bytes that
//! every recipient shares, so a fan-out to 10,000 sockets wakes no task and copies nothing.
//! In: an idle connection waits for its socket to become readable holding no read buffer,
//! and a frame over the size limit is refused from its header, its payload discarded as it
//! arrives rather than buffered.
//!
//! No extension is negotiated, so every reserved bit must be zero.

use bytes::{Buf, Bytes, BytesMut};
use std::io::{self, Read};
use tokio::io::Interest;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;

/// Frame opcodes.
pub mod opcode {
    /// Continues a fragmented message.
    pub const CONTINUATION: u8 = 0x0;
    /// A text message (UTF-8).
    pub const TEXT: u8 = 0x1;
    /// A binary message.
    pub const BINARY: u8 = 0x2;
    /// Close.
    pub const CLOSE: u8 = 0x8;
    /// Ping.
    pub const PING: u8 = 0x9;
    /// Pong.
    pub const PONG: u8 = 0xA;
}

/// The longest header the server writes (no mask: 2 + 8 bytes).
pub const MAX_HEADER: usize = 10;

/// The header of a final, unmasked (server) frame of `opcode` carrying `len` bytes: the
/// buffer and how many of its bytes are the header.
pub fn header(opcode: u8, len: usize) -> ([u8; MAX_HEADER], usize) {
    let mut head = [0u8; MAX_HEADER];
    head[0] = 0x80 | opcode;
    let used = if len < 126 {
        head[1] = len as u8;
        2
    } else if len <= u16::MAX as usize {
        head[1] = 126;
        head[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        4
    } else {
        head[1] = 127;
        head[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    };
    (head, used)
}

/// The fixed part of a frame's header, as both ends read it (the load tool too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The last frame of its message.
    pub fin: bool,
    pub opcode: u8,
    /// A masking key follows the length (client frames).
    pub masked: bool,
    /// The payload's length.
    pub len: u64,
    /// Bytes of header before the masking key: 2, 4 or 10.
    pub size: usize,
}

/// Reads the header at the start of `b`; `None` until its length bytes have arrived.
/// Refuses reserved bits (no extension is negotiated) and a 64-bit length with its top bit
/// set, naming the rule.
pub fn parse_head(b: &[u8]) -> Result<Option<Head>, &'static str> {
    if b.len() < 2 {
        return Ok(None);
    }
    if b[0] & 0x70 != 0 {
        return Err("reserved bits set, but no extension was negotiated");
    }
    let (len, size) = match b[1] & 0x7F {
        126 if b.len() < 4 => return Ok(None),
        126 => (u64::from(u16::from_be_bytes([b[2], b[3]])), 4),
        127 if b.len() < 10 => return Ok(None),
        127 => {
            let len = u64::from_be_bytes(b[2..10].try_into().expect("8 bytes"));
            if len >> 63 != 0 {
                return Err("frame length has its top bit set");
            }
            (len, 10)
        }
        short => (u64::from(short), 2),
    };
    Ok(Some(Head {
        fin: b[0] & 0x80 != 0,
        opcode: b[0] & 0x0F,
        masked: b[1] & 0x80 != 0,
        len,
        size,
    }))
}

/// The payload of a close frame: the code, then the reason (cut to fit the 125-byte limit
/// of a control frame, on a character boundary).
pub fn close_payload(code: u16, reason: &str) -> Bytes {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    payload.into()
}

/// A complete message or control frame from the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A text message, valid UTF-8.
    Text(Bytes),
    /// A binary message (refused by the protocol; only its size is kept).
    Binary(usize),
    /// A ping, with the payload the pong must echo.
    Ping(Bytes),
    /// A pong.
    Pong,
    /// The client's close frame.
    Close,
}

/// A client frame the server cannot accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Breaks RFC 6455; the text names the rule (close 1002).
    Protocol(&'static str),
    /// A message over the size limit (close 1009).
    TooBig,
    /// A text message that is not UTF-8 (close 1007).
    BadUtf8,
}

/// Why reading stopped.
#[derive(Debug)]
pub enum ReadError {
    /// The client closed the TCP connection.
    Eof,
    /// The socket failed.
    Io(io::Error),
    /// The client sent a frame the server refuses.
    Frame(FrameError),
}

/// Parses client frames out of the bytes read from one socket.
pub struct FrameReader {
    buf: BytesMut,
    /// The opcode and payload so far of a fragmented message.
    partial: Option<(u8, BytesMut)>,
    /// Payload bytes of a refused frame still to skip.
    discard: u64,
    /// Bytes allocated for a read.
    chunk: usize,
    /// The largest message accepted.
    max_message: usize,
    /// The last read filled the buffer, so more may be waiting where readiness cannot see
    /// it (bytes the HTTP server read ahead of the upgrade).
    more_buffered: bool,
}

impl FrameReader {
    /// A reader that reads in `chunk`-byte buffers (larger for a larger frame) and refuses
    /// messages over `max_message` bytes.
    pub fn new(chunk: usize, max_message: usize) -> FrameReader {
        FrameReader {
            buf: BytesMut::new(),
            partial: None,
            discard: 0,
            chunk: chunk.max(16),
            max_message,
            more_buffered: true,
        }
    }

    /// Reads until the next complete message or control frame. `io` is the upgraded
    /// connection; `socket` the same TCP socket, on which an idle connection waits for
    /// readability without holding a read buffer.
    pub async fn next<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        socket: &TcpStream,
    ) -> Result<Incoming, ReadError> {
        loop {
            if let Some(incoming) = self.parse().map_err(ReadError::Frame)? {
                if self.buf.is_empty() {
                    // Nothing left over: let the buffer go with the frame that holds it.
                    self.buf = BytesMut::new();
                }
                return Ok(incoming);
            }
            if self.buf.is_empty() && !self.more_buffered {
                // Idle: wait for the socket with no buffer, then read it directly.
                loop {
                    socket.readable().await.map_err(ReadError::Io)?;
                    match read_now(socket, &mut self.buf, self.chunk) {
                        Ok(0) => return Err(ReadError::Eof),
                        Ok(_) => break,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            self.buf = BytesMut::new();
                        }
                        Err(e) => return Err(ReadError::Io(e)),
                    }
                }
                continue;
            }
            if self.buf.capacity() == self.buf.len() {
                self.buf.reserve(self.chunk);
            }
            let room = self.buf.capacity() - self.buf.len();
            let read = io.read_buf(&mut self.buf).await.map_err(ReadError::Io)?;
            if read == 0 {
                return Err(ReadError::Eof);
            }
            // Until a read leaves room, the upgraded connection may hold bytes that it read
            // ahead of the handshake's end, which the socket's readiness cannot show.
            self.more_buffered = read == room;
        }
    }

    /// The next complete message or control frame among the bytes read so far, or `None`
    /// when more bytes are needed.
    pub fn parse(&mut self) -> Result<Option<Incoming>, FrameError> {
        loop {
            if self.discard > 0 {
                let skip = self.discard.min(self.buf.len() as u64);
                self.buf.advance(skip as usize);
                self.discard -= skip;
                if self.discard > 0 {
                    return Ok(None);
                }
            }
            let b = &self.buf[..];
            let Some(head) = parse_head(b).map_err(FrameError::Protocol)? else {
                return Ok(None);
            };
            if !head.masked {
                return Err(FrameError::Protocol("client frames must be masked"));
            }
            let (fin, op, len, mut at) = (head.fin, head.opcode, head.len, head.size);
            if b.len() < at + 4 {
                return Ok(None);
            }
            let mask: [u8; 4] = b[at..at + 4].try_into().expect("4 bytes");
            at += 4;
            match op {
                opcode::CLOSE | opcode::PING | opcode::PONG => {
                    if !fin || len > 125 {
                        return Err(FrameError::Protocol(
                            "control frames must be whole and at most 125 bytes",
                        ));
                    }
                }
                opcode::CONTINUATION if self.partial.is_none() => {
                    return Err(FrameError::Protocol(
                        "continuation frame without a message to continue",
                    ));
                }
                opcode::TEXT | opcode::BINARY if self.partial.is_some() => {
                    return Err(FrameError::Protocol(
                        "new message before the last fragment of the previous one",
                    ));
                }
                opcode::CONTINUATION | opcode::TEXT | opcode::BINARY => {
                    let so_far = self.partial.as_ref().map_or(0, |(_, p)| p.len()) as u64;
                    if so_far + len > self.max_message as u64 {
                        // Refused from its header: skip its payload as it arrives.
                        self.buf.advance(at);
                        self.discard = len;
                        self.partial = None;
                        return Err(FrameError::TooBig);
                    }
                }
                _ => return Err(FrameError::Protocol("unknown opcode")),
            }
            let total = at + len as usize;
            if self.buf.len() < total {
                self.buf.reserve(total - self.buf.len());
                return Ok(None);
            }
            let mut payload = self.buf.split_to(total);
            payload.advance(at);
            apply_mask(&mut payload, mask);
            match op {
                opcode::PING => return Ok(Some(Incoming::Ping(payload.freeze()))),
                opcode::PONG => return Ok(Some(Incoming::Pong)),
                opcode::CLOSE => {
                    if payload.len() == 1 {
                        return Err(FrameError::Protocol(
                            "a close frame's payload is empty or starts with a 2-byte code",
                        ));
                    }
                    return Ok(Some(Incoming::Close));
                }
                _ => {}
            }
            let (kind, message) = match self.partial.take() {
                Some((kind, mut so_far)) => {
                    so_far.extend_from_slice(&payload);
                    (kind, so_far)
                }
                None => (op, payload),
            };
            if !fin {
                self.partial = Some((kind, message));
                continue;
            }
            return match kind {
                opcode::TEXT => match std::str::from_utf8(&message) {
                    Ok(_) => Ok(Some(Incoming::Text(message.freeze()))),
                    Err(_) => Err(FrameError::BadUtf8),
                },
                _ => Ok(Some(Incoming::Binary(message.len()))),
            };
        }
    }

    /// Adds bytes as if read from the socket (for tests).
    #[cfg(test)]
    fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }
}

/// Reads what the socket holds now (at most `chunk` bytes) onto the end of `buf`. A read
/// that leaves room means the socket is drained: its readiness is cleared at once (as
/// tokio's own `poll_read` does) rather than by one more read that would find nothing, which
/// saves a system call per frame on a connection that sends one frame at a time.
fn read_now(socket: &TcpStream, buf: &mut BytesMut, chunk: usize) -> io::Result<usize> {
    let start = buf.len();
    buf.resize(start + chunk, 0);
    let mut got = 0;
    let result = socket.try_io(Interest::READABLE, || {
        let n = (&*socket2::SockRef::from(socket)).read(&mut buf[start..])?;
        got = n;
        if 0 < n && n < chunk {
            // Clears the readiness (unless a newer event arrived meanwhile).
            Err(io::ErrorKind::WouldBlock.into())
        } else {
            Ok(n)
        }
    });
    let read = match result {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock && got > 0 => got,
        Err(e) => {
            buf.truncate(start);
            return Err(e);
        }
    };
    buf.truncate(start + read);
    Ok(read)
}

/// XORs `data` with a masking key: unmasks a client frame's payload (and masks one, for a
/// client: the load tool uses it too).
pub fn apply_mask(data: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let word = u64::from_ne_bytes((&*chunk).try_into().expect("8 bytes")) ^ wide;
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= mask[i % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame.
    fn client_frame(fin: bool, op: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut out = vec![if fin { 0x80 } else { 0 } | op];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 0xFFFF => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    fn reader() -> FrameReader {
        FrameReader::new(512, 1024)
    }

    #[test]
    fn headers_use_the_shortest_length() {
        assert_eq!(header(opcode::TEXT, 5).0[..2], [0x81, 5]);
        let (head, used) = header(opcode::TEXT, 300);
        assert_eq!(head[..used], [0x81, 126, 1, 44]);
        let (head, used) = header(opcode::BINARY, 70_000);
        assert_eq!(head[..used], [0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
        assert_eq!(header(opcode::PING, 0).0[..2], [0x89, 0]);
    }

    #[test]
    fn close_payload_fits_a_control_frame() {
        assert_eq!(&close_payload(1000, "")[..], &[3, 232]);
        let long = "é".repeat(100);
        let payload = close_payload(1009, &long);
        assert!(payload.len() <= 125);
        assert!(std::str::from_utf8(&payload[2..]).is_ok());
    }

    #[test]
    fn reads_a_frame_that_arrives_byte_by_byte() {
        let mut r = reader();
        let payload = "x".repeat(300);
        let frame = client_frame(true, opcode::TEXT, payload.as_bytes());
        for byte in &frame[..frame.len() - 1] {
            r.feed(&[*byte]);
            assert_eq!(r.parse(), Ok(None));
        }
        r.feed(&frame[frame.len() - 1..]);
        assert_eq!(
            r.parse(),
            Ok(Some(Incoming::Text(Bytes::from(payload.clone()))))
        );
        assert_eq!(r.parse(), Ok(None));
    }

    #[test]
    fn reassembles_fragments_around_a_ping() {
        let mut r = reader();
        r.feed(&client_frame(false, opcode::TEXT, b"hel"));
        r.feed(&client_frame(true, opcode::PING, b"p"));
        r.feed(&client_frame(false, opcode::CONTINUATION, b"lo "));
        r.feed(&client_frame(
            true,
            opcode::CONTINUATION,
            "wörld".as_bytes(),
        ));
        assert_eq!(
            r.parse(),
            Ok(Some(Incoming::Ping(Bytes::from_static(b"p"))))
        );
        assert_eq!(
            r.parse(),
            Ok(Some(Incoming::Text(Bytes::from("hello wörld"))))
        );
    }

    #[test]
    fn refuses_what_breaks_the_rules() {
        let cases: Vec<(Vec<u8>, FrameError)> = vec![
            (
                vec![0x81, 0x00],
                FrameError::Protocol("client frames must be masked"),
            ),
            (
                client_frame(true, 0x1 | 0x40, b"x"),
                FrameError::Protocol("reserved bits set, but no extension was negotiated"),
            ),
            (
                client_frame(true, 0x3, b"x"),
                FrameError::Protocol("unknown opcode"),
            ),
            (
                client_frame(true, opcode::CONTINUATION, b"x"),
                FrameError::Protocol("continuation frame without a message to continue"),
            ),
            (
                client_frame(false, opcode::PING, b"x"),
                FrameError::Protocol("control frames must be whole and at most 125 bytes"),
            ),
            (
                client_frame(true, opcode::TEXT, &[b'{', 0xff, 0xfe, b'}']),
                FrameError::BadUtf8,
            ),
            (
                client_frame(true, opcode::CLOSE, &[3]),
                FrameError::Protocol(
                    "a close frame's payload is empty or starts with a 2-byte code",
                ),
            ),
        ];
        for (bytes, error) in cases {
            let mut r = reader();
            r.feed(&bytes);
            assert_eq!(r.parse(), Err(error), "{bytes:?}");
        }
        let mut r = reader();
        r.feed(&client_frame(false, opcode::TEXT, b"a"));
        r.feed(&client_frame(true, opcode::TEXT, b"b"));
        assert!(matches!(r.parse(), Err(FrameError::Protocol(_))));
    }

    #[test]
    fn a_message_over_the_limit_is_refused_from_its_header_and_skipped() {
        let mut r = reader();
        let frame = client_frame(true, opcode::TEXT, &[b'a'; 1025]);
        r.feed(&frame[..20]);
        assert_eq!(r.parse(), Err(FrameError::TooBig));
        // The rest of its payload is discarded as it arrives; the next frame is read.
        r.feed(&frame[20..]);
        r.feed(&client_frame(true, opcode::CLOSE, &[3, 232]));
        assert_eq!(r.parse(), Ok(Some(Incoming::Close)));
        // Fragments count together.
        let mut r = reader();
        r.feed(&client_frame(false, opcode::TEXT, &[b'a'; 600]));
        r.feed(&client_frame(true, opcode::CONTINUATION, &[b'a'; 600]));
        assert_eq!(r.parse(), Err(FrameError::TooBig));
        // Exactly the limit is fine.
        let mut r = reader();
        r.feed(&client_frame(true, opcode::BINARY, &[0; 1024]));
        assert_eq!(r.parse(), Ok(Some(Incoming::Binary(1024))));
    }

    #[test]
    fn unmask_matches_the_bytewise_definition() {
        let mask = [1, 2, 3, 250];
        for len in 0..40 {
            let data: Vec<u8> = (0..len as u8).collect();
            let mut fast = data.clone();
            apply_mask(&mut fast, mask);
            let slow: Vec<u8> = data
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4])
                .collect();
            assert_eq!(fast, slow);
        }
    }
}
