//! The dispatcher: claims due outbox rows with a lease, turns each into its events (a group
//! message's: one per member offline now), drops muted and orphaned ones, POSTs the rest in
//! batches (at most `push.concurrency` at a time), then deletes the sent rows and
//! reschedules the failed ones with exponential backoff and jitter.

use futures_util::future::join_all;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::webhook::{Event, Webhook};
use crate::bus::{Bus, Topic};
use crate::ids::{UserId, millis_now};
use crate::metrics::Metrics;
use crate::settings::PushSettings;
use crate::store::StoreError;
use crate::store::push::{Muted, OutboxRow, PushOutbox};

/// How often the dispatcher counts the outbox (`chat_push_queue_depth`): a count reads
/// every row, and the outbox grows while the webhook is down.
const DEPTH_EVERY: Duration = Duration::from_secs(5);

/// One outbox row and the events it makes: one for a private message, one per offline
/// member for a group message. The row goes only once all of them were accepted.
struct Unit {
    key: (Uuid, UserId),
    /// The attempt these events are (the row's attempts before, plus one).
    attempt: u32,
    events: Vec<Event>,
}

/// One node's dispatcher.
pub(super) struct Dispatcher {
    settings: PushSettings,
    outbox: Arc<dyn PushOutbox>,
    /// Presence of group members when a group message's event is due.
    bus: Arc<dyn Bus>,
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
        bus: Arc<dyn Bus>,
        hook: Webhook,
        metrics: Arc<Metrics>,
    ) -> Dispatcher {
        Dispatcher {
            settings,
            outbox,
            bus,
            hook,
            metrics,
            node: rand::random(),
            round: 0,
        }
    }

    /// Claims and sends until `shutdown`; a round that found a full claim goes again at
    /// once, otherwise the next waits `push.poll_interval`.
    pub(super) async fn run(mut self, shutdown: CancellationToken) {
        let mut counted = None;
        loop {
            let full = match self.round().await {
                Ok(full) => full,
                Err(e) => {
                    tracing::warn!(error = %e, "push outbox not read");
                    false
                }
            };
            if counted.is_none_or(|at: Instant| at.elapsed() >= DEPTH_EVERY) {
                counted = Some(Instant::now());
                if let Ok(depth) = self.outbox.depth().await {
                    self.metrics.push.queue_depth.set(depth as i64);
                }
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
    async fn round(&mut self) -> Result<bool, StoreError> {
        self.round += 1;
        let token = format!("{:016x}-{}", self.node, self.round);
        let limit = self.settings.batch_max * self.settings.concurrency;
        let rows = self
            .outbox
            .claim(&token, millis_now(), self.settings.lease, limit)
            .await?;
        let full = rows.len() >= limit;
        let mut units = Vec::with_capacity(rows.len());
        let mut gone = Vec::new();
        for row in rows {
            match self.unit(row).await {
                Ok(unit) if unit.events.is_empty() => gone.push(unit.key),
                Ok(unit) => units.push(unit),
                // A group whose members or presence could not be read: tried again later.
                Err((key, attempt, e)) => {
                    tracing::warn!(error = %e, "push event not prepared");
                    self.failed(&[key], attempt, 1).await?;
                }
            }
        }
        self.outbox.remove(&gone).await?;
        self.send(units).await?;
        Ok(full)
    }

    /// POSTs the units' events in batches of `push.batch_max`, all batches at once (at most
    /// `push.concurrency` of them: the claim's limit); removes the rows whose events were
    /// all accepted and reschedules the others.
    async fn send(&self, units: Vec<Unit>) -> Result<(), StoreError> {
        let events: Vec<(usize, &Event)> = units
            .iter()
            .enumerate()
            .flat_map(|(i, unit)| unit.events.iter().map(move |e| (i, e)))
            .collect();
        let hook = &self.hook;
        let sends = events
            .chunks(self.settings.batch_max)
            .map(|chunk| async move {
                let batch: Vec<Event> = chunk.iter().map(|(_, e)| (*e).clone()).collect();
                let result = hook.post(&batch).await;
                if let Err(e) = &result {
                    tracing::warn!(error = %e, events = batch.len(), "push webhook POST failed");
                }
                (chunk, result.is_ok())
            });
        let mut failed = vec![false; units.len()];
        for (chunk, ok) in join_all(sends).await {
            if !ok {
                for (i, _) in chunk {
                    failed[*i] = true;
                }
            }
        }
        let mut sent = Vec::new();
        let mut retry: BTreeMap<u32, (Vec<(Uuid, UserId)>, usize)> = BTreeMap::new();
        for (unit, failed) in units.iter().zip(failed) {
            if failed {
                let entry = retry.entry(unit.attempt).or_default();
                entry.0.push(unit.key);
                entry.1 += unit.events.len();
            } else {
                sent.push(unit.key);
                self.metrics.push.sent.add(unit.events.len() as u64);
            }
        }
        self.outbox.remove(&sent).await?;
        for (attempt, (keys, events)) in retry {
            self.failed(&keys, attempt, events).await?;
        }
        Ok(())
    }

    /// The events of one row: none when its message is gone (a repeated `client_msg_id`
    /// not stored), when the user muted the conversation, or, for a group, when no member
    /// but the sender is offline (or the group is over `push.group_max_members`).
    async fn unit(&self, row: OutboxRow) -> Result<Unit, ((Uuid, UserId), u32, String)> {
        let key = (row.message_id, row.user_id);
        let attempt = row.attempts + 1;
        let mut unit = Unit {
            key,
            attempt,
            events: Vec::new(),
        };
        let Some((sender, group, ts)) = row.message else {
            return Ok(unit);
        };
        let (users, what) = match &group {
            None => (vec![row.user_id], Muted::User(sender)),
            Some(g) => {
                let offline = self.offline_members(g, sender).await;
                (
                    offline.map_err(|e| (key, attempt, e))?,
                    Muted::Group(g.clone()),
                )
            }
        };
        let pairs: Vec<(UserId, Muted)> = users.iter().map(|u| (*u, what.clone())).collect();
        let muted: HashSet<(UserId, Muted)> = if pairs.is_empty() {
            HashSet::new()
        } else {
            let found = self.outbox.muted(&pairs).await;
            found
                .map_err(|e| (key, attempt, e.to_string()))?
                .into_iter()
                .collect()
        };
        for pair in pairs {
            if muted.contains(&pair) {
                self.metrics.push.muted.inc();
                continue;
            }
            let user = pair.0;
            unit.events.push(Event {
                idempotency_key: format!("{}:{user}", row.message_id),
                kind: "message",
                user_id: user,
                sender_id: sender,
                message_id: row.message_id,
                group_id: group.clone(),
                ts,
                attempt,
            });
        }
        Ok(unit)
    }

    /// The members of `group` other than `sender` with no device online now; none when the
    /// group has more than `push.group_max_members`.
    async fn offline_members(&self, group: &str, sender: UserId) -> Result<Vec<UserId>, String> {
        let most = self.settings.group_max_members;
        let members = self.outbox.members_up_to(group, most + 1).await;
        let members = members.map_err(|e| e.to_string())?;
        if members.len() > most {
            return Ok(Vec::new());
        }
        let others: Vec<UserId> = members.into_iter().filter(|m| *m != sender).collect();
        let topics: Vec<Topic> = others.iter().map(|m| Topic::User(*m)).collect();
        let holders = join_all(topics.iter().map(|t| self.bus.holders(t))).await;
        let mut offline = Vec::new();
        for (member, held) in others.into_iter().zip(holders) {
            if held.map_err(|e| e.to_string())? == 0 {
                offline.push(member);
            }
        }
        Ok(offline)
    }

    /// Rows whose POST failed (`events` events in all), at attempt `attempt`: tried again
    /// after their backoff, or dropped after `push.max_attempts`.
    async fn failed(
        &self,
        keys: &[(Uuid, UserId)],
        attempt: u32,
        events: usize,
    ) -> Result<(), StoreError> {
        if attempt >= self.settings.max_attempts {
            tracing::warn!(events, "push events dropped after push.max_attempts");
            self.outbox.remove(keys).await?;
            self.metrics.push.failed.add(events as u64);
            return Ok(());
        }
        let wait = backoff(&self.settings, attempt, rand::random_range(0.5..1.5));
        let due = millis_now().saturating_add(wait.as_millis() as i64);
        self.outbox.retry_at(keys, due).await?;
        self.metrics.push.retried.add(events as u64);
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
