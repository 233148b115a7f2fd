//! Authentication: HS256 JWTs whose `sub` is the user id, where a handshake may carry one,
//! and the `AuthUser` extractor for the REST API.

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::http::ApiError;
use crate::ids::UserId;
use crate::state::AppState;

/// The subprotocol a browser offers next to `bearer.<JWT>`; the server answers with it.
pub const SUBPROTOCOL: &str = "chat.v1";
/// Prefix of the subprotocol that carries a token.
pub const BEARER_PROTOCOL_PREFIX: &str = "bearer.";

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

/// Where a handshake carried its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    Header,
    Subprotocol,
    Query,
}

/// The token of a request: `Authorization: Bearer`, then a `bearer.<JWT>` subprotocol, then
/// `?token=`. An `Authorization` header that is present but not a bearer token is malformed.
pub fn token_from(
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Option<(String, TokenSource)>, AuthError> {
    if let Some(value) = headers.get(axum::http::header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| AuthError::Malformed)?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or(AuthError::Malformed)?;
        return Ok(Some((token.trim().to_string(), TokenSource::Header)));
    }
    for value in headers.get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL) {
        let Ok(value) = value.to_str() else { continue };
        for proto in value.split(',').map(str::trim) {
            if let Some(token) = proto.strip_prefix(BEARER_PROTOCOL_PREFIX) {
                return Ok(Some((token.to_string(), TokenSource::Subprotocol)));
            }
        }
    }
    if let Some(token) = query_param(query, "token") {
        return Ok(Some((token, TokenSource::Query)));
    }
    Ok(None)
}

/// One query parameter, percent-decoded.
pub fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A path and query fit for logs: the value of `token` (and `myid`'s neighbours' secrets)
/// replaced by `REDACTED`.
pub fn redact_query(path: &str, query: Option<&str>) -> String {
    let Some(query) = query else {
        return path.to_string();
    };
    let redacted: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _))
                if k.eq_ignore_ascii_case("token") || k.eq_ignore_ascii_case("access_token") =>
            {
                format!("{k}=REDACTED")
            }
            _ => pair.to_string(),
        })
        .collect();
    format!("{path}?{}", redacted.join("&"))
}

/// The authenticated user of a REST request (bearer token in the header, or `?token=`).
#[derive(Debug, Clone, Copy)]
pub struct AuthUser(pub UserId);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (token, _) = token_from(&parts.headers, parts.uri.query())
            .map_err(ApiError::Unauthorized)?
            .ok_or(ApiError::Unauthorized(AuthError::Missing))?;
        state
            .auth
            .verify(&token)
            .map(AuthUser)
            .map_err(ApiError::Unauthorized)
    }
}

impl OptionalFromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, ApiError> {
        match token_from(&parts.headers, parts.uri.query()).map_err(ApiError::Unauthorized)? {
            None => Ok(None),
            Some((token, _)) => state
                .auth
                .verify(&token)
                .map(|u| Some(AuthUser(u)))
                .map_err(ApiError::Unauthorized),
        }
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

    #[test]
    fn query_tokens_are_redacted() {
        assert_eq!(
            redact_query("/ws", Some("token=abc.def&x=1")),
            "/ws?token=REDACTED&x=1"
        );
    }
}
