//! Tokens: minted locally with the gateway's secret, exactly as the gateway mints them.

use chat_gateway::auth::Authenticator;
use std::time::Duration;

/// The gateway requires a secret of at least this many bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// Mints a JWT for any user of the run.
pub struct Tokens {
    auth: Authenticator,
    ttl: Duration,
}

impl Tokens {
    /// Tokens signed with `secret`, valid for `ttl`.
    pub fn new(secret: &str, ttl: Duration) -> Tokens {
        Tokens {
            auth: Authenticator::new(secret.as_bytes()),
            ttl,
        }
    }

    /// A fresh token for `user`.
    pub fn mint(&self, user: i64) -> String {
        self.auth.mint(user, self.ttl)
    }
}
