//! `MemoryBus`: the in-process bus of a single node. Publishing hands the envelope straight
//! to this node's hub; a topic's holders are this node, when it holds the topic.

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::RwLock;
use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use super::{Bus, BusError, Inbound, Topic};

/// One node's bus: no network, no loss.
#[derive(Default)]
pub struct MemoryBus {
    inbound: OnceLock<Arc<dyn Inbound>>,
    /// Topics this node holds. Only the hub's transitions change it, so it stays small.
    subscribed: RwLock<HashSet<Topic>>,
}

impl MemoryBus {
    /// A bus with nothing attached yet.
    pub fn new() -> MemoryBus {
        MemoryBus::default()
    }
}

#[async_trait]
impl Bus for MemoryBus {
    fn attach(&self, inbound: Arc<dyn Inbound>) {
        let _ = self.inbound.set(inbound);
    }

    async fn publish(&self, topic: &Topic, payload: Bytes) -> Result<(), BusError> {
        self.publish_counted(topic, payload).await.map(|_| ())
    }

    /// One look at the topic set answers both: delivered here, and held by this node.
    async fn publish_counted(&self, topic: &Topic, payload: Bytes) -> Result<usize, BusError> {
        if !self.subscribed.read().contains(topic) {
            return Ok(0);
        }
        if let Some(inbound) = self.inbound.get() {
            inbound.deliver(topic.clone(), payload);
        }
        Ok(1)
    }

    async fn holders(&self, topic: &Topic) -> Result<usize, BusError> {
        Ok(usize::from(self.subscribed.read().contains(topic)))
    }

    fn subscribe(&self, topic: Topic) {
        self.subscribed.write().insert(topic);
    }

    fn unsubscribe(&self, topic: Topic) {
        self.subscribed.write().remove(&topic);
    }

    async fn ping(&self) -> Result<(), BusError> {
        Ok(())
    }
}
