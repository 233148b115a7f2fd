//! `AppState`: what every handler and connection of a node shares.

use std::ops::Deref;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admission::Admission;
use crate::auth::Authenticator;
use crate::bus::Bus;
use crate::health::Health;
use crate::hub::{Expiries, Hub};
use crate::limiter::{Answered, StrangerLimiter};
use crate::metrics::Metrics;
use crate::settings::Settings;
use crate::store::{MessageWriter, Store};

/// The node's shared parts; cloning is one reference count.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// The parts themselves.
pub struct Shared {
    pub settings: Settings,
    pub auth: Authenticator,
    /// Whether `POST /api/dev/token` is served.
    pub dev_tokens: bool,
    pub store: Arc<dyn Store>,
    /// Batches message inserts into group commits.
    pub writer: MessageWriter,
    pub bus: Arc<dyn Bus>,
    pub hub: Arc<Hub>,
    /// When connections' tokens expire (warned with 1004, closed with 1008).
    pub expiries: Arc<Expiries>,
    pub limiter: Arc<dyn StrangerLimiter>,
    /// Pairs known to be past the stranger limit for good: no counter round trip for them.
    pub answered: Answered,
    pub metrics: Arc<Metrics>,
    /// What the health checks last saw of storage and bus (readiness answers from it).
    pub health: Arc<Health>,
    /// The admission limits: handshakes, connections, connections per address.
    pub admission: Arc<Admission>,
    /// Cancelled when the node starts draining: connections close with 1012.
    pub shutdown: CancellationToken,
    /// Counts live connections, so a drain can wait for them.
    pub tracker: TaskTracker,
    /// Push for offline users (off unless `push.webhook_url` is set).
    pub push: crate::push::Push,
    /// Presence changes of this node's users waiting to be told to their followers (2900).
    pub presence: Arc<crate::presence::Presence>,
}

impl AppState {
    /// Wraps the parts.
    pub fn new(shared: Shared) -> AppState {
        AppState(Arc::new(shared))
    }
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}
