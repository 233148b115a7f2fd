//! `/api/groups`: create, read, delete groups and manage members. Every change of
//! membership is announced on the bus so every node updates its local routing at once.
//! Editing a group, roles and ownership are in group_admin.rs.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::GroupPath;
use super::{ApiError, AuthUser, Body, ErrorBody, PathOf, user_id};
use crate::bus::Topic;
use crate::bus::envelope::{Control, Envelope};
use crate::ids::{GroupId, UserId, parse_group_id};
use crate::state::AppState;
use crate::store::{Group, Joined, NewGroup, Role};

/// Most initial members of a new group.
pub const MAX_INITIAL_MEMBERS: usize = 10_000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(show, delete))
        .routes(routes!(members, add_member))
        .routes(routes!(remove_member))
        .routes(routes!(leave))
        .routes(routes!(mine))
}

/// A group to create; only `name` is required.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Team", "description": "our team", "members": [8, 9], "id": "team-1"}))]
struct CreateGroup {
    /// The group's id; a new UUID when absent.
    #[schema(pattern = r"^[A-Za-z0-9_.:-]{1,64}$")]
    id: Option<String>,
    /// 1 to 255 bytes, trimmed.
    #[schema(min_length = 1, max_length = 255)]
    name: String,
    /// At most 4096 bytes.
    #[serde(default)]
    #[schema(max_length = 4096)]
    description: String,
    /// At most 1024 bytes (a URL, say).
    #[serde(default)]
    #[schema(max_length = 1024)]
    icon: String,
    /// Members besides the creator (who becomes the owner): at most 10,000 user ids.
    #[serde(default)]
    #[schema(max_items = 10_000)]
    members: Vec<i64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AddMember {
    /// The user to add, a positive integer.
    #[schema(minimum = 1)]
    user_id: i64,
}

/// The members of a group: `members` (ids, ascending, as before roles existed) and each
/// one's role.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"group_id": "team-1", "members": [7, 8, 9], "roles": {"7": "owner", "8": "admin", "9": "member"}}))]
pub(super) struct MemberList {
    group_id: String,
    /// Their user ids, ascending.
    members: Vec<i64>,
    /// Each member's role (`owner`, `admin`, `member`), by user id.
    roles: std::collections::BTreeMap<String, Role>,
}

/// A member just added.
#[derive(Serialize, ToSchema)]
struct Membership {
    group_id: String,
    user_id: i64,
}

/// The caller's groups.
#[derive(Serialize, ToSchema)]
struct GroupList {
    groups: Vec<Group>,
}

#[utoipa::path(
    post,
    path = "/api/groups",
    tag = "groups",
    summary = "Create a group; the caller becomes its owner",
    security(("bearer" = [])),
    request_body = CreateGroup,
    responses(
        (status = 201, description = "created", body = Group),
        (status = 400, description = "a bad field, named", body = ErrorBody),
        (status = 409, description = "a group with that id exists, or more members than chat.max_group_members", body = ErrorBody),
    ),
)]
async fn create(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Body(req): Body<CreateGroup>,
) -> Result<(StatusCode, Json<Group>), ApiError> {
    let id = match req.id.as_deref() {
        Some(id) => parse_group_id(id).map_err(ApiError::BadRequest)?,
        None => GroupId::from(uuid::Uuid::now_v7().to_string()),
    };
    let name = valid_name(&req.name)?;
    valid_details(Some(&req.description), Some(&req.icon))?;
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
    let mut counted: Vec<UserId> = members.iter().copied().chain([me]).collect();
    counted.sort_unstable();
    counted.dedup();
    let max = state.settings.chat.max_group_members;
    if counted.len() as u64 > max {
        return Err(too_many(max));
    }
    let mut group = state
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
    group.my_role = Some(Role::Owner);
    Ok((StatusCode::CREATED, Json(group)))
}

