//! `RedisBus`: routing between nodes over Redis pub/sub, with the fred client.
//!
//! Two clients per node. A publisher sends PUBLISH (SPUBLISH when sharded), PUBSUB NUMSUB
//! and PING; fred 10 pipelines commands from concurrent tasks on its connection, so
//! throughput comes from many publishes in flight. One dedicated subscriber connection
//! carries every subscription of the node; `subscriber.rs` owns it: one task decides what is
//! subscribed, another reads the messages.
//!
//! Contract, on top of the `Bus` one (see `bus/mod.rs`):
//! - `publish_counted` is one PUBLISH (SPUBLISH with `bus.sharded`): its integer reply
//!   counts subscriber connections, and a node has exactly one, so it counts nodes.
//!   `holders` is PUBSUB NUMSUB (SHARDNUMSUB when sharded).
//! - `subscribe` / `unsubscribe` only queue a change for the subscription task; a change is
//!   in effect once the server has processed it (tests poll `holders`).
//! - When the subscriber connection comes back after a drop, the task resubscribes the whole
//!   set and then calls `Inbound::resync` (what was published in the gap is gone). An
//!   overflow of the subscriber's message queue also calls `Inbound::resync`.
//! - Commands time out after `bus.command_timeout`; the clients reconnect for ever, with
//!   exponential backoff (100 ms doubling to 5 s) plus jitter; `ping` fails while either
//!   link is down, so the node's health checks see the bus failing (readiness turns 503
//!   once that lasts longer than `server.ready_tolerance`).

mod subscriber;

use async_trait::async_trait;
use bytes::Bytes;
use fred::clients::SubscriberClient;
use fred::prelude::{
    Builder, Client, ClientLike, Config, ErrorKind, EventInterface, PubsubInterface,
    ReconnectPolicy,
};
use fred::types::Value;
use fred::types::config::UnresponsiveConfig;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::mpsc;

use super::{Bus, BusError, BusStats, Inbound, Topic};
use crate::settings::{BusSettings, Secret, redact_url};
use subscriber::{Change, Stats, Subscriptions};

/// Messages the subscriber's broadcast queue holds before the reader lags (fred's default is
/// 32). Only the subscriber client gets it: fred allocates each of a client's ~8 event
/// queues at this capacity, up front (about 10 MB in all at 16k).
const SUBSCRIBER_QUEUE: usize = 16 * 1024;

/// Commands a client queues while its connection is down before refusing more, so an outage
/// fails fast instead of buffering without limit: at most 16,384 publishes of one message
/// each (content up to `limits.max_content_bytes` plus a few hundred bytes), 72 MiB with
/// the default 4 KiB content (docs/security.md).
const COMMAND_BUFFER: usize = 16 * 1024;

/// Reconnect backoff: first delay, cap and jitter, in milliseconds.
const RECONNECT_MIN_MS: u32 = 100;
const RECONNECT_MAX_MS: u32 = 5_000;
const RECONNECT_JITTER_MS: u32 = 250;

/// Redis pub/sub bus: one publisher client, one subscriber connection.
pub struct RedisBus {
    /// Publishes and queries; shared by every sending task (fred pipelines them).
    publisher: Client,
    /// The subscriber connection; only its state is read here (for `ping`), its
    /// subscriptions belong to the subscription task.
    subscriber: SubscriberClient,
    /// Subscription changes, in call order, to the one task that owns the subscription set.
    /// Unbounded so `subscribe` never blocks the hub; it holds one entry per transition.
    changes: mpsc::UnboundedSender<Change>,
    /// The hub, shared with the reader and subscription tasks; set once by `attach`.
    inbound: Arc<OnceLock<Arc<dyn Inbound>>>,
    stats: Arc<Stats>,
    prefix: String,
    sharded: bool,
    /// Longest wait of `settled`.
    timeout: Duration,
}

/// A fred client builder for the Redis at `url` (a cluster seed when `settings.sharded`),
/// with `settings`' command timeout, a bounded command buffer, dead-link detection and the
/// reconnect policy. Shared with the Redis stranger limiter.
pub fn redis_builder(url: &Secret, settings: &BusSettings) -> Result<Builder, BusError> {
    let url = url.expose();
    let config = if settings.sharded {
        Config::from_url_clustered(url)
    } else {
        Config::from_url(url)
    }
    .map_err(|e| BusError::Unavailable(format!("bus.url {}: {}", redact_url(url), e.details())))?;
    let mut policy = ReconnectPolicy::new_exponential(0, RECONNECT_MIN_MS, RECONNECT_MAX_MS, 2);
    policy.set_jitter(RECONNECT_JITTER_MS);
    let timeout = settings.command_timeout.max(Duration::from_millis(10));
    let mut builder = Builder::from_config(config);
    builder
        .set_policy(policy)
        .with_performance_config(|perf| perf.default_command_timeout = timeout)
        .with_connection_config(|conn| {
            conn.connection_timeout = timeout.max(Duration::from_secs(1));
            conn.internal_command_timeout = timeout.max(Duration::from_secs(1));
            conn.max_command_buffer_len = COMMAND_BUFFER;
            // A command unanswered this long means a dead link: fred drops the connection
            // and reconnects. The subscription task PINGs the subscriber every few seconds,
            // so this also catches a silent subscriber link.
            conn.unresponsive = UnresponsiveConfig {
                max_timeout: Some((timeout * 2).max(Duration::from_secs(1))),
                interval: Duration::from_millis(500),
            };
        });
    Ok(builder)
}

