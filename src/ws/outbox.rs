//! The outbound side of one connection: frames are written to the socket directly when it
//! is idle, otherwise queued (bounded) for the connection's writer task.
//!
//! A `VecDeque` behind a short lock rather than a channel: an idle connection's queue
//! allocates nothing, which matters at 100k connections per node. Overflow does not block
//! the pusher: it closes the connection as too slow (close code 1013), and the client
//! resyncs on reconnect.

use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::frame::{self, opcode};
use crate::protocol::server;

/// How long the closing frames may take to write.
const CLOSE_WRITE: Duration = Duration::from_secs(2);

/// Why the server closes a connection; the writer sends a 1001 frame with `reason()` and
/// then a close frame with `close_code()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The outbound queue overflowed.
    TooSlow,
    /// A newer connection of the same user replaced this one (device limit).
    Replaced,
    /// The node is shutting down.
    Draining,
    /// No frame or pong within the idle timeout.
    Idle,
    /// The client sent a frame larger than `server.max_frame_bytes`.
    TooBig,
    /// The client sent text that is not UTF-8.
    BadData,
    /// The client broke the WebSocket protocol; the text names the rule.
    Protocol(&'static str),
    /// The client closed or went away: nothing to explain.
    Ended,
}

impl CloseReason {
    /// The `reason` of the 1001 frame.
    pub fn reason(self) -> &'static str {
        match self {
            CloseReason::TooSlow => "too slow: outbound queue full; reconnect and sync",
            CloseReason::Replaced => "replaced by a newer connection of the same user",
            CloseReason::Draining => "server shutting down; reconnect",
            CloseReason::Idle => "idle timeout",
            CloseReason::TooBig => "frame larger than server.max_frame_bytes",
            CloseReason::BadData => "text frame is not valid UTF-8",
            CloseReason::Protocol(rule) => rule,
            CloseReason::Ended => "",
        }
    }

    /// The WebSocket close code.
    pub fn close_code(self) -> u16 {
        use crate::protocol::codes::close;
        match self {
            CloseReason::TooSlow => close::TRY_AGAIN_LATER,
            CloseReason::Replaced => close::POLICY,
            CloseReason::Draining => close::RESTART,
            CloseReason::Idle => close::NORMAL,
            CloseReason::TooBig => close::TOO_BIG,
            CloseReason::BadData => close::INVALID_DATA,
            CloseReason::Protocol(_) => close::PROTOCOL,
            CloseReason::Ended => close::NORMAL,
        }
    }
}

/// One queued frame.
enum Out {
    /// A text frame; the payload may be shared with every other recipient.
    Text(Bytes),
    /// A pong answering the client's ping, echoing its payload.
    Pong(Bytes),
    /// A ping the sweeper asked for.
    Ping,
    /// The close frame, last.
    Close(Bytes),
}

impl Out {
    fn opcode(&self) -> u8 {
        match self {
            Out::Text(_) => opcode::TEXT,
            Out::Pong(_) => opcode::PONG,
            Out::Ping => opcode::PING,
            Out::Close(_) => opcode::CLOSE,
        }
    }

    fn payload(&self) -> &[u8] {
        match self {
            Out::Text(payload) | Out::Pong(payload) | Out::Close(payload) => payload,
            Out::Ping => &[],
        }
    }
}

struct State {
    frames: VecDeque<Out>,
    /// Bytes of the front frame (header included) already on the socket: a direct write
    /// the socket took only in part.
    written: usize,
    closed: Option<CloseReason>,
    /// The writer task holds frames it took from the queue and is writing them; also set
    /// from creation until the writer starts, so that everything queues until the
    /// connection's subscriptions are settled and the 1000 frame is written first.
    writing: bool,
    /// Handed to the flusher, which has not run yet.
    flushing: bool,
}

/// What became of a pushed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Closed (or closing as too slow): not sent.
    Dropped,
    /// Queued behind frames that are on their way.
    Queued,
    /// Queued; hand the outbox to the flusher.
    Flush,
}

/// One connection's outbound frames and liveness.
///
/// A frame for an idle connection (nothing queued, nothing being written) is written to the
/// socket at once by whoever produces it: the hub delivering a message, the reader
/// answering a request, the sweeper pinging. Only what the socket does not take right away
/// is queued, and only then is the connection's writer task woken; so a delivery to an idle
/// socket costs one system call and no task switch.
///
/// Nothing per connection runs on a timer: the hub's sweeper (one task per node) asks for
/// pings, closes silent connections and aborts writes stuck too long, so an idle
/// connection costs no timer and no wake-up.
pub struct Outbox {
    state: Mutex<State>,
    /// Where frames are written; `None` only in unit tests, where everything queues.
    socket: Option<Arc<TcpStream>>,
    capacity: usize,
    /// Wakes the writer when frames are queued or the outbox closes.
    ready: Notify,
    /// Wakes a reader waiting for room, after each drain and on stop.
    drained: Notify,
    /// Set when the connection must end; the reader stops reading.
    stopped: AtomicBool,
    /// Wakes the reader when `stopped` is set.
    stop_wake: Notify,
    /// Wakes a writer blocked on a socket that has not taken a byte for too long.
    abort: Notify,
    /// Unix milliseconds of the last frame (or pong) from the client, for the idle timeout.
    last_seen: AtomicU64,
    /// Unix milliseconds when the writer started its current write; 0 when not writing.
    writing_since: AtomicU64,
}

