//! `GET /ws`: origin check, authentication before the upgrade (401 with a JSON reason), then
//! the WebSocket handshake (RFC 6455 section 4.2) and the connection.

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::ApiError;
use super::auth::{SUBPROTOCOL, query_param, token_from};
use crate::admission::Full;
use crate::auth::{AuthError, Identity};
use crate::chat::connection::Accepted;
use crate::state::AppState;
use crate::ws::socket::Socket;

/// The WebSocket endpoint.
#[tracing::instrument(target = "chat_gateway::spans", name = "handshake", skip_all)]
pub async fn ws_handler(
    State(state): State<AppState>,
    ConnectInfo(Socket { tcp: socket, peer }): ConnectInfo<Socket>,
    uri: Uri,
    mut request: Request,
) -> Response {
    let headers = request.headers();
    if let Err(refusal) = check_origin(&state, headers) {
        state.metrics.handshakes_refused.inc();
        return refusal.into_response();
    }
    let identity = match authenticate(&state, headers, uri.query()).await {
        Ok(found) => found,
        Err(e) => {
            state.metrics.handshakes_refused.inc();
            return ApiError::Unauthorized(e).into_response();
        }
    };
    let device = match query_param(uri.query(), "device_id") {
        None => None,
        Some(device) => match crate::ids::parse_device_id(&device) {
            Ok(device) => Some(device),
            Err(reason) => return ApiError::BadRequest(reason).into_response(),
        },
    };
    let accept = match accept_key(request.method(), headers) {
        Ok(accept) => accept,
        Err(refusal) => return refusal.into_response(),
    };
    if state.shutdown.is_cancelled() {
        return ApiError::Unavailable("this node is draining: reconnect".into()).into_response();
    }
    let address = state.admission.client_address(peer.ip(), headers);
    let slot = match state.admission.try_connection(address) {
        Ok(slot) => slot,
        Err(full) => {
            let refusals = &state.metrics.edge;
            match full {
                Full::Node => refusals.node_full.inc(),
                Full::Address => refusals.address_full.inc(),
            }
            // Spread out, so refused clients do not all come back in the same second.
            return ApiError::Full(full, rand::random_range(2..=10)).into_response();
        }
    };
    // Only a subprotocol the client offered may be named (RFC 6455 4.2.2): a client that
    // offers `bearer.<JWT>` alone gets no Sec-WebSocket-Protocol (the token is never echoed).
    let chat_protocol = offers_chat_protocol(headers);
    let Some(on_upgrade) = request
        .extensions_mut()
        .remove::<hyper::upgrade::OnUpgrade>()
    else {
        return ApiError::Upgrade("this connection cannot be upgraded".into()).into_response();
    };
    tokio::spawn(crate::chat::connection::run(Box::new(Accepted {
        upgrade: on_upgrade,
        slot,
        socket,
        state,
        identity,
        device,
    })));
    let mut response = Response::new(axum::body::Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    if chat_protocol {
        headers.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(SUBPROTOCOL),
        );
    }
    response
}

/// Why a request is not a handshake this server accepts (RFC 6455 section 4.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// Not a WebSocket upgrade at all: 426.
    NotUpgrade(&'static str),
    /// `Sec-WebSocket-Version` missing or not 13: 426 with `Sec-WebSocket-Version: 13`, the
    /// version this server speaks (section 4.4).
    Version,
    /// An upgrade the RFC calls malformed: 400.
    Malformed(&'static str),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::NotUpgrade(problem) => ApiError::Upgrade(problem.into()).into_response(),
            Refusal::Version => {
                let problem = "the Sec-WebSocket-Version header must be 13";
                let mut response = ApiError::Upgrade(problem.into()).into_response();
                response.headers_mut().insert(
                    header::SEC_WEBSOCKET_VERSION,
                    HeaderValue::from_static("13"),
                );
                response
            }
            Refusal::Malformed(problem) => {
                ApiError::BadRequest(format!("malformed WebSocket handshake: {problem}"))
                    .into_response()
            }
        }
    }
}

