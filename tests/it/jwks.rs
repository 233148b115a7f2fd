//! Asymmetric tokens end to end: a node verifying RS256, ES256 and EdDSA tokens with the
//! keys of a JWKS it reads from an HTTP server started here (or from a file), next to its
//! HS256 secret. Rotation without a restart, the rate limit on re-reads for unknown kids,
//! the periodic re-read, and every refusal (401 with its reason before the upgrade).

use chat_gateway::settings::JwksSource;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::app::test_settings;
use crate::support::client::WAIT;
use crate::support::jwks::{KeyServer, TestKey, b64, key_set};
use crate::support::{Backend, Client, TestApp, eventually};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims for `user`, valid for ten minutes.
fn claims(user: i64) -> Value {
    json!({"sub": user, "exp": now() + 600})
}

/// A node on SQLite with the test secret, reading its key set from `server`, adjusted by
/// `adjust`.
async fn node(server: &KeyServer, adjust: impl FnOnce(&mut chat_gateway::Settings)) -> TestApp {
    let url = server.url.clone();
    TestApp::spawn_with(Backend::Sqlite, move |s| {
        s.auth.jwks = Some(url.parse().expect("a JWKS URL"));
        adjust(s);
    })
    .await
}

/// The handshake's status and JSON reason for `token` in the Authorization header.
async fn handshake(app: &TestApp, token: &str) -> (u16, String) {
    let (status, body) = app
        .handshake("", &[("authorization", &format!("Bearer {token}"))])
        .await;
    let reason = body["error"].as_str().unwrap_or_default().to_string();
    (status, reason)
}

