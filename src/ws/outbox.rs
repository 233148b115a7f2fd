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
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

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
}

/// One connection's outbound frames.
pub struct Outbox {
    state: Mutex<State>,
    capacity: usize,
    /// Wakes the writer when frames arrive or the outbox closes.
    ready: Notify,
    /// Wakes the reader, waiting for room before its next request, after each drain.
    drained: Notify,
    /// Cancelled when the connection must end, so the reader stops too.
    stop: CancellationToken,
    /// Unix milliseconds of the last frame (or pong) from the client, for the idle timeout.
    last_seen: AtomicU64,
}

impl Outbox {
    /// An empty outbox holding at most `capacity` frames.
    pub fn new(capacity: usize) -> Outbox {
        Outbox {
            state: Mutex::new(State {
                frames: VecDeque::new(),
                closed: None,
            }),
            capacity,
            ready: Notify::new(),
            drained: Notify::new(),
            stop: CancellationToken::new(),
            last_seen: AtomicU64::new(now_millis()),
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
        while self.len() > self.capacity / 2 && !self.is_stopped() {
            tokio::select! {
                _ = self.drained.notified() => {}
                _ = self.stop.cancelled() => {}
            }
        }
    }

    /// Called by the writer after each drain.
    pub fn notify_drained(&self) {
        self.drained.notify_one();
    }

    /// Records activity from the client.
    pub fn touch(&self) {
        self.last_seen.store(now_millis(), Ordering::Relaxed);
    }

    /// Milliseconds since the client was last heard from.
    pub fn silent_for(&self) -> u64 {
        now_millis().saturating_sub(self.last_seen.load(Ordering::Relaxed))
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
            self.ready.notify_one();
            self.stop.cancel();
            return false;
        }
        state.frames.push_back(frame);
        drop(state);
        self.ready.notify_one();
        true
    }

    /// Closes the connection for `reason` (the first reason wins).
    pub fn close(&self, reason: CloseReason) {
        let mut state = self.state.lock();
        if state.closed.is_none() {
            state.closed = Some(reason);
        }
        drop(state);
        self.ready.notify_one();
        self.stop.cancel();
    }

    /// Moves every queued frame into `into` and says whether the outbox is closed (after
    /// those frames: frames queued before a close are still sent).
    pub fn drain(&self, into: &mut Vec<Utf8Bytes>) -> Option<CloseReason> {
        let mut state = self.state.lock();
        into.extend(state.frames.drain(..));
        if state.frames.capacity() > 64 {
            state.frames.shrink_to_fit();
        }
        state.closed
    }

    /// Resolves when frames may be waiting (a permit is kept if nobody waits).
    pub async fn ready(&self) {
        self.ready.notified().await
    }

    /// Resolves when the connection must end.
    pub async fn stopped(&self) {
        self.stop.cancelled().await
    }

    /// Whether the connection must end.
    pub fn is_stopped(&self) -> bool {
        self.stop.is_cancelled()
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
        let mut frames = Vec::new();
        assert_eq!(outbox.drain(&mut frames), Some(CloseReason::TooSlow));
        assert_eq!(frames.len(), 2);
        assert!(outbox.is_stopped());
    }

    #[test]
    fn first_close_reason_wins() {
        let outbox = Outbox::new(2);
        outbox.close(CloseReason::Replaced);
        outbox.close(CloseReason::Draining);
        assert_eq!(outbox.drain(&mut Vec::new()), Some(CloseReason::Replaced));
        assert!(!outbox.push("late".into()));
    }
}
