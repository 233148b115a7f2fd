//! Authentication: HS256 JWTs whose `sub` is the user id, verified and minted with the
//! node's secret. Where a request carries its token is HTTP's business (http/auth.rs).

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::ids::UserId;

/// Why a token was refused; the text is the JSON reason of the 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error(
        "missing token: send Authorization: Bearer <JWT>, a bearer.<JWT> subprotocol, or ?token="
    )]
    Missing,
    #[error("malformed token")]
    Malformed,
    #[error("token expired")]
    Expired,
    #[error("invalid token signature")]
    BadSignature,
    #[error("token algorithm not accepted: only HS256")]
    BadAlgorithm,
    #[error("token lacks required claim {0}")]
    MissingClaim(String),
    #[error("token sub must be a positive integer user id")]
    BadSubject,
    #[error("token not valid yet")]
    NotYetValid,
}

#[derive(Serialize, Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Value,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
}

/// Verifies and mints tokens with the node's secret.
pub struct Authenticator {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl Authenticator {
    /// An authenticator for HS256 with `secret`.
    pub fn new(secret: &[u8]) -> Authenticator {
        let mut validation = Validation::new(Algorithm::HS256);
        // `sub` is checked below: the library only accepts it as a string, we take numbers too.
        validation.set_required_spec_claims(&["exp"]);
        // Exact expiry: a token is refused from the second its `exp` names.
        validation.leeway = 0;
        validation.validate_aud = false;
        Authenticator {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// The user a token names, or why it is refused.
    pub fn verify(&self, token: &str) -> Result<UserId, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token.trim(), &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::InvalidSignature => AuthError::BadSignature,
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                AuthError::BadAlgorithm
            }
            ErrorKind::MissingRequiredClaim(c) => AuthError::MissingClaim(c.clone()),
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            ErrorKind::Json(err) if err.to_string().contains("missing field `exp`") => {
                AuthError::MissingClaim("exp".into())
            }
            // An `alg` the library does not know (such as "none") fails header parsing.
            ErrorKind::Json(err) if err.to_string().contains("unknown variant") => {
                AuthError::BadAlgorithm
            }
            _ => AuthError::Malformed,
        })?;
        let id = match &data.claims.sub {
            Value::Null => return Err(AuthError::MissingClaim("sub".into())),
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.parse::<i64>().ok(),
            _ => None,
        };
        match id {
            Some(id) if id > 0 => Ok(id),
            _ => Err(AuthError::BadSubject),
        }
    }

    /// A token for `user` valid for `ttl`.
    pub fn mint(&self, user: UserId, ttl: Duration) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let claims = Claims {
            sub: Value::from(user),
            exp: now + ttl.as_secs().max(1),
            iat: Some(now),
        };
        // HS256 signing with an in-memory key only fails on a broken crypto provider.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn token_with(claims: Value, secret: &[u8]) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn mint_then_verify() {
        let a = Authenticator::new(SECRET);
        assert_eq!(a.verify(&a.mint(42, Duration::from_secs(60))), Ok(42));
    }

    #[test]
    fn sub_as_string_or_number() {
        let a = Authenticator::new(SECRET);
        let t = token_with(serde_json::json!({"sub": "7", "exp": now() + 60}), SECRET);
        assert_eq!(a.verify(&t), Ok(7));
        let t = token_with(serde_json::json!({"sub": 0, "exp": now() + 60}), SECRET);
        assert_eq!(a.verify(&t), Err(AuthError::BadSubject));
        let t = token_with(serde_json::json!({"sub": "abc", "exp": now() + 60}), SECRET);
        assert_eq!(a.verify(&t), Err(AuthError::BadSubject));
    }

    #[test]
    fn refusals() {
        let a = Authenticator::new(SECRET);
        let expired = token_with(serde_json::json!({"sub": 1, "exp": now() - 1}), SECRET);
        assert_eq!(a.verify(&expired), Err(AuthError::Expired));
        let other = token_with(
            serde_json::json!({"sub": 1, "exp": now() + 60}),
            b"another-secret-another-secret-xx",
        );
        assert_eq!(a.verify(&other), Err(AuthError::BadSignature));
        let no_exp = token_with(serde_json::json!({"sub": 1}), SECRET);
        assert_eq!(
            a.verify(&no_exp),
            Err(AuthError::MissingClaim("exp".into()))
        );
        assert_eq!(a.verify("not.a.token"), Err(AuthError::Malformed));
        // {"alg":"none","typ":"JWT"} . {"sub":1,"exp":9999999999} . (no signature)
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOjEsImV4cCI6OTk5OTk5OTk5OX0.";
        assert_eq!(a.verify(none), Err(AuthError::BadAlgorithm));
    }
}
