//! The `Bus` seam: how a delivery reaches every node holding its recipients.
//!
//! Contract, for every implementation (`MemoryBus` here, `RedisBus` next to it):
//! - `publish` sends an envelope to one topic; `Ok` means the bus took it.
//! - `holders` is presence: how many nodes hold a subscriber of a topic right now. 0 means
//!   no node holds it, so a user's topic with no holder is a user offline everywhere.
//! - `publish_counted` does both, telling how many nodes held the topic when it was
//!   published (the 2100/2101 acknowledgement rests on it). By default it publishes and
//!   then asks `holders`; a bus whose publish reports its receivers answers in one round
//!   trip (Redis PUBLISH).
//! - Deliveries reach the attached `Inbound` (the hub) of every node subscribed to the topic,
//!   including the publishing node: one delivery path for one node and many.
//! - At most once: a message published while a node's link is down is lost to that node; the
//!   store is the record and clients resync. After such a gap the bus calls
//!   `Inbound::resync`.
//! - `subscribe` / `unsubscribe` never block the caller; they take effect in call order.
//!   The hub calls them once per topic transition (first local holder, last one gone).

pub mod envelope;
mod memory;
mod redis;

pub use envelope::Envelope;
pub use memory::MemoryBus;
pub use redis::{RedisBus, redis_builder};

use crate::settings::{BusSettings, BusUrl};

use async_trait::async_trait;
use bytes::Bytes;
use std::sync::Arc;

use crate::ids::{GroupId, UserId};

/// What a channel carries: one user's deliveries, one group's, or membership changes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    User(UserId),
    Group(GroupId),
    Control,
}

impl Topic {
    /// The channel name: `{prefix}:u:{id}`, `{prefix}:g:{id}`, `{prefix}:ctl`. With
    /// `hash_tagged` (Redis Cluster, sharded pub/sub) the id is wrapped in braces so the
    /// channel hashes by it alone.
    pub fn channel(&self, prefix: &str, hash_tagged: bool) -> String {
        match (self, hash_tagged) {
            (Topic::User(u), false) => format!("{prefix}:u:{u}"),
            (Topic::User(u), true) => format!("{prefix}:u:{{{u}}}"),
            (Topic::Group(g), false) => format!("{prefix}:g:{g}"),
            (Topic::Group(g), true) => format!("{prefix}:g:{{{g}}}"),
            (Topic::Control, _) => format!("{prefix}:ctl"),
        }
    }

    /// The topic of a channel name, if it is one of ours.
    pub fn parse(channel: &str, prefix: &str) -> Option<Topic> {
        let rest = channel.strip_prefix(prefix)?.strip_prefix(':')?;
        if rest == "ctl" {
            return Some(Topic::Control);
        }
        let (kind, id) = rest.split_once(':')?;
        let id = id
            .strip_prefix('{')
            .and_then(|i| i.strip_suffix('}'))
            .unwrap_or(id);
        match kind {
            "u" => id.parse().ok().map(Topic::User),
            "g" => Some(Topic::Group(GroupId::from(id))),
            _ => None,
        }
    }
}

/// Where a bus hands what it receives: the node's hub.
pub trait Inbound: Send + Sync + 'static {
    /// One envelope arrived on `topic`.
    fn deliver(&self, topic: Topic, payload: Bytes);
    /// Deliveries may have been lost (the bus link dropped): tell clients to resync.
    fn resync(&self);
}

/// A bus failure: the publish did not happen (or its result is unknown).
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("bus unavailable: {0}")]
    Unavailable(String),
    #[error("bus command timed out")]
    Timeout,
}

/// What a bus has counted of its own link since the node started (read at each scrape of
/// `/metrics`). The in-process bus has no link: all zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BusStats {
    /// Times the subscriber link came back and every subscription was restored.
    pub resubscribes: u64,
    /// Deliveries skipped because the queue between the subscriber and the hub overflowed
    /// (each overflow also resyncs the node's clients).
    pub lagged: u64,
    /// Slot-map changes that moved subscribed channels to another shard (sharded mode).
    pub slot_moves: u64,
}

/// The routing seam; see the module docs for the contract.
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Sets the receiver of deliveries; called once at start-up, before any subscribe.
    fn attach(&self, inbound: Arc<dyn Inbound>);
    /// Publishes to a topic (at most once to each node holding it).
    async fn publish(&self, topic: &Topic, payload: Bytes) -> Result<(), BusError>;
    /// Presence: how many nodes hold a subscriber of `topic` now.
    async fn holders(&self, topic: &Topic) -> Result<usize, BusError>;
    /// Publishes, and tells how many nodes held the topic when it was published.
    async fn publish_counted(&self, topic: &Topic, payload: Bytes) -> Result<usize, BusError> {
        self.publish(topic, payload).await?;
        self.holders(topic).await
    }
    /// Starts receiving a topic on this node (queued, never blocks).
    fn subscribe(&self, topic: Topic);
    /// Stops receiving a topic on this node (queued, never blocks).
    fn unsubscribe(&self, topic: Topic);
    /// Resolves once every subscribe/unsubscribe made so far is in effect (or the bus's
    /// command timeout passed): after it, publishes to those topics reach this node.
    async fn settled(&self) {}
    /// Whether any node holds a connection of `user`: presence of the user's topic.
    async fn user_online(&self, user: UserId) -> Result<bool, BusError> {
        Ok(self.holders(&Topic::User(user)).await? > 0)
    }
    /// Checks the bus answers (readiness).
    async fn ping(&self) -> Result<(), BusError>;
    /// The link's counters (metrics).
    fn stats(&self) -> BusStats {
        BusStats::default()
    }
}

/// Builds the bus that `settings.url` names: one match arm per implementation.
pub async fn connect(settings: &BusSettings) -> Result<Arc<dyn Bus>, BusError> {
    Ok(match &settings.url {
        BusUrl::Memory => Arc::new(MemoryBus::new()),
        BusUrl::Redis(url) => Arc::new(RedisBus::connect(url, settings).await?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_round_trip() {
        for topic in [
            Topic::User(42),
            Topic::Group("team-1".into()),
            Topic::Control,
        ] {
            for tagged in [false, true] {
                let name = topic.channel("chat", tagged);
                assert_eq!(Topic::parse(&name, "chat"), Some(topic.clone()), "{name}");
            }
        }
        assert_eq!(Topic::User(42).channel("chat", false), "chat:u:42");
        assert_eq!(Topic::User(42).channel("chat", true), "chat:u:{42}");
        assert_eq!(Topic::parse("other:u:1", "chat"), None);
    }
}
