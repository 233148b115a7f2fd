//! The web app (`web/` in the repository, embedded in the binary): `/` is the page,
//! `/web/{asset}` its script, styles and the JavaScript client. On unless
//! `server.web_ui = false`.

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, HeaderMap, HeaderValue,
    IF_NONE_MATCH, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::LazyLock;

use super::ApiError;
use crate::state::AppState;

/// The page may load and run only its own files, talk only to its own origin (REST) and
/// WebSockets, and never be framed: no inline script or style, no eval, no plugins.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self' ws: wss:; font-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// One embedded file: its name under `/web/`, its media type and its bytes.
struct Asset {
    name: &'static str,
    media_type: &'static str,
    bytes: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        media_type: "text/html; charset=utf-8",
        bytes: include_bytes!("../../web/index.html"),
    },
    Asset {
        name: "app.js",
        media_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../web/app.js"),
    },
    Asset {
        name: "app.css",
        media_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../web/app.css"),
    },
    Asset {
        name: "chat-client.js",
        media_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../web/chat-client.js"),
    },
    Asset {
        name: "chat-client.d.ts",
        media_type: "text/plain; charset=utf-8",
        bytes: include_bytes!("../../web/chat-client.d.ts"),
    },
    Asset {
        name: "icon.svg",
        media_type: "image/svg+xml",
        bytes: include_bytes!("../../web/icon.svg"),
    },
];

/// Each asset's entity tag: a hash of its bytes, so a browser revalidates (`no-cache`) and
/// gets a 304 until a new binary changes the file.
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| {
            let tag = format!("\"{:016x}\"", fnv1a(asset.bytes));
            HeaderValue::from_str(&tag).expect("hex is a valid header value")
        })
        .collect()
});

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/",
            get(async |headers: HeaderMap| serve("index.html", &headers)),
        )
        .route(
            "/web/{asset}",
            get(async |Path(asset): Path<String>, headers: HeaderMap| serve(&asset, &headers)),
        )
}

/// The asset named `name` (304 when the browser holds it already), or 404.
fn serve(name: &str, request: &HeaderMap) -> Response {
    let Some(index) = ASSETS.iter().position(|asset| asset.name == name) else {
        return ApiError::NotFound(format!("no such file of the web app: {name}")).into_response();
    };
    let asset = &ASSETS[index];
    let etag = ETAGS[index].clone();
    let fresh = request
        .get(IF_NONE_MATCH)
        .is_some_and(|held| held.as_bytes() == etag.as_bytes());
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(CONTENT_TYPE, asset.media_type)], asset.bytes).into_response()
    };
    let headers = response.headers_mut();
    headers.insert(ETAG, etag);
    // Revalidate on every load: the names carry no version, and a new binary must take
    // effect at the next reload.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE),
    );
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// 64-bit FNV-1a: a stable, dependency-free fingerprint (not a security measure).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}
