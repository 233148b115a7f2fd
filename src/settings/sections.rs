//! The sections of the settings, each with its defaults: `[server]`, `[auth]`,
//! `[storage]`, `[bus]`, `[limits]`, `[log]`.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

use super::{BusUrl, IpNet, JwksSource, Secret, StoreUrl};

/// `[server]`: the listener and per-connection limits.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Address to listen on. Default `127.0.0.1:8080`.
    pub bind: SocketAddr,
    /// A second, private listener for `/metrics` and `/health/*` (Prometheus and the
    /// kubelet), outside the public listener's admission limits; when set, `/metrics` is
    /// not served on `bind`. Default none: everything on `bind`.
    pub metrics_bind: Option<SocketAddr>,
    /// Largest WebSocket frame or message a client may send, in bytes; larger closes the
    /// connection with 1009. Default 65536.
    pub max_frame_bytes: usize,
    /// Frames queued for one connection before it is closed as too slow (1013). Default 1024.
    pub outbound_queue: usize,
    /// Bytes read from a socket at a time (a larger frame gets a buffer of its size while it
    /// is read); an idle connection holds no read buffer. Default 512.
    pub read_buffer_bytes: usize,
    /// Interval of server pings. Default `30s`.
    #[serde(with = "humantime_serde")]
    pub ping_interval: Duration,
    /// A connection silent (no frame, no pong) this long is closed. Default `75s`.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// How long a draining node waits for its connections to close. Default `10s`.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// On SIGTERM the node closes its connections (1012) spread evenly over this window, so
    /// that they reconnect to the other nodes spread out too; less than `shutdown_grace`.
    /// Default `5s`.
    #[serde(with = "humantime_serde")]
    pub drain_window: Duration,
    /// When non-empty, a WebSocket handshake whose `Origin` is not exactly one of these gets
    /// 403; requests without `Origin` pass. Default empty (any origin).
    pub allowed_origins: Vec<String>,
    /// Most simultaneous connections of one user on this node; a newer one closes the oldest
    /// with 1001 "replaced". Default 16.
    pub max_devices_per_user: usize,
    /// Runtime worker threads; 0 = one per CPU this process may use (its affinity and cgroup
    /// quota). Default 0. Set it to the pod's CPU limit, or to 1 per node when several nodes
    /// share a small machine: fewer threads, fewer wake-ups between them.
    pub worker_threads: usize,
    /// The longest a group message reaching at least 64 connections on this node waits to
    /// be written. Such writes go out at once when the node's paced flusher is idle; after
    /// a pass that wrote to `n` sockets, the next waits `n` × 20 µs (at most this long), and
    /// whatever reaches those sockets meanwhile leaves in the same system call: a busy large
    /// group gets several messages per write. Smaller fan-outs, private messages and answers
    /// are written at once. `0s` writes everything at once. Default `100ms`.
    #[serde(with = "humantime_serde")]
    pub group_write_delay: Duration,
    /// A TCP connection must send a complete request head within this long of connecting
    /// (and of its previous request, on a kept-alive connection), else it is closed: slow,
    /// silent and endless handshakes cost a node nothing for longer. Default `10s`.
    #[serde(with = "humantime_serde")]
    pub handshake_timeout: Duration,
    /// Largest request head (request line and headers), in bytes; past it the answer is
    /// 431 and the connection closes. One header line may be at most half of it. At least
    /// 8192. Default 16384.
    pub max_header_bytes: usize,
    /// Most WebSocket connections on this node; past it a handshake gets 503 with a
    /// Retry-After and readiness reports the node full. Capped at start by the process's
    /// descriptor limit (less 256 for storage, bus and handshakes). Default 100000.
    pub max_connections: usize,
    /// Most TCP connections that have not become WebSockets (handshakes in progress and
    /// kept-alive REST connections); past it a new connection gets 503 and is closed at
    /// once. Default 2048.
    pub max_handshakes: usize,
    /// Most WebSocket connections from one client address on this node; 0 turns the limit
    /// off. Behind a load balancer set `trusted_proxies`, or every client shares the
    /// balancer's address. Default 0.
    pub max_connections_per_ip: usize,
    /// Addresses (`10.0.0.7`) and networks (`10.0.0.0/8`) of the proxies whose
    /// `X-Forwarded-For` names the client. Default empty: the TCP peer is the client.
    pub trusted_proxies: Vec<IpNet>,
    /// A fragmented message must be complete within this long of its first fragment, else
    /// the connection closes with 1008. Default `10s`.
    #[serde(with = "humantime_serde")]
    pub fragment_timeout: Duration,
    /// How long storage or the bus may keep failing the node's health checks (one a second)
    /// before readiness turns 503. Shorter failures keep the node in the load balancer: a
    /// blip of a dependency that every node shares would otherwise take every node out at
    /// once. Default `10s`.
    #[serde(with = "humantime_serde")]
    pub ready_tolerance: Duration,
    /// Serve the web app (embedded in the binary) at `/` and `/web/*`; `false` leaves `/`
    /// a 404. Default true.
    pub web_ui: bool,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            metrics_bind: None,
            max_frame_bytes: 64 * 1024,
            outbound_queue: 1024,
            read_buffer_bytes: 512,
            ping_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(75),
            shutdown_grace: Duration::from_secs(10),
            drain_window: Duration::from_secs(5),
            allowed_origins: Vec::new(),
            max_devices_per_user: 16,
            worker_threads: 0,
            group_write_delay: Duration::from_millis(100),
            handshake_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            max_connections: 100_000,
            max_handshakes: 2048,
            max_connections_per_ip: 0,
            trusted_proxies: Vec::new(),
            fragment_timeout: Duration::from_secs(10),
            ready_tolerance: Duration::from_secs(10),
            web_ui: true,
        }
    }
}

