//! `/api/mutes`: conversations whose messages are never pushed to me (src/push).
//!
//! `PUT /api/mutes/users/{user_id}` and `PUT /api/mutes/groups/{group_id}` mute (201, or 200
//! when muted already), `DELETE` the same path unmutes (204, or 404), `GET /api/mutes` lists
//! them. Muting changes nothing else: messages are stored and delivered live as before.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, AuthUser, ErrorBody, PathOf, user_id};
use crate::ids::{UserId, parse_group_id};
use crate::state::AppState;
use crate::store::push::Muted;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(mute_user, unmute_user))
        .routes(routes!(mute_group, unmute_group))
}

/// A private conversation muted.
#[derive(Serialize, ToSchema)]
struct MutedUser {
    user_id: i64,
}

/// A group muted.
#[derive(Serialize, ToSchema)]
struct MutedGroup {
    group_id: String,
}

/// What the caller has muted.
#[derive(Serialize, ToSchema)]
struct MuteList {
    /// The peers of private conversations.
    users: Vec<i64>,
    groups: Vec<String>,
}

/// The other user of a private conversation to mute: a positive integer, not oneself.
fn peer(me: UserId, id: &str) -> Result<UserId, ApiError> {
    let peer = id
        .parse::<i64>()
        .map_err(|_| ApiError::BadRequest("user_id must be a positive integer".into()))
        .and_then(user_id)?;
    if peer == me {
        return Err(ApiError::BadRequest("you cannot mute yourself".into()));
    }
    Ok(peer)
}

/// 201 when `new`, else 200 (muted already).
fn muted<T>(new: bool, body: T) -> (StatusCode, Json<T>) {
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, Json(body))
}

fn not_muted(what: &str) -> ApiError {
    ApiError::NotFound(format!("you have not muted {what}"))
}

#[utoipa::path(
    put,
    path = "/api/mutes/users/{user_id}",
    tag = "mutes",
    summary = "Mute a private conversation",
    security(("bearer" = [])),
    params(("user_id" = i64, Path, description = "the peer", minimum = 1)),
    responses(
        (status = 201, description = "muted now", body = MutedUser),
        (status = 200, description = "muted already", body = MutedUser),
        (status = 400, description = "a bad user id, or oneself", body = ErrorBody),
    ),
)]
async fn mute_user(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    PathOf(id): PathOf<String>,
) -> Result<(StatusCode, Json<MutedUser>), ApiError> {
    let peer = peer(me, &id)?;
    let new = state.store.push().mute(me, &Muted::User(peer)).await?;
    Ok(muted(new, MutedUser { user_id: peer }))
}

#[utoipa::path(
    delete,
    path = "/api/mutes/users/{user_id}",
    tag = "mutes",
    summary = "Unmute a private conversation",
    security(("bearer" = [])),
    params(("user_id" = i64, Path, description = "the peer", minimum = 1)),
    responses(
        (status = 204, description = "unmuted"),
        (status = 400, description = "a bad user id, or oneself", body = ErrorBody),
        (status = 404, description = "not muted", body = ErrorBody),
    ),
)]
async fn unmute_user(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    PathOf(id): PathOf<String>,
) -> Result<StatusCode, ApiError> {
    let peer = peer(me, &id)?;
    if state.store.push().unmute(me, &Muted::User(peer)).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_muted(&format!("users/{peer}")))
    }
}

#[utoipa::path(
    put,
    path = "/api/mutes/groups/{group_id}",
    tag = "mutes",
    summary = "Mute a group (no membership needed: the mute outlives leaving and rejoining)",
    security(("bearer" = [])),
    params(("group_id" = String, Path, description = "the group's id", pattern = r"^[A-Za-z0-9_.:-]{1,64}$", max_length = 64)),
    responses(
        (status = 201, description = "muted now", body = MutedGroup),
        (status = 200, description = "muted already", body = MutedGroup),
        (status = 400, description = "a bad group id", body = ErrorBody),
    ),
)]
async fn mute_group(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    PathOf(id): PathOf<String>,
) -> Result<(StatusCode, Json<MutedGroup>), ApiError> {
    let group = parse_group_id(&id).map_err(ApiError::BadRequest)?;
    let new = state.store.push().mute(me, &Muted::Group(group)).await?;
    Ok(muted(new, MutedGroup { group_id: id }))
}

#[utoipa::path(
    delete,
    path = "/api/mutes/groups/{group_id}",
    tag = "mutes",
    summary = "Unmute a group",
    security(("bearer" = [])),
    params(("group_id" = String, Path, description = "the group's id", pattern = r"^[A-Za-z0-9_.:-]{1,64}$", max_length = 64)),
    responses(
        (status = 204, description = "unmuted"),
        (status = 400, description = "a bad group id", body = ErrorBody),
        (status = 404, description = "not muted", body = ErrorBody),
    ),
)]
async fn unmute_group(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    PathOf(id): PathOf<String>,
) -> Result<StatusCode, ApiError> {
    let group = parse_group_id(&id).map_err(ApiError::BadRequest)?;
    if state.store.push().unmute(me, &Muted::Group(group)).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_muted(&format!("groups/{id}")))
    }
}

#[utoipa::path(
    get,
    path = "/api/mutes",
    tag = "mutes",
    summary = "What the caller has muted",
    security(("bearer" = [])),
    responses((status = 200, description = "the muted conversations", body = MuteList)),
)]
async fn list(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
) -> Result<Json<MuteList>, ApiError> {
    let mut list = MuteList {
        users: Vec::new(),
        groups: Vec::new(),
    };
    for muted in state.store.push().mutes(me).await? {
        match muted {
            Muted::User(peer) => list.users.push(peer),
            Muted::Group(group) => list.groups.push(group.to_string()),
        }
    }
    Ok(Json(list))
}
