//! One open WebSocket: its TCP socket, shared by the reader task and by every sender.
//!
//! Sending writes the frame straight into the socket from the sending thread (`try_write`
//! under a short per-connection lock, never held across an await): no task is woken, and
//! nothing crosses threads. Only what the socket does not take (its buffer is full) is kept
//! in a pending buffer, flushed by a writer task on the connection's IO thread that waits
//! for writability and ends once the buffer is empty. Frames keep their order: while bytes
//! are pending, new frames queue behind them.
//!
//! Reading happens on the connection's IO thread: wait for readability holding no buffer,
//! read into a buffer shared by the thread's connections, handle every complete frame in
//! it, and keep only a trailing partial frame.
//!
//! Over TLS (`wss://`) the same paths carry TLS records: a send encrypts its frame under the
//! connection's TLS lock (taken after the write lock, so records leave in the order they
//! were made), and a read decrypts what arrived before the frames are parsed.

use chat_gateway::protocol::codes::close;
use chat_gateway::ws::frame::{close_payload, read_ready};
use socket2::SockRef;
use std::cell::RefCell;
use std::io;
use std::net::Shutdown;
use std::sync::{Arc, Mutex};
use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::task::AbortHandle;

use crate::stats::lock;
use crate::ws::frame::{Decoder, Frame, client_frame, opcode};

/// The read buffer each IO thread shares among its connections (grown for a larger frame).
const SCRATCH: usize = 64 * 1024;
/// A read is attempted with at least this much room.
const MIN_READ: usize = 4 * 1024;
/// Most reads one connection makes per wake-up while they fill the buffer, so a flooded
/// connection does not starve the others of its thread (the rest waits for the next turn).
const MAX_READS: usize = 8;
/// A writer's pending buffer is kept, once empty, up to this capacity.
const KEEP: usize = 4 * 1024;

thread_local! {
    static READ_BUFFER: RefCell<Vec<u8>> = RefCell::new(vec![0; SCRATCH]);
}

/// Ciphertext read from a TLS socket per step: small enough that what it decrypts to is
/// drained before the next read, so rustls's buffer of received plaintext never fills.
const TLS_READ: usize = 4 * 1024;

/// An open WebSocket connection.
pub struct Conn {
    stream: TcpStream,
    /// The TLS session of a `wss://` connection.
    tls: Option<Mutex<rustls::ClientConnection>>,
    /// The IO thread (runtime) whose reactor polls the socket.
    shard: Handle,
    out: Mutex<Out>,
}

#[derive(Default)]
struct Out {
    /// Bytes the socket did not take yet; non-empty only while a writer task runs.
    pending: Vec<u8>,
    /// The writer task, while one flushes `pending`.
    writer: Option<AbortHandle>,
    /// A write failed: the socket was shut down, the reader ends the connection.
    broken: bool,
    /// This side's close frame went out: nothing is sent after it.
    closed: bool,
}

/// Why a reader stopped.
#[derive(Debug)]
pub enum End {
    /// The server closed the connection (close frame or EOF).
    Closed,
    /// The socket failed or the server broke the protocol.
    Error,
}

impl Conn {
    /// Wraps a connected socket (with its TLS session, if any); must be called on the IO
    /// thread that polls it.
    pub fn new(stream: TcpStream, tls: Option<rustls::ClientConnection>) -> Conn {
        Conn {
            stream,
            tls: tls.map(Mutex::new),
            shard: Handle::current(),
            out: Mutex::default(),
        }
    }

    /// The runtime of the IO thread the connection lives on.
    pub fn shard(&self) -> &Handle {
        &self.shard
    }

    /// Sends a text frame; false when the connection is broken or closing.
    pub fn send_text(self: &Arc<Self>, text: &str) -> bool {
        self.send(opcode::TEXT, text.as_bytes())
    }

    /// Sends this side's close frame (no code, as before); nothing is sent after it.
    pub fn send_close(self: &Arc<Self>) -> bool {
        self.send(opcode::CLOSE, &[])
    }

    fn send(self: &Arc<Self>, op: u8, payload: &[u8]) -> bool {
        let mut frame = client_frame(op, payload);
        let mut out = lock(&self.out);
        if out.broken || out.closed {
            return false;
        }
        out.closed = op == opcode::CLOSE;
        if let Some(tls) = &self.tls {
            match encrypt(&mut lock(tls), &frame) {
                Ok(records) => frame = records,
                Err(_) => {
                    self.fail(&mut out);
                    return false;
                }
            }
        }
        self.write(out, frame)
    }

