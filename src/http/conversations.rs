//! `GET /api/conversations`: the user's private conversations and groups, most recent
//! activity first, each with its newest message, unread count and read positions; keyset
//! paged with `?before=<next_cursor>&limit=N`.

use axum::extract::State;
use axum::http::Uri;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use uuid::Uuid;

use super::auth::query_param;
use super::{ApiError, AuthUser, page_limit};
use crate::protocol::Cursor;
use crate::state::AppState;

/// Default and largest page.
const LIMIT: (u32, u32) = (20, 100);

pub fn router() -> Router<AppState> {
    Router::new().route("/api/conversations", get(list))
}

async fn list(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let query = uri.query();
    let before = match query_param(query, "before").as_deref() {
        None | Some("") => Cursor::NOW.0,
        Some(cursor) => Uuid::try_parse(cursor).map_err(|_| {
            ApiError::BadRequest("before must be a next_cursor from an earlier page".into())
        })?,
    };
    let limit = page_limit(query, LIMIT)?;
    let (conversations, more) = state.store.conversations(me, before, limit).await?;
    let next = match (more, conversations.last()) {
        (true, Some(last)) => last.activity.to_string(),
        _ => String::new(),
    };
    Ok(Json(
        json!({"conversations": conversations, "next_cursor": next}),
    ))
}
