//! `MemoryBus`: the in-process bus of a single node. Publishing hands the envelope straight
//! to this node's hub; the subscriber count is whether this node holds the topic.

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::RwLock;
use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use super::{Bus, BusError, Inbound, Topic};
use crate::ids::UserId;

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

    async fn publish(&self, topic: &Topic, payload: Bytes) -> Result<usize, BusError> {
        if !self.subscribed.read().contains(topic) {
            return Ok(0);
        }
        if let Some(inbound) = self.inbound.get() {
            inbound.deliver(topic.clone(), payload);
        }
        Ok(1)
    }

    fn subscribe(&self, topic: Topic) {
        self.subscribed.write().insert(topic);
    }

    fn unsubscribe(&self, topic: Topic) {
        self.subscribed.write().remove(&topic);
    }

    async fn user_online(&self, user: UserId) -> Result<bool, BusError> {
        Ok(self.subscribed.read().contains(&Topic::User(user)))
    }

    async fn ping(&self) -> Result<(), BusError> {
        Ok(())
    }
}
