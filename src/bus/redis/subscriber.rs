//! The subscriber side of `RedisBus`: the one task that owns the node's subscription set,
//! and the reader that hands messages to the hub.
//!
//! The subscription task keeps `desired` (what the hub asked for, changes applied in call
//! order) and `pending` (channels changed since the last successful sync). After each batch
//! of changes it sends each pending channel in its desired direction: SUBSCRIBE /
//! UNSUBSCRIBE in chunks (SSUBSCRIBE / SUNSUBSCRIBE per hash slot when sharded), never with
//! an empty list, each under the command timeout. Because only this task talks to the
//! subscriber connection, and it always moves the server towards the latest `desired`, a
//! late unsubscribe cannot overtake a subscribe. A command that failed or timed out may
//! still run later, so its channels stay pending and are sent again until a sync succeeds;
//! after a reconnect every desired channel is pending.
//!
//! fred resolves SUBSCRIBE once written, not once processed; a PING on the same connection
//! afterwards is the barrier (Redis answers in order). SSUBSCRIBE is acknowledged by fred
//! itself. fred's own `manage_subscriptions` is not used: its resubscribe sends SUBSCRIBE even
//! with no channels, and the set must have one owner.

use bytes::Bytes;
use fred::clients::SubscriberClient;
use fred::prelude::{Client, ClientLike, ClusterInterface, PubsubInterface};
use fred::types::config::Server;
use fred::types::{Message, Value};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;

use crate::bus::{Inbound, Topic};

/// Channels per SUBSCRIBE / UNSUBSCRIBE command.
const CHUNK: usize = 1024;
/// Interval of the PING that keeps a command in flight on the subscriber connection, so a
/// dead link is noticed (fred's unresponsive check) even when no message flows.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// In sharded mode, how often the cluster's slot map is read again: a slot that moved to
/// another shard (migration, failover) left its channels unsubscribed there (Redis sends
/// SUNSUBSCRIBE, which fred drops), so they are subscribed again on the new owner and the
/// clients told to resync.
const TOPOLOGY_CHECK: Duration = Duration::from_secs(1);
/// Retry delays of a failed sync: first, and cap.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// A change to the subscription set, by channel name.
#[derive(Debug)]
pub(super) enum Change {
    Subscribe(String),
    Unsubscribe(String),
    /// Answered once every change queued before it is in effect on the server.
    Barrier(oneshot::Sender<()>),
}

/// Counters of the subscriber side.
#[derive(Default)]
pub(super) struct Stats {
    /// Messages skipped because the queue between fred and the reader overflowed.
    pub lagged: AtomicU64,
    /// Resubscriptions after the connection came back.
    pub resubscribed: AtomicU64,
    /// Slot-map changes that moved subscribed channels to another shard (sharded mode).
    pub slot_moves: AtomicU64,
}

/// The state of the subscription task.
pub(super) struct Subscriptions {
    client: SubscriberClient,
    /// Kept so the task can close it when the bus is dropped.
    publisher: Client,
    sharded: bool,
    timeout: Duration,
    inbound: Arc<OnceLock<Arc<dyn Inbound>>>,
    stats: Arc<Stats>,
    /// Every channel the hub wants (kept for resubscribing after a reconnect).
    desired: HashSet<String>,
    /// Channels changed since the last successful sync, or whose last command failed or
    /// timed out: the next sync sends each in its desired direction. Only these are looked
    /// at, so a sync costs the size of the change, not of the whole set.
    pending: HashSet<String>,
    /// Barriers waiting for the next successful sync.
    waiting: Vec<oneshot::Sender<()>>,
    /// Sharded: the owner of each slot range when last read (`TOPOLOGY_CHECK`).
    owners: Vec<(u16, u16, Server)>,
}

impl Subscriptions {
    /// The task's state over a connected subscriber client.
    pub(super) fn new(
        client: SubscriberClient,
        publisher: Client,
        sharded: bool,
        timeout: Duration,
        inbound: Arc<OnceLock<Arc<dyn Inbound>>>,
        stats: Arc<Stats>,
    ) -> Subscriptions {
        Subscriptions {
            client,
            publisher,
            sharded,
            timeout: timeout.max(Duration::from_millis(10)),
            inbound,
            stats,
            desired: HashSet::new(),
            pending: HashSet::new(),
            waiting: Vec::new(),
            owners: Vec::new(),
        }
    }

