//! The HTTP side of a node: the WebSocket upgrade, the REST API (groups, follows, blocks,
//! presence, dev tokens, health and metrics) and the web app. Each resource module exposes
//! `router()`, an `OpenApiRouter` whose routes make up the OpenAPI document too (openapi.rs);
//! the web app's pages (web.rs) are no API and stay out of it.

pub mod auth;
mod conversations;
mod cors;
mod dev;
mod docs;
mod error;
mod group_admin;
mod groups;
mod health;
mod mutes;
mod openapi;
mod receipts;
mod serve;
mod social;
mod upgrade;
mod web;

pub use auth::AuthUser;
pub use error::{ApiError, Body, ErrorBody, PathOf};
pub use serve::serve;

use axum::Router;
use axum::routing::get;

use crate::state::AppState;

/// Every route of a node's public listener (`/metrics` too, unless `server.metrics_bind`
/// gives it a listener of its own).
pub fn router(state: AppState) -> Router {
    let mut api = openapi::start()
        .merge(groups::router())
        .merge(group_admin::router())
        .merge(conversations::router())
        .merge(receipts::router())
        .merge(social::router())
        .merge(mutes::router())
        .merge(health::router())
        .merge(dev::router())
        .merge(docs::router());
    if state.settings.server.metrics_bind.is_none() {
        api = api.merge(health::metrics_router());
    }
    let (api, doc) = api.split_for_parts();
    let api = openapi::serve(api, &openapi::finish(doc))
        .layer(cors::layer(&state.settings.server.allowed_origins));
    let mut routes = Router::new()
        .route("/ws", get(upgrade::ws_handler))
        .merge(api);
    if state.settings.server.web_ui {
        routes = routes.merge(web::router());
    }
    routes
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .layer(axum::middleware::from_fn(log_request))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            bound_header_lines,
        ))
        .with_state(state)
}

/// The routes of the private listener (`server.metrics_bind`): `/metrics`, `/health/live`,
/// `/health/ready`; anything else is 404.
pub fn private_router(state: AppState) -> Router {
    health::private_router()
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .with_state(state)
}

/// One header line (or the request target) may take at most half of
/// `server.max_header_bytes`; hyper bounds the whole head (431) before the router sees it.
async fn bound_header_lines(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let most = state.settings.server.max_header_bytes / 2;
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |p| p.as_str().len());
    if target > most {
        state.metrics.edge.headers_too_large.inc();
        let problem = format!("the request target is longer than {most} bytes");
        return ApiError::HeadersTooLarge(problem).into_response();
    }
    if let Some((name, _)) = request
        .headers()
        .iter()
        .find(|(name, value)| name.as_str().len() + value.len() > most)
    {
        state.metrics.edge.headers_too_large.inc();
        let problem = format!("the {name} header is longer than {most} bytes");
        return ApiError::HeadersTooLarge(problem).into_response();
    }
    next.run(request).await
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

/// The `limit` of a paged request's query string: `default` when absent, else an integer
/// from 1 to `max` (400 naming the range otherwise).
pub fn page_limit(query: Option<&str>, (default, max): (u32, u32)) -> Result<u32, ApiError> {
    match auth::query_param(query, "limit") {
        None => Ok(default),
        Some(n) => n
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ApiError::BadRequest(format!("limit must be an integer from 1 to {max}"))
            }),
    }
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