#[utoipa::path(
    get,
    path = "/api/groups/{id}",
    tag = "groups",
    summary = "A group, for its members",
    security(("bearer" = [])),
    params(GroupPath),
    responses(
        (status = 200, description = "the group", body = Group),
        (status = 400, description = "a bad group id", body = ErrorBody),
        (status = 403, description = "not a member", body = ErrorBody),
        (status = 404, description = "no such group", body = ErrorBody),
    ),
)]
async fn show(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    PathOf(id): PathOf<String>,
) -> Result<Json<Group>, ApiError> {
    let role = require(&state, &id, me, Role::Member).await?;
    let mut group = state
        .store
        .group(&id)
        .await?
        .ok_or_else(|| no_such_group(&id))?;
    group.my_role = Some(role);
    Ok(Json(group))
}

#[utoipa::path(
    delete,
    path = "/api/groups/{id}",
    tag = "groups",
    summary = "Delete a group and its messages (owner only)",
    security(("bearer" = [])),
    params(GroupPath),
    responses(
        (status = 204, description = "deleted"),
        (status = 400, description = "a bad group id", body = ErrorBody),
        (status = 403, description = "not the owner", body = ErrorBody),
        (status = 404, description = "no such group", body = ErrorBody),
    ),
)]
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

#[utoipa::path(
    get,
    path = "/api/groups/{id}/members",
    tag = "groups",
    summary = "The members of a group, for its members",
    security(("bearer" = [])),
    params(GroupPath),
    responses(
        (status = 200, description = "the members", body = MemberList),
        (status = 400, description = "a bad group id", body = ErrorBody),
        (status = 403, description = "not a member", body = ErrorBody),
        (status = 404, description = "no such group", body = ErrorBody),
    ),
)]
async fn members(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    PathOf(id): PathOf<String>,
) -> Result<Json<MemberList>, ApiError> {
    require(&state, &id, me, Role::Member).await?;
    let listed = state.store.member_roles(&id).await?;
    let members = listed.iter().map(|(user, _)| *user).collect();
    let roles = listed
        .into_iter()
        .map(|(user, role)| (user.to_string(), role))
        .collect();
    Ok(Json(MemberList {
        group_id: id,
        members,
        roles,
    }))
}

#[utoipa::path(
    post,
    path = "/api/groups/{id}/members",
    tag = "groups",
    summary = "Add a member (owner or admins)",
    security(("bearer" = [])),
    params(GroupPath),
    request_body = AddMember,
    responses(
        (status = 201, description = "added", body = Membership),
        (status = 400, description = "a bad group id or user id", body = ErrorBody),
        (status = 403, description = "not the owner or an admin", body = ErrorBody),
        (status = 404, description = "no such group", body = ErrorBody),
        (status = 409, description = "already a member, or the group is full (chat.max_group_members)", body = ErrorBody),
    ),
)]
async fn add_member(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    PathOf(id): PathOf<String>,
    Body(req): Body<AddMember>,
) -> Result<(StatusCode, Json<Membership>), ApiError> {
    let user = user_id(req.user_id)?;
    require(&state, &id, me, Role::Admin).await?;
    let max = state.settings.chat.max_group_members;
    match state.store.add_member_within(&id, user, max).await? {
        Joined::Added => {}
        Joined::Already => {
            return Err(ApiError::Conflict(format!(
                "user {user} is already a member"
            )));
        }
        Joined::Full => return Err(too_many(max)),
        Joined::NoGroup => return Err(no_such_group(&id)),
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
        Json(Membership {
            group_id: id,
            user_id: user,
        }),
    ))
}

