//! `/api/mutes`: conversations whose messages are never pushed to me (src/push).
//!
//! `PUT /api/mutes/users/{user_id}` and `PUT /api/mutes/groups/{group_id}` mute (201, or 200
//! when muted already), `DELETE` the same path unmutes (204, or 404), `GET /api/mutes` lists
//! them. Muting changes nothing else: messages are stored and delivered live as before.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::{ApiError, AuthUser, PathOf, user_id};
use crate::ids::parse_group_id;
use crate::state::AppState;
use crate::store::push::Muted;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/mutes", get(list)).route(
        "/api/mutes/{kind}/{id}",
        axum::routing::put(mute).delete(unmute),
    )
}

/// The conversation a path names, and its JSON form.
fn conversation(me: i64, kind: &str, id: &str) -> Result<(Muted, Value), ApiError> {
    match kind {
        "users" => {
            let peer = id
                .parse::<i64>()
                .map_err(|_| ApiError::BadRequest("user_id must be a positive integer".into()))
                .and_then(user_id)?;
            if peer == me {
                return Err(ApiError::BadRequest("you cannot mute yourself".into()));
            }
            Ok((Muted::User(peer), json!({ "user_id": peer })))
        }
        "groups" => {
            let group = parse_group_id(id).map_err(ApiError::BadRequest)?;
            let body = json!({ "group_id": &*group });
            Ok((Muted::Group(group), body))
        }
        _ => Err(ApiError::NotFound(format!(
            "no such kind of conversation {kind:?}: users or groups"
        ))),
    }
}

async fn mute(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    PathOf((kind, id)): PathOf<(String, String)>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (what, body) = conversation(me, &kind, &id)?;
    let new = state.store.push().mute(me, &what).await?;
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(body)))
}

async fn unmute(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    PathOf((kind, id)): PathOf<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (what, _) = conversation(me, &kind, &id)?;
    if state.store.push().unmute(me, &what).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "you have not muted {kind}/{id}"
        )))
    }
}

async fn list(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
) -> Result<Json<Value>, ApiError> {
    let mut users = Vec::new();
    let mut groups = Vec::new();
    for muted in state.store.push().mutes(me).await? {
        match muted {
            Muted::User(peer) => users.push(json!(peer)),
            Muted::Group(group) => groups.push(json!(&*group)),
        }
    }
    Ok(Json(json!({ "users": users, "groups": groups })))
}
