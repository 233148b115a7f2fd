//! `POST /api/dev/token`: mints a token for any user, only in dev mode (loopback only).

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

use super::{ApiError, Body, user_id};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/dev/token", post(mint))
}

#[derive(Deserialize)]
struct MintRequest {
    user_id: i64,
    /// Lifetime, humantime (`24h`, `30m`). Default 24h.
    ttl: Option<String>,
}

async fn mint(
    State(state): State<AppState>,
    Body(req): Body<MintRequest>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(
        json!({"token": token, "user_id": user, "expires_in": ttl.as_secs()}),
    ))
}
