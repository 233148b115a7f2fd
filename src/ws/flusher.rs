//! The flusher: writes the deliveries the hub queued, one system call per connection for
//! everything queued meanwhile, from one task per worker thread instead of one wake-up per
//! connection.
//!
//! The hub hands over an outbox when a delivery finds it idle; the flusher yields once
//! before writing, so the bus messages that are ready run their fan-out first and a
//! connection that several of them reach gets them in one write. Lightly loaded, that is one
//! scheduler turn of latency; under load, writes grow instead of multiplying.
//!
//! Large group fan-outs go to a second flusher that coalesces writes by pacing its passes
//! (`Pace`), but only while it is busy: while it carries fewer than `BUSY_FRAMES_PER_SEC`
//! frames a second, each pass starts one scheduler turn after a hand-over, as the first
//! flusher's do (what arrives during a pass joins the next one). Busier, after a pass that
//! wrote to `n` sockets, the next starts no sooner than `n × SEND_SPACING` after it (at most
//! `server.group_write_delay`), and whatever reaches those sockets meanwhile leaves in the
//! same system call. The kernel's cost is per write, not per byte, so a busy large group
//! gets several messages per write (see docs/performance.md, items 14, 15 and 21), while a
//! quiet one, or a busy small one, is written at once.

use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::outbox::Outbox;

/// After a paced pass, the next one waits this long per socket the pass wrote to: the paced
/// flusher makes at most 50,000 system calls a second before its writes carry several
/// messages each. At 30 messages a second into a group with 5,000 members on a node, that
/// is a pass every 100 ms (~3 messages per write, as the fixed 100 ms delay did); with 250
/// members on a node, a pass may follow the previous one after 5 ms.
pub const SEND_SPACING: Duration = Duration::from_micros(20);

/// A paced flusher paces its passes only while it carries at least this many frames a
/// second (measured over `BUSY_WINDOW`): written one system call each, that many frames
/// cost a third of a core here (docs/performance.md). Below it, pacing would save little
/// and cost latency: a group of 10,000 members at 10 messages a second (50,000 frames a
/// second per node of two) is written at once; at 31 a second it is paced.
pub const BUSY_FRAMES_PER_SEC: u32 = 100_000;

/// The window over which a paced flusher measures the frames it carries.
const BUSY_WINDOW: Duration = Duration::from_millis(100);

/// When the next pass of a paced flusher may start.
#[derive(Debug)]
struct Pace {
    /// The longest a pass waits (`server.group_write_delay`); zero: never.
    max_wait: Duration,
    /// When the next pass may start.
    next: Instant,
    /// Whether the last complete window carried `BUSY_FRAMES_PER_SEC` or more.
    busy: bool,
    /// The current window: when it began and the frames its passes carried.
    window: Instant,
    frames: u64,
}

impl Pace {
    fn new(max_wait: Duration, now: Instant) -> Pace {
        Pace {
            max_wait,
            next: now,
            busy: false,
            window: now,
            frames: 0,
        }
    }

    /// A pass that started at `started` wrote `frames` frames to `sockets` sockets.
    fn passed(&mut self, started: Instant, sockets: usize, frames: usize) {
        // The window holds the passes that started in it, before this one.
        let elapsed = started.saturating_duration_since(self.window);
        if elapsed >= BUSY_WINDOW {
            // frames / elapsed >= BUSY_FRAMES_PER_SEC, in whole microseconds.
            let micros = elapsed.as_micros().max(1);
            self.busy =
                u128::from(self.frames) * 1_000_000 >= u128::from(BUSY_FRAMES_PER_SEC) * micros;
            self.window = started;
            self.frames = 0;
        }
        self.frames = self.frames.saturating_add(frames as u64);
        let wait = if self.busy {
            SEND_SPACING
                .saturating_mul(sockets.try_into().unwrap_or(u32::MAX))
                .min(self.max_wait)
        } else {
            Duration::ZERO
        };
        self.next = started + wait;
    }
}

/// One flushing task and the outboxes waiting for it.
pub struct Flusher {
    waiting: Mutex<Vec<Arc<Outbox>>>,
    wake: Notify,
    /// Bounds a paced flusher's wait (zero: passes one scheduler turn after a hand-over).
    max_wait: Duration,
}

impl Flusher {
    /// A flusher whose passes are paced as the module docs say and wait at most `max_wait`
    /// (zero: each pass starts one scheduler turn after the first outbox is handed over);
    /// its task is started with `run`.
    pub fn new(max_wait: Duration) -> Arc<Flusher> {
        Arc::new(Flusher {
            waiting: Mutex::new(Vec::new()),
            wake: Notify::new(),
            max_wait,
        })
    }

    /// Queues an outbox for the next pass.
    pub fn schedule(&self, outbox: Arc<Outbox>) {
        let mut waiting = self.waiting.lock();
        let first = waiting.is_empty();
        waiting.push(outbox);
        drop(waiting);
        if first {
            self.wake.notify_one();
        }
    }

