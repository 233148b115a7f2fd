//! CORS of the REST API by `server.allowed_origins`, the WebSocket's setting: with the list
//! set, only its origins get `Access-Control-Allow-Origin`; with it empty, any origin (its own
//! echoed), except for the dev-token endpoint.

use reqwest::Method;
use reqwest::header::HeaderMap;

use crate::support::{Backend, TestApp};

const ALLOWED: &str = "https://chat.example";
const OTHER: &str = "https://evil.example";

/// A browser's preflight of a `method` to `path` with a bearer token and a JSON body.
async fn preflight(app: &TestApp, path: &str, origin: &str, method: &str) -> (u16, HeaderMap) {
    let res = reqwest::Client::new()
        .request(Method::OPTIONS, app.url(path))
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .expect("a preflight");
    (res.status().as_u16(), res.headers().clone())
}

/// `GET path` as user 1 from a page of `origin`.
async fn get_from(app: &TestApp, path: &str, origin: &str) -> (u16, HeaderMap) {
    let res = reqwest::Client::new()
        .get(app.url(path))
        .bearer_auth(app.token(1))
        .header("origin", origin)
        .send()
        .await
        .expect("a request");
    (res.status().as_u16(), res.headers().clone())
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap())
}

fn lists(headers: &HeaderMap, name: &str, wanted: &[&str]) {
    let value = header(headers, name)
        .unwrap_or_else(|| panic!("no {name}"))
        .to_ascii_lowercase();
    for w in wanted {
        let w = w.to_ascii_lowercase();
        assert!(value.contains(&w), "{name}: {value} lacks {w}");
    }
}

#[tokio::test]
async fn only_allowed_origins_may_call_the_api() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.server.allowed_origins = vec![ALLOWED.to_string()];
    })
    .await;
    for (path, method) in [
        ("/api/groups", "POST"),
        ("/api/groups/team-1/members/3", "DELETE"),
        ("/api/follows/3", "PUT"),
        ("/api/conversations", "GET"),
    ] {
        let (status, headers) = preflight(&app, path, ALLOWED, method).await;
        assert!((200..300).contains(&status), "{path}: {status}");
        assert_eq!(
            header(&headers, "access-control-allow-origin"),
            Some(ALLOWED)
        );
        lists(&headers, "access-control-allow-methods", &[method]);
        lists(
            &headers,
            "access-control-allow-headers",
            &["authorization", "content-type"],
        );
        lists(&headers, "vary", &["origin"]);
        assert_eq!(header(&headers, "access-control-allow-credentials"), None);

        let (_, headers) = preflight(&app, path, OTHER, method).await;
        assert_eq!(
            header(&headers, "access-control-allow-origin"),
            None,
            "{path}: a refused origin gets no CORS grant"
        );
    }

    let (status, headers) = get_from(&app, "/api/follows", ALLOWED).await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "access-control-allow-origin"),
        Some(ALLOWED)
    );
    let (status, headers) = get_from(&app, "/api/follows", OTHER).await;
    assert_eq!(
        status, 200,
        "the server answers; the browser keeps it from the page"
    );
    assert_eq!(header(&headers, "access-control-allow-origin"), None);

    // The same list guards the WebSocket.
    let (status, _) = app
        .handshake(&format!("?token={}", app.token(1)), &[("origin", OTHER)])
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn with_no_list_any_origin_may_call_the_api() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (status, headers) = preflight(&app, "/api/groups", OTHER, "POST").await;
    assert!((200..300).contains(&status), "{status}");
    assert_eq!(header(&headers, "access-control-allow-origin"), Some(OTHER));
    lists(
        &headers,
        "access-control-allow-headers",
        &["authorization", "content-type"],
    );
    assert_eq!(header(&headers, "access-control-allow-credentials"), None);
    let (status, headers) = get_from(&app, "/api/me/groups", OTHER).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "access-control-allow-origin"), Some(OTHER));
    // Errors carry the grant too, so a page can read why it was refused.
    let res = reqwest::Client::new()
        .get(app.url("/api/follows"))
        .header("origin", OTHER)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(
        header(res.headers(), "access-control-allow-origin"),
        Some(OTHER)
    );
    lists(
        res.headers(),
        "access-control-expose-headers",
        &["www-authenticate"],
    );
}

#[tokio::test]
async fn with_no_list_no_foreign_page_may_mint_dev_tokens() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| s.auth.dev_tokens = Some(true)).await;
    let (status, headers) = preflight(&app, "/api/dev/token", OTHER, "POST").await;
    assert_eq!(
        header(&headers, "access-control-allow-origin"),
        None,
        "{status}"
    );
    // The page's own origin (no Origin header, or a same-origin request) still mints.
    let res = reqwest::Client::new()
        .post(app.url("/api/dev/token"))
        .json(&serde_json::json!({"user_id": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}
