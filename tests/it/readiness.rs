//! Readiness (`GET /health/ready`) answers at once, from what the node's health monitor last
//! saw of storage and bus: a dependency that fails for less than `server.ready_tolerance`
//! keeps the node in the load balancer (a blip must not empty it of every node at once);
//! past it the answer is 503, and 200 again once the dependency answers.

use reqwest::Method;
use serde_json::Value;
use std::time::{Duration, Instant};

use crate::support::client::WAIT;
use crate::support::services::{MariaDb, Redis};
use crate::support::{Backend, TestApp, eventually};
use chat_gateway::settings::StoreUrl;

/// The tolerance of these tests' nodes.
const TOLERANCE: Duration = Duration::from_secs(5);

/// `GET /health/ready`, which must answer within a second: its status and body.
async fn ready(app: &TestApp) -> (u16, Value) {
    let asked = Instant::now();
    let answer = app.request(Method::GET, "/health/ready", None, None).await;
    let took = asked.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "readiness took {took:?}: {answer:?}"
    );
    answer
}

/// Readiness until `done` accepts its answer, asserting 200 for every question asked
/// within `TOLERANCE` of `failed` (when the dependency went away).
async fn ready_until(
    app: &TestApp,
    failed: Instant,
    what: &str,
    mut done: impl FnMut(u16, &Value) -> bool,
) -> Value {
    eventually(WAIT, what, async || {
        let asked = Instant::now();
        let (status, body) = ready(app).await;
        if asked < failed + TOLERANCE {
            assert_eq!(
                status,
                200,
                "{:?} into the failure: {body}",
                failed.elapsed()
            );
        }
        if done(status, &body) {
            Ok(body)
        } else {
            Err(body)
        }
    })
    .await
}

/// A long outage of `dependency`: 200 within the tolerance, 503 naming it past it, 200 once
/// `turn(true)` has brought it back (`turn(false)` takes it away).
async fn outage(app: &TestApp, dependency: &str, mut turn: impl FnMut(bool)) {
    turn(false);
    let failed = Instant::now();
    let body = ready_until(app, failed, "the failure seen", |_, body| {
        body[dependency]["status"] != "ok"
    })
    .await;
    assert!(body[dependency]["since"].is_u64(), "{body}");
    let body = ready_until(app, failed, "503 past the tolerance", |status, _| {
        status == 503
    })
    .await;
    assert_eq!(body["status"], "unavailable", "{body}");
    assert_eq!(body[dependency]["status"], "down", "{body}");
    assert!(body[dependency]["error"].is_string(), "{body}");
    turn(true);
    let body = ready_until(app, failed, "200 once it is back", |status, _| {
        status == 200
    })
    .await;
    assert_eq!(body["status"], "ready", "{body}");
    assert_eq!(body[dependency]["status"], "ok", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_rides_out_a_redis_blip_and_reports_an_outage() {
    let mut redis = Redis::start();
    let url = redis.url();
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.bus.url = url.parse().unwrap();
        s.server.ready_tolerance = TOLERANCE;
    })
    .await;
    let (status, body) = ready(&app).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["bus"]["status"], "ok", "{body}");
    assert_eq!(body["store"]["status"], "ok", "{body}");

    // A blip: seen as failing, yet the node stays ready; then it is ok again.
    redis.kill();
    let failed = Instant::now();
    let body = ready_until(&app, failed, "the blip seen", |_, body| {
        body["bus"]["status"] == "failing"
    })
    .await;
    assert!(body["bus"]["error"].is_string(), "{body}");
    redis.restart();
    ready_until(&app, failed, "the bus ok again", |_, body| {
        body["bus"]["status"] == "ok"
    })
    .await;
    // The subscriber came back and restored its subscriptions: counted in /metrics.
    eventually(WAIT, "the resubscription counted", async || {
        let text = app.metrics().await;
        let line = text
            .lines()
            .find(|l| l.starts_with("chat_bus_resubscribes_total "))
            .map(str::to_owned);
        match line.as_deref().and_then(|l| l.split(' ').nth(1)) {
            Some(n) if n.parse::<f64>().is_ok_and(|n| n >= 1.0) => Ok(()),
            _ => Err(line),
        }
    })
    .await;

    outage(
        &app,
        "bus",
        |up| {
            if up { redis.restart() } else { redis.kill() }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_answers_at_once_while_mysql_is_down() {
    let mut db = MariaDb::own();
    let url = db.fresh_database().await;
    // (Sqlite only for the settings it starts from: the URL is replaced.)
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.storage.url = StoreUrl::try_from(url).expect("a store URL");
        s.server.ready_tolerance = TOLERANCE;
    })
    .await;
    let (status, body) = ready(&app).await;
    assert_eq!(status, 200, "{body}");
    // Killed: new connections are refused, so the pool would wait its whole
    // storage.acquire_timeout (10 s) for one.
    outage(&app, "store", |up| {
        if up { db.restart() } else { db.stop("KILL") }
    })
    .await;
}
