//! `[push]`: the webhook that hears of messages stored for users with no device online
//! (src/push; docs/protocol.md, "Push webhook").

use serde::{Deserialize, Serialize};
use std::time::Duration;

use super::Secret;

/// `[push]`: off unless `webhook_url` is set.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PushSettings {
    /// Where batches of push events are POSTed (`http://` or `https://`). Default none:
    /// push is off, and no outbox row is written.
    pub webhook_url: Option<Secret>,
    /// The HMAC-SHA256 key that signs each POST (`X-Chat-Signature`); at least 16 bytes,
    /// required with `webhook_url`. Default none.
    pub webhook_secret: Option<Secret>,
    /// How long after it is stored a private message's event becomes due: the sending node
    /// deletes it meanwhile when the publish reached an online device. Default `2s`.
    #[serde(with = "humantime_serde")]
    pub delay: Duration,
    /// Events per POST, at most. Default 100.
    pub batch_max: usize,
    /// POSTs in flight per node, at most. Default 4.
    pub concurrency: usize,
    /// One POST's time limit; a timeout counts as a failure and is retried. Default `10s`.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// How long a node holds the events it claimed; a node that dies leaves them to the
    /// others after this long. Longer than `timeout`. Default `30s`.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// How often a node looks for due events when the last look found few. Default `1s`.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// The first retry's wait after a failed POST; it doubles per attempt up to
    /// `backoff_max`, with up to ±50% jitter. Default `1s`.
    #[serde(with = "humantime_serde")]
    pub backoff: Duration,
    /// The longest wait between two attempts. Default `5m`.
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// Group messages are pushed to the members with no device online when the event is
    /// due, in groups of at most this many members; larger groups' messages are not pushed.
    /// `0`: only private messages are pushed. Default 100.
    pub group_max_members: usize,
    /// Attempts before an event is dropped (counted in `chat_push_events_total{outcome="failed"}`).
    /// Default 20 (about an hour and a half of retries with the defaults).
    pub max_attempts: u32,
}

impl Default for PushSettings {
    fn default() -> Self {
        PushSettings {
            webhook_url: None,
            webhook_secret: None,
            delay: Duration::from_secs(2),
            batch_max: 100,
            concurrency: 4,
            timeout: Duration::from_secs(10),
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            backoff: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            max_attempts: 20,
            group_max_members: 100,
        }
    }
}

impl PushSettings {
    /// Whether push is on.
    pub fn enabled(&self) -> bool {
        self.webhook_url.is_some()
    }

    /// The combinations that must refuse to start.
    pub fn validate(&self) -> Result<(), String> {
        let Some(url) = &self.webhook_url else {
            return Ok(());
        };
        let url = url.expose();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err("push.webhook_url must start with http:// or https://".into());
        }
        if self
            .webhook_secret
            .as_ref()
            .is_none_or(|s| s.expose().len() < 16)
        {
            return Err(
                "push.webhook_secret (at least 16 bytes) is required with push.webhook_url".into(),
            );
        }
        if !(1..=1000).contains(&self.batch_max) || !(1..=64).contains(&self.concurrency) {
            return Err(
                "push.batch_max must be from 1 to 1000 and push.concurrency from 1 to 64".into(),
            );
        }
        if self.group_max_members > 10_000 {
            return Err("push.group_max_members must be at most 10000".into());
        }
        if self.lease <= self.timeout || self.poll_interval.is_zero() || self.max_attempts == 0 {
            return Err("push.lease must exceed push.timeout; push.poll_interval and push.max_attempts must be above 0".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_needs_a_secret_and_an_http_url() {
        let mut push = PushSettings::default();
        push.validate().unwrap();
        assert!(!push.enabled());
        push.webhook_url = Some(Secret::from("https://backend.example.com/push"));
        assert!(push.validate().unwrap_err().contains("webhook_secret"));
        push.webhook_secret = Some(Secret::from("short"));
        assert!(push.validate().unwrap_err().contains("16 bytes"));
        push.webhook_secret = Some(Secret::from("a-secret-of-enough-bytes"));
        push.validate().unwrap();
        push.webhook_url = Some(Secret::from("ftp://backend.example.com/push"));
        assert!(push.validate().unwrap_err().contains("http://"));
        push.webhook_url = Some(Secret::from("http://backend:8000/push"));
        push.lease = push.timeout;
        assert!(push.validate().unwrap_err().contains("push.lease"));
        push.lease = Duration::from_secs(30);
        push.batch_max = 0;
        assert!(push.validate().unwrap_err().contains("push.batch_max"));
        assert_eq!(
            format!("{:?}", push.webhook_secret.unwrap()),
            "[redacted]",
            "never printed"
        );
    }
}
