//! The batching writer: group commit for messages.
//!
//! Connections hand their messages to one writer task; it takes everything queued (up to
//! `batch_max`) as one batch, runs it as one transaction, then answers each sender. While a
//! transaction runs, messages queue up and the next batch is larger: throughput grows with
//! load instead of transactions per second bounding it. A connection waits for its own
//! answer, so its messages stay in order.

use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::{InsertOutcome, Store, StoreError};
use crate::message::Message;

/// Queued operations before `insert` waits (backpressure).
const QUEUE: usize = 16 * 1024;

/// The answer to one insert: the message back (no copy was made) and what became of it.
pub type Written = (Message, Result<InsertOutcome, Arc<StoreError>>);

enum Op {
    Insert(Message, oneshot::Sender<Written>),
    Delivered(Uuid),
}

/// Handle to the batching writer; cheap to clone.
#[derive(Clone)]
pub struct MessageWriter {
    /// Bounded, so that a slow database pushes back on senders instead of growing memory.
    tx: mpsc::Sender<Op>,
}

impl MessageWriter {
    /// Starts the writer task over `store`.
    pub fn start(store: Arc<dyn Store>, batch_max: usize) -> MessageWriter {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(collect(store, rx, batch_max.max(1)));
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

    /// Records, in a later batch, that a message reached an online device. Never waits.
    pub fn delivered(&self, id: Uuid) {
        // Only the answer to a repeated client_msg_id reads it: dropping one under overload
        // is harmless.
        let _ = self.tx.try_send(Op::Delivered(id));
    }
}

async fn collect(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Op>, batch_max: usize) {
    let mut ops = Vec::with_capacity(batch_max);
    // One transaction at a time, in arrival order: a delivered mark queued before a later
    // insert is committed before that insert looks for duplicates, so a repeated
    // client_msg_id always gets the first message's code.
    while rx.recv_many(&mut ops, batch_max).await > 0 {
        let mut messages = Vec::with_capacity(ops.len());
        let mut replies = Vec::with_capacity(ops.len());
        let mut delivered = Vec::new();
        for op in ops.drain(..) {
            match op {
                Op::Insert(m, reply) => {
                    messages.push(m);
                    replies.push(reply);
                }
                Op::Delivered(id) => delivered.push(id),
            }
        }
        if messages.is_empty() {
            if let Err(e) = store.mark_delivered(&delivered).await {
                tracing::warn!(error = %e, "delivered flags not recorded");
            }
            continue;
        }
        let started = std::time::Instant::now();
        let result = store.insert_messages(&messages, &delivered).await;
        tracing::debug!(
            batch = messages.len(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "batch written"
        );
        match result {
            Ok(outcomes) => {
                for ((reply, message), outcome) in replies.into_iter().zip(messages).zip(outcomes) {
                    let _ = reply.send((message, Ok(outcome)));
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
