//! Group administration: editing a group (`PATCH /api/groups/{id}`), member roles
//! (`PUT /api/groups/{id}/members/{user_id}`) and ownership transfer
//! (`POST /api/groups/{id}/owner`). Each change is pushed live to the members' devices as a
//! 2800 through the group's topic.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::groups::{no_such_group, require, tell_members, valid_details, valid_name};
use super::{ApiError, AuthUser, Body, PathOf, user_id};
use crate::ids::UserId;
use crate::protocol::server;
use crate::state::AppState;
use crate::store::{Group, GroupPatch, Role, Transfer};

/// `PATCH /api/groups/{id}`: the fields to change; at least one.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UpdateGroup {
    name: Option<String>,
    description: Option<String>,
    icon: Option<String>,
}

/// `PUT /api/groups/{id}/members/{user_id}`: the member's new role.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SetRole {
    role: String,
}

/// The answer to a role change.
#[derive(Serialize)]
pub(super) struct RoleSet {
    group_id: String,
    user_id: UserId,
    role: Role,
}

/// `POST /api/groups/{id}/owner`: the member who becomes the owner.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewOwner {
    user_id: i64,
}

/// Changes a group's name, description or icon: owner or admins.
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