/// Checks `token` is refused with 401 and exactly `reason`.
async fn refused(app: &TestApp, token: &str, reason: &str) {
    assert_eq!(handshake(app, token).await, (401, reason.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_algorithm_is_accepted_next_to_hs256() {
    let (rsa, ec, ed) = (TestKey::rsa("r", 0), TestKey::ec("e"), TestKey::ed("d"));
    let server = KeyServer::start(&[&rsa, &ec, &ed]).await;
    let app = node(&server, |_| {}).await;
    for (key, user) in [(&rsa, 11), (&ec, 12), (&ed, 13)] {
        let mut client = Client::connect_url(&app.ws_url(), &key.token(claims(user)), user).await;
        client.expect_nothing_pending().await;
        // And on the REST API.
        let res = reqwest::Client::new()
            .get(app.url("/api/me/groups"))
            .bearer_auth(key.token(claims(user)))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{}", key.alg());
    }
    // HS256 with the secret still works on the same node.
    let mut client = Client::connect(&app, 14).await;
    client.expect_nothing_pending().await;
    assert_eq!(server.reads(), 1, "every key was held: one read at start");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_key_under_a_known_kid_is_refused() {
    let (rsa, ec, ed) = (TestKey::rsa("r", 0), TestKey::ec("e"), TestKey::ed("d"));
    let server = KeyServer::start(&[&rsa, &ec, &ed]).await;
    let app = node(&server, |_| {}).await;
    for impostor in [TestKey::rsa("r", 1), TestKey::ec("e"), TestKey::ed("d")] {
        refused(&app, &impostor.token(claims(1)), "invalid token signature").await;
    }
    // A valid token whose payload was swapped for another user's.
    let good = ec.token(claims(1));
    let parts: Vec<&str> = good.split('.').collect();
    let payload = b64(claims(2).to_string().as_bytes());
    let forged = format!("{}.{payload}.{}", parts[0], parts[2]);
    refused(&app, &forged, "invalid token signature").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_is_accepted_without_a_restart() {
    let (old, new) = (TestKey::ec("2024"), TestKey::ed("2025"));
    let server = KeyServer::start(&[&old]).await;
    let app = node(&server, |_| {}).await;
    Client::connect_url(&app.ws_url(), &old.token(claims(21)), 21).await;
    assert_eq!(server.reads(), 1);
    server.serve(&[&new]);
    // The new kid is unknown: the node reads the set again, then takes the token.
    Client::connect_url(&app.ws_url(), &new.token(claims(22)), 22).await;
    assert_eq!(server.reads(), 2);
    Client::connect_url(&app.ws_url(), &new.token(claims(23)), 23).await;
    assert_eq!(server.reads(), 2, "a held kid costs no read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kids_cause_at_most_one_read_per_interval() {
    let key = TestKey::ec("known");
    let server = KeyServer::start(&[&key]).await;
    let app = node(&server, |s| {
        s.auth.jwks_min_refresh = Duration::from_secs(3600)
    })
    .await;
    assert_eq!(server.reads(), 1);
    let strangers: Vec<TestKey> = (0..5).map(|i| TestKey::ed(&format!("x{i}"))).collect();
    for stranger in &strangers {
        refused(
            &app,
            &stranger.token(claims(1)),
            "token kid names no known key",
        )
        .await;
    }
    assert_eq!(server.reads(), 2, "five unknown kids, one read");
    // Even once the set holds one of them, it is not read again before the interval ends;
    // the held key keeps working meanwhile.
    server.serve(&[&key, &strangers[4]]);
    refused(
        &app,
        &strangers[4].token(claims(1)),
        "token kid names no known key",
    )
    .await;
    assert_eq!(server.reads(), 2);
    Client::connect_url(&app.ws_url(), &key.token(claims(31)), 31).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_set_is_read_again_on_the_interval_and_a_removed_key_is_refused() {
    let (kept, removed) = (TestKey::ed("kept"), TestKey::ec("removed"));
    let server = KeyServer::start(&[&kept, &removed]).await;
    let app = node(&server, |s| {
        s.auth.jwks_refresh = Duration::from_millis(50);
        s.auth.jwks_min_refresh = Duration::from_secs(3600);
    })
    .await;
    Client::connect_url(&app.ws_url(), &removed.token(claims(41)), 41).await;
    server.serve(&[&kept]);
    // No token asks for it: only the periodic read can drop the key.
    eventually(WAIT, "the removed key refused", async || {
        match handshake(&app, &removed.token(claims(41))).await {
            (401, reason) if reason == "token kid names no known key" => Ok(()),
            other => Err(other),
        }
    })
    .await;
    assert!(server.reads() >= 2, "{}", server.reads());
    Client::connect_url(&app.ws_url(), &kept.token(claims(42)), 42).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alg_none_and_an_alg_other_than_the_keys_are_refused() {
    let (rsa, ec) = (TestKey::rsa("r", 0), TestKey::ec("e"));
    let server = KeyServer::start(&[&rsa, &ec]).await;
    let app = node(&server, |_| {}).await;
    let payload = b64(claims(1).to_string().as_bytes());
    for header in [json!({"alg": "none"}), json!({"alg": "none", "kid": "r"})] {
        let token = format!("{}.{payload}.", b64(header.to_string().as_bytes()));
        refused(
            &app,
            &token,
            "token algorithm not accepted: only HS256, RS256, ES256, EdDSA",
        )
        .await;
    }
    // ES256 signed by the EC key, but naming the RSA key's kid; RS512 with the RSA key.
    let es256 = ec.sign(json!({"alg": "ES256", "kid": "r"}), claims(1));
    refused(&app, &es256, "token algorithm does not match its key").await;
    let rs512 = rsa.sign(json!({"alg": "RS512", "kid": "r"}), claims(1));
    refused(
        &app,
        &rs512,
        "token algorithm not accepted: only HS256, RS256, ES256, EdDSA",
    )
    .await;
    // HS256 naming the RSA kid, keyed with the RSA public key: HS256 is the secret's only.
    let header = Header {
        kid: Some("r".into()),
        ..Header::new(Algorithm::HS256)
    };
    let secret = EncodingKey::from_secret(&rsa.rsa_modulus());
    let confused = jsonwebtoken::encode(&header, &claims(1), &secret).unwrap();
    refused(&app, &confused, "invalid token signature").await;
    // An asymmetric token must name its key.
    let no_kid = ec.sign(json!({"alg": "ES256"}), claims(1));
    refused(&app, &no_kid, "token header lacks kid").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuer_and_audience_are_checked_when_configured() {
    let key = TestKey::rsa("r", 0);
    let server = KeyServer::start(&[&key]).await;
    let app = node(&server, |s| {
        s.auth.issuer = Some("https://idp.example/".into());
        s.auth.audience = Some("chat".into());
    })
    .await;
    let with = |iss: Value, aud: Value| {
        let mut claims = claims(51);
        claims["iss"] = iss;
        claims["aud"] = aud;
        key.token(claims)
    };
    let good = with(json!("https://idp.example/"), json!(["billing", "chat"]));
    Client::connect_url(&app.ws_url(), &good, 51).await;
    let cases = [
        (
            json!("https://evil.example/"),
            json!("chat"),
            "token issuer not accepted",
        ),
        (
            json!("https://idp.example/"),
            json!("billing"),
            "token audience not accepted",
        ),
        (Value::Null, json!("chat"), "token lacks required claim iss"),
        (
            json!("https://idp.example/"),
            Value::Null,
            "token lacks required claim aud",
        ),
    ];
    for (iss, aud, reason) in cases {
        refused(&app, &with(iss, aud), reason).await;
    }
    // HS256 tokens are held to the same: minted ones carry both.
    Client::connect(&app, 52).await;
    let plain = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(53),
        &EncodingKey::from_secret(crate::support::app::SECRET.as_bytes()),
    )
    .unwrap();
    refused(&app, &plain, "token lacks required claim iss").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_not_valid_yet_is_refused() {
    let key = TestKey::ed("d");
    let server = KeyServer::start(&[&key]).await;
    let app = node(&server, |_| {}).await;
    let mut later = claims(61);
    later["nbf"] = json!(now() + 60);
    refused(&app, &key.token(later.clone()), "token not valid yet").await;
    let hs256 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &later,
        &EncodingKey::from_secret(crate::support::app::SECRET.as_bytes()),
    )
    .unwrap();
    refused(&app, &hs256, "token not valid yet").await;
    let mut now_valid = claims(61);
    now_valid["nbf"] = json!(now() - 1);
    Client::connect_url(&app.ws_url(), &key.token(now_valid), 61).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_a_key_set_only_refuses_hs256() {
    let key = TestKey::ec("e");
    let server = KeyServer::start(&[&key]).await;
    let app = node(&server, |s| {
        s.auth.jwt_secret = None;
        s.auth.dev_tokens = Some(false);
    })
    .await;
    Client::connect_url(&app.ws_url(), &key.token(claims(71)), 71).await;
    let hs256 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(71),
        &EncodingKey::from_secret(crate::support::app::SECRET.as_bytes()),
    )
    .unwrap();
    refused(
        &app,
        &hs256,
        "token algorithm not accepted: only RS256, ES256, EdDSA",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_server_down_at_start_is_read_once_it_answers() {
    let key = TestKey::ec("e");
    let server = KeyServer::start(&[&key]).await;
    server.set_down(true);
    let app = node(&server, |_| {}).await;
    assert_eq!(server.reads(), 1);
    server.set_down(false);
    Client::connect_url(&app.ws_url(), &key.token(claims(81)), 81).await;
    assert_eq!(server.reads(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_set_file_is_read_again_for_a_new_kid() {
    let (first, second) = (TestKey::rsa("one", 0), TestKey::ed("two"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, key_set(&[&first]).to_string()).unwrap();
    let source = format!("file:{}", path.display());
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.auth.jwks = Some(source.parse().unwrap());
    })
    .await;
    Client::connect_url(&app.ws_url(), &first.token(claims(91)), 91).await;
    // Replaced whole, as a deployment would: written aside, then renamed over it.
    let aside = dir.path().join("jwks.json.new");
    std::fs::write(&aside, key_set(&[&second]).to_string()).unwrap();
    std::fs::rename(&aside, &path).unwrap();
    Client::connect_url(&app.ws_url(), &second.token(claims(92)), 92).await;
    refused(
        &app,
        &first.token(claims(91)),
        "token kid names no known key",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_set_file_that_cannot_be_read_refuses_to_start() {
    let (mut settings, dir) = test_settings(Backend::Sqlite).await;
    settings.auth.jwks = Some(JwksSource::File(dir.path().join("absent.json")));
    let Err(err) = chat_gateway::Application::build(settings).await else {
        panic!("a node started without its key set");
    };
    assert!(format!("{err:#}").contains("absent.json"), "{err:#}");
}
