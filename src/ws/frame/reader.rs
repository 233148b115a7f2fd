//! The server's reader of client frames: incremental, reassembling fragments, holding no
//! buffer while its connection is idle, and refusing an oversized message from its header.

use bytes::{Buf, Bytes, BytesMut};
use futures_util::FutureExt as _;
use std::io::{self, Read};
use tokio::io::Interest;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;
use tokio::time::{Duration, Instant};

use super::format::{apply_mask, opcode, parse_head};
use super::rules::{FrameError, check, close_code};

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

/// Why reading stopped.
#[derive(Debug)]
pub enum ReadError {
    /// The client closed the TCP connection.
    Eof,
    /// The socket failed.
    Io(io::Error),
    /// The client sent a frame the server refuses.
    Frame(FrameError),
    /// A message (a fragmented one, or one frame's bytes) stayed incomplete longer than the
    /// reader allows.
    Stalled,
}

/// Parses client frames out of the bytes read from one socket.
pub struct FrameReader {
    buf: BytesMut,
    /// The opcode and payload so far of a fragmented message.
    partial: Option<(u8, BytesMut)>,
    /// Payload bytes of a refused frame still to skip.
    discard: u64,
    /// A message over the limit was refused before its last fragment: its remaining
    /// fragments are skipped too.
    skipping: bool,
    /// Bytes allocated for a read.
    chunk: usize,
    /// The largest message accepted.
    max_message: usize,
    /// The last read filled the buffer, so more may be waiting where readiness cannot see
    /// it (bytes the HTTP server read ahead of the upgrade).
    more_buffered: bool,
    /// Since when a message has been incomplete (bytes of a frame, or fragments, waiting
    /// for the rest).
    incomplete_since: Option<Instant>,
    /// How long a message may stay incomplete.
    max_incomplete: Duration,
}

impl FrameReader {
    /// A reader that reads in `chunk`-byte buffers (larger for a larger frame) and refuses
    /// messages over `max_message` bytes.
    pub fn new(chunk: usize, max_message: usize) -> FrameReader {
        FrameReader {
            buf: BytesMut::new(),
            partial: None,
            discard: 0,
            skipping: false,
            chunk: chunk.max(16),
            max_message,
            more_buffered: true,
            incomplete_since: None,
            max_incomplete: Duration::MAX,
        }
    }

    /// The same reader, giving up (`ReadError::Stalled`) on a message that stays
    /// incomplete longer than `limit` from its first byte.
    pub fn with_stall_limit(mut self, limit: Duration) -> FrameReader {
        self.max_incomplete = limit;
        self
    }

