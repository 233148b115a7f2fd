//! Push for offline users: a webhook receiver spawned here (a small axum server) hears of
//! private messages stored for users with no device online, signed, batched, at least once
//! (receiver down, then failing, then up; a gateway restart in between), never of online
//! recipients or muted conversations.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use chat_gateway::settings::Secret;
use chat_gateway::{Application, Settings};
use hmac::{Hmac, KeyInit, Mac};
use parking_lot::Mutex;
use serde_json::Value;
use sha2::Sha256;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

use crate::on_both_backends;
use crate::support::app::query_int;
use crate::support::cluster::Cluster;
use crate::support::{Backend, Client, TestApp, eventually};

const WEBHOOK_SECRET: &str = "whsec-test-secret-0123456789";
const WAIT: Duration = Duration::from_secs(20);

/// One POST the receiver got.
#[derive(Clone)]
struct Post {
    /// When it arrived, ms since the Unix epoch.
    at: i64,
    timestamp: String,
    signature: String,
    body: Bytes,
}

/// The app backend's webhook endpoint: records every POST; answers 500 to the first
/// `failing` of them, 200 afterwards.
struct Receiver {
    posts: Arc<Mutex<Vec<Post>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// A free loopback address nobody listens on (yet).
    async fn free_addr() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    }

    /// Listens on `addr` (retrying while the port is still being released).
    async fn start(addr: SocketAddr, failing: usize) -> Receiver {
        let listener = eventually(WAIT, "the receiver's port", async || {
            TcpListener::bind(addr).await
        })
        .await;
        let posts = Arc::new(Mutex::new(Vec::<Post>::new()));
        let recorded = posts.clone();
        let handler = move |headers: HeaderMap, body: Bytes| {
            let recorded = recorded.clone();
            async move {
                let header = |name: &str| {
                    let value = headers.get(name).and_then(|v| v.to_str().ok());
                    value.unwrap_or_default().to_string()
                };
                let mut posts = recorded.lock();
                posts.push(Post {
                    at: chrono::Utc::now().timestamp_millis(),
                    timestamp: header("x-chat-timestamp"),
                    signature: header("x-chat-signature"),
                    body,
                });
                if posts.len() <= failing {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        };
        let router = axum::Router::new().route("/hook", axum::routing::post(handler));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Receiver { posts, task }
    }

    /// Every event of every POST, in arrival order, each POST's signature checked.
    fn events(&self) -> Vec<Value> {
        let posts = self.posts.lock().clone();
        let mut events = Vec::new();
        for post in posts {
            verify(&post);
            let body: Value = serde_json::from_slice(&post.body).unwrap();
            events.extend(body["events"].as_array().unwrap().iter().cloned());
        }
        events
    }

    /// When the first POST holding message `id` arrived.
    fn arrival_of(&self, id: &Value) -> Option<i64> {
        let posts = self.posts.lock().clone();
        posts.into_iter().find_map(|post| {
            let body: Value = serde_json::from_slice(&post.body).ok()?;
            let events = body["events"].as_array()?.clone();
            events
                .iter()
                .any(|e| e["message_id"] == *id)
                .then_some(post.at)
        })
    }

    /// The events of message `id`.
    fn of(&self, id: &Value) -> Vec<Value> {
        let events = self.events();
        events
            .into_iter()
            .filter(|e| e["message_id"] == *id)
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The hex HMAC-SHA256 of `{timestamp}.{body}` with the test's webhook secret.
fn hmac_hex(timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks a POST as the docs tell a receiver to: HMAC-SHA256 of `{timestamp}.{body}`, and
/// a timestamp within five minutes.
fn verify(post: &Post) {
    let expected = format!("sha256={}", hmac_hex(&post.timestamp, &post.body));
    assert_eq!(post.signature, expected, "the signature verifies");
    let sent: i64 = post.timestamp.parse().expect("a numeric timestamp");
    let now = chrono::Utc::now().timestamp();
    assert!(
        (now - sent).abs() < 300,
        "a fresh timestamp: {sent} vs {now}"
    );
    // A tampered body, or the same body at another time, does not verify.
    let mut tampered = post.body.to_vec();
    tampered.push(b' ');
    assert_ne!(
        post.signature,
        format!("sha256={}", hmac_hex(&post.timestamp, &tampered))
    );
    let replayed = (sent + 1).to_string();
    assert_ne!(
        post.signature,
        format!("sha256={}", hmac_hex(&replayed, &post.body))
    );
}

/// Push on, towards `hook`, with short delays so that the tests run fast.
fn push_to(hook: SocketAddr) -> impl FnOnce(&mut Settings) {
    move |settings: &mut Settings| {
        let push = &mut settings.push;
        push.webhook_url = Some(Secret::from(format!("http://{hook}/hook")));
        push.webhook_secret = Some(Secret::from(WEBHOOK_SECRET));
        push.delay = Duration::from_millis(300);
        push.poll_interval = Duration::from_millis(50);
        push.backoff = Duration::from_millis(100);
        push.backoff_max = Duration::from_millis(400);
        push.timeout = Duration::from_secs(2);
        push.lease = Duration::from_secs(3);
    }
}

/// `chat_push_events_total{outcome}` as the gateway reports it.
async fn pushed(app: &TestApp, outcome: &str) -> u64 {
    metric(
        app,
        &format!("chat_push_events_total{{outcome=\"{outcome}\"}}"),
    )
    .await
}

/// The value of the series `series` (name and labels) in the gateway's metrics.
async fn metric(app: &TestApp, series: &str) -> u64 {
    let text = app.metrics().await;
    let line = format!("{series} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&line))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

async fn pushes_offline_recipients_only(backend: Backend) {
    let hook = Receiver::free_addr().await;
    let receiver = Receiver::start(hook, 0).await;
    let app = TestApp::spawn_with(backend, push_to(hook)).await;
    // Dave mutes Alice; mutes are listed, validated, and can be undone.
    assert_eq!(app.put("/api/mutes/users/1", 4).await.0, 201);
    assert_eq!(app.put("/api/mutes/users/1", 4).await.0, 200);
    assert_eq!(app.put("/api/mutes/groups/team", 4).await.0, 201);
    let (status, list) = app.get("/api/mutes", 4).await;
    assert_eq!(status, 200);
    assert_eq!(list, serde_json::json!({"users": [1], "groups": ["team"]}));
    assert_eq!(app.delete("/api/mutes/groups/team", 4).await.0, 204);
    assert_eq!(app.delete("/api/mutes/groups/team", 4).await.0, 404);
    assert_eq!(app.put("/api/mutes/users/abc", 4).await.0, 400);
    assert_eq!(app.put("/api/mutes/users/4", 4).await.0, 400);
    assert_eq!(app.put("/api/mutes/planets/1", 4).await.0, 404);

    let mut alice = Client::connect(&app, 1).await;
    let mut carol = Client::connect(&app, 3).await;
    let online = alice.private(3, "carol is here").await;
    assert_eq!(online["code"], 2100, "{online}");
    carol.expect(2000).await;
    let muted = alice.private(4, "dave muted alice").await;
    assert_eq!(muted["code"], 2101, "{muted}");
    let offline = alice.private(2, "bob is away").await;
    assert_eq!(offline["code"], 2101, "{offline}");

    let events = eventually(WAIT, "bob's push", async || {
        Some(receiver.of(&offline["id"])).filter(|e| !e.is_empty())
    })
    .await;
    let event = &events[0];
    assert_eq!(event["type"], "message");
    assert_eq!(event["user_id"], 2);
    assert_eq!(event["sender_id"], 1);
    assert_eq!(event["ts"], offline["ts"]);
    assert_eq!(event["attempt"], 1);
    let key = format!("{}:2", offline["id"].as_str().unwrap());
    assert_eq!(event["idempotency_key"], key);
    assert!(
        event.get("content").is_none(),
        "no content leaves the gateway"
    );
    // The other two were due earlier: had they been pushed, they would be here by now; and
    // the outbox is empty once bob's row is gone.
    eventually(WAIT, "an empty outbox", async || {
        app.sql_int("SELECT COUNT(*) FROM push_outbox").await == 0
    })
    .await;
    assert!(receiver.of(&online["id"]).is_empty(), "online: not pushed");
    assert!(receiver.of(&muted["id"]).is_empty(), "muted: not pushed");
    assert_eq!(receiver.events().len(), 1);
    assert_eq!(pushed(&app, "sent").await, 1);
    assert_eq!(pushed(&app, "muted").await, 1);
    // Unmuted, dave hears of the next one.
    assert_eq!(app.delete("/api/mutes/users/1", 4).await.0, 204);
    let next = alice.private(4, "dave unmuted alice").await;
    eventually(WAIT, "dave's push", async || {
        !receiver.of(&next["id"]).is_empty()
    })
    .await;
}

async fn receiver_down_then_up_loses_nothing(backend: Backend) {
    let hook = Receiver::free_addr().await;
    let app = TestApp::spawn_with(backend, push_to(hook)).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut sent = Vec::new();
    for to in 2..5 {
        let ack = alice.private(to, "while the receiver is down").await;
        assert_eq!(ack["code"], 2101, "{ack}");
        sent.push(format!("{}:{to}", ack["id"].as_str().unwrap()));
    }
    // Nobody listens: every POST fails and is retried later.
    eventually(WAIT, "failed POSTs retried", async || {
        pushed(&app, "retried").await >= 3
    })
    .await;
    eventually(WAIT, "the queue depth", async || {
        metric(&app, "chat_push_queue_depth").await == 3
    })
    .await;
    // Up, but its first answer is a 500 after reading the POST: those events come again.
    let receiver = Receiver::start(hook, 1).await;
    let expected: HashSet<String> = sent.iter().cloned().collect();
    eventually(WAIT, "every event acknowledged", async || {
        app.sql_int("SELECT COUNT(*) FROM push_outbox").await == 0
    })
    .await;
    let events = receiver.events();
    let keys: HashSet<String> = events
        .iter()
        .map(|e| e["idempotency_key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys, expected, "nothing lost, nothing else");
    // A repeat carries the same key (and its message the same id).
    let mut by_key: HashMap<String, Vec<&Value>> = HashMap::new();
    for e in &events {
        let key = e["idempotency_key"].as_str().unwrap().to_string();
        by_key.entry(key).or_default().push(e);
    }
    assert!(
        by_key.values().any(|v| v.len() > 1),
        "the failed POST came again: {events:?}"
    );
    for repeats in by_key.values() {
        assert!(
            repeats
                .iter()
                .all(|e| e["message_id"] == repeats[0]["message_id"])
        );
        assert!(
            repeats.iter().all(|e| e["attempt"].as_u64().unwrap() > 1),
            "retries: {repeats:?}"
        );
    }
    assert_eq!(pushed(&app, "sent").await, 3);
    assert_eq!(pushed(&app, "failed").await, 0);
}

async fn a_restarted_gateway_delivers_the_outbox(backend: Backend) {
    let hook = Receiver::free_addr().await;
    let mut app = TestApp::spawn_with(backend, push_to(hook)).await;
    let mut alice = Client::connect(&app, 1).await;
    let ack = alice.private(2, "before the restart").await;
    assert_eq!(ack["code"], 2101, "{ack}");
    eventually(WAIT, "a failed POST", async || {
        pushed(&app, "retried").await >= 1
    })
    .await;
    drop(alice);
    app.shutdown().await;
    assert_eq!(app.sql_int("SELECT COUNT(*) FROM push_outbox").await, 1);
    // A new gateway on the same database, and a receiver that answers.
    let receiver = Receiver::start(hook, 0).await;
    let node = Application::build(app.settings.clone())
        .await
        .expect("a second start");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(node.run_until(async {
        let _ = stopped.await;
    }));
    let events = eventually(WAIT, "the push after the restart", async || {
        Some(receiver.of(&ack["id"])).filter(|e| !e.is_empty())
    })
    .await;
    assert_eq!(events[0]["user_id"], 2);
    assert!(events[0]["attempt"].as_u64().unwrap() > 1);
    eventually(WAIT, "an empty outbox", async || {
        app.sql_int("SELECT COUNT(*) FROM push_outbox").await == 0
    })
    .await;
    let _ = stop.send(());
    let _ = serving.await;
}

async fn a_dead_claimers_rows_go_to_another_node_after_its_lease(backend: Backend) {
    let hook = Receiver::free_addr().await;
    let receiver = Receiver::start(hook, 0).await;
    let app = TestApp::spawn_with(backend, |settings| {
        push_to(hook)(settings);
        settings.push.delay = Duration::from_secs(2);
    })
    .await;
    let mut alice = Client::connect(&app, 1).await;
    let ack = alice.private(2, "claimed by a node that then died").await;
    assert_eq!(ack["code"], 2101, "{ack}");
    // Before it is due, a node claims the row and dies holding it.
    let lease_end = chrono::Utc::now().timestamp_millis() + 2_500;
    let claimed =
        format!("UPDATE push_outbox SET claimed_by = 'dead-node-1', claimed_until = {lease_end}");
    app.sql(&claimed).await;
    let arrived = eventually(WAIT, "the push after the lease", async || {
        receiver.arrival_of(&ack["id"])
    })
    .await;
    assert!(
        arrived >= lease_end,
        "not sent while the dead node's lease held: {arrived} < {lease_end}"
    );
    assert_eq!(receiver.of(&ack["id"]).len(), 1);
}

async fn group_messages_push_the_offline_members(backend: Backend) {
    let hook = Receiver::free_addr().await;
    let receiver = Receiver::start(hook, 0).await;
    let app = TestApp::spawn_with(backend, |settings| {
        push_to(hook)(settings);
        settings.push.group_max_members = 4;
    })
    .await;
    // Alice sends; Bob is online; Carol is offline; Dave is offline and muted the group.
    let small = app.create_group(1, &[2, 3, 4]).await;
    let large = app.create_group(1, &[2, 3, 4, 5]).await;
    assert_eq!(
        app.put(&format!("/api/mutes/groups/{small}"), 4).await.0,
        201
    );
    let mut alice = Client::connect(&app, 1).await;
    let _bob = Client::connect(&app, 2).await;
    let over = alice
        .group_stored(&large, "five members: over the limit")
        .await;
    let ack = alice
        .group_stored(&small, "carol should hear of this")
        .await;
    let events = eventually(WAIT, "carol's push", async || {
        Some(receiver.of(&ack["id"])).filter(|e| !e.is_empty())
    })
    .await;
    eventually(WAIT, "an empty outbox", async || {
        app.sql_int("SELECT COUNT(*) FROM push_outbox").await == 0
    })
    .await;
    let events_now = receiver.of(&ack["id"]);
    assert_eq!(events_now.len(), 1, "only carol: {events_now:?}");
    let event = &events[0];
    assert_eq!(event["user_id"], 3);
    assert_eq!(event["sender_id"], 1);
    assert_eq!(event["group_id"], small.as_str());
    let key = format!("{}:3", ack["id"].as_str().unwrap());
    assert_eq!(event["idempotency_key"], key);
    assert!(
        receiver.of(&over["id"]).is_empty(),
        "a group over push.group_max_members"
    );
    assert_eq!(pushed(&app, "muted").await, 1);
}

on_both_backends!(
    group_messages_push_the_offline_members,
    pushes_offline_recipients_only,
    receiver_down_then_up_loses_nothing,
    a_restarted_gateway_delivers_the_outbox,
    a_dead_claimers_rows_go_to_another_node_after_its_lease,
);

/// Two nodes: the sending node deletes the row of a message delivered on the other node;
/// both dispatchers race for the offline recipient's row and it is posted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn across_nodes_the_online_are_not_pushed_and_the_offline_once() {
    let hook = Receiver::free_addr().await;
    let receiver = Receiver::start(hook, 0).await;
    let url = format!("http://{hook}/hook");
    let cluster = Cluster::start_with(
        2,
        &[
            ("CHAT__PUSH__WEBHOOK_URL", &url),
            ("CHAT__PUSH__WEBHOOK_SECRET", WEBHOOK_SECRET),
            ("CHAT__PUSH__DELAY", "300ms"),
            ("CHAT__PUSH__POLL_INTERVAL", "20ms"),
        ],
    )
    .await;
    let mut alice = cluster.connect(0, 1).await;
    let mut bob = cluster.connect(1, 2).await;
    cluster.wait_subscribers("chat:u:2", 1);
    let online = alice.private(2, "bob is on the other node").await;
    assert_eq!(online["code"], 2100, "{online}");
    bob.expect(2000).await;
    let offline = alice.private(3, "carol is away").await;
    assert_eq!(offline["code"], 2101, "{offline}");
    eventually(WAIT, "carol's push", async || {
        !receiver.of(&offline["id"]).is_empty()
    })
    .await;
    eventually(WAIT, "an empty outbox", async || {
        query_int(&cluster.database, "SELECT COUNT(*) FROM push_outbox").await == 0
    })
    .await;
    assert_eq!(receiver.of(&offline["id"]).len(), 1, "posted once");
    assert!(receiver.of(&online["id"]).is_empty(), "online: not pushed");
}
