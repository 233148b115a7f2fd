//! Tokens: minted locally with the gateway's secret, exactly as the gateway mints them; or,
//! with no secret, fetched once from a gateway in dev mode (`POST /api/dev/token`, which a
//! node serves on loopback when no secret is configured), so that the zero-configuration
//! gateway can be load-tested as it starts.

use chat_gateway::auth::Authenticator;
use std::time::Duration;

use crate::http::Http;
use crate::target::Target;

/// The gateway requires a secret of at least this many bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// Dev tokens are fetched over this many connections at once.
const FETCHERS: i64 = 8;

/// A JWT for any user of the run.
pub enum Tokens {
    /// Minted here with the gateway's secret.
    Secret {
        auth: Box<Authenticator>,
        ttl: Duration,
    },
    /// Fetched from the gateway for users `base..base + tokens.len()`.
    Fetched { base: i64, tokens: Vec<String> },
}

impl Tokens {
    /// Tokens signed with `secret`, valid for `ttl`.
    pub fn new(secret: &str, ttl: Duration) -> Tokens {
        Tokens::Secret {
            auth: Box::new(Authenticator::new(secret.as_bytes())),
            ttl,
        }
    }

    /// Asks the gateway at `target` for dev tokens for `count` users from `base`, valid for
    /// `ttl`.
    pub async fn fetch(
        target: &Target,
        base: i64,
        count: u64,
        ttl: Duration,
    ) -> Result<Tokens, String> {
        let count = i64::try_from(count).map_err(|_| "too many users".to_string())?;
        let ttl = format!("{}s", ttl.as_secs().max(1));
        let mut fetchers = tokio::task::JoinSet::new();
        for first in 0..FETCHERS.min(count) {
            let ttl = ttl.clone();
            let mut http = Http::new(target.addr, &target.authority, target.tls.clone());
            fetchers.spawn(async move {
                let mut got = Vec::new();
                for i in (first..count).step_by(FETCHERS as usize) {
                    let body = format!(r#"{{"user_id":{},"ttl":"{ttl}"}}"#, base + i);
                    got.push((i, dev_token(&mut http, &body).await?));
                }
                Ok::<_, String>(got)
            });
        }
        let mut tokens = vec![String::new(); count as usize];
        while let Some(done) = fetchers.join_next().await {
            for (i, token) in done.map_err(|e| e.to_string())?? {
                tokens[i as usize] = token;
            }
        }
        Ok(Tokens::Fetched { base, tokens })
    }

    /// A token for `user` (empty for a user outside a fetched range: the gateway refuses it,
    /// and the run counts the failure).
    pub fn mint(&self, user: i64) -> String {
        match self {
            Tokens::Secret { auth, ttl } => auth.mint(user, *ttl),
            Tokens::Fetched { base, tokens } => usize::try_from(user - base)
                .ok()
                .and_then(|i| tokens.get(i))
                .cloned()
                .unwrap_or_default(),
        }
    }
}

/// One `POST /api/dev/token`; the token, or why there is none.
async fn dev_token(http: &mut Http, body: &str) -> Result<String, String> {
    let (status, text) = http
        .post("/api/dev/token", None, body)
        .await
        .map_err(|e| format!("the gateway's dev-token endpoint did not answer: {e}"))?;
    if status != 200 {
        return Err(format!(
            "the gateway gives no dev tokens (POST /api/dev/token answered {status}: {})",
            text.trim()
        ));
    }
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["token"].as_str().map(str::to_string))
        .ok_or_else(|| format!("a dev-token answer without a token: {text}"))
}