    /// Writes `bytes` (a frame, or TLS records) behind what is pending, with `out` locked.
    fn write(self: &Arc<Self>, mut out: std::sync::MutexGuard<'_, Out>, frame: Vec<u8>) -> bool {
        if frame.is_empty() {
            return true;
        }
        if !out.pending.is_empty() {
            // A writer is flushing: queue behind what it has.
            out.pending.extend_from_slice(&frame);
            return true;
        }
        let written = match self.stream.try_write(&frame) {
            Ok(n) if n == frame.len() => return true,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(_) => {
                self.fail(&mut out);
                return false;
            }
        };
        out.pending.extend_from_slice(&frame[written..]);
        let writer = self.shard.spawn(flush(self.clone()));
        out.writer = Some(writer.abort_handle());
        true
    }

    /// A write failed: shut the socket down so the reader sees the end.
    fn fail(&self, out: &mut Out) {
        out.broken = true;
        out.pending = Vec::new();
        let _ = SockRef::from(&self.stream).shutdown(Shutdown::Both);
    }

    /// Stops the writer task, if one runs (the connection is being dropped).
    pub fn abort_writer(&self) {
        if let Some(writer) = lock(&self.out).writer.take() {
            writer.abort();
        }
    }

    /// Reads frames until the connection ends, handing each text message to `on_text`,
    /// answering pings and the server's close. `leftover`: bytes read past the frames the
    /// handshake consumed; `decoder`: its state.
    pub async fn read(
        self: &Arc<Self>,
        mut decoder: Decoder,
        mut pending: Vec<u8>,
        mut on_text: impl FnMut(&str),
    ) -> End {
        if !pending.is_empty() {
            match self.handle_frames(&mut decoder, &pending, &mut on_text) {
                Ok(used) => {
                    pending.drain(..used);
                }
                Err(end) => return end,
            }
        }
        loop {
            // Plaintext rustls holds already is read without waiting for the socket.
            if !self.tls_buffered() && self.stream.readable().await.is_err() {
                return End::Error;
            }
            let step = READ_BUFFER.with_borrow_mut(|buf| {
                self.read_ready(buf, &mut decoder, &mut pending, &mut on_text)
            });
            if let Err(end) = step {
                return end;
            }
            if pending.is_empty() && pending.capacity() > 0 {
                // An idle connection holds no read buffer.
                pending = Vec::new();
            }
        }
    }

    /// Reads what the socket has (after `pending`) into `buf`, handles the complete frames,
    /// and keeps the trailing partial frame in `pending`.
    fn read_ready(
        self: &Arc<Self>,
        buf: &mut Vec<u8>,
        decoder: &mut Decoder,
        pending: &mut Vec<u8>,
        on_text: &mut impl FnMut(&str),
    ) -> Result<(), End> {
        let mut len = pending.len();
        if buf.len() < len + MIN_READ {
            buf.resize((len + MIN_READ).next_power_of_two(), 0);
        }
        buf[..len].copy_from_slice(pending);
        pending.clear();
        let mut reads = 0;
        let result = loop {
            reads += 1;
            if buf.len() < len + MIN_READ {
                buf.resize((len + MIN_READ).next_power_of_two(), 0);
            }
            let (read, more) = match self.read_now(&mut buf[len..]) {
                Ok((0, _)) => break Err(End::Closed),
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
                Err(_) => break Err(End::Error),
            };
            len += read;
            let used = match self.handle_frames(decoder, &buf[..len], on_text) {
                Ok(used) => used,
                Err(end) => break Err(end),
            };
            buf.copy_within(used..len, 0);
            len -= used;
            if !more || reads == MAX_READS {
                break Ok(());
            }
        };
        if result.is_ok() {
            pending.extend_from_slice(&buf[..len]);
        }
        result
    }

    /// One `recv` into `into`: the bytes read, and whether more may be waiting (the read
    /// filled `into`). A short read clears the socket's read readiness, so the next wait
    /// sleeps until new data arrives instead of costing an empty `recv` first (the server
    /// reads its sockets the same way: `chat_gateway::ws::frame::read_ready`).
    fn read_now(self: &Arc<Self>, into: &mut [u8]) -> io::Result<(usize, bool)> {
        let room = into.len();
        match &self.tls {
            None => read_ready(&self.stream, into).map(|n| (n, n == room)),
            Some(tls) => self.read_tls(tls, into),
        }
    }

