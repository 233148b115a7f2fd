//! The backends a node is configured with, parsed once when the settings load: `StoreUrl`
//! (`storage.url`), `BusUrl` (`bus.url`, `limits.stranger_counters_url`) and `JwksSource`
//! (`auth.jwks`). Each seam's `connect` matches on these; nothing else looks at a URL's
//! scheme.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

use super::{Secret, redact_url};

/// Where messages, read state, groups and follows live.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub enum StoreUrl {
    /// `sqlite:PATH` (or `sqlite://PATH`, with optional `?…` options): the embedded store,
    /// one local file created if missing. Holds no credentials.
    Sqlite(String),
    /// `mysql://…` or `mariadb://…` (MySQL 8 or MariaDB ≥ 10.5), kept as `mysql://…`.
    MySql(Secret),
}

/// How deliveries reach the nodes holding their recipients (and where the stranger
/// counters live).
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub enum BusUrl {
    /// `memory`: in process, one node.
    Memory,
    /// `redis://[user:password@]host:port[/db]` (a cluster seed list with `bus.sharded`).
    Redis(Secret),
}

/// Where the public keys of asymmetric tokens come from: a JSON Web Key Set (RFC 7517).
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub enum JwksSource {
    /// `https://…`, or `http://…` to a loopback host only (a key set fetched in plain text
    /// across a network could be swapped for an attacker's).
    Url(String),
    /// `file:PATH`, or a bare path: read at start and again at each refresh.
    File(PathBuf),
}

impl StoreUrl {
    /// The URL itself, for the one place that connects.
    pub fn expose(&self) -> &str {
        match self {
            StoreUrl::Sqlite(url) => url,
            StoreUrl::MySql(url) => url.expose(),
        }
    }

    /// The SQLite file's path (without the scheme and options).
    pub fn sqlite_path(&self) -> Option<&str> {
        let StoreUrl::Sqlite(url) = self else {
            return None;
        };
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        Some(path.split('?').next().unwrap_or(path))
    }
}

impl FromStr for StoreUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<StoreUrl, String> {
        if s.starts_with("sqlite:") {
            Ok(StoreUrl::Sqlite(s.to_string()))
        } else if s.starts_with("mysql://") {
            Ok(StoreUrl::MySql(Secret::from(s)))
        } else if let Some(rest) = s.strip_prefix("mariadb://") {
            Ok(StoreUrl::MySql(Secret::from(format!("mysql://{rest}"))))
        } else {
            Err(format!(
                "storage.url must start with sqlite: or mysql:// (got {})",
                redact_url(s)
            ))
        }
    }
}

impl FromStr for BusUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<BusUrl, String> {
        if s == "memory" {
            Ok(BusUrl::Memory)
        } else if s.starts_with("redis://") {
            Ok(BusUrl::Redis(Secret::from(s)))
        } else if s.starts_with("rediss://") {
            // fred is built without a TLS feature: it would silently connect in plain text.
            Err("rediss:// (TLS) is not supported by this build; use redis://".into())
        } else {
            Err(format!(
                "bus.url must be memory or redis://… (got {})",
                redact_url(s)
            ))
        }
    }
}

impl BusUrl {
    /// The URL itself (`memory` for the in-process bus), for the one place that connects.
    pub fn expose(&self) -> &str {
        match self {
            BusUrl::Memory => "memory",
            BusUrl::Redis(url) => url.expose(),
        }
    }
}

impl FromStr for JwksSource {
    type Err = String;

    fn from_str(s: &str) -> Result<JwksSource, String> {
        if s.starts_with("https://") {
            Ok(JwksSource::Url(s.to_string()))
        } else if let Some(rest) = s.strip_prefix("http://") {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            let host = match host.strip_prefix('[') {
                Some(v6) => v6.split(']').next().unwrap_or(""),
                None => host.split(':').next().unwrap_or(""),
            };
            let loopback = host.eq_ignore_ascii_case("localhost")
                || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
            if loopback {
                Ok(JwksSource::Url(s.to_string()))
            } else {
                Err(format!(
                    "auth.jwks over http:// is only allowed to a loopback host: use https:// (got {})",
                    redact_url(s)
                ))
            }
        } else if let Some(path) = s
            .strip_prefix("file://")
            .or_else(|| s.strip_prefix("file:"))
        {
            match path {
                "" => Err("auth.jwks: file: needs a path".into()),
                path => Ok(JwksSource::File(PathBuf::from(path))),
            }
        } else if s.contains("://") || s.is_empty() {
            Err(format!(
                "auth.jwks must be https://…, http://localhost…, file:PATH or a path (got {})",
                redact_url(s)
            ))
        } else {
            Ok(JwksSource::File(PathBuf::from(s)))
        }
    }
}

