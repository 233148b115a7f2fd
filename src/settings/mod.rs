//! Typed settings: defaults, then an optional TOML file, then `CHAT__SECTION__KEY` variables.
//! docs/configuration.md lists every key; each field's doc states its default.

mod nets;
mod push;
mod secret;
mod sections;
mod traces;
mod urls;

pub use nets::{IpNet, canonical};
pub use push::PushSettings;
pub use secret::{Secret, redact_url};
pub use sections::{
    AuthSettings, BusSettings, ChatSettings, LimitSettings, LogSettings, ServerSettings,
    StorageSettings,
};
pub use traces::TraceSettings;
pub use urls::{BusUrl, JwksSource, StoreUrl};

use serde::{Deserialize, Serialize};
use std::path::Path;

/// Every setting of a node.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub auth: AuthSettings,
    pub storage: StorageSettings,
    pub bus: BusSettings,
    pub limits: LimitSettings,
    pub chat: ChatSettings,
    pub log: LogSettings,
    pub push: PushSettings,
    pub traces: TraceSettings,
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
                    .with_list_parse_key("server.allowed_origins")
                    .with_list_parse_key("server.trusted_proxies"),
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

    /// Where the stranger counters live: `limits.stranger_counters_url`, else the bus's URL.
    pub fn stranger_counters(&self) -> &BusUrl {
        self.limits
            .stranger_counters_url
            .as_ref()
            .unwrap_or(&self.bus.url)
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
            None if self.auth.jwks.is_none() && !self.dev_tokens() => {
                return Err(
                    "auth.jwt_secret (at least 32 bytes) or auth.jwks is required when dev tokens are off"
                        .into(),
                );
            }
            _ => {}
        }
        if self.auth.jwks.is_some()
            && (self.auth.jwks_refresh.is_zero() || self.auth.jwks_min_refresh.is_zero())
        {
            return Err("auth.jwks_refresh and auth.jwks_min_refresh must be more than 0s".into());
        }
        if [&self.auth.issuer, &self.auth.audience]
            .into_iter()
            .any(|v| v.as_deref() == Some(""))
        {
            return Err("auth.issuer and auth.audience must not be empty when set".into());
        }
        if self.bus.url == BusUrl::Memory && self.bus.sharded {
            return Err("bus.sharded needs a redis:// bus.url".into());
        }
        if self
            .server
            .metrics_bind
            .is_some_and(|m| m == self.server.bind && m.port() != 0)
        {
            return Err("server.metrics_bind must differ from server.bind".into());
        }
        if self.chat.max_group_members == 0 {
            return Err("chat.max_group_members must be at least 1".into());
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
        let server = &self.server;
        if server.max_header_bytes < 8192 {
            return Err("server.max_header_bytes must be at least 8192".into());
        }
        if server.max_connections == 0 || server.max_handshakes == 0 {
            return Err(
                "server.max_connections and server.max_handshakes must be at least 1".into(),
            );
        }
        if server.drain_window >= server.shutdown_grace {
            return Err("server.drain_window must be shorter than server.shutdown_grace".into());
        }
        if server.handshake_timeout.is_zero() || server.fragment_timeout.is_zero() {
            return Err(
                "server.handshake_timeout and server.fragment_timeout must be above 0".into(),
            );
        }
        if self.chat.max_device_positions == 0 {
            return Err("chat.max_device_positions must be at least 1".into());
        }
        let limits = &self.limits;
        if limits.frames_per_second == 0 || limits.frame_burst == 0 || limits.frame_strikes == 0 {
            return Err(
                "limits.frames_per_second, limits.frame_burst and limits.frame_strikes must be at least 1"
                    .into(),
            );
        }
        self.push.validate()?;
        self.traces.validate()?;
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
    fn a_jwks_stands_in_for_the_secret() {
        let mut s = Settings::default();
        s.server.bind = "0.0.0.0:8080".parse().unwrap();
        s.auth.jwks = Some("https://idp.example.com/jwks.json".parse().unwrap());
        s.validate().unwrap();
        s.auth.jwks_min_refresh = std::time::Duration::ZERO;
        assert!(s.validate().unwrap_err().contains("jwks_min_refresh"));
        s.auth.jwks_min_refresh = std::time::Duration::from_secs(30);
        s.auth.issuer = Some(String::new());
        assert!(s.validate().unwrap_err().contains("issuer"));
    }

    #[test]
    fn auth_keys_parse() {
        let s: AuthSettings = serde_json::from_value(serde_json::json!({
            "jwks": "file:/etc/chat/jwks.json",
            "jwks_refresh": "5m",
            "jwks_min_refresh": "10s",
            "issuer": "https://idp.example.com/",
            "audience": "chat",
        }))
        .unwrap();
        assert_eq!(s.jwks, Some(JwksSource::File("/etc/chat/jwks.json".into())));
        assert_eq!(s.jwks_refresh, std::time::Duration::from_secs(300));
        assert_eq!(s.jwks_min_refresh, std::time::Duration::from_secs(10));
        assert_eq!(s.audience.as_deref(), Some("chat"));
        let defaults = AuthSettings::default();
        assert_eq!(defaults.jwks_refresh, std::time::Duration::from_secs(600));
        assert_eq!(
            defaults.jwks_min_refresh,
            std::time::Duration::from_secs(30)
        );
    }

    #[test]
    fn stranger_counters_follow_the_bus_unless_named() {
        let mut s = Settings::default();
        assert_eq!(s.stranger_counters(), &BusUrl::Memory);
        s.bus.url = "redis://bus:6379".parse().unwrap();
        assert_eq!(s.stranger_counters().expose(), "redis://bus:6379");
        s.limits.stranger_counters_url = Some(BusUrl::Memory);
        assert_eq!(s.stranger_counters(), &BusUrl::Memory);
    }

    #[test]
    fn memory_bus_refuses_sharded() {
        let mut s = Settings::default();
        s.bus.sharded = true;
        assert!(s.validate().unwrap_err().contains("sharded"));
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::from("mysql://root:hunter2@db:3306/chat");
        assert_eq!(format!("{s:?}"), "mysql://root:***@db:3306/chat");
        assert_eq!(format!("{:?}", Secret::from("abcdefabcdef")), "[redacted]");
    }
}
