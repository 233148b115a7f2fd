//! `/api/follows` and `/api/blocks`: whom I follow and whom I block.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, AuthUser, Body, ErrorBody, PathOf, user_id};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(following, follow))
        .routes(routes!(unfollow, follow_path))
        .routes(routes!(blocked, block))
        .routes(routes!(unblock, block_path))
}

/// Another user: the request, and the answer of a follow or block.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Target {
    /// A positive integer, not the caller's own.
    #[schema(minimum = 1)]
    user_id: i64,
}

/// Whom the caller follows.
#[derive(Serialize, ToSchema)]
struct Following {
    following: Vec<i64>,
}

/// Whom the caller blocks.
#[derive(Serialize, ToSchema)]
struct Blocked {
    blocked: Vec<i64>,
}

fn other(me: i64, id: i64, what: &str) -> Result<i64, ApiError> {
    let id = user_id(id)?;
    if id == me {
        return Err(ApiError::BadRequest(format!("you cannot {what} yourself")));
    }
    Ok(id)
}

fn created(new: bool, id: i64) -> (StatusCode, Json<Target>) {
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, Json(Target { user_id: id }))
}

#[utoipa::path(
    post,
    path = "/api/follows",
    tag = "social",
    summary = "Follow a user",
    security(("bearer" = [])),
    request_body = Target,
    responses(
        (status = 201, description = "now following", body = Target),
        (status = 200, description = "following already", body = Target),
        (status = 400, description = "a bad user id or body, or oneself", body = ErrorBody),
    ),
)]
async fn follow(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Body(target): Body<Target>,
) -> Result<(StatusCode, Json<Target>), ApiError> {
    let id = other(me, target.user_id, "follow")?;
    Ok(created(state.store.follow(me, id).await?, id))
}

#[utoipa::path(
    put,
    path = "/api/follows/{user_id}",
    tag = "social",
    summary = "Follow a user (the id in the path)",
    security(("bearer" = [])),
    params(("user_id" = i64, Path, description = "the other user", minimum = 1)),
    responses(
        (status = 201, description = "now following", body = Target),
        (status = 200, description = "following already", body = Target),
        (status = 400, description = "a bad user id, or oneself", body = ErrorBody),
    ),
)]
async fn follow_path(
    state: State<AppState>,
    me: AuthUser,
    PathOf(id): PathOf<i64>,
) -> Result<(StatusCode, Json<Target>), ApiError> {
    follow(state, me, Body(Target { user_id: id })).await
}

#[utoipa::path(
    delete,
    path = "/api/follows/{user_id}",
    tag = "social",
    summary = "Stop following a user",
    security(("bearer" = [])),
    params(("user_id" = i64, Path, description = "the other user", minimum = 1)),
    responses(
        (status = 204, description = "done"),
        (status = 400, description = "a bad user id", body = ErrorBody),
        (status = 404, description = "not following", body = ErrorBody),
    ),
)]
async fn unfollow(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    PathOf(id): PathOf<i64>,
) -> Result<StatusCode, ApiError> {
    let id = user_id(id)?;
    if state.store.unfollow(me, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("you do not follow user {id}")))
    }
}

#[utoipa::path(
    get,
    path = "/api/follows",
    tag = "social",
    summary = "Whom the caller follows",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the users followed", body = Following),
    ),
)]
async fn following(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
) -> Result<Json<Following>, ApiError> {
    let following = state.store.following(me).await?;
    Ok(Json(Following { following }))
}

#[utoipa::path(
    post,
    path = "/api/blocks",
    tag = "social",
    summary = "Block a user",
    security(("bearer" = [])),
    request_body = Target,
    responses(
        (status = 201, description = "now blocked", body = Target),
        (status = 200, description = "blocked already", body = Target),
        (status = 400, description = "a bad user id or body, or oneself", body = ErrorBody),
    ),
)]
async fn block(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Body(target): Body<Target>,
) -> Result<(StatusCode, Json<Target>), ApiError> {
    let id = other(me, target.user_id, "block")?;
    Ok(created(state.store.block(me, id).await?, id))
}

#[utoipa::path(
    put,
    path = "/api/blocks/{user_id}",
    tag = "social",
    summary = "Block a user (the id in the path)",
    security(("bearer" = [])),
    params(("user_id" = i64, Path, description = "the other user", minimum = 1)),
    responses(
        (status = 201, description = "now blocked", body = Target),
        (status = 200, description = "blocked already", body = Target),
        (status = 400, description = "a bad user id, or oneself", body = ErrorBody),
    ),
)]
async fn block_path(
    state: State<AppState>,
    me: AuthUser,
    PathOf(id): PathOf<i64>,
) -> Result<(StatusCode, Json<Target>), ApiError> {
    block(state, me, Body(Target { user_id: id })).await
}

#[utoipa::path(
    delete,
    path = "/api/blocks/{user_id}",
    tag = "social",
    summary = "Stop blocking a user",
    security(("bearer" = [])),
    params(("user_id" = i64, Path, description = "the other user", minimum = 1)),
    responses(
        (status = 204, description = "done"),
        (status = 400, description = "a bad user id", body = ErrorBody),
        (status = 404, description = "not blocked", body = ErrorBody),
    ),
)]
async fn unblock(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    PathOf(id): PathOf<i64>,
) -> Result<StatusCode, ApiError> {
    let id = user_id(id)?;
    if state.store.unblock(me, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("you do not block user {id}")))
    }
}

#[utoipa::path(
    get,
    path = "/api/blocks",
    tag = "social",
    summary = "Whom the caller blocks",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the users blocked", body = Blocked),
    ),
)]
async fn blocked(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
) -> Result<Json<Blocked>, ApiError> {
    let blocked = state.store.blocked(me).await?;
    Ok(Json(Blocked { blocked }))
}
