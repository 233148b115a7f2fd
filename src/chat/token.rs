//! A connection's token over its life: the expiry taken from the handshake's token, and a
//! fresh token (type 8) that extends it. Every token is checked as at the handshake; one
//! that names another user is refused. Tokens are never logged.

use std::sync::atomic::Ordering;

use super::Session;
use crate::protocol::{codes, server};

impl Session {
    /// Starts watching the expiry of the handshake's token (`None`: a token-less legacy
    /// connection, which never expires).
    pub(crate) fn watch_expiry(&self, expires_at: Option<u64>) {
        if let Some(expires_at) = expires_at {
            self.expires_at.store(expires_at, Ordering::Relaxed);
            let warning = self.state.settings.auth.expiry_warning;
            (self.state.expiries).schedule(self.conn, &self.outbox, expires_at, warning);
        }
    }

    /// Stops watching (the connection ended).
    pub(crate) fn unwatch_expiry(&self) {
        let expires_at = self.expires_at.swap(0, Ordering::Relaxed);
        if expires_at > 0 {
            let warning = self.state.settings.auth.expiry_warning;
            self.state.expiries.cancel(self.conn, expires_at, warning);
        }
    }

    /// Type 8: replaces the connection's token with a fresh one of the same user.
    pub(super) async fn refresh(&self, token: &str) {
        let identity = match self.state.auth.verify(token).await {
            Ok(identity) => identity,
            Err(e) => return self.refuse(codes::TOKEN_REFUSED, &e.to_string(), None),
        };
        if identity.user != self.user {
            let reason = "the token names another user than this connection's";
            return self.refuse(codes::TOKEN_REFUSED, reason, None);
        }
        // The answer goes first: a warning for the new expiry (1004) follows it, never
        // precedes it.
        self.outbox
            .reply(server::token_refreshed(identity.expires_at));
        self.unwatch_expiry();
        self.watch_expiry(identity.expires_at);
    }
}
