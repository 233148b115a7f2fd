//! The HTTP side of a node: the WebSocket upgrade and the REST API (groups, follows, blocks,
//! presence, dev tokens, health and metrics). Each resource module exposes `router()`.

pub mod auth;
mod dev;
mod error;
mod groups;
mod health;
mod social;
mod upgrade;

pub use auth::AuthUser;
pub use error::{ApiError, Body, PathOf};

use axum::Router;
use axum::routing::get;

use crate::state::AppState;

/// Every route of a node.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/ws", get(upgrade::ws_handler))
        .merge(groups::router())
        .merge(social::router())
        .merge(health::router())
        .merge(dev::router())
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .layer(axum::middleware::from_fn(log_request))
        .with_state(state)
}

/// Request log at debug level, with any token in the query redacted.
async fn log_request(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = request.method().clone();
    let uri = auth::redact_query(request.uri().path(), request.uri().query());
    let response = next.run(request).await;
    tracing::debug!(%method, %uri, status = response.status().as_u16(), "request");
    response
}

/// A user id from a path or body: a positive integer.
pub fn user_id(id: i64) -> Result<crate::ids::UserId, ApiError> {
    if id > 0 {
        Ok(id)
    } else {
        Err(ApiError::BadRequest(
            "user_id must be a positive integer".into(),
        ))
    }
}
