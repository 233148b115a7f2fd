//! `GET /api/groups/{id}/messages/{message_id}/reads`: who of a group has read one of its
//! messages ("read by"), paged by user id, with the counts. Members only.

use axum::extract::State;
use axum::http::Uri;
use axum::routing::get;
use axum::{Json, Router};
use uuid::Uuid;

use super::auth::query_param;
use super::{ApiError, AuthUser, PathOf, page_limit};
use crate::ids::parse_group_id;
use crate::state::AppState;
use crate::store::{GroupReads, Role};

/// Default and largest page.
const LIMIT: (u32, u32) = (100, 1000);

pub fn router() -> Router<AppState> {
    Router::new().route("/api/groups/{id}/messages/{message_id}/reads", get(reads))
}

async fn reads(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    PathOf((group, message)): PathOf<(String, String)>,
    uri: Uri,
) -> Result<Json<GroupReads>, ApiError> {
    parse_group_id(&group).map_err(ApiError::BadRequest)?;
    let message = Uuid::try_parse(&message)
        .map_err(|_| ApiError::BadRequest("message_id must be a message id (a UUID)".into()))?;
    let query = uri.query();
    let after = match query_param(query, "after") {
        None => 0,
        Some(a) => a.parse::<i64>().ok().filter(|a| *a >= 0).ok_or_else(|| {
            ApiError::BadRequest("after must be a user id from an earlier page".into())
        })?,
    };
    let limit = page_limit(query, LIMIT)?;
    match state.store.role(&group, me).await? {
        None => return Err(ApiError::NotFound(format!("no such group {group}"))),
        Some(Role::Outsider) => {
            return Err(ApiError::Forbidden(format!(
                "you are not a member of group {group}"
            )));
        }
        Some(_) => {}
    }
    state
        .store
        .group_reads(&group, message, after, limit)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no message {message} in group {group}")))
}
