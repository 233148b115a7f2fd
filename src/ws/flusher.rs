//! The flusher: writes the deliveries the hub queued, one system call per connection for
//! everything queued meanwhile, from one task per worker thread instead of one wake-up per
//! connection.
//!
//! The hub hands over an outbox when a delivery finds it idle; the flusher yields once
//! before writing, so the bus messages that are ready run their fan-out first and a
//! connection that several of them reach gets them in one write. Lightly loaded, that is one
//! scheduler turn of latency; under load, writes grow instead of multiplying.
//!
//! Large group fan-outs go to a second flusher that waits `server.group_write_delay`
//! (100 ms) before its pass. The kernel's cost is per write, not per byte, so for a large
//! group writing what arrived within that window together cuts the node's CPU per delivery
//! (see docs/performance.md, items 14, 15 and 21).

use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

use super::outbox::Outbox;

/// One flushing task and the outboxes waiting for it.
pub struct Flusher {
    waiting: Mutex<Vec<Arc<Outbox>>>,
    wake: Notify,
    /// How long a pass waits after the first outbox arrives (zero: one scheduler turn).
    delay: Duration,
}

impl Flusher {
    /// A flusher whose passes start `delay` after the first outbox is handed over; its task
    /// is started with `run`.
    pub fn new(delay: Duration) -> Arc<Flusher> {
        Arc::new(Flusher {
            waiting: Mutex::new(Vec::new()),
            wake: Notify::new(),
            delay,
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

    /// Writes every waiting outbox now.
    pub fn flush(&self, spare: &mut Vec<Arc<Outbox>>) {
        std::mem::swap(&mut *self.waiting.lock(), spare);
        for outbox in spare.drain(..) {
            outbox.flush();
        }
    }

    /// The flushing task: each time outboxes are waiting, lets the other ready tasks run
    /// (more deliveries join the same writes), then writes them.
    pub async fn run(self: Arc<Self>) {
        let mut spare = Vec::new();
        loop {
            self.wake.notified().await;
            if self.delay.is_zero() {
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(self.delay).await;
            }
            self.flush(&mut spare);
            // Keep a moderate allocation across passes, not the largest fan-out ever seen.
            if spare.capacity() > 65_536 {
                spare = Vec::new();
            }
        }
    }
}
