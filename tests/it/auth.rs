//! Authentication of the WebSocket handshake and the REST API: where a token may travel,
//! every kind of bad token (401 with a JSON reason before the upgrade), the legacy `?myid=`,
//! dev tokens, and the start-up refusal of dev tokens on a public bind.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio_tungstenite::tungstenite::Error;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::on_both_backends;
use crate::support::app::{SECRET, test_settings};
use crate::support::{Backend, Client, TestApp};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A token with these claims, signed HS256 with `secret`.
fn signed(claims: Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// Unpadded base64url, for hand-made tokens.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// Tries a real WebSocket handshake with `token` in the Authorization header and checks it
/// is refused with 401; then the same with a plain HTTP client to read the JSON reason.
async fn refused(app: &TestApp, token: &str) -> String {
    let mut request = app.ws_url().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    match Client::open(request, 0).await {
        Err(Error::Http(response)) => assert_eq!(response.status(), 401),
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("token {token:?} was accepted"),
    }
    let (status, body) = app
        .handshake("", &[("authorization", &format!("Bearer {token}"))])
        .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], 401, "{body}");
    body["error"].as_str().expect("a JSON reason").to_string()
}

async fn token_in_authorization_header(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut request = app.ws_url().into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", app.token(41)).parse().unwrap(),
    );
    let mut client = Client::open(request, 41).await.expect("handshake");
    let hello = client.expect(1000).await;
    assert_eq!(hello["user_id"], 41);
    assert_eq!(hello["from"], "");
    assert!(hello["content"].is_string(), "{hello}");
}

async fn token_in_subprotocol_answers_chat_v1(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut request = app.ws_url().into_client_request().unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        format!("chat.v1, bearer.{}", app.token(42))
            .parse()
            .unwrap(),
    );
    let (mut client, response) = Client::open_with_response(request, 42)
        .await
        .expect("handshake");
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        "chat.v1",
        "the server answers chat.v1, never the token"
    );
    assert_eq!(client.expect(1000).await["user_id"], 42);
    client.expect_nothing_pending().await;
}

async fn token_in_query(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let url = format!("{}?token={}", app.ws_url(), app.token(43));
    let mut client = Client::open(url.into_client_request().unwrap(), 43)
        .await
        .expect("handshake");
    assert_eq!(client.expect(1000).await["user_id"], 43);
}

async fn the_token_decides_the_sender(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut bob = Client::connect(&app, 2).await;
    // A sender field in the frame is ignored: the sender is the authenticated user.
    alice
        .send(
            json!({"type": 1, "recipient_id": 2, "content": "hi", "sender_id": 3, "from": "3->2"}),
        )
        .await;
    alice.expect(2100).await;
    let pushed = bob.expect(2000).await;
    assert_eq!(pushed["sender_id"], 1);
    assert_eq!(pushed["from"], "1->2");
}

async fn missing_token_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    match Client::open(app.ws_url().into_client_request().unwrap(), 0).await {
        Err(Error::Http(response)) => assert_eq!(response.status(), 401),
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("a handshake without a token was accepted"),
    }
    let (status, body) = app.handshake("", &[]).await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], 401);
    assert!(
        body["error"].as_str().unwrap().contains("missing token"),
        "{body}"
    );
}

async fn malformed_tokens_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for token in ["not-a-jwt", "a.b.c", ""] {
        let reason = refused(&app, token).await;
        assert!(reason.contains("malformed"), "{token:?}: {reason}");
    }
    // An Authorization header that is not a bearer token.
    let (status, body) = app
        .handshake("", &[("authorization", &format!("Basic {}", app.token(1)))])
        .await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error"].as_str().unwrap().contains("malformed"));
}

async fn expired_token_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = signed(json!({"sub": 1, "exp": now() - 10}), SECRET);
    assert!(refused(&app, &token).await.contains("expired"));
}

async fn wrong_signature_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = signed(
        json!({"sub": 1, "exp": now() + 600}),
        "another-secret-another-secret-xyz!",
    );
    assert!(refused(&app, &token).await.contains("signature"));
    // A valid token whose payload was swapped for another user's.
    let good = app.token(1);
    let parts: Vec<&str> = good.split('.').collect();
    let payload = base64url(json!({"sub": 2, "exp": now() + 600}).to_string().as_bytes());
    let forged = format!("{}.{payload}.{}", parts[0], parts[2]);
    assert!(refused(&app, &forged).await.contains("signature"));
}

async fn alg_none_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let header = base64url(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = base64url(json!({"sub": 1, "exp": now() + 600}).to_string().as_bytes());
    let reason = refused(&app, &format!("{header}.{payload}.")).await;
    assert!(reason.contains("algorithm"), "{reason}");
    // Another algorithm than HS256 with the right secret is refused too.
    let hs512 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS512),
        &json!({"sub": 1, "exp": now() + 600}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    assert!(refused(&app, &hs512).await.contains("algorithm"));
}