impl Outbox {
    /// An empty outbox writing to `socket`, queueing at most `capacity` frames. Frames queue
    /// until `write_loop` starts.
    pub fn new(socket: Option<Arc<TcpStream>>, capacity: usize) -> Outbox {
        Outbox {
            state: Mutex::new(State {
                frames: VecDeque::new(),
                written: 0,
                closed: None,
                writing: true,
                flushing: false,
            }),
            socket,
            capacity,
            ready: Notify::new(),
            drained: Notify::new(),
            stopped: AtomicBool::new(false),
            stop_wake: Notify::new(),
            abort: Notify::new(),
            last_seen: AtomicU64::new(now_millis()),
            writing_since: AtomicU64::new(0),
        }
    }

    /// Sends the answer to the client's own request. Answers are bounded by the request
    /// (a page is at most 501 frames) and the reader waits for room before reading the next
    /// request, so they never overflow; dropped only after closing.
    pub fn reply(&self, frame: impl Into<Utf8Bytes>) {
        let mut state = self.state.lock();
        if state.closed.is_none() {
            self.send_locked(&mut state, Out::Text(Bytes::from(frame.into())));
        }
    }

    /// Queues a delivery. A full queue closes the connection as too slow; frames pushed
    /// after closing are dropped. `Pushed::Flush` asks the caller to hand the outbox to the
    /// node's `Flusher` (it is idle and not handed over yet), which writes everything that
    /// was queued meanwhile in one go: deliveries that arrive together, as under load, leave
    /// in one system call.
    pub fn push(&self, frame: Utf8Bytes) -> Pushed {
        let mut state = self.state.lock();
        if state.closed.is_some() {
            return Pushed::Dropped;
        }
        if state.frames.len() >= self.capacity {
            state.closed = Some(CloseReason::TooSlow);
            drop(state);
            self.stop();
            return Pushed::Dropped;
        }
        state.frames.push_back(Out::Text(Bytes::from(frame)));
        if state.writing {
            drop(state);
            self.ready.notify_one();
            return Pushed::Queued;
        }
        if state.flushing || self.socket.is_none() {
            return Pushed::Queued;
        }
        state.flushing = true;
        Pushed::Flush
    }

    /// For the flusher: writes what is queued with one non-blocking system call; what the
    /// socket does not take goes to the writer task.
    pub fn flush(&self) {
        let mut state = self.state.lock();
        state.flushing = false;
        if state.writing || state.frames.is_empty() {
            return;
        }
        let Some(socket) = &self.socket else {
            return;
        };
        match send_some(socket, &state.frames, 0, state.written) {
            Ok(n) => {
                let (done, written) = advance(&state.frames, 0, state.written, n);
                state.frames.drain(..done);
                state.written = written;
                if state.frames.is_empty() {
                    // An idle connection keeps no queue allocation.
                    state.frames = VecDeque::new();
                    drop(state);
                    // A reader waiting for room (wait_for_room) has it now.
                    self.drained.notify_waiters();
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => {
                state.closed.get_or_insert(CloseReason::Ended);
                drop(state);
                self.stop();
                return;
            }
        }
        drop(state);
        self.ready.notify_one();
    }

    /// Answers the client's ping.
    pub fn pong(&self, payload: Bytes) {
        let mut state = self.state.lock();
        if state.closed.is_none() {
            self.send_locked(&mut state, Out::Pong(payload));
        }
    }

    /// Sends a WebSocket ping (for the sweeper).
    pub fn request_ping(&self) {
        let mut state = self.state.lock();
        if state.closed.is_none() {
            self.send_locked(&mut state, Out::Ping);
        }
    }

    /// Writes `out` straight to the socket when nothing is queued or being written (a
    /// non-blocking write, under the outbox's lock so frames cannot interleave); whatever
    /// the socket does not take is queued and the writer task woken.
    fn send_locked(&self, state: &mut State, out: Out) {
        if state.frames.is_empty()
            && !state.writing
            && let Some(socket) = &self.socket
        {
            let payload = out.payload();
            let (head, used) = frame::header(out.opcode(), payload.len());
            let total = used + payload.len();
            match try_send(
                socket,
                &[IoSlice::new(&head[..used]), IoSlice::new(payload)],
            ) {
                Ok(n) if n == total => return,
                Ok(n) => state.written = n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    // The connection is gone; its reader sees the end too.
                    state.closed.get_or_insert(CloseReason::Ended);
                    self.stop();
                    return;
                }
            }
        }
        state.frames.push_back(out);
        self.ready.notify_one();
    }

    /// Closes the connection for `reason` (the first reason wins): queued frames are still
    /// written, then the 1001 frame and the close frame.
    pub fn close(&self, reason: CloseReason) {
        let mut state = self.state.lock();
        if state.closed.is_none() {
            state.closed = Some(reason);
        }
        drop(state);
        self.stop();
    }

    /// Gives up on a socket whose write is stuck: the writer stops at once.
    pub fn abort(&self) {
        self.close(CloseReason::TooSlow);
        self.abort.notify_one();
    }

    fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.ready.notify_one();
        self.drained.notify_waiters();
        self.stop_wake.notify_waiters();
    }

