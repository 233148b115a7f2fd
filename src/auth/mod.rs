//! Authentication: JWTs whose `sub` is the user id. HS256 tokens are verified (and minted)
//! with the node's secret; RS256, ES256 and EdDSA tokens with the public key their `kid`
//! names in a JSON Web Key Set (`jwks.rs`, `keys.rs`). Where a request carries its token is
//! HTTP's business (http/auth.rs).

mod error;
mod jwks;
mod keys;
#[cfg(test)]
mod tests;

pub use error::AuthError;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

use crate::ids::UserId;
use crate::settings::AuthSettings;
use jwks::Jwks;

/// Who a verified token names, and until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub user: UserId,
    /// The token's `exp`, unix seconds.
    pub expires_at: Option<u64>,
}

/// The claims read from a token; signature, `exp` and `nbf` are checked by the library.
#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Value,
    exp: u64,
    #[serde(default)]
    iss: Option<Value>,
    #[serde(default)]
    aud: Option<Value>,
}

/// The claims of a minted token.
#[derive(Serialize)]
struct Minted<'a> {
    sub: UserId,
    exp: u64,
    iat: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
}

/// The algorithms a node may take, in the order of `Authenticator::validations`.
const ALGORITHMS: [Algorithm; 4] = [
    Algorithm::HS256,
    Algorithm::RS256,
    Algorithm::ES256,
    Algorithm::EdDSA,
];

/// Verifies tokens with the node's secret and key set, and mints HS256 ones.
pub struct Authenticator {
    /// Signs minted tokens: the secret, or a random key when there is none (then nothing
    /// minted verifies anywhere, and only dev tokens mint).
    encoding: EncodingKey,
    /// Verifies HS256 tokens; none when the node takes key set tokens only.
    hs256: Option<DecodingKey>,
    /// The public keys of RS256, ES256 and EdDSA tokens.
    jwks: Option<Arc<Jwks>>,
    issuer: Option<String>,
    audience: Option<String>,
    /// The library's checks for each of `ALGORITHMS`: that algorithm only, `exp` required,
    /// `exp` and `nbf` exact (no leeway).
    validations: [Validation; 4],
}

impl Authenticator {
    /// An authenticator for HS256 with `secret` only, checking neither `iss` nor `aud`.
    pub fn new(secret: &[u8]) -> Authenticator {
        Authenticator {
            encoding: EncodingKey::from_secret(secret),
            hs256: Some(DecodingKey::from_secret(secret)),
            jwks: None,
            issuer: None,
            audience: None,
            validations: ALGORITHMS.map(|alg| {
                let mut validation = Validation::new(alg);
                // `sub` is checked below: the library only accepts it as a string, we take
                // numbers too; `iss` and `aud` too, exactly.
                validation.set_required_spec_claims(&["exp"]);
                // Exact times: a token is refused from the second its `exp` names, and
                // until the second its `nbf` names.
                validation.leeway = 0;
                validation.validate_nbf = true;
                validation.validate_aud = false;
                validation
            }),
        }
    }

    /// The same, requiring every token (and putting into every minted one) `iss` equal to
    /// `issuer` and `aud` equal to or containing `audience`, where given.
    pub fn with_claims(mut self, issuer: Option<&str>, audience: Option<&str>) -> Authenticator {
        self.issuer = issuer.map(str::to_string);
        self.audience = audience.map(str::to_string);
        self
    }

