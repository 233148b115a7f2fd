//! `GET /ws`: origin check, authentication before the upgrade (401 with a JSON reason), then
//! the upgrade with buffers sized for many idle connections.

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{State, ws::rejection::WebSocketUpgradeRejection};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::auth::{AuthError, SUBPROTOCOL, TokenSource, query_param, token_from};
use crate::http::ApiError;
use crate::ids::UserId;
use crate::state::AppState;

/// Bytes of frames gathered before a write to the socket (the writer flushes at the end of
/// each drain anyway).
const WRITE_BATCH_BYTES: usize = 4096;

/// The WebSocket endpoint.
pub async fn ws_handler(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if let Err(refusal) = check_origin(&state, &headers) {
        state.metrics.handshakes_refused.inc();
        return refusal.into_response();
    }
    let (user, source) = match authenticate(&state, &headers, uri.query()) {
        Ok(found) => found,
        Err(e) => {
            state.metrics.handshakes_refused.inc();
            return ApiError::Unauthorized(e).into_response();
        }
    };
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            return ApiError::Upgrade(rejection.body_text()).into_response();
        }
    };
    let server = &state.settings.server;
    let mut upgrade = upgrade
        .read_buffer_size(server.read_buffer_bytes)
        // Frames drained together go out in one write (one syscall, one TCP segment when
        // they fit); the buffer grows only to what one drain holds.
        .write_buffer_size(WRITE_BATCH_BYTES)
        .max_write_buffer_size(server.max_frame_bytes.max(64 * 1024) * 4)
        // Twice our limit: a message up to that size is read whole and then refused with
        // close 1009 (connection.rs), so no unread input resets the connection before the
        // client has the close frame. Only larger ones are cut off mid-frame.
        .max_message_size(server.max_frame_bytes.saturating_mul(2))
        .max_frame_size(server.max_frame_bytes.saturating_mul(2));
    if source == Some(TokenSource::Subprotocol) || offers_chat_protocol(&headers) {
        upgrade = upgrade.protocols([SUBPROTOCOL]);
    }
    upgrade
        .on_failed_upgrade(|e| tracing::debug!(error = %e, "upgrade failed"))
        .on_upgrade(move |socket| {
            let (sink, stream) = futures_util::StreamExt::split(socket);
            super::connection::run(sink, stream, state, user)
        })
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
