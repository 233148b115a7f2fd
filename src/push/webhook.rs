//! The webhook's side of push: one batch of events as one signed POST.
//!
//! The body is `{"events":[…]}`; `X-Chat-Timestamp` is the Unix time in seconds and
//! `X-Chat-Signature` is `sha256=` and the hex HMAC-SHA256, keyed with
//! `push.webhook_secret`, of `{timestamp}.{body}`: a receiver recomputes it over the exact
//! bytes it received and refuses old timestamps, so a captured POST cannot be replayed.

use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use sha2::Sha256;
use uuid::Uuid;

use crate::ids::{GroupId, UserId};
use crate::settings::PushSettings;

/// The header holding the signature.
pub const SIGNATURE_HEADER: &str = "x-chat-signature";
/// The header holding the signed Unix time in seconds.
pub const TIMESTAMP_HEADER: &str = "x-chat-timestamp";

/// One event of a POST: a message stored for a user with no device online.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// `{message_id}:{user_id}`: the same on every attempt, from every node, so the
    /// receiver can drop repeats (delivery is at least once).
    pub idempotency_key: String,
    /// Always `message` for now.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The user to notify.
    pub user_id: UserId,
    pub sender_id: UserId,
    pub message_id: Uuid,
    /// The group, for a group message (absent for a private one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<GroupId>,
    /// The message's time, ms since the Unix epoch.
    pub ts: i64,
    /// Which attempt this POST is, from 1.
    pub attempt: u32,
}

#[derive(Serialize)]
struct Body<'a> {
    events: &'a [Event],
}

/// Why a POST failed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("webhook unreachable: {0}")]
    Unreachable(#[from] reqwest::Error),
    #[error("webhook answered {0}")]
    Status(u16),
}

/// The configured webhook: its URL, key and HTTP client.
pub struct Webhook {
    client: reqwest::Client,
    url: String,
    secret: Vec<u8>,
}

impl Webhook {
    /// A client for `settings.webhook_url`, with `settings.timeout` per POST; `None` when
    /// push is off.
    pub fn new(settings: &PushSettings) -> anyhow::Result<Option<Webhook>> {
        let (Some(url), Some(secret)) = (&settings.webhook_url, &settings.webhook_secret) else {
            return Ok(None);
        };
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .user_agent(concat!("chat-gateway/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Some(Webhook {
            client,
            url: url.expose().to_string(),
            secret: secret.expose().as_bytes().to_vec(),
        }))
    }

    /// POSTs `events` as one signed batch; `Ok` once the webhook answered 2xx.
    pub async fn post(&self, events: &[Event]) -> Result<(), WebhookError> {
        let body = serde_json::to_vec(&Body { events }).unwrap_or_default();
        let timestamp = crate::ids::millis_now() / 1000;
        let signature = sign(&self.secret, timestamp, &body);
        let response = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, format!("sha256={signature}"))
            .body(body)
            .send()
            .await
            // The URL may hold credentials: errors are logged without it.
            .map_err(reqwest::Error::without_url)?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(WebhookError::Status(status.as_u16()))
        }
    }
}

/// The hex HMAC-SHA256 of `{timestamp}.{body}` keyed with `secret`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(digest.len() * 2);
    for b in digest.iter() {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_the_timestamp_and_the_body_as_python_does() {
        // hmac.new(b"whsec-test-secret", b'1700000000.{"events":[]}', hashlib.sha256)
        assert_eq!(
            sign(b"whsec-test-secret", 1_700_000_000, br#"{"events":[]}"#),
            "3ab5a8dc85904d464a60473944bd68dc0ef5d1c2bdf43a9a2802e096c860bd74"
        );
        assert_ne!(
            sign(b"k", 1, b"x"),
            sign(b"k", 2, b"x"),
            "the time is signed"
        );
    }
}
