//! The outbound side of one connection: frames are written to the socket directly when it
//! is idle, otherwise queued (bounded) for a writer task that lives only while the socket
//! has a backlog.
//!
//! A `VecDeque` behind a short lock rather than a channel: an idle connection's queue
//! allocates nothing, which matters at 100k connections per node. Overflow does not block
//! the pusher: it closes the connection as too slow (close code 1013), and the client
//! resyncs on reconnect.

use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use futures_util::task::AtomicWaker;
use parking_lot::{Mutex, MutexGuard};
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
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
    /// A writer holds the queue and writes it: the writer task (spawned when the socket did
    /// not take everything) or the connection's closing write (`finish`). Also set from
    /// creation until `start`, so that everything queues until the connection's
    /// subscriptions are settled and the 1000 frame is written first.
    writing: bool,
    /// Handed to the flusher, which has not run yet.
    flushing: bool,
    /// A write failed or was given up on (`abort`): nothing more is written.
    dead: bool,
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
/// is queued, and only then is a writer task spawned; it waits for the socket, writes the
/// backlog and ends once the queue is empty. So a delivery to an idle socket costs one
/// system call and no task switch, and an idle connection has no writer task at all.
///
/// Nothing per connection runs on a timer: the hub's sweeper (one task per node) asks for
/// pings, closes silent connections and aborts writes stuck too long, so an idle
/// connection costs no timer and no wake-up.
pub struct Outbox {
    state: Mutex<State>,
    /// Where frames are written; `None` only in unit tests, where everything queues.
    socket: Option<Arc<TcpStream>>,
    capacity: usize,
    /// Wakes a reader waiting for room, after each drain and on stop; and `finish`, when
    /// the writer task lets go of the queue.
    drained: Notify,
    /// Set when the connection must end; the reader stops reading.
    stopped: AtomicBool,
    /// Set when the node drains: the reader stops after the frame it is handling (whose
    /// answer still goes out) and closes the connection.
    draining: AtomicBool,
    /// Wakes the reader (`poll_ending`) when `stopped` or `draining` is set: one task waits,
    /// so a registered waker does where a `Notify` would take 64 bytes more in every idle
    /// connection's reading future.
    reader: AtomicWaker,
    /// Wakes a writer blocked on a socket that has not taken a byte for too long.
    abort: Notify,
    /// Unix milliseconds of the last frame (or pong) from the client, for the idle timeout.
    last_seen: AtomicU64,
    /// Unix milliseconds when the writer started its current write; 0 when not writing.
    writing_since: AtomicU64,
}

impl Outbox {
    /// An empty outbox writing to `socket`, queueing at most `capacity` frames. Frames queue
    /// until `start`.
    pub fn new(socket: Option<Arc<TcpStream>>, capacity: usize) -> Outbox {
        Outbox {
            state: Mutex::new(State {
                frames: VecDeque::new(),
                written: 0,
                closed: None,
                writing: true,
                flushing: false,
                dead: false,
            }),
            socket,
            capacity,
            drained: Notify::new(),
            stopped: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            reader: AtomicWaker::new(),
            abort: Notify::new(),
            last_seen: AtomicU64::new(now_millis()),
            writing_since: AtomicU64::new(0),
        }
    }

    /// Sends the answer to the client's own request. Answers are bounded by the request
    /// (a page is at most 501 frames) and the reader waits for room before reading the next
    /// request, so they never overflow; dropped only after closing.
    pub fn reply(self: &Arc<Self>, frame: impl Into<Utf8Bytes>) {
        self.send(Out::Text(Bytes::from(frame.into())), false);
    }

    /// Sends an answer the client can provoke without limit (a refusal of a binary frame or
    /// of a frame over the rate): it counts against the queue's capacity like a delivery,
    /// so a client that provokes answers and never reads them is closed as too slow.
    pub fn answer(self: &Arc<Self>, frame: impl Into<Utf8Bytes>) {
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
        if state.writing || state.flushing || self.socket.is_none() {
            return Pushed::Queued;
        }
        state.flushing = true;
        Pushed::Flush
    }

