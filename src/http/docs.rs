//! `GET /api/docs`: a reference page of the REST API, embedded in the binary (no CDN). Its
//! script fetches `/api/openapi.json` and renders every operation with its parameters, body,
//! answers and schemas. A strict Content-Security-Policy: nothing but this page's own
//! inline script and style (allowed by hash) and requests to this origin.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

const TEMPLATE: &str = include_str!("docs/page.html");
const SCRIPT: &str = include_str!("docs/page.js");
const STYLE: &str = include_str!("docs/page.css");

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(page))
}

/// The page, and the policy that lets exactly its script and style run.
struct Page {
    html: String,
    policy: String,
}

static PAGE: LazyLock<Page> = LazyLock::new(|| Page {
    html: TEMPLATE
        .replace("/*STYLE*/", STYLE)
        .replace("/*SCRIPT*/", SCRIPT),
    policy: format!(
        "default-src 'none'; script-src '{}'; style-src '{}'; connect-src 'self'; \
         img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        hash(SCRIPT),
        hash(STYLE)
    ),
});

/// The CSP source of an inline element: `sha256-<base64 of its SHA-256>`.
fn hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

#[utoipa::path(
    get,
    path = "/api/docs",
    tag = "docs",
    summary = "A browsable reference of this API",
    responses((status = 200, description = "the page", content_type = "text/html", body = String)),
)]
async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, PAGE.policy.as_str()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE.html.as_str(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_exactly_the_inline_script_and_style() {
        assert!(PAGE.html.contains(SCRIPT) && PAGE.html.contains(STYLE));
        assert_eq!(PAGE.html.matches("<script").count(), 1, "one script");
        assert!(!PAGE.html.contains("/*SCRIPT*/"));
        assert!(
            PAGE.policy
                .contains(&format!("script-src '{}'", hash(SCRIPT)))
        );
        assert!(!PAGE.policy.contains("unsafe"));
        // The known vector of the hash: SHA-256 of "abc".
        assert_eq!(
            hash("abc"),
            "sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
    }
}
