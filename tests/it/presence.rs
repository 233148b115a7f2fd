//! Live presence of followed users (2900): online on the first connection anywhere, offline
//! once the last one anywhere closed, never to someone the user blocks, bounded when a
//! user flaps; on both backends and across two nodes.

use serde_json::json;
use std::time::Duration;

use crate::on_both_backends;
use crate::support::cluster::Cluster;
use crate::support::{Backend, Client, TestApp};

/// How long an offline presence may take: `OFFLINE_SETTLE` (2 s) plus the rate limit
/// (3 s) and margin. Only the negative checks wait it out.
const QUIET: Duration = Duration::from_secs(6);

async fn follow(app: &TestApp, user: i64, other: i64) {
    let (status, body) = app
        .post("/api/follows", user, json!({"user_id": other}))
        .await;
    assert_eq!(status, 201, "{body}");
}

async fn followers_see_online_then_offline(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    follow(&app, 1, 2).await;
    follow(&app, 3, 2).await;
    let mut follower = Client::connect(&app, 1).await;
    let mut blocked = Client::connect(&app, 3).await;
    let mut stranger = Client::connect(&app, 4).await;
    let (status, _) = app.post("/api/blocks", 2, json!({"user_id": 3})).await;
    assert_eq!(status, 201);
    let followed = Client::connect(&app, 2).await;
    let online = follower.expect(2900).await;
    assert_eq!(online["user_id"], 2, "{online}");
    assert_eq!(online["online"], true, "{online}");
    assert_eq!(online["content"], "online");
    followed.close().await;
    let offline = follower.expect(2900).await;
    assert_eq!(offline["user_id"], 2, "{offline}");
    assert_eq!(offline["online"], false, "{offline}");
    // The blocked follower and a non-follower heard nothing (both were published before
    // the follower's offline, to the same node).
    for other in [&mut blocked, &mut stranger] {
        other.expect_nothing_pending().await;
        assert!(
            other.presence_seen().is_empty(),
            "{:?}",
            other.presence_seen()
        );
    }
}

async fn a_second_device_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    follow(&app, 1, 2).await;
    let mut follower = Client::connect(&app, 1).await;
    let phone = Client::connect(&app, 2).await;
    assert_eq!(follower.expect(2900).await["online"], true);
    let laptop = Client::connect(&app, 2).await;
    phone.close().await;
    // The laptop still holds the user: no offline, and no second online.
    follower.pings_within(QUIET).await;
    laptop.close().await;
    assert_eq!(follower.expect(2900).await["online"], false);
}

async fn flapping_is_coalesced(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    follow(&app, 1, 2).await;
    let mut follower = Client::connect(&app, 1).await;
    for _ in 0..10 {
        Client::connect(&app, 2).await.close().await;
    }
    let stay = Client::connect(&app, 2).await;
    // Whatever came in between, the last word is "online", and there were few words: at
    // most one per 3 s.
    let mut told = vec![follower.expect(2900).await];
    let quiet = tokio::time::Instant::now() + QUIET;
    while let Ok(frame) = tokio::time::timeout_at(quiet, follower.expect(2900)).await {
        told.push(frame);
    }
    assert!(told.len() <= 3, "10 reconnects told as {told:?}");
    assert_eq!(told.last().unwrap()["online"], true, "{told:?}");
    stay.close().await;
    assert_eq!(follower.expect(2900).await["online"], false);
}

on_both_backends!(
    followers_see_online_then_offline,
    a_second_device_changes_nothing,
    flapping_is_coalesced,
);

async fn cluster_follow(cluster: &Cluster, user: i64, other: i64) {
    let (status, body) = cluster
        .request(
            0,
            reqwest::Method::POST,
            "/api/follows",
            user,
            Some(json!({"user_id": other})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_crosses_nodes_and_waits_for_the_last_device() {
    let cluster = Cluster::start(2).await;
    cluster_follow(&cluster, 1, 2).await;
    let mut follower = cluster.connect(0, 1).await;
    cluster.wait_subscribers("chat:u:1", 1);
    let far = cluster.connect(1, 2).await;
    let online = follower.expect(2900).await;
    assert_eq!(
        (online["user_id"].clone(), online["online"].clone()),
        (json!(2), json!(true))
    );
    // A device on the follower's node too, then the far one leaves: the user is still
    // online somewhere, so nothing is told.
    let near = cluster.connect(0, 2).await;
    far.close().await;
    cluster.wait_subscribers("chat:u:2", 1);
    // (Node 0 may repeat "online" for its own first device: a state, not a count.)
    let quiet = tokio::time::Instant::now() + QUIET;
    while let Ok(frame) = tokio::time::timeout_at(quiet, follower.expect(2900)).await {
        assert_eq!(
            frame["online"], true,
            "no offline while a device is left: {frame}"
        );
    }
    near.close().await;
    let mut last = follower.expect(2900).await;
    while last["online"] == true {
        last = follower.expect(2900).await;
    }
    assert_eq!(last["user_id"], 2, "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_edit_reaches_members_on_another_node() {
    let cluster = Cluster::start(2).await;
    let (status, group) = cluster
        .request(
            0,
            reqwest::Method::POST,
            "/api/groups",
            1,
            Some(json!({"name": "before", "members": [2]})),
        )
        .await;
    assert_eq!(status, 201, "{group}");
    let group = group["id"].as_str().unwrap().to_string();
    let mut member = cluster.connect(1, 2).await;
    cluster.wait_subscribers(&format!("chat:g:{group}"), 1);
    let (status, edited) = cluster
        .request(
            0,
            reqwest::Method::PATCH,
            &format!("/api/groups/{group}"),
            1,
            Some(json!({"name": "after"})),
        )
        .await;
    assert_eq!(status, 200, "{edited}");
    let update = member.expect(2800).await;
    assert_eq!(update["change"], "updated", "{update}");
    assert_eq!(update["name"], "after");
    let (_, got) = cluster.get(1, &format!("/api/groups/{group}"), 2).await;
    assert_eq!(got["name"], "after");
    assert_eq!(got["my_role"], "member");
}
