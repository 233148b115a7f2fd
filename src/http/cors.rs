//! CORS for the REST API: which web pages may call it from a browser, by the same
//! `server.allowed_origins` as the WebSocket's origin check (upgrade.rs).
//!
//! With the list set, only those origins get `Access-Control-Allow-Origin` (their own); any
//! other gets no CORS headers, so its browser keeps the answer from it. With the list empty,
//! as the WebSocket then accepts any origin, any page may call the API (each gets its own
//! origin back): it still needs a token, which travels in the `Authorization` header, never
//! in a cookie, so a page cannot borrow a signed-in user's. The one endpoint that needs no
//! token, `POST /api/dev/token`, is left out then: no foreign page in a developer's browser
//! may mint tokens from the dev node on their machine (the gateway's own web app is
//! same-origin and needs no CORS). Credentials mode is never allowed.

use std::time::Duration;

use axum::http::{HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The endpoint that mints tokens without one (dev mode).
const DEV_TOKEN: &str = "/api/dev/token";

/// How long a browser may cache a preflight's answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// The layer for `allowed` (`server.allowed_origins`).
pub fn layer(allowed: &[String]) -> CorsLayer {
    let origins = if allowed.is_empty() {
        AllowOrigin::predicate(|_, request| request.uri.path() != DEV_TOKEN)
    } else {
        // An entry that is no header value can match no Origin (as in the WebSocket check).
        AllowOrigin::list(allowed.iter().filter_map(|a| HeaderValue::from_str(a).ok()))
    };
    CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .expose_headers([header::RETRY_AFTER, header::WWW_AUTHENTICATE])
        .max_age(PREFLIGHT_MAX_AGE)
}
