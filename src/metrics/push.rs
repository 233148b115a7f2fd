//! The push webhook's metrics: events by outcome and the outbox's depth.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter as PromCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::Counter;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// `chat_push_events_total{outcome}` and `chat_push_queue_depth`.
pub struct PushMetrics {
    /// Events the webhook accepted (2xx).
    pub sent: Counter,
    /// Events dropped after `push.max_attempts` failed attempts.
    pub failed: Counter,
    /// Events whose POST failed and that wait for another attempt.
    pub retried: Counter,
    /// Events not sent because the user muted the conversation.
    pub muted: Counter,
    /// Rows in the outbox, as the node's dispatcher last counted them.
    pub queue_depth: Gauge,
}

impl PushMetrics {
    /// Every series at zero, registered in `registry`.
    pub(super) fn register(registry: &mut Registry) -> PushMetrics {
        let events = Family::<OutcomeLabel, PromCounter>::default();
        let make = |outcome| Counter(events.get_or_create(&OutcomeLabel { outcome }).clone());
        let metrics = PushMetrics {
            sent: make("sent"),
            failed: make("failed"),
            retried: make("retried"),
            muted: make("muted"),
            queue_depth: Gauge::default(),
        };
        registry.register(
            "chat_push_events",
            "Push webhook events by outcome: sent (2xx), retried (a failed POST, tried again later), failed (dropped after push.max_attempts), muted (not sent)",
            events,
        );
        registry.register(
            "chat_push_queue_depth",
            "Rows in the push outbox (all nodes'), as this node's dispatcher last counted them (every 5 s)",
            metrics.queue_depth.clone(),
        );
        metrics
    }
}
