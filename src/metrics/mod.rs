//! The metrics of one node, in a `prometheus-client` registry, served at `GET /metrics`
//! (on `server.metrics_bind` when set) in the OpenMetrics text format.
//!
//! Every other module counts through a field of `Metrics` with one call (`inc`, `add`,
//! `observe`, a timer guard); what is read at scrape time (connections, handshakes,
//! draining, dependencies, the process) comes in a `Snapshot` or from `process.rs`.
//! docs/operations.md lists every metric with what it means and the alerts over them.

mod bus;
mod process;
mod push;

pub use push::PushMetrics;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter as PromCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use std::sync::LazyLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A monotonically increasing counter (shared with the registry).
#[derive(Default, Clone, Debug)]
pub struct Counter(PromCounter);

impl Counter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        if n > 0 {
            self.0.inc_by(n);
        }
    }

    /// Adds one.
    pub fn inc(&self) {
        self.0.inc();
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

/// A histogram of durations in seconds (shared with the registry).
#[derive(Clone, Debug)]
pub struct Seconds(Histogram);

impl Seconds {
    /// Buckets from 0.5 ms to ~16 s, doubling: the gateway's latencies (a few ms at rest,
    /// seconds in an outage) all land inside.
    fn new() -> Seconds {
        Seconds(Histogram::new(
            prometheus_client::metrics::histogram::exponential_buckets(0.0005, 2.0, 16),
        ))
    }

    /// Records one duration.
    pub fn observe(&self, elapsed: Duration) {
        self.0.observe(elapsed.as_secs_f64());
    }

    /// A guard that records the time until it is dropped: `let _timer = m.ack.start();`.
    pub fn start(&self) -> Timer<'_> {
        Timer {
            histogram: self,
            started: Instant::now(),
        }
    }
}

/// Records the time from `Seconds::start` until it is dropped.
pub struct Timer<'a> {
    histogram: &'a Seconds,
    started: Instant,
}

impl Drop for Timer<'_> {
    fn drop(&mut self) {
        self.histogram.observe(self.started.elapsed());
    }
}

/// Why and with which code a connection was closed (`chat_closes_total{code,reason}`).
/// Implemented by the WebSocket layer's close reason, so this module names no type of it.
pub trait CloseLabel {
    /// The WebSocket close code.
    fn close_code(&self) -> u16;
    /// A short snake_case name of the reason.
    fn label(&self) -> &'static str;
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CloseLabels {
    code: u16,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DependencyLabel {
    dependency: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    commit: &'static str,
}

/// What the node reads at scrape time, from its other parts.
#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot {
    /// Open WebSocket connections.
    pub connections: usize,
    /// TCP connections that are not WebSockets (handshakes, kept-alive REST).
    pub handshakes: usize,
    /// `server.max_connections`, as capped by the descriptor limit.
    pub max_connections: usize,
    /// Whether the node is draining.
    pub draining: bool,
    /// Whether `/health/ready` answers 200 (not draining, not full, no dependency down).
    pub ready: bool,
    /// Whether storage passes the health checks (its last one succeeded).
    pub store_up: bool,
    /// Whether Redis (the bus) passes the health checks.
    pub bus_up: bool,
    /// The bus link's own counters.
    pub bus: crate::bus::BusStats,
}

/// Every metric of the node.
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
    /// Times the bus told this node's clients to resync (deliveries may have been lost).
    pub resyncs: Counter,
    /// Reloads of the local users' group memberships after the bus link came back.
    pub membership_reloads: Counter,
    /// What the edge refused or cut short, by reason (`chat_edge_refusals_total{reason}`).
    pub edge: EdgeRefusals,
    /// A send frame read → its answer queued (stored and acknowledged, or refused).
    pub ack: Seconds,
    /// One publish to the bus, sent → answered.
    pub publish: Seconds,
    /// A message's creation on the sending node → queued to this node's local sockets.
    delivery_lag: Seconds,
    /// Frames queued to one connection, sampled by the liveness sweep.
    outbound_queue: Histogram,
    closes: Family<CloseLabels, PromCounter>,
    connection_states: Family<StateLabel, Gauge>,
    connections: Gauge,
    max_connections: Gauge,
    draining: Gauge,
    ready: Gauge,
    dependency_up: Family<DependencyLabel, Gauge>,
    bus_connected: Gauge,
    bus_link: bus::BusCollector,
    /// The push webhook (src/push).
    pub push: PushMetrics,
    registry: Registry,
}

/// Each limit of the public edge, counted when it refuses or closes something.
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
    /// A private message past the stranger limit.
    pub stranger: Counter,
    /// A message whose content is over `limits.max_content_bytes` (4130).
    pub content_too_large: Counter,
}

