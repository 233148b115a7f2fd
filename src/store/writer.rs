//! The batching writer: group commit for messages.
//!
//! Connections hand their messages to one writer task; it takes everything queued (up to
//! `batch_max`) as one batch, runs it as one transaction, then answers each sender. When
//! nothing is being written, a message goes to the database at once; while a transaction
//! runs, messages queue up and join the next batch: throughput grows with load instead of
//! transactions per second bounding it, and an idle node adds no wait. Only a busy writer
//! (`Pace`) spaces its batches by `storage.batch_interval`, to trade a few milliseconds for
//! far fewer transactions. One transaction at a time, and a connection waits for its own
//! answer, so its messages stay in order.

use async_trait::async_trait;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::Instrument as _;
use uuid::Uuid;

use super::{InsertOutcome, Store, StoreError};
use crate::ids::UserId;
use crate::message::Message;

/// Queued operations before `insert` waits (backpressure).
const QUEUE: usize = 16 * 1024;

/// The answer to one insert: the message back (no copy was made) and what became of it.
pub type Written = (Message, Result<InsertOutcome, Arc<StoreError>>);

/// The answer to a duplicate lookup.
type Found = Result<Option<InsertOutcome>, StoreError>;

enum Op {
    Insert(Message, oneshot::Sender<Written>),
    Undelivered(Uuid),
    FindDuplicate(UserId, String, oneshot::Sender<Found>),
}

/// Handle to the batching writer; cheap to clone.
#[derive(Clone)]
pub struct MessageWriter {
    /// Bounded, so that a slow database pushes back on senders instead of growing memory.
    tx: mpsc::Sender<Op>,
}

impl MessageWriter {
    /// Starts the writer task over `store`.
    pub fn start(store: Arc<dyn Store>, batch_max: usize, interval: Duration) -> MessageWriter {
        MessageWriter::spawn(store, batch_max, interval)
    }

    fn spawn<S: Batches + ?Sized>(
        store: Arc<S>,
        batch_max: usize,
        interval: Duration,
    ) -> MessageWriter {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(collect(store, rx, batch_max.max(1), interval));
        MessageWriter { tx }
    }

    /// Stores one message (in the next batch) and says what became of it; the message comes
    /// back with the answer. An error means it was not stored.
    pub async fn insert(&self, message: Message) -> Result<Written, Arc<StoreError>> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Op::Insert(message, reply))
            .await
            .map_err(|_| Arc::new(StoreError::Stopped))?;
        answer.await.map_err(|_| Arc::new(StoreError::Stopped))
    }

    /// The first message `sender` sent with `client_msg_id`, as `Store::find_duplicate`, but
    /// in order with this writer's batches and with the code of marks not yet written.
    pub async fn find_duplicate(
        &self,
        sender: UserId,
        client_msg_id: &str,
    ) -> Result<Option<InsertOutcome>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Op::FindDuplicate(sender, client_msg_id.to_string(), reply))
            .await
            .map_err(|_| StoreError::Stopped)?;
        answer.await.map_err(|_| StoreError::Stopped)?
    }

    /// Records, in a later batch, that a message reached no online device (messages are
    /// stored as delivered). Never waits.
    pub fn undelivered(&self, id: Uuid) {
        // Only the answer to a repeated client_msg_id reads it: dropping one under overload
        // is harmless.
        let _ = self.tx.try_send(Op::Undelivered(id));
    }
}

/// What the writer needs of a store: the `Store` methods it calls, as a seam of its own so
/// that the unit tests can hold a real store's commit open.
#[async_trait]
trait Batches: Send + Sync + 'static {
    async fn insert_messages(
        &self,
        batch: &[Message],
        undelivered: &[Uuid],
    ) -> Result<Vec<InsertOutcome>, StoreError>;
    async fn find_duplicate(&self, sender: UserId, client_msg_id: &str) -> Found;
    async fn mark_undelivered(&self, ids: &[Uuid]) -> Result<(), StoreError>;
}

#[async_trait]
impl Batches for dyn Store {
    async fn insert_messages(
        &self,
        batch: &[Message],
        undelivered: &[Uuid],
    ) -> Result<Vec<InsertOutcome>, StoreError> {
        Store::insert_messages(self, batch, undelivered).await
    }

    async fn find_duplicate(&self, sender: UserId, client_msg_id: &str) -> Found {
        Store::find_duplicate(self, sender, client_msg_id).await
    }

    async fn mark_undelivered(&self, ids: &[Uuid]) -> Result<(), StoreError> {
        Store::mark_undelivered(self, ids).await
    }
}

