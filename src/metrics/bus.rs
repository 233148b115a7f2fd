//! The bus link's own counters (`chat_bus_resubscribes_total`, `chat_bus_lagged_total`,
//! `chat_bus_slot_moves_total`): the bus counts them (`Bus::stats`), each scrape hands the
//! latest reading over in the `Snapshot`, and this collector prints it.

use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use std::sync::Arc;

use crate::bus::BusStats;

/// The last reading of the bus's counters, shared with the registry.
#[derive(Debug, Default, Clone)]
pub(super) struct BusCollector(Arc<Mutex<BusStats>>);

impl BusCollector {
    /// Keeps `now` for the encoding that follows. Counters only grow: an older reading
    /// (two scrapes racing) never moves one back.
    pub fn set(&self, now: BusStats) {
        let mut kept = self.0.lock();
        kept.resubscribes = kept.resubscribes.max(now.resubscribes);
        kept.lagged = kept.lagged.max(now.lagged);
        kept.slot_moves = kept.slot_moves.max(now.slot_moves);
    }
}

impl Collector for BusCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let now = *self.0.lock();
        let counters = [
            (
                "chat_bus_resubscribes",
                "Times the bus's subscriber link came back and every subscription was restored",
                now.resubscribes,
            ),
            (
                "chat_bus_lagged",
                "Deliveries skipped because the queue between the bus subscriber and the hub overflowed (each overflow resyncs)",
                now.lagged,
            ),
            (
                "chat_bus_slot_moves",
                "Redis Cluster slot-map changes that moved subscribed channels to another shard",
                now.slot_moves,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        Ok(())
    }
}
