//! The handshake and what surrounds a connection: the 1000 frame, the Origin check, the
//! application ping, a plain GET on the WebSocket endpoint, health and metrics.

use serde_json::json;
use tokio_tungstenite::tungstenite::Error;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::Request;

use crate::on_both_backends;
use crate::support::{Backend, Client, TestApp};

const ALLOWED: &str = "https://chat.example.com";

fn with_origin(app: &TestApp, user: i64, origin: Option<&str>) -> Request<()> {
    let mut request = app.ws_url().into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", app.token(user)).parse().unwrap(),
    );
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
    }
    request
}

async fn first_frame_is_1000_with_user_id(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut request = app.ws_url().into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", app.token(12)).parse().unwrap(),
    );
    let mut client = Client::open(request, 12).await.expect("handshake");
    let hello = client.recv().await;
    assert_eq!(hello["code"], 1000, "{hello}");
    assert_eq!(hello["user_id"], 12);
    assert_eq!(hello["from"], "");
    assert!(hello["content"].is_string());
    client.expect_nothing_pending().await;
}

async fn application_ping_gets_1003(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut client = Client::connect(&app, 1).await;
    for _ in 0..3 {
        client.send(json!({"type": 7})).await;
        let pong = client.expect(1003).await;
        assert_eq!(pong["from"], "");
        assert!(pong["content"].is_string());
    }
    // Extra fields on a ping are ignored.
    client
        .send(json!({"type": 7, "content": "x", "limit": 3}))
        .await;
    client.expect(1003).await;
}

async fn wrong_origin_is_403(backend: Backend) {
    let app =
        TestApp::spawn_with(backend, |s| s.server.allowed_origins = vec![ALLOWED.into()]).await;
    match Client::open(with_origin(&app, 1, Some("https://evil.example.com")), 1).await {
        Err(Error::Http(response)) => assert_eq!(response.status(), 403),
        Err(other) => panic!("expected 403, got {other}"),
        Ok(_) => panic!("a foreign origin was accepted"),
    }
    // Near misses are foreign too: the match is exact.
    for origin in [
        "https://evil.example.com",
        "http://chat.example.com",
        "https://chat.example.com.evil.net",
        "https://chat.example.com:8443",
    ] {
        let token = format!("Bearer {}", app.token(1));
        let (status, body) = app
            .handshake("", &[("authorization", &token), ("origin", origin)])
            .await;
        assert_eq!(status, 403, "{origin}: {body}");
        assert_eq!(body["code"], 403, "{body}");
        assert!(body["error"].is_string(), "{body}");
    }
}

async fn allowed_origin_and_no_origin_pass(backend: Backend) {
    let app =
        TestApp::spawn_with(backend, |s| s.server.allowed_origins = vec![ALLOWED.into()]).await;
    let mut browser = Client::open(with_origin(&app, 1, Some(ALLOWED)), 1)
        .await
        .expect("allowed origin");
    assert_eq!(browser.expect(1000).await["user_id"], 1);
    let mut tool = Client::open(with_origin(&app, 2, None), 2)
        .await
        .expect("no origin");
    assert_eq!(tool.expect(1000).await["user_id"], 2);
    // Without a list, any origin passes.
    let open = TestApp::spawn(backend).await;
    let mut any = Client::open(with_origin(&open, 3, Some("https://anything.example")), 3)
        .await
        .expect("any origin");
    assert_eq!(any.expect(1000).await["user_id"], 3);
}

async fn plain_get_on_ws_is_refused_with_json(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = app.get("/ws", 1).await;
    assert!((400..500).contains(&status), "{status} {body}");
    assert_eq!(body["code"], status, "{body}");
    assert!(body["error"].is_string());
}

async fn health_and_metrics(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = app
        .request(reqwest::Method::GET, "/health/live", None, None)
        .await;
    assert_eq!((status, &body["status"]), (200, &json!("ok")));
    let _client = Client::connect(&app, 1).await;
    let (status, body) = app
        .request(reqwest::Method::GET, "/health/ready", None, None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["store"]["status"], "ok", "{body}");
    assert_eq!(body["bus"]["status"], "ok", "{body}");
    assert!(body["store"]["since"].is_u64(), "{body}");
    assert_eq!(body["connections"], 1);
    let text = app.metrics().await;
    assert!(text.contains("chat_connections_opened_total 1"), "{text}");
    let (status, body) = app
        .request(reqwest::Method::GET, "/no/such/endpoint", None, None)
        .await;
    assert_eq!((status, &body["code"]), (404, &json!(404)), "{body}");
}

on_both_backends!(
    first_frame_is_1000_with_user_id,
    application_ping_gets_1003,
    wrong_origin_is_403,
    allowed_origin_and_no_origin_pass,
    plain_get_on_ws_is_refused_with_json,
    health_and_metrics,
);