    /// For the writer: takes every queued frame (swapping `into`, which must be empty, for
    /// the queue) and how much of the first is already written, and says whether to close
    /// after them. Until `done_writing`, new frames queue behind these instead of being
    /// written directly. The writer drops the taken queue once written, so an idle
    /// connection keeps no queue allocation at all.
    fn take(&self, into: &mut VecDeque<Out>) -> (usize, Option<CloseReason>) {
        let mut state = self.state.lock();
        std::mem::swap(&mut state.frames, into);
        state.writing = !into.is_empty();
        (std::mem::take(&mut state.written), state.closed)
    }

    /// For the writer: the frames it took are written.
    fn done_writing(&self) {
        self.state.lock().writing = false;
        self.drained.notify_waiters();
    }

    /// Drops every queued frame and returns how many there were (for the hub benchmark,
    /// whose outboxes have no socket).
    #[doc(hidden)]
    pub fn discard_queued(&self) -> usize {
        let mut state = self.state.lock();
        let n = state.frames.len();
        state.frames = VecDeque::new();
        n
    }

    /// Frames waiting.
    pub fn len(&self) -> usize {
        self.state.lock().frames.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until at most half the capacity is queued (or the connection ends), so a
    /// client that does not read stops being served instead of growing the queue.
    pub async fn wait_for_room(&self) {
        loop {
            let drained = self.drained.notified();
            if self.len() <= self.capacity / 2 || self.is_stopped() {
                return;
            }
            drained.await;
        }
    }

    /// Resolves when the connection must end.
    pub async fn stopped(&self) {
        loop {
            let woken = self.stop_wake.notified();
            if self.is_stopped() {
                return;
            }
            woken.await;
        }
    }

    /// Whether the connection must end.
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Records activity from the client.
    pub fn touch(&self) {
        self.last_seen.store(now_millis(), Ordering::Relaxed);
    }

    /// Milliseconds since the client was last heard from.
    pub fn silent_for(&self) -> u64 {
        now_millis().saturating_sub(self.last_seen.load(Ordering::Relaxed))
    }

    /// Milliseconds the current write has been blocked (0 when not writing).
    pub fn write_stuck_for(&self) -> u64 {
        match self.writing_since.load(Ordering::Relaxed) {
            0 => 0,
            since => now_millis().saturating_sub(since),
        }
    }

    /// The connection's writer task: writes what the socket did not take directly, waiting
    /// for the socket as long as needed (the sweeper aborts a write blocked too long), then,
    /// once the outbox is closed, the 1001 frame and the close frame. Returns the reason
    /// the connection closed.
    pub async fn write_loop(&self) -> CloseReason {
        let Some(socket) = self.socket.clone() else {
            self.stopped().await;
            return self.state.lock().closed.unwrap_or(CloseReason::Ended);
        };
        let mut frames = VecDeque::new();
        loop {
            let (written, closed) = self.take(&mut frames);
            if !frames.is_empty() {
                self.writing_since.store(now_millis(), Ordering::Relaxed);
                let failed = tokio::select! {
                    // The client is gone (reset, closed): nothing to tell it.
                    result = write_all(&socket, &frames, written) => {
                        result.is_err().then_some(CloseReason::Ended)
                    }
                    // The sweeper gave up on a socket that took nothing for too long.
                    _ = self.abort.notified() => Some(CloseReason::TooSlow),
                };
                self.writing_since.store(0, Ordering::Relaxed);
                frames = VecDeque::new();
                self.done_writing();
                if let Some(reason) = failed {
                    self.close(reason);
                    return reason;
                }
            }
            if let Some(reason) = closed {
                // Boxed: rarely needed, and inline it would enlarge every idle writer.
                Box::pin(close_with(&socket, reason)).await;
                return reason;
            }
            self.ready.notified().await;
        }
    }
}

/// Writes `frames` (the first with `skip` bytes already written), batching up to 32 frames
/// into one vectored write.
async fn write_all(socket: &TcpStream, frames: &VecDeque<Out>, mut skip: usize) -> io::Result<()> {
    let mut next = 0;
    while next < frames.len() {
        socket.writable().await?;
        match send_some(socket, frames, next, skip) {
            Ok(n) => (next, skip) = advance(frames, next, skip, n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Frames gathered into one write at most.
const BATCH: usize = 32;

/// Writes frames from `frames[next]` on (the first `skip` bytes of it already written) in
/// one non-blocking system call; returns the bytes the socket took.
fn send_some(
    socket: &TcpStream,
    frames: &VecDeque<Out>,
    next: usize,
    skip: usize,
) -> io::Result<usize> {
    let end = (next + BATCH).min(frames.len());
    let mut heads = [([0u8; frame::MAX_HEADER], 0usize); BATCH];
    for (head, out) in heads.iter_mut().zip(frames.range(next..end)) {
        *head = frame::header(out.opcode(), out.payload().len());
    }
    let mut slices = [IoSlice::new(&[]); 2 * BATCH];
    for (i, out) in frames.range(next..end).enumerate() {
        let (head, used) = &heads[i];
        let (mut head, mut payload) = (&head[..*used], out.payload());
        if i == 0 {
            let from_head = skip.min(head.len());
            head = &head[from_head..];
            payload = &payload[skip - from_head..];
        }
        slices[2 * i] = IoSlice::new(head);
        slices[2 * i + 1] = IoSlice::new(payload);
    }
    try_send(socket, &slices[..2 * (end - next)])
}

/// Where writing stands after the socket took `n` more bytes: the next frame and how much
/// of it is written.
fn advance(
    frames: &VecDeque<Out>,
    mut next: usize,
    mut skip: usize,
    mut n: usize,
) -> (usize, usize) {
    while next < frames.len() {
        let out = &frames[next];
        let left = frame::header(out.opcode(), out.payload().len()).1 + out.payload().len() - skip;
        if n < left {
            return (next, skip + n);
        }
        n -= left;
        skip = 0;
        next += 1;
    }
    (next, 0)
}

/// Writes as much of `slices` as the socket takes now, without waiting. Up to 4 KiB is
/// gathered on the stack and written with one `send`: for small frames that is cheaper in
/// the kernel than `writev`, which goes through the file layer.
fn try_send(socket: &TcpStream, slices: &[IoSlice<'_>]) -> io::Result<usize> {
    const GATHER: usize = 4096;
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(GATHER));
    }
    let total: usize = slices.iter().map(|s| s.len()).sum();
    if total > GATHER {
        return socket.try_write_vectored(slices);
    }
    BUF.with_borrow_mut(|buf| {
        buf.clear();
        for slice in slices {
            buf.extend_from_slice(slice);
        }
        socket.try_write(buf)
    })
}

/// Tells the client why (a 1001 frame), then sends the close frame with the matching code.
async fn close_with(socket: &TcpStream, reason: CloseReason) {
    let mut frames = VecDeque::new();
    if !matches!(reason, CloseReason::Idle | CloseReason::Ended) {
        frames.push_back(Out::Text(server::closing(reason.reason()).into()));
    }
    frames.push_back(Out::Close(frame::close_payload(
        reason.close_code(),
        reason.reason(),
    )));
    let _ = tokio::time::timeout(CLOSE_WRITE, write_all(socket, &frames, 0)).await;
}

fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_closes_as_too_slow() {
        let outbox = Outbox::new(None, 2);
        assert_eq!(outbox.push("a".into()), Pushed::Queued);
        assert_eq!(outbox.push("b".into()), Pushed::Queued);
        assert_eq!(outbox.push("c".into()), Pushed::Dropped);
        let mut frames = VecDeque::new();
        assert_eq!(outbox.take(&mut frames).1, Some(CloseReason::TooSlow));
        assert_eq!(frames.len(), 2);
        assert!(outbox.is_stopped());
    }

    #[test]
    fn first_close_reason_wins() {
        let outbox = Outbox::new(None, 2);
        outbox.close(CloseReason::Replaced);
        outbox.close(CloseReason::Draining);
        assert_eq!(
            outbox.take(&mut VecDeque::new()).1,
            Some(CloseReason::Replaced)
        );
        assert_eq!(outbox.push("late".into()), Pushed::Dropped);
    }
}