    /// Runs until the bus is dropped (`changes` closes) or the client quits.
    pub(super) async fn run(
        mut self,
        mut changes: mpsc::UnboundedReceiver<Change>,
        mut reconnects: broadcast::Receiver<Server>,
    ) {
        let mut heartbeat = tokio::time::interval_at(Instant::now() + HEARTBEAT, HEARTBEAT);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut retry_at: Option<Instant> = None;
        let mut backoff = RETRY_MIN;
        let mut resync_pending = false;
        let mut topology = tokio::time::interval(TOPOLOGY_CHECK);
        topology.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        if self.sharded {
            self.owners = self.read_owners().await.unwrap_or_default();
        }
        loop {
            tokio::select! {
                change = changes.recv() => {
                    let Some(change) = change else { break };
                    self.apply(change);
                    while let Ok(change) = changes.try_recv() {
                        self.apply(change);
                    }
                }
                event = reconnects.recv() => match event {
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                        // A new connection has no subscriptions: send them all again.
                        self.pending.extend(self.desired.iter().cloned());
                        resync_pending = true;
                        tracing::info!("bus subscriber reconnected; resubscribing");
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = sleep_until(retry_at), if retry_at.is_some() => {}
                _ = heartbeat.tick() => {
                    self.heartbeat().await;
                    continue;
                }
                _ = topology.tick(), if self.sharded => {
                    if !self.slots_moved().await {
                        continue;
                    }
                    resync_pending = true;
                }
            }
            match self.sync().await {
                Ok(()) => {
                    retry_at = None;
                    backoff = RETRY_MIN;
                    for barrier in self.waiting.drain(..) {
                        let _ = barrier.send(());
                    }
                    if resync_pending {
                        resync_pending = false;
                        self.stats.resubscribed.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(
                            channels = self.desired.len(),
                            "bus subscriptions restored; asking clients to resync"
                        );
                        if let Some(inbound) = self.inbound.get() {
                            inbound.resync();
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, retry_in = ?backoff, "bus subscription change failed");
                    retry_at = Some(Instant::now() + backoff);
                    backoff = (backoff * 2).min(RETRY_MAX);
                }
            }
        }
        let _ = self.client.quit().await;
        let _ = self.publisher.quit().await;
    }

    fn apply(&mut self, change: Change) {
        match change {
            Change::Subscribe(channel) => {
                self.pending.insert(channel.clone());
                self.desired.insert(channel);
            }
            Change::Unsubscribe(channel) => {
                self.desired.remove(&channel);
                self.pending.insert(channel);
            }
            Change::Barrier(barrier) => {
                // During an outage no sync succeeds, and each connection that gave up
                // waiting (`settled` times out) leaves its barrier behind: forget those, so
                // the list holds at most the connections still waiting.
                if self.waiting.len() >= 64 && self.waiting.len().is_power_of_two() {
                    self.waiting.retain(|waiting| !waiting.is_closed());
                }
                self.waiting.push(barrier);
            }
        }
    }

    /// Moves the server to `desired` for the pending channels. On error they stay pending
    /// (a command that failed or timed out may still have run: the next attempt sends each
    /// channel again in its desired direction, which is harmless either way).
    async fn sync(&mut self) -> Result<(), String> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let (add, remove): (Vec<String>, Vec<String>) = self
            .pending
            .iter()
            .cloned()
            .partition(|c| self.desired.contains(c));
        for batch in batches(self.sharded, remove) {
            self.send(false, batch).await?;
        }
        for batch in batches(self.sharded, add) {
            self.send(true, batch).await?;
        }
        if !self.sharded {
            // Answered after everything sent before it on this connection.
            tokio::time::timeout(self.timeout, self.client.ping::<Value>(None))
                .await
                .map_err(|_| "subscription barrier timed out".to_string())?
                .map_err(|e| format!("subscription barrier: {e}"))?;
        }
        self.pending = HashSet::new();
        Ok(())
    }

    /// One (S)SUBSCRIBE or (S)UNSUBSCRIBE of a non-empty batch, under the timeout.
    async fn send(&self, subscribe: bool, batch: Vec<String>) -> Result<(), String> {
        let verb = if subscribe {
            "subscribe"
        } else {
            "unsubscribe"
        };
        let command = async {
            match (subscribe, self.sharded) {
                (true, true) => self.client.ssubscribe(batch).await,
                (true, false) => self.client.subscribe(batch).await,
                (false, true) => self.client.sunsubscribe(batch).await,
                (false, false) => self.client.unsubscribe(batch).await,
            }
        };
        tokio::time::timeout(self.timeout, command)
            .await
            .map_err(|_| format!("{verb} timed out"))?
            .map_err(|e| format!("{verb}: {e}"))
    }

    /// Reads the cluster's slot map again; marks the desired channels whose slot changed
    /// owner pending (to subscribe on the new owner). Whether any did.
    async fn slots_moved(&mut self) -> bool {
        let Some(owners) = self.read_owners().await else {
            return false;
        };
        if owners == self.owners {
            return false;
        }
        let before = std::mem::replace(&mut self.owners, owners);
        let owner = |map: &[(u16, u16, Server)], slot: u16| {
            map.iter()
                .find(|(start, end, _)| (*start..=*end).contains(&slot))
                .map(|(_, _, server)| server.clone())
        };
        let moved: Vec<String> = self
            .desired
            .iter()
            .filter(|channel| {
                let slot = fred::util::redis_keyslot(channel.as_bytes());
                owner(&before, slot) != owner(&self.owners, slot)
            })
            .cloned()
            .collect();
        if moved.is_empty() {
            return false;
        }
        tracing::warn!(
            channels = moved.len(),
            "bus slots moved to other shards; subscribing there again"
        );
        self.stats.slot_moves.fetch_add(1, Ordering::Relaxed);
        self.pending.extend(moved);
        true
    }

    /// The cluster's slot ranges and their primaries, read from the server now.
    async fn read_owners(&self) -> Option<Vec<(u16, u16, Server)>> {
        match tokio::time::timeout(self.timeout, self.client.sync_cluster()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::debug!(%error, "bus cluster slot map not read");
                return None;
            }
            Err(_) => return None,
        }
        let state = self.client.cached_cluster_state()?;
        let mut owners: Vec<(u16, u16, Server)> = state
            .slots()
            .iter()
            .map(|r| (r.start, r.end, r.primary.clone()))
            .collect();
        owners.sort_by_key(|(start, _, _)| *start);
        Some(owners)
    }

