//! `POST /api/dev/token`: mints a token for any user, only in dev mode (loopback only).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, Body, ErrorBody, user_id};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(mint))
}

#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"user_id": 1, "ttl": "24h"}))]
struct MintRequest {
    /// The user, a positive integer.
    #[schema(minimum = 1)]
    user_id: i64,
    /// Lifetime, humantime (`24h`, `30m`). Default 24h.
    ttl: Option<String>,
}

/// A token minted.
#[derive(Serialize, ToSchema)]
struct Minted {
    /// The JWT, for `Authorization: Bearer` and the WebSocket handshake.
    token: String,
    user_id: i64,
    /// Its lifetime, seconds.
    expires_in: u64,
}

#[utoipa::path(
    post,
    path = "/api/dev/token",
    tag = "dev",
    summary = "Mint a token for any user (dev mode only)",
    description = "Only with `auth.dev_tokens` (on by default when the node binds a loopback \
        address, refused on any other).",
    request_body = MintRequest,
    responses(
        (status = 200, description = "a token", body = Minted),
        (status = 400, description = "a bad user id, `ttl` or body, named", body = ErrorBody),
        (status = 404, description = "dev tokens are off", body = ErrorBody),
    ),
)]
async fn mint(
    State(state): State<AppState>,
    Body(req): Body<MintRequest>,
) -> Result<Json<Minted>, ApiError> {
    if !state.dev_tokens {
        return Err(ApiError::NotFound("dev tokens are off".into()));
    }
    let user = user_id(req.user_id)?;
    let ttl = match req.ttl.as_deref() {
        None => Duration::from_secs(24 * 3600),
        Some(t) => {
            humantime::parse_duration(t).map_err(|e| ApiError::BadRequest(format!("ttl: {e}")))?
        }
    };
    let token = state.auth.mint(user, ttl);
    Ok(Json(Minted {
        token,
        user_id: user,
        expires_in: ttl.as_secs(),
    }))
}
