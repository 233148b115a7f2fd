//! `TestApp`: the real server, in process, on a free port, over either storage backend;
//! plus a request helper per REST verb.

use chat_gateway::auth::Authenticator;
use chat_gateway::settings::{Secret, StoreUrl};
use chat_gateway::{Application, Settings};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::oneshot;

use super::client::WAIT;
use super::eventually::eventually;
use super::services::MariaDb;

/// The secret every test app signs its tokens with.
pub const SECRET: &str = "test-secret-test-secret-test-secret!";

/// Which storage a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    MySql,
}

/// The settings every test app starts from: a free loopback port, the test secret, and a
/// fresh database on `backend` (a SQLite file inside the returned dir, or a new MariaDB
/// database); the dir must outlive the app.
pub async fn test_settings(backend: Backend) -> (Settings, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = Settings::default();
    settings.server.bind = "127.0.0.1:0".parse().unwrap();
    settings.auth.jwt_secret = Some(Secret::from(SECRET));
    settings.storage.url = StoreUrl::try_from(match backend {
        Backend::Sqlite => format!("sqlite:{}", dir.path().join("chat.db").display()),
        Backend::MySql => MariaDb::shared().fresh_database().await,
    })
    .expect("a store URL");
    settings.server.shutdown_grace = Duration::from_secs(2);
    settings.server.drain_window = Duration::from_millis(500);
    (settings, dir)
}

/// Runs `$body` with `$conn` bound to a new connection to the database at `$url` (SQLite or
/// MySQL): the body is written once for both connection types.
macro_rules! on_connection {
    ($url:expr, |$conn:ident| $body:expr) => {{
        use sqlx::Connection;
        if $url.starts_with("sqlite:") {
            let mut $conn = sqlx::SqliteConnection::connect($url)
                .await
                .expect("connecting to the test SQLite file");
            $body
        } else {
            let mut $conn = sqlx::MySqlConnection::connect($url)
                .await
                .expect("connecting to the test database");
            $body
        }
    }};
}

/// Runs one SQL statement on the database at `url` through a connection of its own (to
/// break or inspect storage behind the server's back).
pub async fn execute_sql(url: &str, statement: &str) {
    let statement = sqlx::AssertSqlSafe(statement.to_string());
    on_connection!(url, |conn| {
        sqlx::raw_sql(statement)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("running SQL: {e}"));
    })
}

/// Runs one SQL query that returns one integer (a count, a flag) on the database at `url`,
/// through a connection of its own.
pub async fn query_int(url: &str, query: &str) -> i64 {
    let query = sqlx::AssertSqlSafe(query.to_string());
    on_connection!(url, |conn| sqlx::query_scalar(query)
        .fetch_one(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("running SQL: {e}")))
}

/// Runs one SQL query that returns one text value (or none: `"none"`) on the database at
/// `url`, through a connection of its own.
pub async fn query_string(url: &str, query: &str) -> String {
    let query = sqlx::AssertSqlSafe(query.to_string());
    on_connection!(url, |conn| sqlx::query_scalar::<_, String>(query)
        .fetch_optional(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("running SQL: {e}"))
        .unwrap_or_else(|| "none".to_string()))
}

/// Sends a request to `url` with `token` as its bearer (or none) and `body` as JSON; the
/// status and JSON body (`Value::Null` when empty, a string when not JSON). The one REST
/// helper: `TestApp` and `Cluster` both call it.
pub async fn request(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: Option<String>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = http.request(method, url);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.expect("sending a request");
    let status = res.status().as_u16();
    let text = res.text().await.unwrap_or_default();
    let json = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, json)
}

/// For tests that send more frames at once than a client may (`limits.frame_burst`, 40):
/// lifts the per-connection frame rate, which tests/it/edge.rs tests on its own.
pub fn many_frames(settings: &mut Settings) {
    settings.limits.frames_per_second = 1_000_000;
    settings.limits.frame_burst = 1_000_000;
}

