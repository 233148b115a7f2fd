//! The batching writer: group commit for messages.
//!
//! Connections hand their messages to one writer task; it takes everything queued (up to
//! `batch_max`) as one batch, runs it as one transaction, then answers each sender. While a
//! transaction runs, messages queue up and the next batch is larger: throughput grows with
//! load instead of transactions per second bounding it. A connection waits for its own
//! answer, so its messages stay in order.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
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

/// A batch of at least this many messages means the writer is busy: the next one starts
/// after twice `storage.batch_interval`. At a few thousand messages per second a node's
/// batches stay below it (no added latency); well above that, transactions are halved, and
/// each costs the database far more than a row (docs/performance.md, item 17).
const BUSY: usize = 48;

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

    async fn flush(&mut self, store: &dyn Store) {
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

async fn collect(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<Op>,
    batch_max: usize,
    interval: Duration,
) {
    let mut ops = Vec::with_capacity(batch_max);
    let mut marks = Marks::default();
    let mut last_batch = Instant::now();
    // Whether the last batch carried `BUSY` messages or more.
    let mut busy = false;
    // One transaction at a time, in arrival order: an undelivered mark queued before a later
    // insert is known (written, or waiting in `marks`) when that insert looks for
    // duplicates, so a repeated client_msg_id gets the first message's code.
    loop {
        let received = match marks.deadline() {
            None => rx.recv_many(&mut ops, batch_max).await,
            Some(deadline) => {
                match tokio::time::timeout_at(deadline.into(), rx.recv_many(&mut ops, batch_max))
                    .await
                {
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
        // Under load, batches start at most once per `interval` (twice that while busy):
        // what arrives meanwhile joins this one. A message arriving after a quiet spell is
        // not held back.
        let next = last_batch + if busy { interval * 2 } else { interval };
        if ops.len() < batch_max && Instant::now() < next {
            tokio::time::sleep_until(next.into()).await;
            while ops.len() < batch_max
                && let Ok(op) = rx.try_recv()
            {
                ops.push(op);
            }
        }
        last_batch = Instant::now();
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
        busy = messages.len() >= BUSY;
        let started = Instant::now();
        let result = store.insert_messages(&messages, &flushing).await;
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
