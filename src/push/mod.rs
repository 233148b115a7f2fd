//! Push for offline users: a private message stored for a recipient with no device online
//! anywhere (the 2101 case) reaches the app's backend through a signed webhook, which sends
//! the APNs/FCM notification (docs/protocol.md, "Push webhook").
//!
//! At least once, through a transactional outbox: while push is on, the batching writer
//! writes one `push_outbox` row per private message in the message's own transaction, due
//! `push.delay` later. When the publish reaches an online device, the sending node deletes
//! the row (`Push::delivered_live`, batched); every node's `dispatcher` claims due rows
//! with a lease and POSTs them (`webhook`). A node that dies before deleting a row makes a
//! spurious push, never a lost one.
//!
//! Group messages: a group's publish count says how many nodes hold any member, not which
//! members are offline, and a row per member per message would cost a million rows for
//! one message of a large group. So a group message gets one row (user 0), never deleted
//! by the live path; when it is due, the dispatcher reads the group's members (only in
//! groups of at most `push.group_max_members`) and asks the bus which of them have a
//! device online *then*: the others (not the sender, not those who muted the group) get
//! an event each. A member online at the publish who went offline within `push.delay`
//! gets a push for a message their device already received.

mod dispatcher;
pub mod webhook;

use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::bus::Bus;
use crate::metrics::Metrics;
use crate::settings::PushSettings;
use crate::store::Store;

/// Live deliveries queued before new ones are dropped (each dropped one is a spurious push).
const LIVE_QUEUE: usize = 64 * 1024;
/// Most outbox rows deleted per statement batch.
const LIVE_BATCH: usize = 2048;

/// The node's handle on push: cheap to clone, a no-op when push is off.
#[derive(Clone, Default)]
pub struct Push {
    /// Ids of private messages that reached an online device, for the task that deletes
    /// their outbox rows. Bounded: under overload a few users get a push they did not need.
    live: Option<mpsc::Sender<Uuid>>,
}

impl Push {
    /// Turns push on when `settings` name a webhook: the store starts writing outbox rows
    /// and the task deleting the rows of live deliveries starts. `Push::default()` is off.
    pub fn start(settings: &PushSettings, store: &Arc<dyn Store>) -> Push {
        if !settings.enabled() {
            return Push::default();
        }
        let outbox = store.push();
        outbox.enable(settings.delay, settings.group_max_members > 0);
        let (tx, mut rx) = mpsc::channel(LIVE_QUEUE);
        tokio::spawn(async move {
            let mut ids = Vec::with_capacity(LIVE_BATCH);
            // Group deletes: what arrives during one statement goes in the next.
            while rx.recv_many(&mut ids, LIVE_BATCH).await > 0 {
                if let Err(e) = outbox.delivered_live(&ids).await {
                    tracing::warn!(error = %e, rows = ids.len(), "push outbox rows of live deliveries not deleted: they will be pushed");
                }
                ids.clear();
            }
        });
        Push { live: Some(tx) }
    }

    /// A private message `id` reached an online device: its outbox row goes. Never waits.
    pub fn delivered_live(&self, id: Uuid) {
        if let Some(live) = &self.live {
            let _ = live.try_send(id);
        }
    }

    /// Runs this node's dispatcher until `shutdown` (nothing when push is off).
    pub async fn dispatch(
        settings: PushSettings,
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) {
        match webhook::Webhook::new(&settings) {
            Ok(Some(hook)) => {
                dispatcher::Dispatcher::new(settings, store.push(), bus, hook, metrics)
                    .run(shutdown)
                    .await
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "push webhook client not built: push is off"),
        }
    }
}