impl EdgeRefusals {
    /// Every counter, each the series `make(reason)` gives.
    fn new(mut make: impl FnMut(&'static str) -> Counter) -> EdgeRefusals {
        EdgeRefusals {
            handshake_timeout: make("handshake_timeout"),
            headers_too_large: make("headers_too_large"),
            handshakes_full: make("handshakes_full"),
            node_full: make("node_full"),
            address_full: make("address_full"),
            frame_rate: make("frame_rate"),
            frame_rate_close: make("frame_rate_close"),
            fragment_timeout: make("fragment_timeout"),
            stranger: make("stranger"),
            content_too_large: make("content_too_large"),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric at zero, registered.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let counters = [
            ("chat_connections_opened", "WebSocket connections accepted"),
            ("chat_connections_closed", "WebSocket connections ended"),
            ("chat_handshakes_refused", "Handshakes refused (401, 403)"),
            ("chat_messages_stored", "Messages stored"),
            ("chat_messages_refused", "Messages refused or failed"),
            ("chat_deliveries", "Frames queued to local sockets"),
            ("chat_slow_consumers", "Connections closed as too slow"),
            ("chat_store_errors", "Storage failures"),
            ("chat_bus_errors", "Bus publish failures"),
            (
                "chat_stranger_limiter_fallbacks",
                "Stranger checks answered by this node's own counters while the shared ones did not answer",
            ),
            (
                "chat_bus_resyncs",
                "Times this node told its clients to resync because the bus link dropped",
            ),
            (
                "chat_membership_reloads",
                "Reloads of local users' group memberships after the bus link came back",
            ),
        ];
        let made: Vec<Counter> = counters
            .iter()
            .map(|(name, help)| {
                let counter = Counter::default();
                registry.register(*name, *help, counter.0.clone());
                counter
            })
            .collect();
        // Each of the edge's counters is a series of one family, created up front so every
        // reason shows (at 0) from the first scrape.
        let refusals = Family::<ReasonLabel, PromCounter>::default();
        let edge = EdgeRefusals::new(|reason| {
            Counter(refusals.get_or_create(&ReasonLabel { reason }).clone())
        });
        registry.register(
            "chat_edge_refusals",
            "Connections, handshakes and frames the edge refused or cut short, by limit",
            refusals,
        );
        let seconds = |registry: &mut Registry, name: &str, help: &str| {
            let h = Seconds::new();
            registry.register_with_unit(name, help, Unit::Seconds, h.0.clone());
            h
        };
        let ack = seconds(
            &mut registry,
            "chat_ack",
            "A send frame read to its answer queued (acknowledged or refused)",
        );
        let publish = seconds(&mut registry, "chat_publish", "One publish to the bus");
        let (store_batch, store_batch_size) = &*STORE_BATCHES;
        registry.register_with_unit(
            "chat_store_batch",
            "One batch of message inserts, begun to committed or failed",
            Unit::Seconds,
            store_batch.0.clone(),
        );
        let delivery_lag = seconds(
            &mut registry,
            "chat_delivery_lag",
            "A message's creation on the sending node to its queueing to this node's sockets (clocks of different nodes included)",
        );
        registry.register(
            "chat_store_batch_messages",
            "Messages in one batch of inserts",
            store_batch_size.clone(),
        );
        let outbound_queue = Histogram::new(
            prometheus_client::metrics::histogram::exponential_buckets(1.0, 2.0, 12),
        );
        registry.register(
            "chat_outbound_queue_frames",
            "Frames queued to one connection, sampled when the liveness sweep visits it (every connection once per server.ping_interval)",
            outbound_queue.clone(),
        );
        let closes = Family::<CloseLabels, PromCounter>::default();
        registry.register(
            "chat_closes",
            "WebSocket connections the server closed or saw end, by close code and reason",
            closes.clone(),
        );
        let connection_states = Family::<StateLabel, Gauge>::default();
        registry.register(
            "chat_connection_states",
            "TCP connections by state: handshake (not a WebSocket yet, or kept-alive REST), open (WebSocket)",
            connection_states.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let g = Gauge::<i64>::default();
            registry.register(name, help, g.clone());
            g
        };
        let connections = gauge(
            &mut registry,
            "chat_connections",
            "Open WebSocket connections on this node",
        );
        let max_connections = gauge(
            &mut registry,
            "chat_max_connections",
            "The most WebSocket connections this node takes (server.max_connections, capped by the descriptor limit)",
        );
        let draining = gauge(
            &mut registry,
            "chat_draining",
            "1 while the node drains (after SIGTERM), else 0",
        );
        let ready = gauge(
            &mut registry,
            "chat_ready",
            "1 while /health/ready answers 200 (not draining, not full, no dependency down past server.ready_tolerance), else 0",
        );
        let bus_connected = gauge(
            &mut registry,
            "chat_bus_connected",
            "1 while the bus (Redis) answers the node's health checks, else 0",
        );
        let dependency_up = Family::<DependencyLabel, Gauge>::default();
        registry.register(
            "chat_dependency_up",
            "1 while a dependency answers the node's health checks (one a second), else 0",
            dependency_up.clone(),
        );
        let build = Info::new(BuildLabels {
            version: env!("CARGO_PKG_VERSION"),
            commit: option_env!("CHAT_GIT_COMMIT").unwrap_or("unknown"),
        });
        registry.register("chat_build", "The running build", build);
        registry.register_collector(Box::new(process::ProcessCollector));
        let bus_link = bus::BusCollector::default();
        registry.register_collector(Box::new(bus_link.clone()));
        let push = PushMetrics::register(&mut registry);
        let mut made = made.into_iter();
        let mut next = || made.next().expect("one counter per name");
        Metrics {
            connections_opened: next(),
            connections_closed: next(),
            handshakes_refused: next(),
            messages_stored: next(),
            messages_refused: next(),
            deliveries: next(),
            slow_consumers: next(),
            store_errors: next(),
            bus_errors: next(),
            stranger_fallbacks: next(),
            resyncs: next(),
            membership_reloads: next(),
            edge,
            ack,
            publish,
            delivery_lag,
            outbound_queue,
            closes,
            connection_states,
            connections,
            max_connections,
            draining,
            ready,
            dependency_up,
            bus_connected,
            bus_link,
            push,
            registry,
        }
    }

    /// Counts a connection's end by its close code and reason, and hands the reason back
    /// (so a caller can count and match in one expression).
    pub fn closed<R: CloseLabel>(&self, reason: R) -> R {
        let labels = CloseLabels {
            code: reason.close_code(),
            reason: reason.label(),
        };
        self.closes.get_or_create(&labels).inc();
        reason
    }

    /// Records how many frames wait in one connection's outbound queue (the sweep's sample).
    pub fn queued(&self, frames: usize) {
        self.outbound_queue.observe(frames as f64);
    }

    /// Records the lag of a delivery frame (server frame JSON with the message's `"ts"` in
    /// Unix milliseconds) reaching this node's sockets; frames without one are skipped.
    pub fn delivered(&self, frame: &str) {
        if let Some(ts) = frame_ts(frame) {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            // A clock behind the sender's reads as no lag rather than a negative one.
            let lag = u64::try_from(now - ts).unwrap_or(0);
            self.delivery_lag.observe(Duration::from_millis(lag));
        }
    }

    /// The OpenMetrics text of every metric, with what the node reads at scrape time.
    pub fn render(&self, now: Snapshot) -> String {
        let as_i64 = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.connections.set(as_i64(now.connections));
        self.max_connections.set(as_i64(now.max_connections));
        self.draining.set(i64::from(now.draining));
        self.ready.set(i64::from(now.ready));
        self.bus_connected.set(i64::from(now.bus_up));
        self.bus_link.set(now.bus);
        for (state, n) in [("open", now.connections), ("handshake", now.handshakes)] {
            self.connection_states
                .get_or_create(&StateLabel { state })
                .set(as_i64(n));
        }
        for (dependency, up) in [("store", now.store_up), ("bus", now.bus_up)] {
            self.dependency_up
                .get_or_create(&DependencyLabel { dependency })
                .set(i64::from(up));
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The batch histograms (`chat_store_batch_seconds`, `chat_store_batch_messages`) are
/// the process's, not one node's: the batching writer (store/writer.rs) holds no `Metrics`.
/// A process runs one node, so they are that node's; in-process test nodes share them.
static STORE_BATCHES: LazyLock<(Seconds, Histogram)> = LazyLock::new(|| {
    (
        Seconds::new(),
        Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
            1.0, 2.0, 12,
        )),
    )
});

/// Records one batch of `messages` inserts that took `elapsed` (store/writer.rs).
pub fn store_batch_done(messages: usize, elapsed: Duration) {
    let (seconds, size) = &*STORE_BATCHES;
    seconds.observe(elapsed);
    size.observe(messages as f64);
}

/// The `"ts"` (Unix milliseconds) of a server frame. A `"ts":` inside a string value is
/// escaped (`\"ts\":`), so the first match is the key.
fn frame_ts(frame: &str) -> Option<i64> {
    let at = frame.find("\"ts\":")? + 5;
    let digits = frame[at..]
        .trim_start()
        .split(|c: char| !c.is_ascii_digit() && c != '-')
        .next()?;
    digits.parse().ok()
}

/// The media type of `render`'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests;
