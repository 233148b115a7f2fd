//! `GET /ws`: origin check, authentication before the upgrade (401 with a JSON reason), then
//! the WebSocket handshake (RFC 6455 section 4.2) and the connection.

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;

use super::ApiError;
use super::auth::{SUBPROTOCOL, TokenSource, query_param, token_from};
use crate::auth::AuthError;
use crate::ids::UserId;
use crate::state::AppState;
use crate::ws::socket::Socket;

/// The WebSocket endpoint.
pub async fn ws_handler(
    State(state): State<AppState>,
    ConnectInfo(Socket(socket)): ConnectInfo<Socket>,
    uri: Uri,
    mut request: Request,
) -> Response {
    let headers = request.headers();
    if let Err(refusal) = check_origin(&state, headers) {
        state.metrics.handshakes_refused.inc();
        return refusal.into_response();
    }
    let (user, source) = match authenticate(&state, headers, uri.query()) {
        Ok(found) => found,
        Err(e) => {
            state.metrics.handshakes_refused.inc();
            return ApiError::Unauthorized(e).into_response();
        }
    };
    let accept = match accept_key(request.method(), headers) {
        Ok(accept) => accept,
        Err(problem) => return ApiError::Upgrade(problem.into()).into_response(),
    };
    let chat_protocol = source == Some(TokenSource::Subprotocol) || offers_chat_protocol(headers);
    let Some(on_upgrade) = request
        .extensions_mut()
        .remove::<hyper::upgrade::OnUpgrade>()
    else {
        return ApiError::Upgrade("this connection cannot be upgraded".into()).into_response();
    };
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                crate::chat::connection::run(TokioIo::new(upgraded), socket, state, user).await
            }
            Err(e) => tracing::debug!(error = %e, "upgrade failed"),
        }
    });
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

/// Checks that the request is a WebSocket handshake; the `Sec-WebSocket-Accept` answer, or
/// what is wrong with it.
fn accept_key(method: &Method, headers: &HeaderMap) -> Result<HeaderValue, &'static str> {
    if method != Method::GET {
        return Err("the handshake must be a GET request");
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
        return Err("the Connection header must include 'upgrade'");
    }
    if !has(header::UPGRADE, "websocket") {
        return Err("the Upgrade header must be 'websocket'");
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        return Err("the Sec-WebSocket-Version header must be 13");
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return Err("the Sec-WebSocket-Key header is missing");
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    HeaderValue::from_str(&accept).map_err(|_| "the Sec-WebSocket-Key header is malformed")
}

fn offers_chat_protocol(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == SUBPROTOCOL)
}

/// The user of a handshake: a token, or the legacy `?myid=` where explicitly allowed.
fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<(UserId, Option<TokenSource>), AuthError> {
    if let Some((token, source)) = token_from(headers, query)? {
        return state.auth.verify(&token).map(|u| (u, Some(source)));
    }
    if state.settings.auth.insecure_myid
        && let Some(myid) = query_param(query, "myid")
    {
        return match myid.parse::<i64>() {
            Ok(id) if id > 0 => Ok((id, None)),
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