    /// When the message under way must be complete; `None` between messages.
    fn deadline(&mut self) -> Option<Instant> {
        if self.partial.is_none() && self.buf.is_empty() && self.discard == 0 {
            self.incomplete_since = None;
            return None;
        }
        let since = *self.incomplete_since.get_or_insert_with(Instant::now);
        since.checked_add(self.max_incomplete)
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
                if matches!(incoming, Incoming::Text(_) | Incoming::Binary(_)) {
                    // A message is complete: the next one's clock starts with its first byte.
                    self.incomplete_since = None;
                }
                if self.buf.is_empty() {
                    // Nothing left over: let the buffer go with the frame that holds it.
                    self.buf = BytesMut::new();
                }
                return Ok(incoming);
            }
            let deadline = self.deadline();
            if self.buf.is_empty() && !self.more_buffered {
                // Idle: wait for the socket with no buffer, then read it directly. Polled
                // readiness keeps its waker in the socket itself: this future is a few
                // bytes where `readable()` would take 150 in every idle connection.
                loop {
                    let readable = std::future::poll_fn(|cx| socket.poll_read_ready(cx));
                    until(deadline, readable).await?;
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
            if self.buf.is_empty() {
                // Only `more_buffered` leads here with nothing read: the first read after the
                // upgrade. Bytes the HTTP server read ahead come back at once; if there are
                // none (the read would wait), nothing was read, and the connection waits on
                // the socket without a buffer like any idle one, instead of holding this one
                // until its client first speaks.
                match io.read_buf(&mut self.buf).now_or_never() {
                    Some(Ok(0)) => return Err(ReadError::Eof),
                    Some(Ok(read)) => self.more_buffered = read == room,
                    Some(Err(e)) => return Err(ReadError::Io(e)),
                    None => {
                        self.more_buffered = false;
                        self.buf = BytesMut::new();
                    }
                }
                continue;
            }
            let read = until(deadline, io.read_buf(&mut self.buf)).await?;
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
            if self.skipping && op == opcode::CONTINUATION {
                // The rest of a refused message: skipped as it arrives.
                self.buf.advance(at);
                self.discard = len;
                self.skipping = !fin;
                continue;
            }
            let so_far = match &self.partial {
                Some((_, p)) => Some(p.len() as u64),
                // Still in a refused message: a new one may not start.
                None => self.skipping.then_some(0),
            };
            match check(&head, so_far, self.max_message) {
                Ok(()) => {}
                Err(FrameError::TooBig) => {
                    // Refused from its header: skip its payload as it arrives, and the rest
                    // of its message.
                    self.buf.advance(at);
                    self.discard = len;
                    self.partial = None;
                    self.skipping = !fin;
                    return Err(FrameError::TooBig);
                }
                Err(refused) => return Err(refused),
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
                    close_code(&payload)?;
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

    /// Adds bytes as if read from the socket: for the unit and property tests and the fuzz
    /// targets (fuzz/), which drive `parse` without a socket.
    #[doc(hidden)]
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }
}

/// Awaits `io`, unless `deadline` passes first.
async fn until<T>(
    deadline: Option<Instant>,
    io: impl Future<Output = io::Result<T>>,
) -> Result<T, ReadError> {
    match deadline {
        None => io.await.map_err(ReadError::Io),
        // Boxed: only a connection in the middle of a message waits with a timer, and the
        // timer would otherwise enlarge every idle connection's reading future.
        Some(deadline) => Box::pin(tokio::time::timeout_at(deadline, io))
            .await
            .map_err(|_| ReadError::Stalled)?
            .map_err(ReadError::Io),
    }
}

/// What a connection reads from `pieces`, each handed to a new reader (refusing messages
/// over `max_message` bytes) as one read: every message and control frame, and the errors,
/// as the server acts on them: after a message over the limit it reads on (its payload is
/// skipped), after the client's close frame or any other error it stops. For the property tests and the fuzz targets
/// (fuzz/), whose oracle is that the outcome does not depend on how the bytes are split.
#[doc(hidden)]
pub fn read_pieces<'a>(
    pieces: impl IntoIterator<Item = &'a [u8]>,
    max_message: usize,
) -> Vec<Result<Incoming, FrameError>> {
    let mut reader = FrameReader::new(512, max_message);
    let mut outcomes = Vec::new();
    for piece in pieces {
        reader.feed(piece);
        loop {
            match reader.parse() {
                Ok(Some(Incoming::Close)) => {
                    outcomes.push(Ok(Incoming::Close));
                    return outcomes;
                }
                Ok(Some(incoming)) => outcomes.push(Ok(incoming)),
                Ok(None) => break,
                Err(FrameError::TooBig) => outcomes.push(Err(FrameError::TooBig)),
                Err(refused) => {
                    outcomes.push(Err(refused));
                    return outcomes;
                }
            }
        }
    }
    outcomes
}

/// Reads what the socket holds now (at most `chunk` bytes) onto the end of `buf`.
fn read_now(socket: &TcpStream, buf: &mut BytesMut, chunk: usize) -> io::Result<usize> {
    let start = buf.len();
    buf.resize(start + chunk, 0);
    match read_ready(socket, &mut buf[start..]) {
        Ok(read) => {
            buf.truncate(start + read);
            Ok(read)
        }
        Err(e) => {
            buf.truncate(start);
            Err(e)
        }
    }
}

/// One read of what a ready socket holds now into `into`: the bytes read (0 at EOF). A read
/// that leaves room means the socket is drained: its readiness is cleared at once (as
/// tokio's own `poll_read` does) rather than by one more read that would find nothing, which
/// saves a system call per frame on a connection that sends one frame at a time. The load
/// tool reads its sockets with it too.
#[inline]
pub fn read_ready(socket: &TcpStream, into: &mut [u8]) -> io::Result<usize> {
    let room = into.len();
    let mut got = 0;
    let result = socket.try_io(Interest::READABLE, || {
        let n = (&*socket2::SockRef::from(socket)).read(into)?;
        got = n;
        if 0 < n && n < room {
            // Clears the readiness (unless a newer event arrived meanwhile).
            Err(io::ErrorKind::WouldBlock.into())
        } else {
            Ok(n)
        }
    });
    match result {
        Ok(n) => Ok(n),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock && got > 0 => Ok(got),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::frame::encode;

    /// A masked client frame.
    fn client_frame(fin: bool, op: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(&mut out, fin, op, payload, Some([0x37, 0xfa, 0x21, 0x3d]));
        out
    }

    fn reader() -> FrameReader {
        FrameReader::new(512, 1024)
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
        // Fragments count together; the rest of the refused message is skipped, and the
        // client's close frame after it is read (not taken for a stray continuation).
        let mut r = reader();
        r.feed(&client_frame(false, opcode::TEXT, &[b'a'; 600]));
        r.feed(&client_frame(false, opcode::CONTINUATION, &[b'a'; 600]));
        r.feed(&client_frame(false, opcode::CONTINUATION, &[b'a'; 600]));
        r.feed(&client_frame(true, opcode::PING, b"p"));
        r.feed(&client_frame(true, opcode::CONTINUATION, &[b'a'; 600]));
        r.feed(&client_frame(true, opcode::CLOSE, &[3, 232]));
        assert_eq!(r.parse(), Err(FrameError::TooBig));
        assert_eq!(
            r.parse(),
            Ok(Some(Incoming::Ping(Bytes::from_static(b"p"))))
        );
        assert_eq!(r.parse(), Ok(Some(Incoming::Close)));
        // A new message before the refused one's last fragment still breaks the rules.
        let mut r = reader();
        r.feed(&client_frame(false, opcode::TEXT, &[b'a'; 1025]));
        r.feed(&client_frame(true, opcode::TEXT, b"{}"));
        assert_eq!(r.parse(), Err(FrameError::TooBig));
        assert!(matches!(r.parse(), Err(FrameError::Protocol(_))));
        // Exactly the limit is fine.
        let mut r = reader();
        r.feed(&client_frame(true, opcode::BINARY, &[0; 1024]));
        assert_eq!(r.parse(), Ok(Some(Incoming::Binary(1024))));
    }
}
