//! Health, readiness, metrics and presence; and the routes of the private listener
//! (`server.metrics_bind`).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, AuthUser, Body, ErrorBody, PathOf, user_id};
use crate::health::{Condition, DependencyReport};
use crate::metrics::{self, Snapshot};
use crate::state::AppState;

/// Health and presence, on the public listener.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(live))
        .routes(routes!(ready))
        .routes(routes!(presence))
        .routes(routes!(presence_of_many))
}

/// `/metrics`: on the public listener when `server.metrics_bind` is not set, else on the
/// private one.
pub fn metrics_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics))
}

/// The private listener (`server.metrics_bind`): metrics and health, for Prometheus and
/// the kubelet's probes.
pub fn private_router() -> Router<AppState> {
    let (metrics, _) = metrics_router().split_for_parts();
    metrics
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
}

/// `{"status": "ok"}`.
#[derive(Serialize, ToSchema)]
struct Live {
    #[schema(pattern = "^ok$")]
    status: &'static str,
}

/// The process is up.
#[utoipa::path(
    get,
    path = "/health/live",
    tag = "health",
    summary = "The process is up",
    responses((status = 200, description = "up", body = Live)),
)]
async fn live() -> Json<Live> {
    Json(Live { status: "ok" })
}

/// Whether the node takes traffic; which fields are present depends on `status`.
#[derive(Serialize, ToSchema)]
struct Readiness {
    /// `ready`; or, with 503, `draining`, `full` or `unavailable`.
    #[schema(pattern = "^(ready|draining|full|unavailable)$")]
    status: &'static str,
    /// WebSocket connections on this node (all but `draining`).
    #[serde(skip_serializing_if = "Option::is_none")]
    connections: Option<usize>,
    /// `full` only: the most this node takes (`server.max_connections`).
    #[serde(skip_serializing_if = "Option::is_none")]
    max_connections: Option<usize>,
    /// `ready` and `unavailable`: storage's checks.
    #[serde(skip_serializing_if = "Option::is_none")]
    store: Option<DependencyReport>,
    /// `ready` and `unavailable`: the bus's checks.
    #[serde(skip_serializing_if = "Option::is_none")]
    bus: Option<DependencyReport>,
}

/// The node takes traffic: it is not draining, not full, and neither storage nor bus has
/// been failing its health checks for longer than `server.ready_tolerance`. Answered at once
/// from what the node's health task last saw (`crate::health`), never by asking them.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "health",
    summary = "The node takes traffic (load balancers route on it)",
    responses(
        (status = 200, description = "ready", body = Readiness),
        (status = 503, description = "draining, full, or storage or bus down past `server.ready_tolerance`", body = Readiness),
    ),
)]
async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let mut answer = Readiness {
        status: "draining",
        connections: None,
        max_connections: None,
        store: None,
        bus: None,
    };
    if state.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(answer));
    }
    answer.connections = Some(state.hub.connections());
    if state.admission.is_full() {
        answer.status = "full";
        answer.max_connections = Some(state.admission.max_connections());
        return (StatusCode::SERVICE_UNAVAILABLE, Json(answer));
    }
    let report = state.health.report();
    let ok = report.ready();
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    answer.status = if ok { "ready" } else { "unavailable" };
    answer.store = Some(report.store);
    answer.bus = Some(report.bus);
    (status, Json(answer))
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    summary = "Prometheus metrics (here unless `server.metrics_bind` gives them a listener of their own)",
    responses((status = 200, description = "the OpenMetrics text format", content_type = "application/openmetrics-text", body = String)),
)]
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

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"user_ids": [42, 43, 44]}))]
struct Users {
    /// Positive integers, at most 500 (repeats counted once).
    #[schema(max_items = 500)]
    user_ids: Vec<i64>,
}

/// Whether each user asked for is online, by user id.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"online": {"42": true, "43": false}}))]
struct OnlineMany {
    online: BTreeMap<String, bool>,
}

/// Whether one user is online.
#[derive(Serialize, ToSchema)]
struct Online {
    user_id: i64,
    online: bool,
}

/// Whether any node holds a connection of each user (up to `PRESENCE_MAX`), asked of the
/// bus at once.
#[utoipa::path(
    post,
    path = "/api/presence",
    tag = "social",
    summary = "Whether each of up to 500 users is online (on any node)",
    security(("bearer" = [])),
    request_body = Users,
    responses(
        (status = 200, description = "one answer per user", body = OnlineMany),
        (status = 400, description = "a bad user id or body, or more than 500, named", body = ErrorBody),
    ),
)]
async fn presence_of_many(
    State(state): State<AppState>,
    AuthUser(_): AuthUser,
    Body(users): Body<Users>,
) -> Result<Json<OnlineMany>, ApiError> {
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
    let mut online = BTreeMap::new();
    for (user, answer) in ids.iter().zip(answers) {
        let up = answer.map_err(|e| ApiError::Unavailable(e.to_string()))?;
        online.insert(user.to_string(), up);
    }
    Ok(Json(OnlineMany { online }))
}

/// Whether any node holds a connection of the user.
#[utoipa::path(
    get,
    path = "/api/users/{id}/presence",
    tag = "social",
    summary = "Whether a user is online (on any node)",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "the user", minimum = 1)),
    responses(
        (status = 200, description = "the answer", body = Online),
        (status = 400, description = "a bad user id", body = ErrorBody),
    ),
)]
async fn presence(
    State(state): State<AppState>,
    AuthUser(_): AuthUser,
    PathOf(id): PathOf<i64>,
) -> Result<Json<Online>, ApiError> {
    let user = user_id(id)?;
    let online = state
        .bus
        .user_online(user)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(Json(Online {
        user_id: user,
        online,
    }))
}
