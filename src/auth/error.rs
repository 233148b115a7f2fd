//! `AuthError`: why a token was refused. Each variant's text is the JSON reason of the 401
//! (docs/protocol.md lists them).

use jsonwebtoken::errors::{Error, ErrorKind};

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
    /// An `alg` this node does not take (`none` included); names the ones it does.
    #[error("token algorithm not accepted: only {0}")]
    BadAlgorithm(&'static str),
    /// The `alg` is not the one of the key its `kid` names.
    #[error("token algorithm does not match its key")]
    KeyMismatch,
    /// An RS256, ES256 or EdDSA token that names no key.
    #[error("token header lacks kid")]
    MissingKeyId,
    /// A `kid` the key set does not hold, even after reading it again.
    #[error("token kid names no known key")]
    UnknownKey,
    #[error("token lacks required claim {0}")]
    MissingClaim(String),
    #[error("token issuer not accepted")]
    BadIssuer,
    #[error("token audience not accepted")]
    BadAudience,
    #[error("token sub must be a positive integer user id")]
    BadSubject,
    #[error("token not valid yet")]
    NotYetValid,
}

impl AuthError {
    /// The refusal for what the JWT library found; `accepted` names the algorithms this node
    /// takes.
    pub(super) fn from_jwt(e: &Error, accepted: &'static str) -> AuthError {
        match e.kind() {
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            ErrorKind::InvalidSignature => AuthError::BadSignature,
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                AuthError::BadAlgorithm(accepted)
            }
            ErrorKind::MissingRequiredClaim(c) => AuthError::MissingClaim(c.clone()),
            ErrorKind::Json(err) if err.to_string().contains("missing field `exp`") => {
                AuthError::MissingClaim("exp".into())
            }
            // An `alg` the library does not know (such as "none") fails header parsing.
            ErrorKind::Json(err) if err.to_string().contains("unknown variant") => {
                AuthError::BadAlgorithm(accepted)
            }
            _ => AuthError::Malformed,
        }
    }
}