/// A fred error as a bus error (fred errors name hosts, never credentials).
fn bus_error(e: fred::error::Error) -> BusError {
    match e.kind() {
        ErrorKind::Timeout => BusError::Timeout,
        _ => BusError::Unavailable(e.to_string()),
    }
}

impl RedisBus {
    /// Connects both clients to the Redis at `url` (failing fast when it does not answer)
    /// and starts the subscription and reader tasks.
    pub async fn connect(url: &Secret, settings: &BusSettings) -> Result<RedisBus, BusError> {
        let mut builder = redis_builder(url, settings)?;
        let publisher = builder.build().map_err(bus_error)?;
        let subscriber = builder
            .with_performance_config(|perf| perf.broadcast_channel_capacity = SUBSCRIBER_QUEUE)
            .build_subscriber_client()
            .map_err(bus_error)?;
        publisher.init().await.map_err(bus_error)?;
        if let Err(e) = subscriber.init().await {
            let _ = publisher.quit().await;
            return Err(bus_error(e));
        }
        // Taken after `init`, so only reconnections (not the first connect) are reported.
        let messages = subscriber.message_rx();
        let reconnects = subscriber.reconnect_rx();
        let inbound: Arc<OnceLock<Arc<dyn Inbound>>> = Arc::new(OnceLock::new());
        let stats = Arc::new(Stats::default());
        tokio::spawn(subscriber::read(
            messages,
            settings.prefix.clone(),
            inbound.clone(),
            stats.clone(),
        ));
        let (changes, rx) = mpsc::unbounded_channel();
        let task = Subscriptions::new(
            subscriber.clone(),
            publisher.clone(),
            settings.sharded,
            settings.command_timeout,
            inbound.clone(),
            stats.clone(),
        );
        tokio::spawn(task.run(rx, reconnects));
        tracing::info!(
            url = %redact_url(url.expose()),
            sharded = settings.sharded,
            "connected to the redis bus"
        );
        Ok(RedisBus {
            publisher,
            subscriber,
            changes,
            inbound,
            stats,
            prefix: settings.prefix.clone(),
            sharded: settings.sharded,
            timeout: settings.command_timeout,
        })
    }

    fn change(&self, change: Change) {
        // Fails only once the task is gone (the runtime is shutting down).
        let _ = self.changes.send(change);
    }
}

#[async_trait]
impl Bus for RedisBus {
    fn attach(&self, inbound: Arc<dyn Inbound>) {
        let _ = self.inbound.set(inbound);
    }

    async fn publish(&self, topic: &Topic, payload: Bytes) -> Result<(), BusError> {
        self.publish_counted(topic, payload).await.map(|_| ())
    }

    /// PUBSUB NUMSUB, or PUBSUB SHARDNUMSUB when sharded (asked of the shard that owns the
    /// channel): subscriber connections, one per node.
    async fn holders(&self, topic: &Topic) -> Result<usize, BusError> {
        let channel = topic.channel(&self.prefix, self.sharded);
        let reply: Vec<Value> = if self.sharded {
            self.publisher.pubsub_shardnumsub(channel).await
        } else {
            self.publisher.pubsub_numsub(channel).await
        }
        .map_err(bus_error)?;
        // The reply is `[channel, count]`.
        let count = reply.get(1).and_then(Value::as_i64).unwrap_or(0);
        Ok(usize::try_from(count).unwrap_or(0))
    }

    /// One PUBLISH: its reply counts the nodes that received the message.
    async fn publish_counted(&self, topic: &Topic, payload: Bytes) -> Result<usize, BusError> {
        let channel = topic.channel(&self.prefix, self.sharded);
        let receivers: i64 = if self.sharded {
            self.publisher.spublish(channel, payload).await
        } else {
            self.publisher.publish(channel, payload).await
        }
        .map_err(bus_error)?;
        Ok(usize::try_from(receivers).unwrap_or(0))
    }

    fn subscribe(&self, topic: Topic) {
        self.change(Change::Subscribe(topic.channel(&self.prefix, self.sharded)));
    }

    fn unsubscribe(&self, topic: Topic) {
        self.change(Change::Unsubscribe(
            topic.channel(&self.prefix, self.sharded),
        ));
    }

    async fn settled(&self) {
        let (barrier, done) = tokio::sync::oneshot::channel();
        self.change(Change::Barrier(barrier));
        // Past the timeout the link is down; the client is told to resync when it is back.
        let _ = tokio::time::timeout(self.timeout, done).await;
    }

    async fn ping(&self) -> Result<(), BusError> {
        if !self.subscriber.is_connected() {
            return Err(BusError::Unavailable(
                "the subscriber connection is down".into(),
            ));
        }
        self.publisher
            .ping::<Value>(None)
            .await
            .map(|_| ())
            .map_err(bus_error)
    }

    fn stats(&self) -> BusStats {
        BusStats {
            resubscribes: self.stats.resubscribed.load(Ordering::Relaxed),
            lagged: self.stats.lagged.load(Ordering::Relaxed),
            slot_moves: self.stats.slot_moves.load(Ordering::Relaxed),
        }
    }
}