/// `[auth]`: token verification and the insecure conveniences.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// HS256 secret, at least 32 bytes. A node needs this, `jwks`, or dev tokens (which
    /// without a secret get a random one per start). Default none.
    pub jwt_secret: Option<Secret>,
    /// The JSON Web Key Set verifying RS256, ES256 and EdDSA tokens by their `kid`:
    /// `https://…` (`http://` to loopback only), `file:PATH` or a path. Default none.
    pub jwks: Option<JwksSource>,
    /// How often the key set is read again. Default `10m`.
    #[serde(with = "humantime_serde")]
    pub jwks_refresh: Duration,
    /// A token whose `kid` is not in the key set makes the node read the set again, at most
    /// once per this interval (so unknown kids cannot make it hammer the key server).
    /// Default `30s`.
    #[serde(with = "humantime_serde")]
    pub jwks_min_refresh: Duration,
    /// When set, every token's `iss` must be exactly this. Default none.
    pub issuer: Option<String>,
    /// When set, every token's `aud` must be or contain this. Default none.
    pub audience: Option<String>,
    /// `POST /api/dev/token` mints tokens for anyone. Default: on when `server.bind` is a
    /// loopback address, off otherwise; `true` on a non-loopback bind refuses to start.
    pub dev_tokens: Option<bool>,
    /// Accept the original protocol's unauthenticated `?myid=N`. Only for migrating old
    /// clients on a trusted network. Default false.
    pub insecure_myid: bool,
    /// How long before its token expires a connection is told so (1004), so that it can
    /// send a fresh one (type 8). Default `60s`.
    #[serde(with = "humantime_serde")]
    pub expiry_warning: Duration,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            jwt_secret: None,
            jwks: None,
            jwks_refresh: Duration::from_secs(600),
            jwks_min_refresh: Duration::from_secs(30),
            issuer: None,
            audience: None,
            dev_tokens: None,
            insecure_myid: false,
            expiry_warning: Duration::from_secs(60),
        }
    }
}

/// `[storage]`: where messages, read state, groups and follows live.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// `sqlite:PATH` (created if missing) or `mysql://user:pass@host:port/db`, parsed when
    /// the settings load. Default `sqlite:data/chat.db`.
    pub url: StoreUrl,
    /// Apply pending migrations at start. Default true.
    pub migrate: bool,
    /// Connection pool size. Default 16 (MySQL), SQLite uses at most 4 readers and 1 writer.
    pub max_connections: u32,
    /// Longest wait for a pooled connection before a request fails with 5000: long enough
    /// for a reconnect storm's syncs to queue rather than fail. Default `10s`.
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
    /// Most messages written in one transaction by the batching writer. Default 512.
    pub batch_max: usize,
    /// Only while the writer is busy (taking 48 messages or more per this interval, 9,600 a
    /// second at 5 ms): its transactions start at most once per twice this interval, and
    /// messages arriving meanwhile join the next batch (fewer, larger transactions). Below
    /// that rate the writer commits as a group: the first message goes at once, and what
    /// arrives during a commit joins the next. `0s`: never waits. Default `5ms`.
    #[serde(with = "humantime_serde")]
    pub batch_interval: Duration,
}

impl Default for StorageSettings {
    fn default() -> Self {
        StorageSettings {
            url: StoreUrl::Sqlite("sqlite:data/chat.db".into()),
            migrate: true,
            max_connections: 16,
            acquire_timeout: Duration::from_secs(10),
            batch_max: 512,
            batch_interval: Duration::from_millis(5),
        }
    }
}