    /// Writes every waiting outbox now; returns how many there were and the frames they
    /// held.
    pub fn flush(&self, spare: &mut Vec<Arc<Outbox>>) -> (usize, usize) {
        std::mem::swap(&mut *self.waiting.lock(), spare);
        let sockets = spare.len();
        let mut frames = 0;
        for outbox in spare.drain(..) {
            frames += outbox.flush();
        }
        (sockets, frames)
    }

    /// The flushing task: each time outboxes are waiting, lets the other ready tasks run
    /// (more deliveries join the same writes), or, for a paced flusher whose previous pass
    /// was too recent, waits for its pace; then writes them.
    pub async fn run(self: Arc<Self>) {
        let mut spare = Vec::new();
        let mut pace = Pace::new(self.max_wait, Instant::now());
        loop {
            self.wake.notified().await;
            if Instant::now() < pace.next {
                tokio::time::sleep_until(pace.next).await;
            } else {
                tokio::task::yield_now().await;
            }
            let started = Instant::now();
            let (sockets, frames) = self.flush(&mut spare);
            pace.passed(started, sockets, frames);
            // Keep a moderate allocation across passes, not the largest fan-out ever seen.
            if spare.capacity() > 65_536 {
                spare = Vec::new();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::outbox::Pushed;
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    /// A connected outbox (its writer task running) and the client's end of its socket.
    async fn connection() -> (Arc<Outbox>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let outbox = Arc::new(Outbox::new(Some(Arc::new(server)), 64));
        tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.write_loop().await }
        });
        // One scheduler turn: the writer takes its (empty) queue, and from then on frames
        // are written directly (the hand-overs below assert it).
        tokio::task::yield_now().await;
        (outbox, client)
    }

    /// Reads the server frames carrying `texts` (one byte each), which must come next.
    async fn read_frames(client: &mut TcpStream, texts: &[u8]) {
        let mut got = vec![0; texts.len() * 3];
        client.read_exact(&mut got).await.unwrap();
        let expected: Vec<u8> = texts.iter().flat_map(|&t| [0x81, 1, t]).collect();
        assert_eq!(got, expected);
    }

    fn hand_over(flusher: &Flusher, outbox: &Arc<Outbox>, text: &'static str) -> Pushed {
        let pushed = outbox.push(text.into());
        if pushed == Pushed::Flush {
            flusher.schedule(outbox.clone());
        }
        pushed
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_paced_flusher_writes_at_once() {
        let delay = Duration::from_millis(100);
        let flusher = Flusher::new(delay);
        tokio::spawn(flusher.clone().run());
        let mut sockets = Vec::new();
        for _ in 0..10 {
            sockets.push(connection().await);
        }

        // The first delivery is written without any timer elapsing.
        let t0 = Instant::now();
        for (outbox, _) in &sockets {
            assert_eq!(hand_over(&flusher, outbox, "1"), Pushed::Flush);
        }
        for (_, client) in &mut sockets {
            read_frames(client, b"1").await;
        }
        assert_eq!(Instant::now(), t0, "written at once, not after a delay");

        // Right after that pass, a quiet flusher does not wait either; what reaches a
        // socket before the pass leaves in the same write.
        for (outbox, _) in &sockets {
            assert_eq!(hand_over(&flusher, outbox, "2"), Pushed::Flush);
            assert_eq!(hand_over(&flusher, outbox, "3"), Pushed::Queued);
        }
        for (_, client) in &mut sockets {
            read_frames(client, b"23").await;
        }
        assert_eq!(Instant::now(), t0, "not paced while quiet");
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_flusher_is_paced_and_a_quiet_one_is_not() {
        let max_wait = Duration::from_millis(100);
        let t0 = Instant::now();
        let mut pace = Pace::new(max_wait, t0);
        // Quiet: 5,000 sockets ten times a second (50,000 frames a second): no wait.
        let mut at = t0;
        for _ in 0..5 {
            pace.passed(at, 5_000, 5_000);
            assert_eq!(pace.next, at, "quiet: the next pass may start at once");
            at += Duration::from_millis(100);
        }
        // Busy: 5,000 sockets every 20 ms (250,000 frames a second): once the window has
        // shown it, passes are spaced by 5,000 × 20 µs = 100 ms.
        let mut paced = 0;
        for _ in 0..20 {
            pace.passed(at, 5_000, 5_000);
            if pace.next > at {
                assert_eq!(pace.next, at + Duration::from_millis(100));
                paced += 1;
            }
            at += Duration::from_millis(20);
        }
        assert!(paced >= 14, "paced {paced} of 20 passes");
        // Spacing follows the sockets, and never exceeds the delay.
        pace.passed(at, 1_000, 1_000_000);
        assert_eq!(pace.next, at + Duration::from_millis(20));
        pace.passed(at, 1_000_000, 1_000_000);
        assert_eq!(pace.next, at + max_wait);
        // Quiet again: once a window has carried few frames, at once.
        for _ in 0..2 {
            at += Duration::from_millis(200);
            pace.passed(at, 10, 10);
        }
        assert_eq!(pace.next, at);

        let mut unpaced = Pace::new(Duration::ZERO, t0);
        for i in 0..10 {
            let at = t0 + Duration::from_millis(20 * i);
            unpaced.passed(at, 1_000_000, 1_000_000);
            assert_eq!(unpaced.next, at);
        }
    }
}
