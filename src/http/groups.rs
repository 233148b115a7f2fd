//! `/api/groups`: create, read, delete groups and manage members. Every change of
//! membership is announced on the bus so every node updates its local routing at once.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::{ApiError, AuthUser, Body, PathOf, user_id};
use crate::bus::Topic;
use crate::bus::envelope::{Control, Envelope};
use crate::ids::{GroupId, UserId, parse_group_id};
use crate::state::AppState;
use crate::store::{Group, NewGroup, Role};

/// Most initial members of a new group.
pub const MAX_INITIAL_MEMBERS: usize = 10_000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/groups", post(create))
        .route("/api/groups/{id}", get(show).delete(delete))
        .route("/api/groups/{id}/members", get(members).post(add_member))
        .route(
            "/api/groups/{id}/members/{user_id}",
            axum::routing::delete(remove_member),
        )
        .route("/api/groups/{id}/leave", post(leave))
        .route("/api/me/groups", get(mine))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateGroup {
    id: Option<String>,
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    icon: String,
    #[serde(default)]
    members: Vec<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddMember {
    user_id: i64,
}

async fn create(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Body(req): Body<CreateGroup>,
) -> Result<(StatusCode, Json<Group>), ApiError> {
    let id = match req.id.as_deref() {
        Some(id) => parse_group_id(id).map_err(ApiError::BadRequest)?,
        None => GroupId::from(uuid::Uuid::now_v7().to_string()),
    };
    let name = req.name.trim();
    if name.is_empty() || name.len() > 255 {
        return Err(ApiError::BadRequest("name must be 1 to 255 bytes".into()));
    }
    if req.description.len() > 4096 || req.icon.len() > 1024 {
        return Err(ApiError::BadRequest(
            "description must be at most 4096 bytes and icon at most 1024".into(),
        ));
    }
    if req.members.len() > MAX_INITIAL_MEMBERS {
        return Err(ApiError::BadRequest(format!(
            "at most {MAX_INITIAL_MEMBERS} initial members"
        )));
    }
    let members = req
        .members
        .iter()
        .map(|m| user_id(*m))
        .collect::<Result<Vec<UserId>, _>>()?;
    let group = state
        .store
        .create_group(NewGroup {
            id,
            name: name.to_string(),
            description: req.description,
            icon: req.icon,
            owner_id: me,
            members: members.clone(),
        })
        .await
        .map_err(|e| match e {
            crate::store::StoreError::Conflict(_) => {
                ApiError::Conflict("a group with that id already exists".into())
            }
            e => e.into(),
        })?;
    let mut everyone = members;
    everyone.push(me);
    everyone.sort_unstable();
    everyone.dedup();
    for user in everyone {
        announce(
            &state,
            Control::MemberAdded {
                group: group.id.clone(),
                user,
            },
        )
        .await;
    }
    Ok((StatusCode::CREATED, Json(group)))
}

async fn show(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    PathOf(id): PathOf<String>,
) -> Result<Json<Group>, ApiError> {
    require(&state, &id, me, Role::Member).await?;
    let group = state
        .store
        .group(&id)
        .await?
        .ok_or_else(|| no_such_group(&id))?;
    Ok(Json(group))
}

async fn delete(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    PathOf(id): PathOf<String>,
) -> Result<StatusCode, ApiError> {
    require(&state, &id, me, Role::Owner).await?;
    state.store.delete_group(&id).await?;
    announce(
        &state,
        Control::GroupDeleted {
            group: GroupId::from(id),
        },
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

async fn members(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    PathOf(id): PathOf<String>,
) -> Result<Json<Value>, ApiError> {
    require(&state, &id, me, Role::Member).await?;
    let members = state.store.members(&id).await?;
    Ok(Json(json!({"group_id": id, "members": members})))
}

async fn add_member(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    PathOf(id): PathOf<String>,
    Body(req): Body<AddMember>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let user = user_id(req.user_id)?;
    require(&state, &id, me, Role::Owner).await?;
    if !state.store.add_member(&id, user).await? {
        return Err(ApiError::Conflict(format!(
            "user {user} is already a member"
        )));
    }
    announce(
        &state,
        Control::MemberAdded {
            group: GroupId::from(id.as_str()),
            user,
        },
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(json!({"group_id": id, "user_id": user})),
    ))
}

async fn remove_member(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    PathOf((id, user)): PathOf<(String, i64)>,
) -> Result<StatusCode, ApiError> {
    let user = user_id(user)?;
    if user == me {
        return leave(State(state), AuthUser(me), PathOf(id)).await;
    }
    require(&state, &id, me, Role::Owner).await?;
    if !state.store.remove_member(&id, user).await? {
        return Err(ApiError::NotFound(format!("user {user} is not a member")));
    }
    announce(
        &state,
        Control::MemberRemoved {
            group: GroupId::from(id),
            user,
        },
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

async fn leave(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    PathOf(id): PathOf<String>,
) -> Result<StatusCode, ApiError> {
    if require(&state, &id, me, Role::Member).await? == Role::Owner {
        return Err(ApiError::Conflict(
            "the owner cannot leave the group; delete it instead".into(),
        ));
    }
    state.store.remove_member(&id, me).await?;
    announce(
        &state,
        Control::MemberRemoved {
            group: GroupId::from(id),
            user: me,
        },
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

async fn mine(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
) -> Result<Json<Value>, ApiError> {
    let groups = state.store.user_groups(me).await?;
    Ok(Json(json!({"groups": groups})))
}

/// Checks `user` holds at least `needed` in group `id`: 404 if there is no such group,
/// 403 otherwise. Returns the role held.
async fn require(state: &AppState, id: &str, user: UserId, needed: Role) -> Result<Role, ApiError> {
    parse_group_id(id).map_err(ApiError::BadRequest)?;
    match (state.store.role(id, user).await?, needed) {
        (None, _) => Err(no_such_group(id)),
        (Some(Role::Outsider), _) => Err(ApiError::Forbidden(format!(
            "you are not a member of group {id}"
        ))),
        (Some(Role::Member), Role::Owner) => Err(ApiError::Forbidden(format!(
            "only the owner of group {id} may do that"
        ))),
        (Some(role), _) => Ok(role),
    }
}

fn no_such_group(id: &str) -> ApiError {
    ApiError::NotFound(format!("no such group {id}"))
}

/// How long a membership change that could not be announced is retried.
const ANNOUNCE_RETRY: Duration = Duration::from_secs(60);
/// Announcements being retried at once, at most (beyond, they are dropped: the nodes
/// reload memberships when their bus link comes back).
const ANNOUNCE_RETRIES_MAX: usize = 1024;
static ANNOUNCE_RETRIES: AtomicUsize = AtomicUsize::new(0);

/// Tells every node of a membership change (the store has it already). A publish that
/// fails is retried with backoff for `ANNOUNCE_RETRY`: a node whose link stayed up would
/// otherwise never learn of it. A node whose link dropped reloads memberships from the
/// store when it is back (chat/memberships.rs), so a change is never lost for good.
async fn announce(state: &AppState, control: Control) {
    let payload = Envelope::control(&control);
    let Err(e) = state.bus.publish(&Topic::Control, payload.clone()).await else {
        return;
    };
    if ANNOUNCE_RETRIES.fetch_add(1, Ordering::AcqRel) >= ANNOUNCE_RETRIES_MAX {
        ANNOUNCE_RETRIES.fetch_sub(1, Ordering::AcqRel);
        tracing::warn!(error = %e, ?control, "membership change not announced");
        return;
    }
    tracing::warn!(error = %e, ?control, "membership change not announced yet: retrying");
    let state = state.clone();
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + ANNOUNCE_RETRY;
        let mut pause = Duration::from_millis(200);
        let mut sent = false;
        while !sent && tokio::time::Instant::now() < deadline && !state.shutdown.is_cancelled() {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
            sent = state
                .bus
                .publish(&Topic::Control, payload.clone())
                .await
                .is_ok();
        }
        ANNOUNCE_RETRIES.fetch_sub(1, Ordering::AcqRel);
        if !sent {
            tracing::warn!(?control, "membership change not announced: gave up");
        }
    });
}
