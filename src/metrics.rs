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
    /// Stranger checks answered by this node's own counters because the shared ones did
    /// not answer.
    pub stranger_fallbacks: Counter,
    /// Reloads of the local users' group memberships after the bus link came back.
    pub membership_reloads: Counter,
    /// What the edge refused or cut short, by reason (`chat_edge_refusals_total{reason}`).
    pub edge: EdgeRefusals,
}

/// Each limit of the public edge, counted when it refuses or closes something.
#[derive(Default)]
pub struct EdgeRefusals {
    /// A TCP connection that did not send a complete request head in time.
    pub handshake_timeout: Counter,
    /// A request head over `server.max_header_bytes` (431).
    pub headers_too_large: Counter,
    /// A new TCP connection while `server.max_handshakes` were in progress (503).
    pub handshakes_full: Counter,
    /// A handshake while the node held `server.max_connections` (503).
    pub node_full: Counter,
    /// A handshake from an address at `server.max_connections_per_ip` (503).
    pub address_full: Counter,
    /// A frame over the connection's rate (4290).
    pub frame_rate: Counter,
    /// A connection closed for sending over its rate for too long (1008).
    pub frame_rate_close: Counter,
    /// A fragmented message not completed within `server.fragment_timeout` (1008).
    pub fragment_timeout: Counter,
}

impl EdgeRefusals {
    fn each(&self) -> [(&'static str, &Counter); 8] {
        [
            ("handshake_timeout", &self.handshake_timeout),
            ("headers_too_large", &self.headers_too_large),
            ("handshakes_full", &self.handshakes_full),
            ("node_full", &self.node_full),
            ("address_full", &self.address_full),
            ("frame_rate", &self.frame_rate),
            ("frame_rate_close", &self.frame_rate_close),
            ("fragment_timeout", &self.fragment_timeout),
        ]
    }
}

impl Metrics {
    /// Prometheus text exposition, with the current connection gauge.
    pub fn render(&self, connections: usize) -> String {
        let mut out = String::new();
        let counters: [(&str, &str, &Counter); 11] = [
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
            (
                "chat_stranger_limiter_fallbacks_total",
                "Stranger checks answered by this node's own counters while the shared ones did not answer",
                &self.stranger_fallbacks,
            ),
            (
                "chat_membership_reloads_total",
                "Reloads of local users' group memberships after the bus link came back",
                &self.membership_reloads,
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
            "# HELP chat_edge_refusals_total Connections, handshakes and frames the edge refused or cut short, by limit\n# TYPE chat_edge_refusals_total counter"
        );
        for (reason, counter) in self.edge.each() {
            let _ = writeln!(
                out,
                "chat_edge_refusals_total{{reason=\"{reason}\"}} {}",
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
