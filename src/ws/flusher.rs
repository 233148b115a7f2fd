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
//! (`Pace`): when it has been idle, a pass starts at once; after a pass that wrote to `n`
//! sockets, the next starts no sooner than `n × SEND_SPACING` after it (at most
//! `server.group_write_delay`), and whatever reaches those sockets meanwhile leaves in the
//! same system call. The kernel's cost is per write, not per byte, so a busy large group
//! gets several messages per write (see docs/performance.md, items 14, 15 and 21), while a
//! quiet one is written at once.

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

/// When the next pass of a paced flusher may start.
#[derive(Debug)]
struct Pace {
    /// The longest a pass waits (`server.group_write_delay`); zero: never.
    max_wait: Duration,
    /// When the next pass may start.
    next: Instant,
}

impl Pace {
    /// A pass that started at `started` wrote to `sockets` sockets.
    fn passed(&mut self, started: Instant, sockets: usize) {
        let wait = SEND_SPACING
            .saturating_mul(sockets.try_into().unwrap_or(u32::MAX))
            .min(self.max_wait);
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

    /// Writes every waiting outbox now; returns how many there were.
    pub fn flush(&self, spare: &mut Vec<Arc<Outbox>>) -> usize {
        std::mem::swap(&mut *self.waiting.lock(), spare);
        let sockets = spare.len();
        for outbox in spare.drain(..) {
            outbox.flush();
        }
        sockets
    }

    /// The flushing task: each time outboxes are waiting, lets the other ready tasks run
    /// (more deliveries join the same writes), or, for a paced flusher whose previous pass
    /// was too recent, waits for its pace; then writes them.
    pub async fn run(self: Arc<Self>) {
        let mut spare = Vec::new();
        let mut pace = Pace {
            max_wait: self.max_wait,
            next: Instant::now(),
        };
        loop {
            self.wake.notified().await;
            if Instant::now() < pace.next {
                tokio::time::sleep_until(pace.next).await;
            } else {
                tokio::task::yield_now().await;
            }
            let started = Instant::now();
            let sockets = self.flush(&mut spare);
            pace.passed(started, sockets);
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
    use tokio::net::TcpStream;

    /// A connected, started outbox and the client's end of its socket.
    async fn connection() -> (Arc<Outbox>, TcpStream) {
        let (server, client) = crate::ws::socket_pair().await;
        let outbox = Arc::new(Outbox::new(Some(Arc::new(server)), 64));
        // From now on frames are written directly (the hand-overs below assert it).
        outbox.start();
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
    async fn an_idle_paced_flusher_writes_at_once_and_a_busy_one_coalesces() {
        let delay = Duration::from_millis(100);
        let flusher = Flusher::new(delay);
        tokio::spawn(flusher.clone().run());
        let mut sockets = Vec::new();
        for _ in 0..10 {
            sockets.push(connection().await);
        }

        // Idle: the first delivery is written without any timer elapsing.
        let t0 = Instant::now();
        for (outbox, _) in &sockets {
            assert_eq!(hand_over(&flusher, outbox, "1"), Pushed::Flush);
        }
        for (_, client) in &mut sockets {
            read_frames(client, b"1").await;
        }
        assert_eq!(Instant::now(), t0, "written at once, not after a delay");

        // Right after that pass, what arrives waits for the pace (10 sockets × 20 µs) and
        // leaves together: the second message is handed over, the third joins its write.
        for (outbox, _) in &sockets {
            assert_eq!(hand_over(&flusher, outbox, "2"), Pushed::Flush);
            assert_eq!(hand_over(&flusher, outbox, "3"), Pushed::Queued);
        }
        for (_, client) in &mut sockets {
            read_frames(client, b"23").await;
        }
        // (The timer wheel counts whole milliseconds: the pace is rounded up to one.)
        let waited = Instant::now() - t0;
        assert!(
            waited >= SEND_SPACING * 10 && waited < delay,
            "paced, not delayed: {waited:?}"
        );

        // After a quiet spell longer than the pace, a delivery goes at once again.
        tokio::time::sleep(Duration::from_millis(1)).await;
        let t1 = Instant::now();
        let (outbox, client) = &mut sockets[0];
        assert_eq!(hand_over(&flusher, outbox, "4"), Pushed::Flush);
        read_frames(client, b"4").await;
        assert_eq!(Instant::now(), t1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_pace_never_exceeds_the_delay() {
        let mut pace = Pace {
            max_wait: Duration::from_millis(100),
            next: Instant::now(),
        };
        let t0 = Instant::now();
        pace.passed(t0, 1_000);
        assert_eq!(pace.next, t0 + Duration::from_millis(20));
        pace.passed(t0, 1_000_000);
        assert_eq!(pace.next, t0 + Duration::from_millis(100));
        let mut unpaced = Pace {
            max_wait: Duration::ZERO,
            next: t0,
        };
        unpaced.passed(t0, 1_000_000);
        assert_eq!(unpaced.next, t0);
    }
}