/// `[bus]`: how deliveries reach the nodes holding the recipients.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusSettings {
    /// `memory` (one node, in process) or `redis://host:port[/db]`, parsed when the
    /// settings load. Default `memory`.
    pub url: BusUrl,
    /// Prefix of channel and key names, so deployments can share a Redis. Default `chat`.
    pub prefix: String,
    /// Redis Cluster with sharded pub/sub (SSUBSCRIBE/SPUBLISH, Redis 7). Default false.
    pub sharded: bool,
    /// How long a group channel stays subscribed after its last local member left, to
    /// absorb reconnect churn. Default `2s`.
    #[serde(with = "humantime_serde")]
    pub unsubscribe_delay: Duration,
    /// Timeout of one Redis command. Default `2s`.
    #[serde(with = "humantime_serde")]
    pub command_timeout: Duration,
}

impl Default for BusSettings {
    fn default() -> Self {
        BusSettings {
            url: BusUrl::Memory,
            prefix: "chat".into(),
            sharded: false,
            unsubscribe_delay: Duration::from_secs(2),
            command_timeout: Duration::from_secs(2),
        }
    }
}

/// `[limits]`: message size and the stranger rule.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    /// Longest message content in bytes (UTF-8); longer gets 4130. Default 4096.
    pub max_content_bytes: usize,
    /// Private messages a stranger may send before the recipient answers. Default 3.
    pub stranger_messages: u32,
    /// Window over which those messages are counted. Default `90days`.
    #[serde(with = "humantime_serde")]
    pub stranger_window: Duration,
    /// Where the stranger counters live: `memory` (this node's own counters) or
    /// `redis://…` (shared by every node; uses the `[bus]` section's `sharded`, `prefix` and
    /// `command_timeout`). Default: the bus's URL, so one Redis serves both.
    pub stranger_counters_url: Option<BusUrl>,
    /// Frames a connection may send per second, on average (a token bucket); each frame
    /// past it is refused with 4290 and a `retry_after_ms`. Default 20.
    pub frames_per_second: u32,
    /// Frames a connection may send at once above that rate (the bucket's size).
    /// Default 40.
    pub frame_burst: u32,
    /// Refused frames a connection may accumulate (one is forgiven per second) before it
    /// is closed with 1008. Default 40.
    pub frame_strikes: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            max_content_bytes: 4096,
            stranger_messages: 3,
            stranger_window: Duration::from_secs(90 * 24 * 3600),
            stranger_counters_url: None,
            frames_per_second: 20,
            frame_burst: 40,
            frame_strikes: 40,
        }
    }
}

/// `[chat]`: what the chat features keep and promise.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatSettings {
    /// A new connection of a device catches up from this long before the position the
    /// device last confirmed: a message stored late with an earlier id (a node whose clock
    /// lags, a batch that waited for the database) is still owed to it. Such repeats are
    /// dropped by id on the client. Default `5s`.
    #[serde(with = "humantime_serde")]
    pub catchup_overlap: Duration,
    /// Devices per user whose confirmed position is remembered; confirming on one more
    /// forgets the one confirmed longest ago (it then catches up as a new device: from the
    /// user's oldest unread message). Default 32.
    pub max_device_positions: usize,
    /// A connection writes its device's confirmed position at most this often (and when it
    /// ends); a node that stops before writing it makes the device receive those messages
    /// again, never fewer. Default `1s`.
    #[serde(with = "humantime_serde")]
    pub confirm_interval: Duration,
    /// Groups of at most this many members get live read receipts (2301 to every member's
    /// devices); larger groups keep only the per-member read positions, which
    /// `GET /api/groups/{id}/messages/{message_id}/reads` pages through. Default 100.
    pub group_receipts_max_members: u64,
    /// How long after sending a user may edit (type 11) or delete (type 12) their message;
    /// later: 4008. Default `48h`.
    #[serde(with = "humantime_serde")]
    pub edit_window: Duration,
    /// Most members of a group, the owner included: a creation with more, or an add past
    /// it, is refused with 409. Default 20000 (the benchmarks' groups have 10000).
    pub max_group_members: u64,
    /// Live presence (2900) is sent to the followers of a user who has at most this many
    /// (those the user does not block); a user with more has no live presence (followers
    /// ask `POST /api/presence`). Default 1000.
    pub presence_max_followers: u32,
}

impl Default for ChatSettings {
    fn default() -> Self {
        ChatSettings {
            catchup_overlap: Duration::from_secs(5),
            max_device_positions: 32,
            confirm_interval: Duration::from_secs(1),
            group_receipts_max_members: 100,
            edit_window: Duration::from_secs(48 * 3600),
            max_group_members: 20_000,
            presence_max_followers: 1000,
        }
    }
}

/// `[log]`: verbosity and format.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// A tracing filter (`info`, `chat_gateway=debug`, …); `RUST_LOG` overrides. Default `info`.
    pub level: String,
    /// `text` or `json`. Default `text`.
    pub format: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            level: "info".into(),
            format: "text".into(),
        }
    }
}
