//! The bounded outbound queue of one connection, shared by the hub (which pushes) and the
//! connection's writer (which drains).
//!
//! A `VecDeque` behind a short lock rather than a channel: an idle connection's queue
//! allocates nothing, which matters at 100k connections per node. Overflow does not block
//! the pusher: it closes the connection as too slow (close code 1013), and the client
//! resyncs on reconnect.

use axum::extract::ws::Utf8Bytes;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::sync::Notify;

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
            CloseReason::Ended => close::NORMAL,
        }
    }
}

struct State {
    frames: VecDeque<Utf8Bytes>,
    closed: Option<CloseReason>,
    /// The sweeper asked for a WebSocket ping.
    ping: bool,
}

/// What one drain took out of the outbox.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Drained {
    /// Close after writing the frames, for this reason.
    pub closed: Option<CloseReason>,
    /// Send a WebSocket ping after the frames.
    pub ping: bool,
}

/// One connection's outbound frames and liveness.
///
/// Nothing per connection runs on a timer: the hub's sweeper (one task per node) asks for
/// pings, closes silent connections and aborts writes stuck too long, so an idle
/// connection costs no timer and no wake-up.
pub struct Outbox {
    state: Mutex<State>,
    capacity: usize,
    /// Wakes the writer when frames arrive, a ping is due or the outbox closes.
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
    /// An empty outbox holding at most `capacity` frames.
    pub fn new(capacity: usize) -> Outbox {
        Outbox {
            state: Mutex::new(State {
                frames: VecDeque::new(),
                closed: None,
                ping: false,
            }),
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

    /// Queues the answer to the client's own request. Answers are bounded by the request
    /// (a page is at most 501 frames) and the reader waits for room before reading the next
    /// request, so they never overflow; dropped only after closing.
    pub fn reply(&self, frame: impl Into<Utf8Bytes>) {
        let mut state = self.state.lock();
        if state.closed.is_none() {
            state.frames.push_back(frame.into());
        }
        drop(state);
        self.ready.notify_one();
    }

    /// Queues a frame. A full queue closes the connection as too slow; frames pushed after
    /// closing are dropped. Returns whether the frame was queued.
    pub fn push(&self, frame: Utf8Bytes) -> bool {
        let mut state = self.state.lock();
        if state.closed.is_some() {
            return false;
        }
        if state.frames.len() >= self.capacity {
            state.closed = Some(CloseReason::TooSlow);
            drop(state);
            self.stop();
            return false;
        }
        state.frames.push_back(frame);
        drop(state);
        self.ready.notify_one();
        true
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

    /// Asks the writer for a WebSocket ping.
    pub fn request_ping(&self) {
        self.state.lock().ping = true;
        self.ready.notify_one();
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

    /// Takes every queued frame (swapping `into`, which must be empty, for the queue); says
    /// whether to ping and whether to close after them (frames queued before a close are
    /// still sent). The writer drops the taken queue once written, so an idle connection
    /// keeps no queue allocation at all.
    pub fn drain(&self, into: &mut VecDeque<Utf8Bytes>) -> Drained {
        let mut state = self.state.lock();
        std::mem::swap(&mut state.frames, into);
        Drained {
            closed: state.closed,
            ping: std::mem::take(&mut state.ping),
        }
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

    /// Called by the writer after each drain.
    pub fn notify_drained(&self) {
        self.drained.notify_waiters();
    }

    /// Resolves when frames may be waiting (a permit is kept if nobody waits).
    pub async fn ready(&self) {
        self.ready.notified().await
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

    /// Resolves when the sweeper gives up on a stuck write.
    pub async fn aborted(&self) {
        self.abort.notified().await
    }

    /// Records activity from the client.
    pub fn touch(&self) {
        self.last_seen.store(now_millis(), Ordering::Relaxed);
    }

    /// Milliseconds since the client was last heard from.
    pub fn silent_for(&self) -> u64 {
        now_millis().saturating_sub(self.last_seen.load(Ordering::Relaxed))
    }

    /// Marks the start (`true`) or end of a write to the socket.
    pub fn writing(&self, busy: bool) {
        let at = if busy { now_millis() } else { 0 };
        self.writing_since.store(at, Ordering::Relaxed);
    }

    /// Milliseconds the current write has been blocked (0 when not writing).
    pub fn write_stuck_for(&self) -> u64 {
        match self.writing_since.load(Ordering::Relaxed) {
            0 => 0,
            since => now_millis().saturating_sub(since),
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
        let outbox = Outbox::new(2);
        assert!(outbox.push("a".into()));
        assert!(outbox.push("b".into()));
        assert!(!outbox.push("c".into()));
        let mut frames = VecDeque::new();
        assert_eq!(outbox.drain(&mut frames).closed, Some(CloseReason::TooSlow));
        assert_eq!(frames.len(), 2);
        assert!(outbox.is_stopped());
    }

    #[test]
    fn first_close_reason_wins() {
        let outbox = Outbox::new(2);
        outbox.close(CloseReason::Replaced);
        outbox.close(CloseReason::Draining);
        assert_eq!(
            outbox.drain(&mut VecDeque::new()).closed,
            Some(CloseReason::Replaced)
        );
        assert!(!outbox.push("late".into()));
    }
}
