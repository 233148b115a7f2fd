//! `RedisBus`: routing between nodes over Redis pub/sub (filled in by the horizontal-scale
//! work; until then connecting to it fails with a clear error).

use async_trait::async_trait;
use bytes::Bytes;
use std::sync::Arc;

use super::{Bus, BusError, Inbound, Topic};
use crate::ids::UserId;
use crate::settings::BusSettings;

/// Redis pub/sub bus.
pub struct RedisBus;

impl RedisBus {
    /// Connects to `settings.url`.
    pub async fn connect(_settings: &BusSettings) -> Result<RedisBus, BusError> {
        Err(BusError::Unavailable(
            "the redis bus is not built yet".into(),
        ))
    }
}

#[async_trait]
impl Bus for RedisBus {
    fn attach(&self, _inbound: Arc<dyn Inbound>) {}
    async fn publish(&self, _topic: &Topic, _payload: Bytes) -> Result<usize, BusError> {
        Err(BusError::Unavailable("not built".into()))
    }
    fn subscribe(&self, _topic: Topic) {}
    fn unsubscribe(&self, _topic: Topic) {}
    async fn user_online(&self, _user: UserId) -> Result<bool, BusError> {
        Ok(false)
    }
    async fn ping(&self) -> Result<(), BusError> {
        Ok(())
    }
}
