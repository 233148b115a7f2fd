//! Authentication over HTTP: where a request carries its token (header, subprotocol or
//! query), the `AuthUser` extractor for the REST API, and query redaction for logs.

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;

use super::ApiError;
use crate::auth::AuthError;
use crate::ids::UserId;
use crate::state::AppState;

/// The subprotocol a browser offers next to `bearer.<JWT>`; the server answers with it.
pub const SUBPROTOCOL: &str = "chat.v1";
/// Prefix of the subprotocol that carries a token.
pub const BEARER_PROTOCOL_PREFIX: &str = "bearer.";

/// The token of a request: `Authorization: Bearer`, then a `bearer.<JWT>` subprotocol, then
/// `?token=`. An `Authorization` header that is present but not a bearer token is malformed.
pub fn token_from(headers: &HeaderMap, query: Option<&str>) -> Result<Option<String>, AuthError> {
    if let Some(value) = headers.get(axum::http::header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| AuthError::Malformed)?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or(AuthError::Malformed)?;
        return Ok(Some(token.trim().to_string()));
    }
    for value in headers.get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL) {
        let Ok(value) = value.to_str() else { continue };
        for proto in value.split(',').map(str::trim) {
            if let Some(token) = proto.strip_prefix(BEARER_PROTOCOL_PREFIX) {
                return Ok(Some(token.to_string()));
            }
        }
    }
    Ok(query_param(query, "token"))
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
        <AuthUser as OptionalFromRequestParts<AppState>>::from_request_parts(parts, state)
            .await?
            .ok_or(ApiError::Unauthorized(AuthError::Missing))
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
            Some(token) => state
                .auth
                .verify(&token)
                .await
                .map(|identity| Some(AuthUser(identity.user)))
                .map_err(ApiError::Unauthorized),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use axum::http::header::{AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL};

    #[test]
    fn header_then_subprotocol_then_query() {
        let mut headers = HeaderMap::new();
        let query = Some("x=1&token=from%2Equery");
        assert_eq!(token_from(&headers, query), Ok(Some("from.query".into())));
        headers.insert(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("chat.v1, bearer.from.proto"),
        );
        assert_eq!(token_from(&headers, query), Ok(Some("from.proto".into())));
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_static("Bearer from.header "),
        );
        assert_eq!(token_from(&headers, query), Ok(Some("from.header".into())));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic dXNlcg=="));
        assert_eq!(token_from(&headers, query), Err(AuthError::Malformed));
        assert_eq!(token_from(&HeaderMap::new(), None), Ok(None));
    }

    #[test]
    fn query_tokens_are_redacted() {
        assert_eq!(
            redact_query("/ws", Some("token=abc.def&x=1")),
            "/ws?token=REDACTED&x=1"
        );
    }
}