/// The writer is busy when it takes at least this many messages per `storage.batch_interval`
/// (9,600 a second at 5 ms): its batches then start at most once per twice the interval.
/// Below that rate (a few thousand messages per second per node) each batch starts as soon
/// as the previous one ends and adds no latency; well above it, transactions are far fewer,
/// and each costs the database far more than a row (docs/performance.md, item 17).
const BUSY: u32 = 48;

/// The writer measures the rate it takes messages at over windows at least this long: long
/// enough that a few messages arriving together do not make a quiet writer look busy.
const RATE_WINDOW: Duration = Duration::from_millis(20);

/// When the next batch may start: at once (group commit), unless the writer is busy.
struct Pace {
    interval: Duration,
    /// When the last batch started.
    last: Instant,
    /// Whether the last complete window's rate made the writer busy.
    busy: bool,
    /// The current window: when it began and how many messages its batches took.
    window: Instant,
    taken: u32,
}

impl Pace {
    fn new(interval: Duration, now: Instant) -> Pace {
        Pace {
            interval,
            last: now,
            busy: false,
            window: now,
            taken: 0,
        }
    }

    /// When a batch that could start at `now` starts: `now`, or, while the writer is busy,
    /// twice the interval after the previous batch started. A window that ends with a quiet
    /// spell (no batch for a while) shows a low rate, so a message after it goes at once.
    fn start_at(&mut self, now: Instant) -> Instant {
        let elapsed = now - self.window;
        if elapsed >= RATE_WINDOW {
            // taken / elapsed >= BUSY / interval, without dividing (and without overflowing
            // on an absurd interval).
            self.busy = !self.interval.is_zero()
                && self.interval.saturating_mul(self.taken) >= elapsed.saturating_mul(BUSY);
            self.window = now;
            self.taken = 0;
        }
        if !self.busy {
            return now;
        }
        let wait = self.interval.saturating_mul(2);
        // An interval too large to add is as good as the largest wait a timer can take.
        let next = self
            .last
            .checked_add(wait)
            .unwrap_or(now + Duration::from_secs(86_400 * 365));
        next.max(now)
    }

    /// A batch of `messages` started at `at`.
    fn started(&mut self, at: Instant, messages: usize) {
        self.last = at;
        self.taken = self.taken.saturating_add(messages as u32);
    }
}

/// Undelivered marks wait at most this long before they are written…
const MARKS_MAX_AGE: Duration = Duration::from_millis(200);
/// …or until this many are waiting.
const MARKS_MAX: usize = 2048;

/// Undelivered marks not yet written. They are written in bulk with a later batch (one
/// statement every `MARKS_MAX_AGE` instead of one per batch); until then a duplicate found
/// by this node is answered from here, so its answer is exact. Another node may answer
/// 2100 for a repeat within that time.
///
/// Only messages that reached nobody are marked: in a busy chat most messages reach an
/// online device, and marking those wrote almost every row a second time.
#[derive(Default)]
struct Marks {
    ids: HashSet<Uuid>,
    since: Option<Instant>,
}

impl Marks {
    fn add(&mut self, id: Uuid) {
        self.ids.insert(id);
        self.since.get_or_insert_with(Instant::now);
    }

    fn due(&self) -> bool {
        self.ids.len() >= MARKS_MAX || self.since.is_some_and(|t| t.elapsed() >= MARKS_MAX_AGE)
    }

    fn deadline(&self) -> Option<Instant> {
        self.since.map(|t| t + MARKS_MAX_AGE)
    }

    fn written(&mut self) {
        self.ids.clear();
        self.since = None;
    }

    async fn flush<S: Batches + ?Sized>(&mut self, store: &S) {
        if self.ids.is_empty() {
            return;
        }
        let ids: Vec<Uuid> = self.ids.iter().copied().collect();
        match store.mark_undelivered(&ids).await {
            Ok(()) => self.written(),
            Err(e) => tracing::warn!(error = %e, "undelivered flags not recorded yet"),
        }
    }
}

