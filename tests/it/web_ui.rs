//! The web app served by the gateway (src/http/web.rs): the page at `/` with its security
//! headers, each asset with its media type and revalidation, and `server.web_ui = false`.

use crate::support::{Backend, TestApp};

/// Status, headers and body of a GET, with `If-None-Match` when given.
async fn fetch(
    app: &TestApp,
    path: &str,
    etag: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut request = reqwest::Client::new().get(app.url(path));
    if let Some(etag) = etag {
        request = request.header("if-none-match", etag);
    }
    let res = request.send().await.expect("a request");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, headers, res.text().await.unwrap_or_default())
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header in {headers:?}"))
}

#[tokio::test]
async fn the_page_is_served_at_the_root_with_a_strict_policy() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (status, headers, body) = fetch(&app, "/", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "content-type"), "text/html; charset=utf-8");
    assert!(body.contains("<title>chat-gateway</title>"), "{body}");
    assert!(body.contains(r#"src="/web/app.js""#), "{body}");
    let policy = header(&headers, "content-security-policy");
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "connect-src 'self' ws: wss:",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ] {
        assert!(
            policy.contains(directive),
            "{directive} missing from {policy}"
        );
    }
    assert!(!policy.contains("unsafe"), "{policy}");
    assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
    assert_eq!(header(&headers, "cache-control"), "no-cache");
}

#[tokio::test]
async fn assets_have_their_media_types_and_revalidate() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for (path, media_type, needle) in [
        (
            "/web/app.js",
            "text/javascript; charset=utf-8",
            "chat-client.js",
        ),
        (
            "/web/chat-client.js",
            "text/javascript; charset=utf-8",
            "export class ChatClient",
        ),
        ("/web/app.css", "text/css; charset=utf-8", ".messages"),
        (
            "/web/chat-client.d.ts",
            "text/plain; charset=utf-8",
            "declare class ChatClient",
        ),
        ("/web/icon.svg", "image/svg+xml", "<svg"),
    ] {
        let (status, headers, body) = fetch(&app, path, None).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(header(&headers, "content-type"), media_type, "{path}");
        assert_eq!(
            header(&headers, "x-content-type-options"),
            "nosniff",
            "{path}"
        );
        assert!(body.contains(needle), "{path} lacks {needle}");
        // The browser's copy is revalidated: the same tag is a 304 without a body.
        let etag = header(&headers, "etag").to_owned();
        let (status, headers, body) = fetch(&app, path, Some(&etag)).await;
        assert_eq!(status, 304, "{path}");
        assert_eq!(header(&headers, "etag"), etag);
        assert!(body.is_empty(), "{path}: {body}");
        let (status, _, _) = fetch(&app, path, Some("\"another\"")).await;
        assert_eq!(status, 200, "{path}");
    }
    let (status, headers, body) = fetch(&app, "/web/secrets.toml", None).await;
    assert_eq!(status, 404, "{body}");
    assert!(header(&headers, "content-type").starts_with("application/json"));
    assert!(
        body.contains("no such file of the web app: secrets.toml"),
        "{body}"
    );
    let (status, _, _) = fetch(&app, "/web/..%2FCargo.toml", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn web_ui_off_leaves_the_root_a_404() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| s.server.web_ui = false).await;
    for path in ["/", "/web/app.js", "/web/chat-client.js"] {
        let (status, _, body) = fetch(&app, path, None).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(body.contains("no such endpoint"), "{path}: {body}");
    }
    // The API is unaffected.
    assert_eq!(app.get("/api/me/groups", 1).await.0, 200);
}
