//! Typed settings: defaults, then an optional TOML file, then `CHAT__SECTION__KEY` variables.
//! docs/configuration.md lists every key; each field's doc states its default.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// Every setting of a node.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub auth: AuthSettings,
    pub storage: StorageSettings,
    pub bus: BusSettings,
    pub limits: LimitSettings,
    pub log: LogSettings,
}

/// `[server]`: the listener and per-connection limits.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Address to listen on. Default `127.0.0.1:8080`.
    pub bind: SocketAddr,
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
    /// A group message reaching at least 64 connections on this node is written to them
    /// after this delay, together with whatever else reaches them meanwhile: under load, one
    /// system call then carries several messages to a socket. Smaller fan-outs, private
    /// messages and answers are written at once. `0s` writes everything at once.
    /// Default `100ms`.
    #[serde(with = "humantime_serde")]
    pub group_write_delay: Duration,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_frame_bytes: 64 * 1024,
            outbound_queue: 1024,
            read_buffer_bytes: 512,
            ping_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(75),
            shutdown_grace: Duration::from_secs(10),
            allowed_origins: Vec::new(),
            max_devices_per_user: 16,
            worker_threads: 0,
            group_write_delay: Duration::from_millis(100),
        }
    }
}

/// `[auth]`: token verification and the insecure conveniences.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// HS256 secret, at least 32 bytes. Required unless dev tokens are on, where a random one
    /// is generated per start. Default none.
    pub jwt_secret: Option<Secret>,
    /// `POST /api/dev/token` mints tokens for anyone. Default: on when `server.bind` is a
    /// loopback address, off otherwise; `true` on a non-loopback bind refuses to start.
    pub dev_tokens: Option<bool>,
    /// Accept the original protocol's unauthenticated `?myid=N`. Only for migrating old
    /// clients on a trusted network. Default false.
    pub insecure_myid: bool,
}

/// `[storage]`: where messages, read state, groups and follows live.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// `sqlite:PATH` (created if missing) or `mysql://user:pass@host:port/db`.
    /// Default `sqlite:data/chat.db`.
    pub url: Secret,
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
    /// Shortest time between the starts of two of the writer's transactions: under load,
    /// messages arriving meanwhile join the next batch (fewer, larger transactions); a
    /// message after a quiet spell is written at once. `0s` starts each batch as soon as
    /// the previous one ends. Default `5ms`.
    #[serde(with = "humantime_serde")]
    pub batch_interval: Duration,
}

impl Default for StorageSettings {
    fn default() -> Self {
        StorageSettings {
            url: Secret::from("sqlite:data/chat.db"),
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
    /// `memory` (one node, in process) or `redis://host:port[/db]`. Default `memory`.
    pub url: Secret,
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
            url: Secret::from("memory"),
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
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            max_content_bytes: 4096,
            stranger_messages: 3,
            stranger_window: Duration::from_secs(90 * 24 * 3600),
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

/// A string that never prints: tokens, passwords and URLs holding passwords.
#[derive(Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_string())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

/// A URL with its password replaced; anything that is not a URL with credentials becomes
/// `[redacted]`, except the harmless `memory` and `sqlite:` forms.
pub fn redact_url(s: &str) -> String {
    if s == "memory" || s.starts_with("sqlite:") {
        return s.to_string();
    }
    match (s.find("://"), s.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &s[scheme + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{}:***{}", &s[..scheme + 3], user, &s[at..])
        }
        (Some(_), None) => s.to_string(),
        _ => "[redacted]".to_string(),
    }
}

impl Settings {
    /// Loads defaults, then `file` if given, then `CHAT__SECTION__KEY` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Settings, config::ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(file) = file {
            builder = builder.add_source(config::File::from(file).required(true));
        }
        builder
            .add_source(
                config::Environment::with_prefix("CHAT")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true)
                    .list_separator(",")
                    .with_list_parse_key("server.allowed_origins"),
            )
            .build()?
            .try_deserialize()
    }

    /// Whether dev tokens are on, resolving the default from the bind address.
    pub fn dev_tokens(&self) -> bool {
        self.auth
            .dev_tokens
            .unwrap_or_else(|| self.server.bind.ip().is_loopback())
    }

    /// Checks what the types cannot: the combinations that must refuse to start.
    pub fn validate(&self) -> Result<(), String> {
        if self.dev_tokens() && !self.server.bind.ip().is_loopback() {
            return Err(format!(
                "auth.dev_tokens is on but server.bind {} is not a loopback address: anyone could mint tokens. Set CHAT__AUTH__DEV_TOKENS=false and a jwt_secret",
                self.server.bind
            ));
        }
        match &self.auth.jwt_secret {
            Some(s) if s.expose().len() < 32 => {
                return Err("auth.jwt_secret must be at least 32 bytes".into());
            }
            None if !self.dev_tokens() => {
                return Err(
                    "auth.jwt_secret is required (at least 32 bytes) when dev tokens are off"
                        .into(),
                );
            }
            _ => {}
        }
        let url = self.storage.url.expose();
        if !(url.starts_with("sqlite:")
            || url.starts_with("mysql://")
            || url.starts_with("mariadb://"))
        {
            return Err(format!(
                "storage.url must start with sqlite: or mysql:// (got {})",
                redact_url(url)
            ));
        }
        let bus = self.bus.url.expose();
        if !(bus == "memory" || bus.starts_with("redis://") || bus.starts_with("rediss://")) {
            return Err(format!(
                "bus.url must be memory or redis://… (got {})",
                redact_url(bus)
            ));
        }
        if bus == "memory" && self.bus.sharded {
            return Err("bus.sharded needs a redis:// bus.url".into());
        }
        if self.server.max_frame_bytes < 1024 {
            return Err("server.max_frame_bytes must be at least 1024".into());
        }
        if self.limits.max_content_bytes == 0
            || self.limits.max_content_bytes > self.server.max_frame_bytes
        {
            return Err(
                "limits.max_content_bytes must be between 1 and server.max_frame_bytes".into(),
            );
        }
        if self.server.outbound_queue < 2 || !(1..=2000).contains(&self.storage.batch_max) {
            return Err(
                "server.outbound_queue must be at least 2 and storage.batch_max from 1 to 2000"
                    .into(),
            );
        }
        if self.server.read_buffer_bytes < 256 {
            return Err("server.read_buffer_bytes must be at least 256".into());
        }
        if self.bus.prefix.is_empty() || self.bus.prefix.contains(['{', '}', ' ']) {
            return Err("bus.prefix must be non-empty, without braces or spaces".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        let s = Settings::default();
        assert!(s.dev_tokens());
        s.validate().unwrap();
    }

    #[test]
    fn public_bind_refuses_dev_tokens() {
        let mut s = Settings::default();
        s.server.bind = "0.0.0.0:8080".parse().unwrap();
        assert!(!s.dev_tokens());
        assert!(s.validate().unwrap_err().contains("jwt_secret"));
        s.auth.dev_tokens = Some(true);
        assert!(s.validate().unwrap_err().contains("loopback"));
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::from("mysql://root:hunter2@db:3306/chat");
        assert_eq!(format!("{s:?}"), "mysql://root:***@db:3306/chat");
        assert_eq!(format!("{:?}", Secret::from("abcdefabcdef")), "[redacted]");
    }
}