#[utoipa::path(
    delete,
    path = "/api/groups/{id}/members/{user_id}",
    tag = "groups",
    summary = "Remove a member (owner or admins; admins only by the owner; one's own id leaves)",
    security(("bearer" = [])),
    params(GroupPath,
        ("user_id" = i64, Path, description = "the member", minimum = 1)),
    responses(
        (status = 204, description = "removed"),
        (status = 400, description = "a bad group id or user id", body = ErrorBody),
        (status = 403, description = "not the owner or an admin (or an admin removing an admin)", body = ErrorBody),
        (status = 404, description = "no such group, or not a member", body = ErrorBody),
        (status = 409, description = "the owner cannot leave", body = ErrorBody),
    ),
)]
async fn remove_member(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    PathOf((id, user)): PathOf<(String, i64)>,
) -> Result<StatusCode, ApiError> {
    let user = user_id(user)?;
    if user == me {
        return leave(State(state), AuthUser(me), PathOf(id)).await;
    }
    let mine = require(&state, &id, me, Role::Admin).await?;
    let theirs = state.store.role(&id, user).await?.unwrap_or(Role::Outsider);
    if theirs >= Role::Admin && mine != Role::Owner {
        return Err(ApiError::Forbidden(format!(
            "only the owner of group {id} may remove an admin"
        )));
    }
    if theirs == Role::Owner {
        return Err(ApiError::Conflict(
            "the owner cannot be removed; transfer ownership first".into(),
        ));
    }
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

#[utoipa::path(
    post,
    path = "/api/groups/{id}/leave",
    tag = "groups",
    summary = "Leave a group (any member but the owner)",
    security(("bearer" = [])),
    params(GroupPath),
    responses(
        (status = 204, description = "left"),
        (status = 400, description = "a bad group id", body = ErrorBody),
        (status = 403, description = "not a member", body = ErrorBody),
        (status = 404, description = "no such group", body = ErrorBody),
        (status = 409, description = "the owner cannot leave: delete the group instead", body = ErrorBody),
    ),
)]
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

#[utoipa::path(
    get,
    path = "/api/me/groups",
    tag = "groups",
    summary = "The caller's groups",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the groups", body = GroupList),
    ),
)]
async fn mine(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
) -> Result<Json<GroupList>, ApiError> {
    let groups = state.store.user_groups(me).await?;
    Ok(Json(GroupList { groups }))
}

/// Checks `user` holds at least `needed` in group `id`: 404 if there is no such group,
/// 403 otherwise. Returns the role held.
pub(super) async fn require(
    state: &AppState,
    id: &str,
    user: UserId,
    needed: Role,
) -> Result<Role, ApiError> {
    parse_group_id(id).map_err(ApiError::BadRequest)?;
    match state.store.role(id, user).await? {
        None => Err(no_such_group(id)),
        Some(Role::Outsider) => Err(ApiError::Forbidden(format!(
            "you are not a member of group {id}"
        ))),
        Some(role) if role < needed && needed == Role::Owner => Err(ApiError::Forbidden(format!(
            "only the owner of group {id} may do that"
        ))),
        Some(role) if role < needed => Err(ApiError::Forbidden(format!(
            "only the owner or an admin of group {id} may do that"
        ))),
        Some(role) => Ok(role),
    }
}

pub(super) fn no_such_group(id: &str) -> ApiError {
    ApiError::NotFound(format!("no such group {id}"))
}

fn too_many(max: u64) -> ApiError {
    ApiError::Conflict(format!(
        "a group may have at most {max} members (chat.max_group_members)"
    ))
}

/// A group name as given: trimmed, 1 to 255 bytes.
pub(super) fn valid_name(name: &str) -> Result<&str, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 255 {
        return Err(ApiError::BadRequest("name must be 1 to 255 bytes".into()));
    }
    Ok(name)
}

/// A description of at most 4096 bytes and an icon of at most 1024, where given.
pub(super) fn valid_details(description: Option<&str>, icon: Option<&str>) -> Result<(), ApiError> {
    if description.is_some_and(|d| d.len() > 4096) {
        return Err(ApiError::BadRequest(
            "description must be at most 4096 bytes".into(),
        ));
    }
    if icon.is_some_and(|i| i.len() > 1024) {
        return Err(ApiError::BadRequest(
            "icon must be at most 1024 bytes".into(),
        ));
    }
    Ok(())
}

/// Pushes `frame` to the online devices of every member of `group`, on every node, through
/// the group's topic (live only: the REST answer is the record, so a failed publish is
/// logged and not retried).
pub(super) async fn tell_members(state: &AppState, group: &str, frame: &str) {
    let topic = Topic::Group(GroupId::from(group));
    if let Err(e) = state
        .bus
        .publish(&topic, Envelope::deliver(None, frame))
        .await
    {
        tracing::warn!(error = %e, group, "group update not pushed live");
    }
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