impl JwksSource {
    /// The URL, or the path with `file:` in front.
    pub fn expose(&self) -> String {
        match self {
            JwksSource::Url(url) => url.clone(),
            JwksSource::File(path) => format!("file:{}", path.display()),
        }
    }
}

impl TryFrom<String> for JwksSource {
    type Error = String;

    fn try_from(s: String) -> Result<JwksSource, String> {
        s.parse()
    }
}

impl From<JwksSource> for String {
    fn from(source: JwksSource) -> String {
        source.expose()
    }
}

/// Redacted: credentials in the URL never print.
impl fmt::Display for JwksSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwksSource::Url(url) => f.write_str(&redact_url(url)),
            JwksSource::File(path) => write!(f, "file:{}", path.display()),
        }
    }
}

impl fmt::Debug for JwksSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl TryFrom<String> for StoreUrl {
    type Error = String;

    fn try_from(s: String) -> Result<StoreUrl, String> {
        s.parse()
    }
}

impl TryFrom<String> for BusUrl {
    type Error = String;

    fn try_from(s: String) -> Result<BusUrl, String> {
        s.parse()
    }
}

impl From<StoreUrl> for String {
    fn from(url: StoreUrl) -> String {
        url.expose().to_string()
    }
}

impl From<BusUrl> for String {
    fn from(url: BusUrl) -> String {
        url.expose().to_string()
    }
}

/// Redacted: a password in the URL never prints.
impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(self.expose()))
    }
}

/// Redacted: a password in the URL never prints.
impl fmt::Display for BusUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(self.expose()))
    }
}

impl fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Debug for BusUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls() {
        let sqlite: StoreUrl = "sqlite:data/chat.db?mode=rwc".parse().unwrap();
        assert_eq!(sqlite.sqlite_path(), Some("data/chat.db"));
        let maria: StoreUrl = "mariadb://root:pw@db:3306/chat".parse().unwrap();
        assert_eq!(maria.expose(), "mysql://root:pw@db:3306/chat");
        assert_eq!(maria.to_string(), "mysql://root:***@db:3306/chat");
        assert_eq!(maria.sqlite_path(), None);
        let err = "postgres://u:secret@h/db".parse::<StoreUrl>().unwrap_err();
        assert!(err.contains("storage.url must start with") && !err.contains("secret"));
    }

    #[test]
    fn bus_urls() {
        assert!(matches!("memory".parse(), Ok(BusUrl::Memory)));
        let redis: BusUrl = "redis://:hunter2@r:6379".parse().unwrap();
        assert_eq!(format!("{redis:?}"), "redis://:***@r:6379");
        assert!(
            "rediss://r:6379"
                .parse::<BusUrl>()
                .unwrap_err()
                .contains("TLS")
        );
        assert!(
            "nats://n:4222"
                .parse::<BusUrl>()
                .unwrap_err()
                .contains("bus.url must be")
        );
    }

    #[test]
    fn jwks_sources() {
        let url: JwksSource = "https://idp.example.com/.well-known/jwks.json"
            .parse()
            .unwrap();
        assert_eq!(
            url,
            JwksSource::Url("https://idp.example.com/.well-known/jwks.json".into())
        );
        for loopback in [
            "http://127.0.0.1:9000/jwks",
            "http://localhost/jwks",
            "http://[::1]:80/k",
        ] {
            assert!(
                matches!(loopback.parse(), Ok(JwksSource::Url(_))),
                "{loopback}"
            );
        }
        for remote in ["http://idp.example.com/jwks", "http://127.0.0.1.evil.com/k"] {
            let err = remote.parse::<JwksSource>().unwrap_err();
            assert!(err.contains("loopback"), "{remote}: {err}");
        }
        assert_eq!(
            "file:/etc/keys.json".parse::<JwksSource>(),
            Ok(JwksSource::File("/etc/keys.json".into()))
        );
        assert_eq!(
            "keys/jwks.json".parse::<JwksSource>(),
            Ok(JwksSource::File("keys/jwks.json".into()))
        );
        assert!("ftp://x/keys".parse::<JwksSource>().is_err());
        assert!("file:".parse::<JwksSource>().is_err());
        let secret: JwksSource = "https://u:hunter2@idp/jwks".parse().unwrap();
        assert_eq!(format!("{secret:?}"), "https://u:***@idp/jwks");
    }

    #[test]
    fn deserialized_from_text() {
        let url: BusUrl = serde_json::from_str("\"redis://r:6379\"").unwrap();
        assert_eq!(url.expose(), "redis://r:6379");
        let err = serde_json::from_str::<StoreUrl>("\"ftp://x\"").unwrap_err();
        assert!(err.to_string().contains("storage.url"));
    }
}
