//! Group administration: editing a group (`PATCH /api/groups/{id}`), member roles
//! (`PUT /api/groups/{id}/members/{user_id}`) and ownership transfer
//! (`POST /api/groups/{id}/owner`). Each change is pushed live to the members' devices as a
//! 2800 through the group's topic.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::groups::{no_such_group, require, tell_members, valid_details, valid_name};
use super::openapi::GroupPath;
use super::{ApiError, AuthUser, Body, ErrorBody, PathOf, user_id};
use crate::ids::UserId;
use crate::protocol::server;
use crate::state::AppState;
use crate::store::{Group, GroupPatch, Role, Transfer};

/// The routes (merged with groups.rs's: the same paths, other methods).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(update))
        .routes(routes!(set_role))
        .routes(routes!(transfer))
}

/// `PATCH /api/groups/{id}`: the fields to change; at least one.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Team (new)", "icon": "https://example.com/t.png"}))]
pub(crate) struct UpdateGroup {
    /// 1 to 255 bytes, trimmed.
    #[schema(min_length = 1, max_length = 255)]
    name: Option<String>,
    /// At most 4096 bytes.
    #[schema(max_length = 4096)]
    description: Option<String>,
    /// At most 1024 bytes.
    #[schema(max_length = 1024)]
    icon: Option<String>,
}

/// `PUT /api/groups/{id}/members/{user_id}`: the member's new role.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"role": "admin"}))]
pub(crate) struct SetRole {
    /// `admin` or `member` (ownership moves with `POST /api/groups/{id}/owner`).
    #[schema(example = "admin")]
    role: String,
}

/// The answer to a role change.
#[derive(Serialize, ToSchema)]
pub(crate) struct RoleSet {
    group_id: String,
    #[schema(value_type = i64)]
    user_id: UserId,
    role: Role,
}

/// `POST /api/groups/{id}/owner`: the member who becomes the owner.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"user_id": 8}))]
pub(crate) struct NewOwner {
    user_id: i64,
}

/// Changes a group's name, description or icon: owner or admins.
#[utoipa::path(
    patch,
    path = "/api/groups/{id}",
    tag = "groups",
    summary = "Rename a group, or change its description or icon (owner or admins)",
    security(("bearer" = [])),
    params(GroupPath),
    request_body = UpdateGroup,
    responses(
        (status = 200, description = "the group as changed", body = Group),
        (status = 400, description = "no field, or a bad one, named", body = ErrorBody),
        (status = 403, description = "not the owner or an admin", body = ErrorBody),
        (status = 404, description = "no such group", body = ErrorBody),
    ),
)]
pub(super) async fn update(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    PathOf(id): PathOf<String>,
    Body(req): Body<UpdateGroup>,
) -> Result<Json<Group>, ApiError> {
    if req.name.is_none() && req.description.is_none() && req.icon.is_none() {
        return Err(ApiError::BadRequest(
            "name, description or icon is required".into(),
        ));
    }
    let name = req.name.as_deref().map(valid_name).transpose()?;
    valid_details(req.description.as_deref(), req.icon.as_deref())?;
    let role = require(&state, &id, me, Role::Admin).await?;
    let patch = GroupPatch {
        name: name.map(str::to_string),
        description: req.description,
        icon: req.icon,
    };
    let mut group = state
        .store
        .update_group(&id, &patch)
        .await?
        .ok_or_else(|| no_such_group(&id))?;
    let frame = server::group_updated(&id, &group.name, &group.description, &group.icon);
    tell_members(&state, &id, &frame).await;
    group.my_role = Some(role);
    Ok(Json(group))
}

/// Makes a member an admin or a plain member: the owner only.
#[utoipa::path(
    put,
    path = "/api/groups/{id}/members/{user_id}",
    tag = "groups",
    summary = "Make a member an admin or a plain member (owner only)",
    security(("bearer" = [])),
    params(GroupPath,
        ("user_id" = i64, Path, description = "the member", minimum = 1)),
    request_body = SetRole,
    responses(
        (status = 200, description = "the role set", body = RoleSet),
        (status = 400, description = "a bad role, group id or user id", body = ErrorBody),
        (status = 403, description = "not the owner", body = ErrorBody),
        (status = 404, description = "no such group, or not a member", body = ErrorBody),
        (status = 409, description = "the owner's own role", body = ErrorBody),
    ),
)]
pub(super) async fn set_role(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    PathOf((id, user)): PathOf<(String, i64)>,
    Body(req): Body<SetRole>,
) -> Result<Json<RoleSet>, ApiError> {
    let user = user_id(user)?;
    let role = match req.role.as_str() {
        "admin" => Role::Admin,
        "member" => Role::Member,
        "owner" => {
            return Err(ApiError::BadRequest(
                "role must be admin or member: transfer ownership with POST /api/groups/{id}/owner"
                    .into(),
            ));
        }
        _ => return Err(ApiError::BadRequest("role must be admin or member".into())),
    };
    require(&state, &id, me, Role::Owner).await?;
    if user == me {
        return Err(ApiError::Conflict(
            "the owner's role changes only by transferring ownership".into(),
        ));
    }
    if !state
        .store
        .set_admin(&id, user, role == Role::Admin)
        .await?
    {
        return Err(ApiError::NotFound(format!("user {user} is not a member")));
    }
    let name = if role == Role::Admin {
        "admin"
    } else {
        "member"
    };
    tell_members(&state, &id, &server::role_changed(&id, user, name)).await;
    Ok(Json(RoleSet {
        group_id: id,
        user_id: user,
        role,
    }))
}

/// Hands the group to another member: the owner only; the old owner becomes an admin.
#[utoipa::path(
    post,
    path = "/api/groups/{id}/owner",
    tag = "groups",
    summary = "Hand the group to another member (owner only; the old owner becomes an admin)",
    security(("bearer" = [])),
    params(GroupPath),
    request_body = NewOwner,
    responses(
        (status = 200, description = "the group, with its new owner", body = Group),
        (status = 400, description = "a bad group id or user id", body = ErrorBody),
        (status = 403, description = "not the owner", body = ErrorBody),
        (status = 404, description = "no such group, or not a member", body = ErrorBody),
        (status = 409, description = "the caller owns it already", body = ErrorBody),
    ),
)]
pub(super) async fn transfer(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    PathOf(id): PathOf<String>,
    Body(req): Body<NewOwner>,
) -> Result<Json<Group>, ApiError> {
    let to = user_id(req.user_id)?;
    require(&state, &id, me, Role::Owner).await?;
    if to == me {
        return Err(ApiError::Conflict(format!("you own group {id} already")));
    }
    match state.store.transfer_owner(&id, me, to).await? {
        Transfer::Done => {}
        Transfer::NotMember => {
            return Err(ApiError::NotFound(format!(
                "user {to} is not a member: only a member can become the owner"
            )));
        }
        Transfer::NoGroup => return Err(no_such_group(&id)),
        Transfer::NotOwner => {
            return Err(ApiError::Forbidden(format!(
                "only the owner of group {id} may do that"
            )));
        }
    }
    tell_members(&state, &id, &server::role_changed(&id, to, "owner")).await;
    tell_members(&state, &id, &server::role_changed(&id, me, "admin")).await;
    let mut group = state
        .store
        .group(&id)
        .await?
        .ok_or_else(|| no_such_group(&id))?;
    group.my_role = Some(Role::Admin);
    Ok(Json(group))
}