    /// The authenticator `settings` describe: the secret (a random one with `dev_tokens`
    /// and no secret, so dev tokens mint), the key set read now and kept fresh by a task
    /// that ends with `shutdown`, and the `iss`/`aud` checks. Fails when a key set file
    /// cannot be read.
    pub async fn start(
        settings: &AuthSettings,
        dev_tokens: bool,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Authenticator> {
        let configured = settings.jwt_secret.as_ref().map(|s| s.expose().as_bytes());
        // Without a configured secret: a fresh one per start, which verifies only in dev
        // mode (where dev tokens are minted with it).
        let verifies = configured.is_some() || dev_tokens;
        let random: [u8; 32] = rand::random();
        let mut auth = Authenticator::new(configured.unwrap_or(&random))
            .with_claims(settings.issuer.as_deref(), settings.audience.as_deref());
        if !verifies {
            auth.hs256 = None;
        }
        if let Some(source) = &settings.jwks {
            auth.jwks = Some(Jwks::start(source.clone(), settings, shutdown).await?);
        }
        Ok(auth)
    }

    /// Who a token names, or why it is refused. HS256 tokens and tokens whose key is held
    /// are checked at once; a `kid` not held makes the node read its key set again first
    /// (at most once per `auth.jwks_min_refresh`).
    pub async fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let token = token.trim();
        let accepted = self.accepted();
        let refusal = |e: jsonwebtoken::errors::Error| AuthError::from_jwt(&e, accepted);
        let header = jsonwebtoken::decode_header(token).map_err(refusal)?;
        let held;
        let key = match (header.alg, &self.hs256, &self.jwks) {
            (Algorithm::HS256, Some(secret), _) => secret,
            (Algorithm::RS256 | Algorithm::ES256 | Algorithm::EdDSA, _, Some(jwks)) => {
                let kid = header.kid.as_deref().ok_or(AuthError::MissingKeyId)?;
                held = jwks.key(kid).await?;
                if held.alg != header.alg {
                    return Err(AuthError::KeyMismatch);
                }
                &held.key
            }
            _ => return Err(AuthError::BadAlgorithm(accepted)),
        };
        let validation = ALGORITHMS
            .iter()
            .position(|alg| *alg == header.alg)
            .map(|i| &self.validations[i])
            .ok_or(AuthError::BadAlgorithm(accepted))?;
        let claims = jsonwebtoken::decode::<Claims>(token, key, validation)
            .map_err(refusal)?
            .claims;
        self.check_issuer_audience(&claims)?;
        let id = match &claims.sub {
            Value::Null => return Err(AuthError::MissingClaim("sub".into())),
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.parse::<i64>().ok(),
            _ => None,
        };
        match id {
            Some(user) if user > 0 => Ok(Identity {
                user,
                expires_at: Some(claims.exp),
            }),
            _ => Err(AuthError::BadSubject),
        }
    }

    /// `iss` exactly the configured issuer; `aud` the configured audience or a list
    /// holding it.
    fn check_issuer_audience(&self, claims: &Claims) -> Result<(), AuthError> {
        if let Some(issuer) = &self.issuer {
            match &claims.iss {
                None | Some(Value::Null) => return Err(AuthError::MissingClaim("iss".into())),
                Some(Value::String(iss)) if iss == issuer => {}
                Some(_) => return Err(AuthError::BadIssuer),
            }
        }
        if let Some(audience) = &self.audience {
            match &claims.aud {
                None | Some(Value::Null) => return Err(AuthError::MissingClaim("aud".into())),
                Some(Value::String(aud)) if aud == audience => {}
                Some(Value::Array(auds)) if auds.iter().any(|a| a == audience.as_str()) => {}
                Some(_) => return Err(AuthError::BadAudience),
            }
        }
        Ok(())
    }

    /// The algorithms this node takes, as the 401 names them.
    fn accepted(&self) -> &'static str {
        match (self.hs256.is_some(), self.jwks.is_some()) {
            (true, false) => "HS256",
            (false, true) => "RS256, ES256, EdDSA",
            (true, true) => "HS256, RS256, ES256, EdDSA",
            (false, false) => "none",
        }
    }

    /// An HS256 token for `user` valid for `ttl`, with the configured `iss` and `aud`.
    pub fn mint(&self, user: UserId, ttl: Duration) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let claims = Minted {
            sub: user,
            exp: now + ttl.as_secs().max(1),
            iat: now,
            iss: self.issuer.as_deref(),
            aud: self.audience.as_deref(),
        };
        // HS256 signing with an in-memory key only fails on a broken crypto provider.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing")
    }
}
