//! Health, readiness, metrics and presence; and the routes of the private listener
//! (`server.metrics_bind`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::{ApiError, AuthUser, Body, PathOf, user_id};
use crate::health::Condition;
use crate::metrics::{self, Snapshot};
use crate::state::AppState;

/// Health and presence, on the public listener.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/api/users/{id}/presence", get(presence))
        .route("/api/presence", axum::routing::post(presence_of_many))
}

/// `/metrics`: on the public listener when `server.metrics_bind` is not set, else on the
/// private one.
pub fn metrics_router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

/// The private listener (`server.metrics_bind`): metrics and health, for Prometheus and
/// the kubelet's probes.
pub fn private_router() -> Router<AppState> {
    metrics_router()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
}

/// The process is up.
async fn live() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The node takes traffic: it is not draining, not full, and neither storage nor bus has
/// been failing its health checks for longer than `server.ready_tolerance`. Answered at once
/// from what the node's health task last saw (`crate::health`), never by asking them.
async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    if state.shutdown.is_cancelled() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "draining"})),
        );
    }
    if state.admission.is_full() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "full",
                "connections": state.hub.connections(),
                "max_connections": state.admission.max_connections(),
            })),
        );
    }
    let report = state.health.report();
    let ok = report.ready();
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if ok { "ready" } else { "unavailable" },
            "store": report.store,
            "bus": report.bus,
            "connections": state.hub.connections(),
        })),
    )
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let health = state.health.report();
    let draining = state.shutdown.is_cancelled();
    let now = Snapshot {
        connections: state.hub.connections(),
        handshakes: state.admission.handshakes(),
        max_connections: state.admission.max_connections(),
        draining,
        ready: !draining && !state.admission.is_full() && health.ready(),
        store_up: health.store.status == Condition::Ok,
        bus_up: health.bus.status == Condition::Ok,
        bus: state.bus.stats(),
    };
    (
        [(axum::http::header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        state.metrics.render(now),
    )
}

/// Most users one presence lookup may name.
pub const PRESENCE_MAX: usize = 500;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Users {
    user_ids: Vec<i64>,
}

/// Whether any node holds a connection of each user (up to `PRESENCE_MAX`), asked of the
/// bus at once.
async fn presence_of_many(
    State(state): State<AppState>,
    AuthUser(_): AuthUser,
    Body(users): Body<Users>,
) -> Result<Json<Value>, ApiError> {
    if users.user_ids.len() > PRESENCE_MAX {
        return Err(ApiError::BadRequest(format!(
            "at most {PRESENCE_MAX} user_ids per lookup"
        )));
    }
    let mut ids = users
        .user_ids
        .into_iter()
        .map(user_id)
        .collect::<Result<Vec<_>, _>>()?;
    ids.sort_unstable();
    ids.dedup();
    let answers =
        futures_util::future::join_all(ids.iter().map(|u| state.bus.user_online(*u))).await;
    let mut online = serde_json::Map::new();
    for (user, answer) in ids.iter().zip(answers) {
        let up = answer.map_err(|e| ApiError::Unavailable(e.to_string()))?;
        online.insert(user.to_string(), Value::Bool(up));
    }
    Ok(Json(json!({ "online": online })))
}

/// Whether any node holds a connection of the user.
async fn presence(
    State(state): State<AppState>,
    AuthUser(_): AuthUser,
    PathOf(id): PathOf<i64>,
) -> Result<Json<Value>, ApiError> {
    let user = user_id(id)?;
    let online = state
        .bus
        .user_online(user)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(Json(json!({"user_id": user, "online": online})))
}
