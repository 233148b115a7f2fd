//! `Jwks`: the public keys of a JSON Web Key Set, read from a file or an http(s) URL at
//! start, again every `auth.jwks_refresh`, and again when a token names a `kid` the set does
//! not hold (at most once per `auth.jwks_min_refresh`): keys rotate without a restart.

use anyhow::Context;
use parking_lot::RwLock;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use super::AuthError;
use super::keys::{Key, KeySet};
use crate::settings::{AuthSettings, JwksSource};

/// Largest key set document read, in bytes: real ones are a few KiB.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// Longest wait for a key set over HTTP, connecting included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The key set of a node and how to read it again.
pub(super) struct Jwks {
    source: JwksSource,
    /// The keys of the last successful read, replaced whole by the next one; held only for a
    /// lookup, never across an await.
    keys: RwLock<Arc<KeySet>>,
    /// Connection pool and timeouts for an http(s) source.
    http: reqwest::Client,
    /// Shortest time between two reads caused by unknown kids.
    min_refresh: Duration,
    /// One read at a time: a burst of tokens with a new kid waits for one read instead of
    /// causing one each. Holds when an unknown kid last caused a read.
    reading: tokio::sync::Mutex<Option<Instant>>,
}

impl Jwks {
    /// Reads the key set, then re-reads it every `jwks_refresh` until `shutdown`. A file
    /// that cannot be read or parsed refuses the start; a URL that cannot be fetched is only
    /// a warning (the identity provider may start after the gateway), retried at the refresh
    /// interval and on the first unknown kid.
    pub async fn start(
        source: JwksSource,
        settings: &AuthSettings,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Arc<Jwks>> {
        // An https source never follows a redirect to http; a loopback http source follows
        // none (it could lead off the machine).
        let https = matches!(&source, JwksSource::Url(url) if url.starts_with("https://"));
        let redirects = match https {
            true => reqwest::redirect::Policy::limited(5),
            false => reqwest::redirect::Policy::none(),
        };
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .https_only(https)
            .redirect(redirects)
            .user_agent(concat!("chat-gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the JWKS HTTP client")?;
        let jwks = Arc::new(Jwks {
            source,
            keys: RwLock::default(),
            http,
            min_refresh: settings.jwks_min_refresh,
            reading: tokio::sync::Mutex::new(None),
        });
        match (&jwks.source, jwks.refresh().await) {
            (_, Ok(())) => {}
            (JwksSource::File(_), Err(e)) => {
                anyhow::bail!("reading the JWKS {}: {e}", jwks.source)
            }
            (JwksSource::Url(_), Err(_)) => {} // refresh() logged it
        }
        tokio::spawn(refresh_every(
            Arc::downgrade(&jwks),
            settings.jwks_refresh,
            shutdown,
        ));
        Ok(jwks)
    }

    /// The key `kid` names. A kid not in the set makes the node read the set again, unless
    /// an unknown kid already did so less than `min_refresh` ago.
    pub async fn key(&self, kid: &str) -> Result<Arc<Key>, AuthError> {
        if let Some(key) = self.keys.read().get(kid) {
            return Ok(key);
        }
        let mut last = self.reading.lock().await;
        // A read that finished while this one waited may have brought the key.
        if let Some(key) = self.keys.read().get(kid) {
            return Ok(key);
        }
        if last.is_some_and(|at| at.elapsed() < self.min_refresh) {
            return Err(AuthError::UnknownKey);
        }
        *last = Some(Instant::now());
        let _ = self.read_locked().await;
        drop(last);
        self.keys.read().get(kid).ok_or(AuthError::UnknownKey)
    }

    /// Reads the set now (waiting for a read under way) and keeps it if it parses.
    async fn refresh(&self) -> Result<(), String> {
        let _reading = self.reading.lock().await;
        self.read_locked().await
    }

    /// Reads and swaps in the set; the caller holds `reading`. Failures keep the old keys
    /// and are logged here.
    async fn read_locked(&self) -> Result<(), String> {
        let read = match self.document().await {
            Ok(document) => KeySet::parse(&document),
            Err(e) => Err(e),
        };
        match read {
            Ok(set) => {
                tracing::info!(
                    source = %self.source,
                    keys = set.len(),
                    skipped = set.skipped,
                    "JWKS read"
                );
                *self.keys.write() = Arc::new(set);
                Ok(())
            }
            Err(e) => {
                tracing::warn!(source = %self.source, error = %e, "JWKS not read, keeping the keys held");
                Err(e)
            }
        }
    }

    /// The document's bytes, at most `MAX_DOCUMENT_BYTES`.
    async fn document(&self) -> Result<Vec<u8>, String> {
        let too_large = || format!("larger than {MAX_DOCUMENT_BYTES} bytes");
        match &self.source {
            JwksSource::File(path) => {
                let bytes = tokio::fs::read(path).await.map_err(|e| e.to_string())?;
                if bytes.len() > MAX_DOCUMENT_BYTES {
                    return Err(too_large());
                }
                Ok(bytes)
            }
            JwksSource::Url(url) => {
                // Errors without the URL: it is logged redacted next to them.
                let mut response = self
                    .http
                    .get(url)
                    .send()
                    .await
                    .map_err(|e| e.without_url().to_string())?;
                if !response.status().is_success() {
                    return Err(format!("HTTP {}", response.status()));
                }
                let mut body = Vec::new();
                while let Some(chunk) = response
                    .chunk()
                    .await
                    .map_err(|e| e.without_url().to_string())?
                {
                    if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                        return Err(too_large());
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(body)
            }
        }
    }
}

/// Re-reads the set every `interval` while the node runs (and its `Jwks` exists). After a
/// failed read it tries again sooner, after `jwks_min_refresh` if that is shorter.
async fn refresh_every(jwks: Weak<Jwks>, interval: Duration, shutdown: CancellationToken) {
    let mut wait = interval;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        let Some(jwks) = jwks.upgrade() else { return };
        wait = match jwks.refresh().await {
            Ok(()) => interval,
            Err(_) => interval.min(jwks.min_refresh),
        };
    }
}
