//! `GET /api/groups/{id}/messages/{message_id}/reads`: who of a group has read one of its
//! messages ("read by"), paged by user id, with the counts. Members only.

use axum::Json;
use axum::extract::State;
use axum::http::Uri;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::auth::query_param;
use super::{ApiError, AuthUser, ErrorBody, PathOf, page_limit};
use crate::ids::parse_group_id;
use crate::state::AppState;
use crate::store::{GroupReads, Role};

/// Default and largest page.
const LIMIT: (u32, u32) = (100, 1000);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(reads))
}

#[utoipa::path(
    get,
    path = "/api/groups/{id}/messages/{message_id}/reads",
    tag = "receipts",
    summary = "Who of a group has read one of its messages (members only)",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "the group's id", pattern = r"^[A-Za-z0-9_.:-]{1,64}$", max_length = 64),
        ("message_id" = uuid::Uuid, Path, description = "a message of the group"),
        ("after" = Option<i64>, Query, description = "the `next_after` of the previous page", minimum = 0),
        ("limit" = Option<u32>, Query, description = "readers per page, 1 to 1000 (default 100)", minimum = 1, maximum = 1000),
    ),
    responses(
        (status = 200, description = "one page of readers and the counts", body = GroupReads),
        (status = 400, description = "a bad group id, message id, `after` or `limit`, named", body = ErrorBody),
        (status = 403, description = "not a member", body = ErrorBody),
        (status = 404, description = "no such group, or no such message in it", body = ErrorBody),
    ),
)]
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
