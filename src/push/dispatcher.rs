//! The dispatcher: claims due outbox rows with a lease, drops muted and orphaned ones,
//! POSTs the rest in batches (at most `push.concurrency` at a time), then deletes the sent
//! rows and reschedules the failed ones with exponential backoff and jitter.

use futures_util::future::join_all;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::webhook::{Event, Webhook};
use crate::ids::{UserId, millis_now};
use crate::metrics::Metrics;
use crate::settings::PushSettings;
use crate::store::push::{Muted, OutboxRow, PushOutbox};

/// One node's dispatcher.
pub(super) struct Dispatcher {
    settings: PushSettings,
    outbox: Arc<dyn PushOutbox>,
    hook: Webhook,
    metrics: Arc<Metrics>,
    /// This node's part of each claim token (`{node}-{round}`).
    node: u64,
    round: u64,
}

impl Dispatcher {
    pub(super) fn new(
        settings: PushSettings,
        outbox: Arc<dyn PushOutbox>,
        hook: Webhook,
        metrics: Arc<Metrics>,
    ) -> Dispatcher {
        Dispatcher {
            settings,
            outbox,
            hook,
            metrics,
            node: rand::random(),
            round: 0,
        }
    }

    /// Claims and sends until `shutdown`; a round that found a full claim goes again at
    /// once, otherwise the next waits `push.poll_interval`.
    pub(super) async fn run(mut self, shutdown: CancellationToken) {
        loop {
            let full = match self.round().await {
                Ok(full) => full,
                Err(e) => {
                    tracing::warn!(error = %e, "push outbox not read");
                    false
                }
            };
            if let Ok(depth) = self.outbox.depth().await {
                self.metrics.push.queue_depth.set(depth as i64);
            }
            if !full {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(self.settings.poll_interval) => {}
                }
            } else if shutdown.is_cancelled() {
                return;
            }
        }
    }

    /// One claim and what follows; whether the claim was full (more may be due).
    async fn round(&mut self) -> Result<bool, crate::store::StoreError> {
        self.round += 1;
        let token = format!("{:016x}-{}", self.node, self.round);
        let limit = self.settings.batch_max * self.settings.concurrency;
        let rows = self
            .outbox
            .claim(&token, millis_now(), self.settings.lease, limit)
            .await?;
        let full = rows.len() >= limit;
        let (events, gone) = self.sendable(rows).await?;
        self.outbox.remove(&gone).await?;
        let hook = &self.hook;
        let sends = events
            .chunks(self.settings.batch_max)
            .map(|batch| async move { (batch, hook.post(batch).await) });
        for (batch, result) in join_all(sends).await {
            let keys: Vec<(Uuid, UserId)> =
                batch.iter().map(|e| (e.message_id, e.user_id)).collect();
            match result {
                Ok(()) => {
                    self.outbox.remove(&keys).await?;
                    self.metrics.push.sent.add(keys.len() as u64);
                }
                Err(e) => {
                    tracing::warn!(error = %e, events = batch.len(), "push webhook POST failed");
                    self.failed(batch).await?;
                }
            }
        }
        Ok(full)
    }

    /// The events to send, and the rows to delete unsent: orphaned (the message is not
    /// there) or muted by their user.
    async fn sendable(
        &self,
        rows: Vec<OutboxRow>,
    ) -> Result<(Vec<Event>, Vec<(Uuid, UserId)>), crate::store::StoreError> {
        let mut gone = Vec::new();
        let mut live = Vec::with_capacity(rows.len());
        for row in rows {
            match row.message.clone() {
                Some((sender, group, ts)) => live.push((row, sender, group, ts)),
                None => gone.push((row.message_id, row.user_id)),
            }
        }
        let pairs: Vec<(UserId, Muted)> = live
            .iter()
            .map(|(row, sender, group, _)| {
                let what = match group {
                    Some(g) => Muted::Group(g.clone()),
                    None => Muted::User(*sender),
                };
                (row.user_id, what)
            })
            .collect();
        let muted: HashSet<(UserId, Muted)> = if pairs.is_empty() {
            HashSet::new()
        } else {
            self.outbox.muted(&pairs).await?.into_iter().collect()
        };
        let mut events = Vec::with_capacity(live.len());
        for ((row, sender, group, ts), pair) in live.into_iter().zip(pairs) {
            if muted.contains(&pair) {
                self.metrics.push.muted.inc();
                gone.push((row.message_id, row.user_id));
                continue;
            }
            events.push(Event {
                idempotency_key: format!("{}:{}", row.message_id, row.user_id),
                kind: "message",
                user_id: row.user_id,
                sender_id: sender,
                message_id: row.message_id,
                group_id: group,
                ts,
                attempt: row.attempts + 1,
            });
        }
        Ok((events, gone))
    }

    /// A batch whose POST failed: each event tried again after its backoff, or dropped
    /// after `push.max_attempts`.
    async fn failed(&self, batch: &[Event]) -> Result<(), crate::store::StoreError> {
        let mut dropped = Vec::new();
        let mut by_attempt: BTreeMap<u32, Vec<(Uuid, UserId)>> = BTreeMap::new();
        for e in batch {
            let key = (e.message_id, e.user_id);
            if e.attempt >= self.settings.max_attempts {
                dropped.push(key);
            } else {
                by_attempt.entry(e.attempt).or_default().push(key);
            }
        }
        if !dropped.is_empty() {
            tracing::warn!(
                events = dropped.len(),
                "push events dropped after push.max_attempts"
            );
            self.outbox.remove(&dropped).await?;
            self.metrics.push.failed.add(dropped.len() as u64);
        }
        for (attempt, keys) in by_attempt {
            let wait = backoff(&self.settings, attempt, rand::random_range(0.5..1.5));
            let due = millis_now().saturating_add(wait.as_millis() as i64);
            self.outbox.retry_at(&keys, due).await?;
            self.metrics.push.retried.add(keys.len() as u64);
        }
        Ok(())
    }
}

/// The wait after failed attempt `attempt` (from 1): `push.backoff` doubled per earlier
/// attempt, at most `push.backoff_max`, times `jitter` (0.5 to 1.5).
fn backoff(settings: &PushSettings, attempt: u32, jitter: f64) -> Duration {
    let doubled = settings
        .backoff
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(30));
    doubled.min(settings.backoff_max).mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_with_jitter() {
        let settings = PushSettings::default();
        let secs = |attempt, jitter| backoff(&settings, attempt, jitter).as_secs_f64();
        assert_eq!(secs(1, 1.0), 1.0);
        assert_eq!(secs(2, 1.0), 2.0);
        assert_eq!(secs(5, 1.0), 16.0);
        assert_eq!(secs(9, 1.0), 256.0);
        assert_eq!(secs(10, 1.0), 300.0, "capped at push.backoff_max");
        assert_eq!(secs(40, 1.0), 300.0, "no overflow");
        assert_eq!(secs(3, 0.5), 2.0);
        assert_eq!(secs(3, 1.5), 6.0);
    }
}