    async fn heartbeat(&self) {
        match tokio::time::timeout(self.timeout, self.client.ping::<Value>(None)).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::debug!(%error, "bus subscriber heartbeat failed"),
            Err(_) => tracing::debug!("bus subscriber heartbeat timed out"),
        }
    }
}

/// Commands' argument lists, none empty: chunks of `CHUNK`, or one per hash slot when
/// sharded (SSUBSCRIBE channels must share a slot).
fn batches(sharded: bool, channels: Vec<String>) -> Vec<Vec<String>> {
    if !sharded {
        return channels.chunks(CHUNK).map(<[String]>::to_vec).collect();
    }
    let mut slots: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    for channel in channels {
        let slot = fred::util::redis_keyslot(channel.as_bytes());
        slots.entry(slot).or_default().push(channel);
    }
    slots.into_values().collect()
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Reads the subscriber's messages and hands them to the hub until the client quits. An
/// overflowed queue (`Lagged`) is counted and makes clients resync; it never ends the loop.
pub(super) async fn read(
    mut messages: broadcast::Receiver<Message>,
    prefix: String,
    inbound: Arc<OnceLock<Arc<dyn Inbound>>>,
    stats: Arc<Stats>,
) {
    loop {
        match messages.recv().await {
            Ok(message) => {
                let Some(topic) = Topic::parse(&message.channel, &prefix) else {
                    continue;
                };
                let payload: Bytes = match message.value.into_bytes() {
                    Some(payload) => payload,
                    None => continue,
                };
                if let Some(inbound) = inbound.get() {
                    inbound.deliver(topic, payload);
                }
            }
            Err(broadcast::error::RecvError::Lagged(skipped)) => {
                stats.lagged.fetch_add(skipped, Ordering::Relaxed);
                tracing::warn!(
                    skipped,
                    "bus subscriber queue overflowed; clients will resync"
                );
                if let Some(inbound) = inbound.get() {
                    inbound.resync();
                }
            }
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fred::types::MessageKind;
    use parking_lot::Mutex;

    #[test]
    fn batches_are_never_empty() {
        assert!(batches(false, Vec::new()).is_empty());
        assert!(batches(true, Vec::new()).is_empty());
        let many: Vec<String> = (0..2500).map(|i| format!("chat:u:{i}")).collect();
        let sizes: Vec<usize> = batches(false, many).iter().map(Vec::len).collect();
        assert_eq!(sizes, [1024, 1024, 452]);
        let tagged = vec![
            "chat:u:{1}".to_string(),
            "chat:g:{1}".into(),
            "chat:u:{2}".into(),
        ];
        let mut slots = batches(true, tagged);
        slots.sort();
        assert_eq!(slots.len(), 2, "{slots:?}");
        assert!(slots.iter().any(|b| b.len() == 2));
    }

    #[derive(Default)]
    struct Recorder {
        got: Mutex<Vec<(Topic, Bytes)>>,
        resyncs: AtomicU64,
    }

    impl Inbound for Recorder {
        fn deliver(&self, topic: Topic, payload: Bytes) {
            self.got.lock().push((topic, payload));
        }
        fn resync(&self) {
            self.resyncs.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[tokio::test]
    async fn a_lagging_reader_counts_resyncs_and_goes_on() {
        let (tx, rx) = broadcast::channel(2);
        for i in 0..5 {
            let message = Message {
                channel: format!("chat:u:{i}").into(),
                value: Value::Bytes(Bytes::from(format!("m{i}"))),
                kind: MessageKind::Message,
                server: Server::new("127.0.0.1", 6379),
            };
            tx.send(message).unwrap();
        }
        drop(tx);
        let recorder = Arc::new(Recorder::default());
        let inbound: Arc<OnceLock<Arc<dyn Inbound>>> = Arc::new(OnceLock::new());
        let _ = inbound.set(recorder.clone());
        let stats = Arc::new(Stats::default());
        read(rx, "chat".into(), inbound, stats.clone()).await;
        assert_eq!(stats.lagged.load(Ordering::Relaxed), 3);
        assert_eq!(recorder.resyncs.load(Ordering::Relaxed), 1);
        assert_eq!(
            *recorder.got.lock(),
            vec![
                (Topic::User(3), Bytes::from_static(b"m3")),
                (Topic::User(4), Bytes::from_static(b"m4")),
            ]
        );
    }
}
