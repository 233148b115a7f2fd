//! Counters of one node, served as Prometheus text at `GET /metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// A monotonically increasing counter.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        if n > 0 {
            self.0.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Every counter of the node.
#[derive(Default)]
pub struct Metrics {
    /// WebSocket connections accepted (authenticated and upgraded).
    pub connections_opened: Counter,
    /// WebSocket connections ended.
    pub connections_closed: Counter,
    /// Handshakes refused (401, 403).
    pub handshakes_refused: Counter,
    /// Messages stored (private and group).
    pub messages_stored: Counter,
    /// Messages refused (4xxx) or failed (5000).
    pub messages_refused: Counter,
    /// Frames queued to local sockets by the hub (live deliveries).
    pub deliveries: Counter,
    /// Connections closed because their outbound queue overflowed.
    pub slow_consumers: Counter,
    /// Storage failures answered with 5000.
    pub store_errors: Counter,
    /// Publishes that failed.
    pub bus_errors: Counter,
}

impl Metrics {
    /// Prometheus text exposition, with the current connection gauge.
    pub fn render(&self, connections: usize) -> String {
        let mut out = String::new();
        let counters: [(&str, &str, &Counter); 9] = [
            (
                "chat_connections_opened_total",
                "WebSocket connections accepted",
                &self.connections_opened,
            ),
            (
                "chat_connections_closed_total",
                "WebSocket connections ended",
                &self.connections_closed,
            ),
            (
                "chat_handshakes_refused_total",
                "Handshakes refused (401, 403)",
                &self.handshakes_refused,
            ),
            (
                "chat_messages_stored_total",
                "Messages stored",
                &self.messages_stored,
            ),
            (
                "chat_messages_refused_total",
                "Messages refused or failed",
                &self.messages_refused,
            ),
            (
                "chat_deliveries_total",
                "Frames queued to local sockets",
                &self.deliveries,
            ),
            (
                "chat_slow_consumers_total",
                "Connections closed as too slow",
                &self.slow_consumers,
            ),
            (
                "chat_store_errors_total",
                "Storage failures",
                &self.store_errors,
            ),
            (
                "chat_bus_errors_total",
                "Bus publish failures",
                &self.bus_errors,
            ),
        ];
        for (name, help, counter) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                counter.get()
            );
        }
        let _ = writeln!(
            out,
            "# HELP chat_connections Open WebSocket connections on this node\n# TYPE chat_connections gauge\nchat_connections {connections}"
        );
        out
    }
}
