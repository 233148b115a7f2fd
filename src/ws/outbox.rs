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
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::close::{CloseReason, close_with};
use super::write::{Out, advance, send_some, try_send, write_all};

/// The queue and where writing stands, behind the outbox's lock.
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
    /// Set when the node drains: the reader stops after the frame it is handling (whose
    /// answer still goes out) and closes the connection.
    draining: AtomicBool,
    /// Wakes the reader when `stopped` or `draining` is set.
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
            draining: AtomicBool::new(false),
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
        self.send(Out::Text(Bytes::from(frame.into())), false);
    }

    /// Sends an answer the client can provoke without limit (a refusal of a binary frame or
    /// of a frame over the rate): it counts against the queue's capacity like a delivery,
    /// so a client that provokes answers and never reads them is closed as too slow.
    pub fn answer(&self, frame: impl Into<Utf8Bytes>) {
        self.send(Out::Text(Bytes::from(frame.into())), true);
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

    /// Answers the client's ping; counted against the queue's capacity (see `answer`).
    pub fn pong(&self, payload: Bytes) {
        self.send(Out::Pong(payload), true);
    }

    /// Sends a WebSocket ping (for the sweeper).
    pub fn request_ping(&self) {
        self.send(Out::Ping, true);
    }

    /// Unless closed, writes `out` straight to the socket when nothing is queued or being
    /// written (a non-blocking write, under the outbox's lock so frames cannot interleave);
    /// whatever the socket does not take is queued and the writer task woken. A `bounded`
    /// frame finding the queue full closes the connection as too slow instead.
    fn send(&self, out: Out, bounded: bool) {
        let mut state = self.state.lock();
        if state.closed.is_some() {
            return;
        }
        if bounded && state.frames.len() >= self.capacity {
            state.closed = Some(CloseReason::TooSlow);
            drop(state);
            self.stop();
            return;
        }
        if state.frames.is_empty()
            && !state.writing
            && let Some(socket) = &self.socket
        {
            let payload = out.payload();
            let (head, used) = out.header();
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

    /// Asks the connection to end for a drain once the frame being handled is answered.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Release);
        self.stop_wake.notify_waiters();
    }

    /// Whether a drain asked the connection to end.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Resolves when the connection must end, or should for a drain.
    pub async fn ending(&self) {
        loop {
            let woken = self.stop_wake.notified();
            if self.is_stopped() || self.is_draining() {
                return;
            }
            woken.await;
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
    fn pongs_and_answers_count_against_the_queue() {
        let outbox = Outbox::new(None, 2);
        outbox.pong(Bytes::from_static(b"1"));
        outbox.answer("refused");
        assert!(!outbox.is_stopped());
        outbox.pong(Bytes::from_static(b"3"));
        assert!(
            outbox.is_stopped(),
            "the third answer overflows a queue of 2"
        );
        let mut frames = VecDeque::new();
        assert_eq!(outbox.take(&mut frames).1, Some(CloseReason::TooSlow));
        assert_eq!(frames.len(), 2);
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
