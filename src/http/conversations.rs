//! `GET /api/conversations`: the user's private conversations and groups, most recent
//! activity first, each with its newest message, unread count and read positions; keyset
//! paged with `?before=<next_cursor>&limit=N`.

use axum::Json;
use axum::extract::State;
use axum::http::Uri;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::auth::query_param;
use super::{ApiError, AuthUser, ErrorBody, page_limit};
use crate::protocol::Cursor;
use crate::state::AppState;
use crate::store::Conversation;

/// Default and largest page.
const LIMIT: (u32, u32) = (20, 100);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

/// One page of the conversation list.
#[derive(Serialize, utoipa::ToSchema)]
struct ConversationPage {
    conversations: Vec<Conversation>,
    /// Pass as `before` for the next page; `""` on the last.
    next_cursor: String,
}

#[utoipa::path(
    get,
    path = "/api/conversations",
    tag = "conversations",
    summary = "The caller's conversations, most recent activity first",
    security(("bearer" = [])),
    params(
        ("before" = Option<String>, Query, description = "the `next_cursor` of the previous page; absent or empty for the first"),
        ("limit" = Option<u32>, Query, description = "entries per page, 1 to 100 (default 20)", minimum = 1, maximum = 100),
    ),
    responses(
        (status = 200, description = "one page", body = ConversationPage),
        (status = 400, description = "a bad `limit` or `before`, named", body = ErrorBody),
    ),
)]
async fn list(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    uri: Uri,
) -> Result<Json<ConversationPage>, ApiError> {
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
    Ok(Json(ConversationPage {
        conversations,
        next_cursor: next,
    }))
}
