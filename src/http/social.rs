//! `/api/follows` and `/api/blocks`: whom I follow and whom I block.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AuthUser, Body, PathOf, user_id};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/follows", get(following).post(follow))
        .route("/api/follows/{user_id}", delete(unfollow).put(follow_path))
        .route("/api/blocks", get(blocked).post(block))
        .route("/api/blocks/{user_id}", delete(unblock).put(block_path))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Target {
    user_id: i64,
}

fn other(me: i64, id: i64, what: &str) -> Result<i64, ApiError> {
    let id = user_id(id)?;
    if id == me {
        return Err(ApiError::BadRequest(format!("you cannot {what} yourself")));
    }
    Ok(id)
}

fn created(new: bool, field: &str, id: i64) -> (StatusCode, Json<Value>) {
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, Json(json!({ field: id })))
}

async fn follow(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Body(target): Body<Target>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = other(me, target.user_id, "follow")?;
    Ok(created(state.store.follow(me, id).await?, "user_id", id))
}

async fn follow_path(
    state: State<AppState>,
    me: AuthUser,
    PathOf(id): PathOf<i64>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    follow(state, me, Body(Target { user_id: id })).await
}

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

async fn following(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({"following": state.store.following(me).await?})))
}

async fn block(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Body(target): Body<Target>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = other(me, target.user_id, "block")?;
    Ok(created(state.store.block(me, id).await?, "user_id", id))
}

async fn block_path(
    state: State<AppState>,
    me: AuthUser,
    PathOf(id): PathOf<i64>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    block(state, me, Body(Target { user_id: id })).await
}

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

async fn blocked(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({"blocked": state.store.blocked(me).await?})))
}