/// Checks that the request is a WebSocket handshake; the `Sec-WebSocket-Accept` answer, or
/// why it is refused.
fn accept_key(method: &Method, headers: &HeaderMap) -> Result<HeaderValue, Refusal> {
    if method != Method::GET {
        return Err(Refusal::NotUpgrade("the handshake must be a GET request"));
    }
    let has = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|part| part.trim().eq_ignore_ascii_case(token))
            })
        })
    };
    if !has(header::CONNECTION, "upgrade") {
        return Err(Refusal::NotUpgrade(
            "the Connection header must include 'upgrade'",
        ));
    }
    if !has(header::UPGRADE, "websocket") {
        return Err(Refusal::NotUpgrade(
            "the Upgrade header must be 'websocket'",
        ));
    }
    if headers.get(header::HOST).is_none() {
        return Err(Refusal::Malformed("the Host header is missing"));
    }
    let versions = headers.get_all(header::SEC_WEBSOCKET_VERSION);
    if versions.iter().count() != 1 || versions.iter().any(|v| v.as_bytes() != b"13") {
        return Err(Refusal::Version);
    }
    let mut keys = headers.get_all(header::SEC_WEBSOCKET_KEY).iter();
    let (Some(key), None) = (keys.next(), keys.next()) else {
        return Err(Refusal::Malformed(
            "there must be exactly one Sec-WebSocket-Key header",
        ));
    };
    if !is_nonce(key.as_bytes()) {
        return Err(Refusal::Malformed(
            "the Sec-WebSocket-Key header must be the base64 of 16 bytes",
        ));
    }
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    HeaderValue::from_str(&accept).map_err(|_| Refusal::Malformed("bad Sec-WebSocket-Key"))
}

/// Whether a `Sec-WebSocket-Key` is what the RFC asks: 16 bytes, base64-encoded.
fn is_nonce(key: &[u8]) -> bool {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(key)
        .is_ok_and(|nonce| nonce.len() == 16)
}

fn offers_chat_protocol(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == SUBPROTOCOL)
}

/// The user of a handshake and until when: a token, or the legacy `?myid=` (which never
/// expires) where explicitly allowed.
async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Identity, AuthError> {
    if let Some(token) = token_from(headers, query)? {
        return state.auth.verify(&token).await;
    }
    if state.settings.auth.insecure_myid
        && let Some(myid) = query_param(query, "myid")
    {
        return match myid.parse::<i64>() {
            Ok(user) if user > 0 => Ok(Identity {
                user,
                expires_at: None,
            }),
            _ => Err(AuthError::BadSubject),
        };
    }
    Err(AuthError::Missing)
}

/// Cross-site WebSocket hijacking guard: with `server.allowed_origins` set, a browser
/// handshake from another origin gets 403.
fn check_origin(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(), (StatusCode, axum::Json<serde_json::Value>)> {
    let allowed = &state.settings.server.allowed_origins;
    if allowed.is_empty() {
        return Ok(());
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    if allowed
        .iter()
        .any(|a| HeaderValue::from_str(a).is_ok_and(|a| a == origin))
    {
        return Ok(());
    }
    Err((
        StatusCode::FORBIDDEN,
        axum::Json(serde_json::json!({"error": "origin not allowed", "code": 403})),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handshake(extra: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("chat.example"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        headers.insert(
            header::SEC_WEBSOCKET_KEY,
            HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
        );
        for (name, value) in extra {
            headers.insert(name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn the_rfc_example_is_accepted() {
        // RFC 6455 section 1.3: this key's answer is s3pPLMBiTxaQ9kYGzzhZRbK+xOo=.
        let accept = accept_key(&Method::GET, &handshake(&[])).unwrap();
        assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn keys_must_be_16_bytes_of_base64() {
        for key in [
            "",
            "abc",
            "dGhlIHNhbXBsZSBub25jZQ",
            "dGhlIHNhbXBsZSBub25jZQ==x",
            "AAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            let headers = handshake(&[(header::SEC_WEBSOCKET_KEY, key)]);
            assert!(
                matches!(
                    accept_key(&Method::GET, &headers),
                    Err(Refusal::Malformed(_))
                ),
                "{key:?}"
            );
        }
    }

    #[test]
    fn a_missing_host_is_malformed_and_a_wrong_version_names_13() {
        let mut headers = handshake(&[]);
        headers.remove(header::HOST);
        assert!(matches!(
            accept_key(&Method::GET, &headers),
            Err(Refusal::Malformed(_))
        ));
        let headers = handshake(&[(header::SEC_WEBSOCKET_VERSION, "8")]);
        assert_eq!(accept_key(&Method::GET, &headers), Err(Refusal::Version));
        let mut headers = handshake(&[]);
        headers.remove(header::SEC_WEBSOCKET_VERSION);
        let response = accept_key(&Method::GET, &headers)
            .unwrap_err()
            .into_response();
        assert_eq!(response.status(), StatusCode::UPGRADE_REQUIRED);
        assert_eq!(response.headers()[header::SEC_WEBSOCKET_VERSION], "13");
        assert!(matches!(
            accept_key(&Method::POST, &handshake(&[])),
            Err(Refusal::NotUpgrade(_))
        ));
    }
}