async fn bad_subjects_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let exp = now() + 600;
    for sub in [json!(0), json!(-5), json!("abc"), json!("0"), json!(1.5)] {
        let token = signed(json!({"sub": sub, "exp": exp}), SECRET);
        let reason = refused(&app, &token).await;
        assert!(reason.contains("sub"), "sub {sub}: {reason}");
    }
    let token = signed(json!({"exp": exp}), SECRET);
    assert!(refused(&app, &token).await.contains("sub"));
    let token = signed(json!({"sub": 1}), SECRET);
    assert!(refused(&app, &token).await.contains("exp"));
}

async fn subject_as_decimal_string_is_accepted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = signed(json!({"sub": "77", "exp": now() + 600}), SECRET);
    let mut client = Client::connect_url(&app.ws_url(), &token, 77).await;
    client.expect_nothing_pending().await;
}

async fn myid_is_refused_by_default(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = app.handshake("?myid=5", &[]).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], 401);
    let url = format!("{}?myid=5", app.ws_url());
    assert!(matches!(
        Client::open(url.into_client_request().unwrap(), 5).await,
        Err(Error::Http(r)) if r.status() == 401
    ));
}

async fn myid_is_accepted_when_insecure_myid(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.auth.insecure_myid = true).await;
    let url = format!("{}?myid=5", app.ws_url());
    let mut legacy = Client::open(url.into_client_request().unwrap(), 5)
        .await
        .expect("handshake");
    assert_eq!(legacy.expect(1000).await["user_id"], 5);
    let mut bob = Client::connect(&app, 6).await;
    legacy.private(6, "from an old client").await;
    assert_eq!(bob.expect(2000).await["sender_id"], 5);
    for bad in ["0", "-1", "abc"] {
        let (status, _) = app.handshake(&format!("?myid={bad}"), &[]).await;
        assert_eq!(status, 401, "myid={bad}");
    }
    // A token still wins over myid, and a bad token is not rescued by myid.
    let url = format!("{}?myid=5&token={}", app.ws_url(), app.token(9));
    let mut client = Client::open(url.into_client_request().unwrap(), 9)
        .await
        .expect("handshake");
    assert_eq!(client.expect(1000).await["user_id"], 9);
    let (status, _) = app.handshake("?myid=5&token=garbage", &[]).await;
    assert_eq!(status, 401);
}

/// `POST /api/dev/token` with `body`, anonymously.
async fn dev_token(app: &TestApp, body: Value) -> (u16, Value) {
    app.request(reqwest::Method::POST, "/api/dev/token", None, Some(body))
        .await
}

async fn dev_token_endpoint_mints_usable_tokens(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = dev_token(&app, json!({"user_id": 31})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user_id"], 31);
    let token = body["token"].as_str().expect("token");
    let mut client = Client::connect_url(&app.ws_url(), token, 31).await;
    client.expect_nothing_pending().await;
    for bad in [json!({"user_id": 0}), json!({"user_id": -3}), json!({})] {
        let (status, body) = dev_token(&app, bad).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["code"], 400);
    }
}

async fn dev_token_endpoint_is_404_when_off(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.auth.dev_tokens = Some(false)).await;
    let (status, body) = dev_token(&app, json!({"user_id": 31})).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["code"], 404);
    assert!(body.get("token").is_none());
}

async fn dev_tokens_on_a_public_bind_refuse_to_start(backend: Backend) {
    let (mut settings, _dir) = test_settings(backend).await;
    settings.server.bind = "0.0.0.0:0".parse().unwrap();
    settings.auth.dev_tokens = Some(true);
    let refusal = settings.validate().expect_err("dev tokens on 0.0.0.0");
    assert!(refusal.contains("loopback"), "{refusal}");
    let Err(err) = chat_gateway::Application::build(settings.clone()).await else {
        panic!("a node started with dev tokens on a public bind");
    };
    assert!(err.to_string().contains("loopback"), "{err}");
    // Off by default there, so the same settings without the explicit `true` validate.
    settings.auth.dev_tokens = None;
    assert!(!settings.dev_tokens());
    settings
        .validate()
        .expect("dev tokens default to off on 0.0.0.0");
}

async fn rest_requires_a_valid_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = app
        .request(reqwest::Method::GET, "/api/me/groups", None, None)
        .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], 401);
    assert!(body["error"].as_str().unwrap().contains("missing token"));
    let expired = signed(json!({"sub": 1, "exp": now() - 10}), SECRET);
    let res = reqwest::Client::new()
        .get(app.url("/api/me/groups"))
        .bearer_auth(&expired)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    let body: Value = res.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("expired"),
        "{body}"
    );
    // `?token=` works for REST too.
    let res = reqwest::Client::new()
        .get(app.url(&format!("/api/me/groups?token={}", app.token(1))))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

on_both_backends!(
    token_in_authorization_header,
    token_in_subprotocol_answers_chat_v1,
    token_in_query,
    the_token_decides_the_sender,
    missing_token_is_refused,
    malformed_tokens_are_refused,
    expired_token_is_refused,
    wrong_signature_is_refused,
    alg_none_is_refused,
    bad_subjects_are_refused,
    subject_as_decimal_string_is_accepted,
    myid_is_refused_by_default,
    myid_is_accepted_when_insecure_myid,
    dev_token_endpoint_mints_usable_tokens,
    dev_token_endpoint_is_404_when_off,
    dev_tokens_on_a_public_bind_refuse_to_start,
    rest_requires_a_valid_token,
);