/// A running gateway.
pub struct TestApp {
    pub addr: SocketAddr,
    /// The private listener's address, when `server.metrics_bind` is set.
    pub metrics_addr: Option<SocketAddr>,
    pub backend: Backend,
    pub settings: Settings,
    auth: Authenticator,
    http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl TestApp {
    /// A gateway on `backend` with default settings.
    pub async fn spawn(backend: Backend) -> TestApp {
        TestApp::spawn_with(backend, |_| {}).await
    }

    /// A gateway on `backend` with settings adjusted by `adjust`.
    pub async fn spawn_with(backend: Backend, adjust: impl FnOnce(&mut Settings)) -> TestApp {
        let (settings, dir) = test_settings(backend).await;
        let mut settings = settings;
        adjust(&mut settings);
        TestApp::start(backend, settings, dir).await
    }

    async fn start(backend: Backend, settings: Settings, dir: tempfile::TempDir) -> TestApp {
        let app = Application::build(settings.clone())
            .await
            .expect("building the gateway");
        let addr = app.local_addr();
        let metrics_addr = app.metrics_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let done = tokio::spawn(async move {
            app.run_until(async {
                let _ = stopped.await;
            })
            .await
            .expect("serving");
        });
        let secret = settings
            .auth
            .jwt_secret
            .as_ref()
            .map(|s| s.expose().as_bytes().to_vec())
            .unwrap_or_default();
        TestApp {
            addr,
            metrics_addr,
            backend,
            auth: Authenticator::new(&secret).with_claims(
                settings.auth.issuer.as_deref(),
                settings.auth.audience.as_deref(),
            ),
            settings,
            http: reqwest::Client::new(),
            stop: Some(stop),
            done: Some(done),
            _dir: dir,
        }
    }

    /// Drains the gateway (as SIGTERM does) and waits for it to stop.
    pub async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(done) = self.done.take() {
            let _ = done.await;
        }
    }

    /// `ws://addr/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// `http://addr{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A valid token for `user`.
    pub fn token(&self, user: i64) -> String {
        self.auth.mint(user, Duration::from_secs(3600))
    }

    /// A valid token for `user` that expires `ttl` from now (rounded to whole seconds).
    pub fn token_for(&self, user: i64, ttl: Duration) -> String {
        self.auth.mint(user, ttl)
    }

    /// Sends a request as `user` (or anonymously with `None`); the status and JSON body
    /// (`Value::Null` when empty).
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        user: Option<i64>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let token = user.map(|user| self.token(user));
        request(&self.http, method, &self.url(path), token, body).await
    }

    pub async fn get(&self, path: &str, user: i64) -> (u16, Value) {
        self.request(reqwest::Method::GET, path, Some(user), None)
            .await
    }

    pub async fn post(&self, path: &str, user: i64, body: Value) -> (u16, Value) {
        self.request(reqwest::Method::POST, path, Some(user), Some(body))
            .await
    }

    pub async fn put(&self, path: &str, user: i64) -> (u16, Value) {
        self.request(reqwest::Method::PUT, path, Some(user), None)
            .await
    }

    /// The Prometheus text of `GET /metrics` (on the private listener when there is one).
    pub async fn metrics(&self) -> String {
        let addr = self.metrics_addr.unwrap_or(self.addr);
        let res = self.http.get(format!("http://{addr}/metrics")).send().await;
        res.expect("GET /metrics")
            .text()
            .await
            .expect("reading /metrics")
    }

    /// Waits (up to `WAIT`) until `GET /api/users/{user}/presence`, asked by `asker`,
    /// says `user` is offline: the server notices a closed socket asynchronously.
    pub async fn wait_offline(&self, user: i64, asker: i64) {
        let path = format!("/api/users/{user}/presence");
        eventually(WAIT, &format!("user {user} offline"), async || {
            let (_, body) = self.get(&path, asker).await;
            if body["online"] == false {
                Ok(())
            } else {
                Err(body)
            }
        })
        .await
    }

    /// Runs one SQL statement on this app's database behind its back.
    pub async fn sql(&self, statement: &str) {
        execute_sql(self.settings.storage.url.expose(), statement).await
    }

    /// Runs one SQL query returning one integer on this app's database behind its back.
    pub async fn sql_int(&self, query: &str) -> i64 {
        query_int(self.settings.storage.url.expose(), query).await
    }

    /// Sends a WebSocket handshake (GET /ws plus `query`, upgrade headers and `headers`)
    /// with a plain HTTP client, to read a refusal: the status and JSON body.
    pub async fn handshake(&self, query: &str, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut req = self
            .http
            .get(format!("{}{query}", self.url("/ws")))
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let res = req.send().await.expect("sending a handshake");
        let status = res.status().as_u16();
        let text = res.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn delete(&self, path: &str, user: i64) -> (u16, Value) {
        self.request(reqwest::Method::DELETE, path, Some(user), None)
            .await
    }

    /// Creates a group owned by `owner` with `members`; its id.
    pub async fn create_group(&self, owner: i64, members: &[i64]) -> String {
        let (status, body) = self
            .post(
                "/api/groups",
                owner,
                serde_json::json!({"name": "test group", "members": members}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().expect("group id").to_string()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