async fn collect<S: Batches + ?Sized>(
    store: Arc<S>,
    mut rx: mpsc::Receiver<Op>,
    batch_max: usize,
    interval: Duration,
) {
    let mut ops = Vec::with_capacity(batch_max);
    let mut marks = Marks::default();
    let mut pace = Pace::new(interval, Instant::now());
    // One transaction at a time, in arrival order: an undelivered mark queued before a later
    // insert is known (written, or waiting in `marks`) when that insert looks for
    // duplicates, so a repeated client_msg_id gets the first message's code. And batches
    // never overlap, so a sender's messages (each sent after the previous one's answer)
    // are committed in order.
    loop {
        let received = match marks.deadline() {
            None => rx.recv_many(&mut ops, batch_max).await,
            Some(deadline) => {
                match tokio::time::timeout_at(deadline, rx.recv_many(&mut ops, batch_max)).await {
                    Ok(received) => received,
                    Err(_) => {
                        marks.flush(store.as_ref()).await;
                        continue;
                    }
                }
            }
        };
        if received == 0 {
            marks.flush(store.as_ref()).await;
            return;
        }
        // Group commit: what arrived while the previous transaction ran is here already and
        // goes now. Only a busy writer waits, and what arrives meanwhile joins this batch.
        let now = Instant::now();
        let start = pace.start_at(now);
        if ops.len() < batch_max && now < start {
            tokio::time::sleep_until(start).await;
            while ops.len() < batch_max
                && let Ok(op) = rx.try_recv()
            {
                ops.push(op);
            }
        }
        let mut messages = Vec::with_capacity(ops.len());
        let mut replies = Vec::with_capacity(ops.len());
        for op in ops.drain(..) {
            match op {
                Op::Insert(m, reply) => {
                    messages.push(m);
                    replies.push(reply);
                }
                Op::Undelivered(id) => marks.add(id),
                Op::FindDuplicate(sender, client_msg_id, reply) => {
                    let mut found = store.find_duplicate(sender, &client_msg_id).await;
                    if let Ok(Some(InsertOutcome::Duplicate { id, delivered, .. })) = &mut found
                        && marks.ids.contains(id)
                    {
                        *delivered = false;
                    }
                    let _ = reply.send(found);
                }
            }
        }
        if messages.is_empty() {
            if marks.due() {
                marks.flush(store.as_ref()).await;
            }
            continue;
        }
        let flushing: Vec<Uuid> = if marks.due() {
            marks.ids.iter().copied().collect()
        } else {
            Vec::new()
        };
        let started = Instant::now();
        pace.started(started, messages.len());
        let span = tracing::info_span!(target: "chat_gateway::spans", "store_batch", messages = messages.len());
        let result = store
            .insert_messages(&messages, &flushing)
            .instrument(span)
            .await;
        crate::metrics::store_batch_done(messages.len(), started.elapsed());
        tracing::debug!(
            batch = messages.len(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "batch written"
        );
        match result {
            Ok(outcomes) => {
                for ((reply, message), mut outcome) in
                    replies.into_iter().zip(messages).zip(outcomes)
                {
                    if let InsertOutcome::Duplicate { id, delivered, .. } = &mut outcome
                        && marks.ids.contains(id)
                    {
                        *delivered = false;
                    }
                    let _ = reply.send((message, Ok(outcome)));
                }
                if !flushing.is_empty() {
                    marks.written();
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, batch = messages.len(), "message batch not stored");
                let e = Arc::new(e);
                for (reply, message) in replies.into_iter().zip(messages) {
                    let _ = reply.send((message, Err(e.clone())));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Target;
    use crate::settings::{StorageSettings, StoreUrl};
    use parking_lot::Mutex;
    use tokio::sync::Semaphore;

    /// One batch the store was asked to write: its size, when it was asked and when it
    /// answered.
    #[derive(Debug, Clone, Copy)]
    struct Batch {
        size: usize,
        asked: Instant,
        answered: Instant,
    }

    /// A real SQLite store whose batches are recorded; each waits for a permit of `gate`
    /// before it is written, so a test can keep a commit pending.
    struct Held {
        store: Arc<dyn Store>,
        batches: Mutex<Vec<Batch>>,
        gate: Semaphore,
        _dir: tempfile::TempDir,
    }

    impl Held {
        /// Opens (and migrates) the store and writes one batch, all in real time; then
        /// pauses the clock. The paused clock jumps to the next timer whenever the test
        /// waits for SQLite's thread, so a pool acquire would time out in virtual time: the
        /// first batch takes the connection the store keeps for its batches.
        async fn open() -> Arc<Held> {
            let dir = tempfile::tempdir().unwrap();
            let settings = StorageSettings {
                url: StoreUrl::Sqlite(format!("sqlite:{}", dir.path().join("t.db").display())),
                ..StorageSettings::default()
            };
            let store = crate::store::connect(&settings).await.unwrap();
            store.insert_messages(&[message(1, 2)], &[]).await.unwrap();
            tokio::time::pause();
            Arc::new(Held {
                store,
                batches: Mutex::new(Vec::new()),
                gate: Semaphore::new(0),
                _dir: dir,
            })
        }

        fn sizes(&self) -> Vec<usize> {
            self.batches.lock().iter().map(|b| b.size).collect()
        }
    }

    #[async_trait]
    impl Batches for Held {
        async fn insert_messages(
            &self,
            batch: &[Message],
            undelivered: &[Uuid],
        ) -> Result<Vec<InsertOutcome>, StoreError> {
            let asked = Instant::now();
            let index = {
                let mut batches = self.batches.lock();
                batches.push(Batch {
                    size: batch.len(),
                    asked,
                    answered: asked,
                });
                batches.len() - 1
            };
            self.gate.acquire().await.unwrap().forget();
            let outcomes = self.store.insert_messages(batch, undelivered).await;
            self.batches.lock()[index].answered = Instant::now();
            outcomes
        }

        async fn find_duplicate(&self, sender: UserId, client_msg_id: &str) -> Found {
            self.store.find_duplicate(sender, client_msg_id).await
        }

        async fn mark_undelivered(&self, ids: &[Uuid]) -> Result<(), StoreError> {
            self.store.mark_undelivered(ids).await
        }
    }

    fn message(from: UserId, to: UserId) -> Message {
        Message::new(from, Target::User(to), format!("{from} to {to}"), None)
    }

    /// Lets the other tasks run until `done` holds (a bounded number of scheduler turns: no
    /// timer runs meanwhile).
    async fn until(done: impl Fn() -> bool) {
        for _ in 0..10_000 {
            if done() {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("not reached");
    }

    #[tokio::test]
    async fn an_idle_writer_writes_the_first_message_at_once() {
        let held = Held::open().await;
        held.gate.add_permits(Semaphore::MAX_PERMITS);
        let writer = MessageWriter::spawn(held.clone(), 512, Duration::from_millis(5));
        let t0 = Instant::now();
        let (_, outcome) = writer.insert(message(1, 2)).await.unwrap();
        assert_eq!(outcome.unwrap(), InsertOutcome::Stored);
        let batches = held.batches.lock().clone();
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].asked, t0, "no timer ran before the batch");
    }

    #[tokio::test]
    async fn what_arrives_during_a_commit_joins_the_next_batch() {
        let held = Held::open().await;
        let writer = MessageWriter::spawn(held.clone(), 512, Duration::from_millis(5));
        let insert = |m: Message| {
            let writer = writer.clone();
            tokio::spawn(async move { writer.insert(m).await })
        };
        let first = insert(message(1, 2));
        until(|| held.batches.lock().len() == 1).await;
        // The first batch's commit is pending: three senders' messages queue meanwhile.
        let rest: Vec<_> = (3..6).map(|from| insert(message(from, 2))).collect();
        until(|| QUEUE - writer.tx.capacity() == 3).await;
        held.gate.add_permits(Semaphore::MAX_PERMITS);
        for task in std::iter::once(first).chain(rest) {
            let (_, outcome) = task.await.unwrap().unwrap();
            assert_eq!(outcome.unwrap(), InsertOutcome::Stored);
        }
        assert_eq!(held.sizes(), [1, 3], "one batch for what waited");
        let batches = held.batches.lock().clone();
        assert_eq!(
            batches[1].asked, batches[0].answered,
            "the next batch starts when the commit ends, with no timer between"
        );
    }

    #[test]
    fn only_a_busy_writer_spaces_its_batches() {
        let interval = Duration::from_millis(5);
        let t0 = Instant::now();
        let mut pace = Pace::new(interval, t0);
        let ms = |n: u64| t0 + Duration::from_millis(n);
        // 2,000 messages a second (two per millisecond): every batch starts at once.
        for n in 0..100 {
            assert_eq!(pace.start_at(ms(n)), ms(n));
            pace.started(ms(n), 2);
        }
        // 20,000 a second: once a window has shown it, a batch waits for twice the
        // interval after the previous one, and what arrives meanwhile joins it.
        let mut now = 100;
        let mut waited = false;
        while now < 200 {
            let start = pace.start_at(ms(now));
            if start > ms(now) {
                assert_eq!(start, pace.last + interval * 2);
                waited = true;
            }
            let elapsed = (start - pace.last).as_millis() as usize;
            pace.started(start, 20 * elapsed.max(1));
            now = (start - t0).as_millis() as u64 + 1;
        }
        assert!(waited, "a busy writer batches");
        // After a quiet spell, the next message goes at once.
        let later = pace.last + Duration::from_secs(1);
        assert_eq!(pace.start_at(later), later);
        // `0s`: never waits.
        let mut unpaced = Pace::new(Duration::ZERO, t0);
        for n in 0..100 {
            assert_eq!(unpaced.start_at(ms(n)), ms(n));
            unpaced.started(ms(n), 1_000);
        }
    }
}