    /// `read_now` over TLS: plaintext rustls holds, else one read of ciphertext decrypted.
    fn read_tls(
        self: &Arc<Self>,
        tls: &Mutex<rustls::ClientConnection>,
        into: &mut [u8],
    ) -> io::Result<(usize, bool)> {
        use std::io::Read;
        let mut raw = [0u8; TLS_READ];
        loop {
            let mut session = lock(tls);
            match session.reader().read(into) {
                // More may be held: the caller reads again (or comes back without waiting).
                Ok(n) if n > 0 => return Ok((n, true)),
                // The server's close_notify: the end of the stream.
                Ok(_) => return Ok((0, false)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            let n = read_ready(&self.stream, &mut raw)?;
            if n == 0 {
                return Ok((0, false));
            }
            let mut records = &raw[..n];
            while !records.is_empty() {
                session.read_tls(&mut records)?;
                session
                    .process_new_packets()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            }
            // TLS may answer on its own (a key update): send it behind any frames.
            if session.wants_write() {
                drop(session);
                let out = lock(&self.out);
                let records = encrypt(&mut lock(tls), &[])?;
                let _ = self.write(out, records);
            }
        }
    }

    /// Whether rustls holds decrypted bytes not read yet.
    fn tls_buffered(&self) -> bool {
        self.tls.as_ref().is_some_and(|tls| {
            lock(tls)
                .process_new_packets()
                .is_ok_and(|state| state.plaintext_bytes_to_read() > 0)
        })
    }

    /// Handles every complete frame at the start of `data`; the bytes they took.
    fn handle_frames(
        self: &Arc<Self>,
        decoder: &mut Decoder,
        data: &[u8],
        on_text: &mut impl FnMut(&str),
    ) -> Result<usize, End> {
        let mut at = 0;
        loop {
            let (frame, used) = match decoder.parse(&data[at..]) {
                Ok(Some(parsed)) => parsed,
                Ok(None) => return Ok(at),
                Err(_) => return Err(End::Error),
            };
            at += used;
            match frame {
                Frame::Text(text) => on_text(&text),
                Frame::Ping(payload) => {
                    self.send(opcode::PONG, payload);
                }
                Frame::Binary | Frame::Fragment | Frame::Pong => {}
                Frame::Close(code) => {
                    self.answer_close(code);
                    return Err(End::Closed);
                }
            }
        }
    }

    /// Answers the server's close frame (unless this side closed first): 1000 when the
    /// server gave a code, an empty close otherwise.
    fn answer_close(self: &Arc<Self>, code: Option<u16>) {
        let payload = code.map(|_| close_payload(close::NORMAL, ""));
        self.send(opcode::CLOSE, payload.as_deref().unwrap_or_default());
    }
}

/// `plaintext` as TLS records (and whatever else the session has to send). Written in
/// pieces, each drained to records at once, so rustls's send buffer limit never bites.
fn encrypt(session: &mut rustls::ClientConnection, plaintext: &[u8]) -> io::Result<Vec<u8>> {
    use std::io::Write;
    let mut records = Vec::with_capacity(plaintext.len() + 64);
    let mut rest = plaintext;
    loop {
        while session.wants_write() {
            session.write_tls(&mut records)?;
        }
        if rest.is_empty() {
            return Ok(records);
        }
        match session.writer().write(rest)? {
            0 => return Err(io::Error::new(io::ErrorKind::WriteZero, "TLS took nothing")),
            n => rest = &rest[n..],
        }
    }
}

/// Writes `conn`'s pending bytes as the socket takes them; ends when none are left.
async fn flush(conn: Arc<Conn>) {
    loop {
        let ready = conn.stream.writable().await;
        let mut out = lock(&conn.out);
        if ready.is_err() {
            conn.fail(&mut out);
            out.writer = None;
            return;
        }
        loop {
            if out.pending.is_empty() {
                if out.pending.capacity() > KEEP {
                    out.pending = Vec::new();
                }
                out.writer = None;
                return;
            }
            match conn.stream.try_write(&out.pending) {
                Ok(n) => {
                    out.pending.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    conn.fail(&mut out);
                    out.writer = None;
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_gateway::ws::frame::{apply_mask, parse_head};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A connected pair: the client side wrapped as a `Conn`, the server side raw.
    async fn pair() -> (Arc<Conn>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (
            Arc::new(Conn::new(client.unwrap(), None)),
            server.unwrap().0,
        )
    }

    /// Reads one masked client frame from the raw server side: opcode and payload.
    async fn read_client_frame(server: &mut TcpStream) -> (u8, Vec<u8>) {
        let mut bytes = vec![0u8; 2];
        server.read_exact(&mut bytes).await.unwrap();
        let head = loop {
            match parse_head(&bytes).unwrap() {
                Some(head) => break head,
                None => bytes.push(server.read_u8().await.unwrap()),
            }
        };
        assert!(head.masked, "client frames are masked");
        let mut mask = [0u8; 4];
        server.read_exact(&mut mask).await.unwrap();
        let mut payload = vec![0; head.len as usize];
        server.read_exact(&mut payload).await.unwrap();
        apply_mask(&mut payload, mask);
        (head.opcode, payload)
    }

    #[tokio::test]
    async fn frames_keep_their_order_when_the_socket_is_full() {
        let (conn, mut server) = pair().await;
        // Far more than the socket buffers take while the server does not read.
        let big = "y".repeat(60_000);
        let mut sent = Vec::new();
        for i in 0..400 {
            let text = format!("{i}:{}", &big[..(i * 997) % big.len()]);
            assert!(conn.send_text(&text));
            sent.push(text);
        }
        assert!(
            lock(&conn.out).writer.is_some(),
            "the socket filled up and a writer took over"
        );
        for text in &sent {
            let (op, payload) = read_client_frame(&mut server).await;
            assert_eq!(op, opcode::TEXT);
            assert_eq!(payload, text.as_bytes());
        }
    }

    #[tokio::test]
    async fn reads_frames_answers_pings_and_close() {
        let (conn, mut server) = pair().await;
        // Bytes read past the handshake come first.
        let leftover = vec![0x81, 2, b'h', b'i', 0x81];
        let reader = {
            let conn = conn.clone();
            tokio::spawn(async move {
                let mut texts = Vec::new();
                let end = conn
                    .read(Decoder::default(), leftover, |t| texts.push(t.to_string()))
                    .await;
                (texts, end)
            })
        };
        // The rest of the partial frame, a ping, a fragmented message, a close.
        let mut bytes = vec![3, b'y', b'o', b'u', 0x89, 1, b'p', 0x01, 1, b'a'];
        bytes.extend([0x80, 1, b'b', 0x88, 2, 0x03, 0xE9]);
        for chunk in bytes.chunks(3) {
            server.write_all(chunk).await.unwrap();
        }
        assert_eq!(
            read_client_frame(&mut server).await,
            (opcode::PONG, b"p".to_vec())
        );
        assert_eq!(
            read_client_frame(&mut server).await,
            (opcode::CLOSE, 1000u16.to_be_bytes().to_vec())
        );
        let (texts, end) = reader.await.unwrap();
        assert_eq!(texts, ["hi", "you", "ab"]);
        assert!(matches!(end, End::Closed), "{end:?}");
        assert!(!conn.send_text("late"), "nothing goes out after a close");
    }

    #[tokio::test]
    async fn messages_larger_than_the_read_buffer_arrive_whole() {
        let (conn, mut server) = pair().await;
        let big = "z".repeat(5 * SCRATCH + 123);
        let mut bytes = vec![0x81, 127];
        bytes.extend_from_slice(&(big.len() as u64).to_be_bytes());
        bytes.extend_from_slice(big.as_bytes());
        bytes.extend_from_slice(&[0x81, 2, b'o', b'k', 0x88, 0]);
        let writer = tokio::spawn(async move {
            server.write_all(&bytes).await.unwrap();
            server
        });
        let mut texts = Vec::new();
        let end = conn
            .read(Decoder::default(), Vec::new(), |t| {
                texts.push(t.to_string())
            })
            .await;
        assert!(matches!(end, End::Closed), "{end:?}");
        assert_eq!(texts.len(), 2);
        assert!(texts[0] == big, "the large message, whole");
        assert_eq!(texts[1], "ok");
        drop(writer.await.unwrap());
    }

    #[tokio::test]
    async fn eof_and_bad_frames_end_the_reader() {
        let (conn, server) = pair().await;
        drop(server);
        let end = conn.read(Decoder::default(), Vec::new(), |_| {}).await;
        assert!(matches!(end, End::Closed | End::Error), "{end:?}");

        let (conn, mut server) = pair().await;
        server
            .write_all(&[0x81, 0x81, 0, 0, 0, 0, b'x'])
            .await
            .unwrap();
        let end = conn.read(Decoder::default(), Vec::new(), |_| {}).await;
        assert!(matches!(end, End::Error), "masked server frame: {end:?}");
    }
}
