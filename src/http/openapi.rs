//! The OpenAPI 3.1 document of the REST API, generated from the handlers themselves and
//! served at `GET /api/openapi.json` (no token needed; the reference page `/api/docs` reads it).
//!
//! Each resource module's `router()` is a `utoipa_axum` `OpenApiRouter`: a handler is
//! registered with `.routes(routes!(handler))`, which takes its path and method from the
//! handler's `#[utoipa::path]` attribute, so a route and its description cannot part. To add
//! an endpoint:
//!
//! 1. Annotate the handler, next to it:
//!    ```ignore
//!    #[utoipa::path(patch, path = "/api/groups/{id}", tag = "groups",
//!        summary = "Change a group's name, description or icon",
//!        security(("bearer" = [])),
//!        params(GroupPath),
//!        request_body = GroupChange,
//!        responses((status = 200, body = Group), (status = 400, body = ErrorBody),
//!                   (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
//!    ```
//!    `derive(utoipa::ToSchema)` on its request and response types (a `serde_json::json!`
//!    body gets a small struct instead, so the schema is what is really sent).
//! 2. Register it with `.routes(routes!(handler))` in the module's `router()`; handlers of
//!    the same path share one `routes!(a, b)`. Never `.route("/api/…")`: tests/it/openapi.rs
//!    fails on any `/api` route that bypasses the document.
//!
//! Every operation with `security(("bearer" = []))` also gets 401 (no or bad token) and 503
//! (storage or bus unavailable), and every operation 431 (a header or the request target
//! too long): [`finish`] adds them, so handlers list only their own answers.

use axum::http::header;
use axum::response::IntoResponse;
use axum::{Extension, Router};
use bytes::Bytes;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, OpenApi as Document, Ref, RefOr};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ErrorBody;

/// A group's `{id}` in a path, described once: `params(GroupPath)` (with more tuples after
/// it for the path's other parameters).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code, reason = "only its description is used, it is never built")]
pub struct GroupPath {
    /// the group's id
    #[param(pattern = r"^[A-Za-z0-9_.:-]{1,64}$", max_length = 64)]
    id: String,
}
use crate::state::AppState;

/// The document's fixed part; the paths come from the routers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "chat-gateway REST API",
        description = "Groups, conversations, read receipts, follows, blocks, mutes, presence, \
            dev tokens and health of a chat-gateway node. Messages travel over the WebSocket \
            (`GET /ws`), described in docs/protocol.md. Every failure is a JSON \
            `{\"error\", \"code\"}` (`ErrorBody`).",
        license(name = "MIT", identifier = "MIT"),
    ),
    components(schemas(ErrorBody)),
    modifiers(&Bearer),
    tags(
        (name = "groups", description = "Groups and their members"),
        (name = "conversations", description = "The conversation list"),
        (name = "receipts", description = "Who has read a group message"),
        (name = "social", description = "Follows, blocks and presence"),
        (name = "mutes", description = "Conversations never pushed"),
        (name = "dev", description = "Dev-mode tokens"),
        (name = "health", description = "Liveness, readiness and metrics"),
        (name = "docs", description = "This document and its reference page"),
    )
)]
struct Fixed;

/// The `bearer` security scheme: the same JWT as the WebSocket's.
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, doc: &mut Document) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some(
                "`Authorization: Bearer <JWT>` (or `?token=<JWT>` in the query), the token of \
                 the WebSocket handshake",
            ))
            .build();
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// An empty router that starts the document with its fixed part.
pub fn start() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(Fixed::openapi()).routes(routes!(document))
}

/// The document of the routes collected, with the answers every operation shares.
pub fn finish(mut doc: Document) -> Document {
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
            let answers = &mut operation.responses.responses;
            let mut add = |status: &str, text: &str| {
                answers
                    .entry(status.to_string())
                    .or_insert_with(|| error_response(text));
            };
            if secured {
                add(
                    "401",
                    "no token, or a token refused (WWW-Authenticate: Bearer)",
                );
                add("503", "storage or bus unavailable: retry later");
            }
            add(
                "431",
                "a header line or the request target is longer than half of server.max_header_bytes",
            );
        }
    }
    doc
}

fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            Content::new(Some(Ref::from_schema_name("ErrorBody"))),
        )
        .into()
}

/// The document as served, serialized once per router.
#[derive(Clone)]
struct Served(Bytes);

/// `router` (the routes of `doc`) with `doc` for `GET /api/openapi.json` to answer.
pub fn serve(router: Router<AppState>, doc: &Document) -> Router<AppState> {
    let json = serde_json::to_vec(doc).expect("an OpenAPI document serializes");
    router.layer(Extension(Served(Bytes::from(json))))
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "docs",
    summary = "This OpenAPI document",
    responses((status = 200, description = "the OpenAPI 3.1 document", content_type = "application/json", body = Object)),
)]
async fn document(Extension(doc): Extension<Served>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], doc.0)
}