    /// For the flusher: writes what is queued with one non-blocking system call; what the
    /// socket does not take goes to a writer task.
    pub fn flush(self: &Arc<Self>) {
        let mut state = self.state.lock();
        state.flushing = false;
        self.write_queued(state);
    }

    /// For the connection, once its subscriptions are settled: writes what queued since it
    /// was created (the 1000 frame first), and from then on frames go out directly.
    pub fn start(self: &Arc<Self>) {
        let mut state = self.state.lock();
        state.writing = false;
        self.write_queued(state);
    }

    /// Unless a writer holds the queue, writes it with one non-blocking system call and
    /// spawns a writer task for what the socket does not take.
    fn write_queued(self: &Arc<Self>, mut state: MutexGuard<'_, State>) {
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
            Err(_) => return self.give_up(state, CloseReason::Ended),
        }
        self.spawn_writer(state);
    }

    /// Spawns the writer task for the queued frames, unless a writer holds them already or
    /// the connection is closed (its closing write, `finish`, writes them).
    fn spawn_writer(self: &Arc<Self>, mut state: MutexGuard<'_, State>) {
        if state.writing || state.dead || state.closed.is_some() || self.socket.is_none() {
            return;
        }
        state.writing = true;
        drop(state);
        tokio::spawn(self.clone().write_backlog());
    }

    /// Answers the client's ping; counted against the queue's capacity (see `answer`).
    pub fn pong(self: &Arc<Self>, payload: Bytes) {
        self.send(Out::Pong(payload), true);
    }

    /// Sends a WebSocket ping (for the sweeper).
    pub fn request_ping(self: &Arc<Self>) {
        self.send(Out::Ping, true);
    }

    /// Unless closed, writes `out` straight to the socket when nothing is queued or being
    /// written (a non-blocking write, under the outbox's lock so frames cannot interleave);
    /// whatever the socket does not take is queued for a writer task. A `bounded`
    /// frame finding the queue full closes the connection as too slow instead.
    fn send(self: &Arc<Self>, out: Out, bounded: bool) {
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
                // The connection is gone; its reader sees the end too.
                Err(_) => return self.give_up(state, CloseReason::Ended),
            }
        }
        state.frames.push_back(out);
        // Queued behind frames the flusher is about to write, or behind a writer's: they
        // take these too.
        if !state.flushing {
            self.spawn_writer(state);
        }
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

    /// Gives up on a socket whose write is stuck: the writer stops at once, and nothing
    /// more is written (not even the closing frames).
    pub fn abort(&self) {
        self.give_up(self.state.lock(), CloseReason::TooSlow);
        self.abort.notify_one();
    }

    /// Writing failed or is given up on: the connection closes (for `reason` unless it was
    /// closing already) and nothing more is written.
    fn give_up(&self, mut state: MutexGuard<'_, State>, reason: CloseReason) {
        state.closed.get_or_insert(reason);
        state.dead = true;
        drop(state);
        self.stop();
    }

    fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.drained.notify_waiters();
        self.reader.wake();
    }

    /// The writer task: waits for the socket and writes the backlog, taking the whole
    /// queue each time (new frames queue behind the ones being written), until the queue is
    /// empty or the connection closes; then lets go of the queue and ends. The taken queue
    /// is dropped once written, so an idle connection keeps no queue allocation at all.
    async fn write_backlog(self: Arc<Self>) {
        let Some(socket) = self.socket.clone() else {
            return;
        };
        let mut frames = VecDeque::new();
        loop {
            let written = {
                let mut state = self.state.lock();
                if state.frames.is_empty() || state.closed.is_some() || state.dead {
                    // On close, `finish` writes the rest and the closing frames.
                    state.writing = false;
                    drop(state);
                    self.drained.notify_waiters();
                    return;
                }
                std::mem::swap(&mut state.frames, &mut frames);
                std::mem::take(&mut state.written)
            };
            let _ = self.write_taken(&socket, &frames, written).await;
            frames = VecDeque::new();
            self.drained.notify_waiters();
        }
    }

    /// For the connection, at its end (after `close`): waits for the writer task to let go
    /// of the queue, writes what is still queued, then the 1001 frame and the close frame,
    /// and returns the reason the connection closed. The caller bounds how long this takes.
    pub async fn finish(&self) -> CloseReason {
        loop {
            let let_go = self.drained.notified();
            {
                let mut state = self.state.lock();
                if !state.writing {
                    state.writing = true;
                    break;
                }
            }
            let_go.await;
        }
        let mut frames = VecDeque::new();
        loop {
            let (written, reason, dead) = {
                let mut state = self.state.lock();
                std::mem::swap(&mut state.frames, &mut frames);
                let reason = state.closed.unwrap_or(CloseReason::Ended);
                (std::mem::take(&mut state.written), reason, state.dead)
            };
            let Some(socket) = self.socket.as_deref().filter(|_| !dead) else {
                return reason;
            };
            if frames.is_empty() {
                // Boxed: written once per connection, and inline it would enlarge this
                // future for every connection.
                Box::pin(close_with(socket, reason)).await;
                return reason;
            }
            if let Err(failed) = self.write_taken(socket, &frames, written).await {
                return failed;
            }
            frames.clear();
        }
    }

    /// Writes frames a writer took from the queue (the first `written` bytes of the first
    /// already on the socket), unless the socket fails or the write is given up on: then
    /// the connection is closed, nothing more is written, and the error is the reason.
    async fn write_taken(
        &self,
        socket: &TcpStream,
        frames: &VecDeque<Out>,
        written: usize,
    ) -> Result<(), CloseReason> {
        self.writing_since.store(now_millis(), Ordering::Relaxed);
        let failed = tokio::select! {
            // The client is gone (reset, closed): nothing to tell it.
            result = write_all(socket, frames, written) => {
                result.is_err().then_some(CloseReason::Ended)
            }
            // The sweeper gave up on a socket that took nothing for too long.
            _ = self.abort.notified() => Some(CloseReason::TooSlow),
        };
        self.writing_since.store(0, Ordering::Relaxed);
        let Some(reason) = failed else {
            return Ok(());
        };
        self.give_up(self.state.lock(), reason);
        Err(reason)
    }

    /// For tests: takes every queued frame (swapping `into`, which must be empty, for the
    /// queue) and how much of the first is already written, and says whether to close
    /// after them.
    #[cfg(test)]
    fn take(&self, into: &mut VecDeque<Out>) -> (usize, Option<CloseReason>) {
        let mut state = self.state.lock();
        std::mem::swap(&mut state.frames, into);
        (std::mem::take(&mut state.written), state.closed)
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
        self.reader.wake();
    }

    /// Whether a drain asked the connection to end.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// For the connection's reader: ready when the connection must end, or should for a
    /// drain; otherwise wakes the task that polled it when one of them happens.
    pub fn poll_ending(&self, cx: &mut Context<'_>) -> Poll<()> {
        let ending = || self.is_stopped() || self.is_draining();
        if ending() {
            return Poll::Ready(());
        }
        self.reader.register(cx.waker());
        // Set between the check and the registration: the wake found no waker.
        if ending() {
            return Poll::Ready(());
        }
        Poll::Pending
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
    use std::time::Duration;
    use tokio::io::AsyncReadExt;

    impl Outbox {
        /// Whether a writer holds the queue.
        fn has_writer(&self) -> bool {
            self.state.lock().writing
        }
    }

    /// A started outbox on a socket with a small send buffer, and the client's end.
    async fn connected() -> (Arc<Outbox>, TcpStream) {
        let (server, client) = crate::ws::socket_pair().await;
        socket2::SockRef::from(&server)
            .set_send_buffer_size(16 * 1024)
            .unwrap();
        let outbox = Arc::new(Outbox::new(Some(Arc::new(server)), 10_000));
        outbox.start();
        (outbox, client)
    }

    /// Waits (at most 10 seconds) until the writer task lets go of the queue, which it says
    /// on `drained`.
    async fn writer_gone(outbox: &Outbox) {
        let gone = async {
            loop {
                let let_go = outbox.drained.notified();
                if !outbox.has_writer() {
                    return;
                }
                let_go.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), gone)
            .await
            .expect("the writer ends with its backlog");
    }

    #[tokio::test]
    async fn a_backlog_gets_a_writer_task_that_ends_with_it() {
        let (outbox, mut client) = connected().await;
        outbox.reply("a");
        assert!(
            outbox.is_empty() && !outbox.has_writer(),
            "an idle socket takes a frame directly"
        );
        // Frames of 60,000 bytes (a 4-byte header each) until the socket stops taking them.
        let big = "x".repeat(60_000);
        let mut queued = 0;
        while outbox.is_empty() {
            outbox.reply(big.clone());
            queued += 1;
            assert!(queued < 1_000, "the socket never filled");
        }
        assert!(
            outbox.has_writer(),
            "what the socket did not take has a writer"
        );

        let mut got = vec![0; 3 + queued * 60_004];
        tokio::time::timeout(Duration::from_secs(10), client.read_exact(&mut got))
            .await
            .expect("the writer writes the backlog")
            .unwrap();
        assert_eq!(&got[..3], b"\x81\x01a");
        assert!(
            got[3..]
                .chunks(60_004)
                .all(|frame| frame[..4] == [0x81, 126, 0xea, 0x60]
                    && frame[4..].iter().all(|&b| b == b'x'))
        );
        writer_gone(&outbox).await;

        // Without a backlog, frames go out directly again.
        outbox.reply("b");
        assert!(outbox.is_empty() && !outbox.has_writer());
        let mut got = [0; 3];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"\x81\x01b");
    }

    #[tokio::test]
    async fn finish_writes_the_backlog_then_the_closing_frames() {
        let (outbox, mut client) = connected().await;
        let big = "y".repeat(60_000);
        let mut queued = 0;
        while outbox.is_empty() {
            outbox.reply(big.clone());
            queued += 1;
        }
        outbox.close(CloseReason::Replaced);
        let finish = tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.finish().await }
        });
        let mut got = vec![0; queued * 60_004];
        client.read_exact(&mut got).await.unwrap();
        assert!(
            got.chunks(60_004)
                .all(|frame| frame[4..].iter().all(|&b| b == b'y'))
        );
        assert_eq!(finish.await.unwrap(), CloseReason::Replaced);
        drop(outbox);
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        // The 1001 frame (text), then the close frame (0x88) with code 1008.
        assert_eq!(rest[0], 0x81, "the 1001 frame first: {rest:?}");
        let close = rest
            .iter()
            .rposition(|&b| b == 0x88)
            .expect("a close frame");
        assert_eq!(&rest[close + 2..close + 4], &1008u16.to_be_bytes());
    }

    #[test]
    fn overflow_closes_as_too_slow() {
        let outbox = Arc::new(Outbox::new(None, 2));
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
        let outbox = Arc::new(Outbox::new(None, 2));
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
        let outbox = Arc::new(Outbox::new(None, 2));
        outbox.close(CloseReason::Replaced);
        outbox.close(CloseReason::Draining);
        assert_eq!(
            outbox.take(&mut VecDeque::new()).1,
            Some(CloseReason::Replaced)
        );
        assert_eq!(outbox.push("late".into()), Pushed::Dropped);
    }
}
