//! Several gateway processes behind haproxy, routed through Redis, on MariaDB: the
//! deployment behaves as one chat server.

use serde_json::json;
use std::time::Duration;

use crate::support::cluster::Cluster;
use crate::support::{Client, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_message_crosses_nodes() {
    let cluster = Cluster::start(2).await;
    let mut alice = cluster.connect(0, 1).await;
    let mut bob = cluster.connect(1, 2).await;
    cluster.wait_subscribers("chat:u:2", 1);
    let ack = alice.private(2, "across nodes").await;
    assert_eq!(ack["code"], 2100, "{ack}");
    let pushed = bob.expect(2000).await;
    assert_eq!(pushed["content"], "across nodes");
    assert_eq!(pushed["id"], ack["id"]);
    assert_eq!(pushed["source"], "live");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_recipient_syncs_on_another_node() {
    let cluster = Cluster::start(2).await;
    let mut alice = cluster.connect(0, 1).await;
    let ack = alice.private(2, "while you were away").await;
    assert_eq!(ack["code"], 2101, "{ack}");
    let mut bob = cluster.connect(1, 2).await;
    let (messages, end) = bob.sync().await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["id"], ack["id"]);
    assert_eq!(end["next_cursor"], "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_on_different_nodes_all_receive() {
    let cluster = Cluster::start(3).await;
    let mut alice_phone = cluster.connect(0, 1).await;
    let mut alice_laptop = cluster.connect(2, 1).await;
    let mut bob_phone = cluster.connect(1, 2).await;
    let mut bob_laptop = cluster.connect(2, 2).await;
    cluster.wait_subscribers("chat:u:2", 2);
    cluster.wait_subscribers("chat:u:1", 2);
    let ack = alice_phone.private(2, "to all your devices").await;
    assert_eq!(ack["code"], 2100, "{ack}");
    for device in [&mut bob_phone, &mut bob_laptop, &mut alice_laptop] {
        let pushed = device.expect(2000).await;
        assert_eq!(pushed["id"], ack["id"]);
    }
    alice_phone.expect_nothing_pending().await;
}

/// A lone device's sends are not copied to its own topic; a second device joining on
/// another node must still get the copies of everything sent once its 1000 arrived, with
/// no waiting for subscriptions: the presence handshake happens before the 1000.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_joining_on_another_node_gets_copies_at_once() {
    let cluster = Cluster::start(2).await;
    let mut phone = cluster.connect(0, 1).await;
    let mut bob = cluster.connect(1, 2).await;
    let first = phone.private(2, "while alone").await;
    assert_eq!(first["code"], 2100, "{first}");
    assert_eq!(bob.expect(2000).await["id"], first["id"]);
    // Bob answers, so the stranger limit does not get in the way.
    let answer = bob.private(1, "hi").await;
    assert_eq!(phone.expect(2000).await["id"], answer["id"]);

    let mut laptop = cluster.connect(1, 1).await;
    let second = phone.private(2, "now with a laptop").await;
    assert_eq!(second["code"], 2100, "{second}");
    let copy = laptop.expect(2000).await;
    assert_eq!(copy["id"], second["id"]);
    assert_eq!(copy["source"], "live");
    assert_eq!(bob.expect(2000).await["id"], second["id"]);

    // And the other way: the phone's node answered the laptop's announcement.
    let third = laptop.private(2, "from the laptop").await;
    assert_eq!(third["code"], 2100, "{third}");
    assert_eq!(phone.expect(2000).await["id"], third["id"]);
    assert_eq!(bob.expect(2000).await["id"], third["id"]);
    phone.expect_nothing_pending().await;
    laptop.expect_nothing_pending().await;

    // A phone joining the node where the laptop is alone with user 1 is copied too.
    laptop.close().await;
    let mut tablet = cluster.connect(0, 1).await;
    let fourth = phone.private(2, "phone and tablet on one node").await;
    assert_eq!(fourth["code"], 2100, "{fourth}");
    assert_eq!(tablet.expect(2000).await["id"], fourth["id"]);
    assert_eq!(bob.expect(2000).await["id"], fourth["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_members_on_three_nodes_each_get_it_once() {
    let cluster = Cluster::start(3).await;
    let (status, group) = cluster
        .request(
            0,
            reqwest::Method::POST,
            "/api/groups",
            1,
            Some(json!({"name": "spread", "members": [2, 3]})),
        )
        .await;
    assert_eq!(status, 201, "{group}");
    let group = group["id"].as_str().unwrap().to_string();
    let mut a = cluster.connect(0, 1).await;
    let mut a2 = cluster.connect(1, 1).await;
    let mut b = cluster.connect(1, 2).await;
    let mut c = cluster.connect(2, 3).await;
    cluster.wait_subscribers(&format!("chat:g:{group}"), 3);
    let ack = a.group(&group, "hello everyone").await;
    assert_eq!(ack["code"], 2100, "{ack}");
    for member in [&mut a2, &mut b, &mut c] {
        let pushed = member.expect(2000).await;
        assert_eq!(pushed["id"], ack["id"]);
        assert_eq!(pushed["group_id"], group.as_str());
        member.expect_nothing_pending().await;
    }
    a.expect_nothing_pending().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_member_stops_receiving_on_another_node() {
    let cluster = Cluster::start(2).await;
    let (status, group) = cluster
        .request(
            0,
            reqwest::Method::POST,
            "/api/groups",
            1,
            Some(json!({"name": "g", "members": [2, 3]})),
        )
        .await;
    assert_eq!(status, 201);
    let group = group["id"].as_str().unwrap().to_string();
    let mut owner = cluster.connect(0, 1).await;
    let mut removed = cluster.connect(1, 2).await;
    let mut stays = cluster.connect(1, 3).await;
    cluster.wait_subscribers(&format!("chat:g:{group}"), 2);
    assert_eq!(owner.group(&group, "before").await["code"], 2100);
    removed.expect(2000).await;
    stays.expect(2000).await;

    // Removed through node 0; the member's connection is on node 1.
    let (status, _) = cluster
        .request(
            0,
            reqwest::Method::DELETE,
            &format!("/api/groups/{group}/members/2"),
            1,
            None,
        )
        .await;
    assert_eq!(status, 204);
    // The removal was announced on the control channel before the REST answer; node 1
    // reads it from Redis before any later group message, so the very next message
    // already skips the removed member.
    let ack = owner.group(&group, "after").await;
    assert_eq!(ack["code"], 2100, "{ack}");
    assert_eq!(stays.expect(2000).await["id"], ack["id"]);
    // Told that the conversation list changed (2800), across nodes; nothing else.
    let update = removed.expect(2800).await;
    assert_eq!(update["change"], "left", "{update}");
    assert_eq!(update["group_id"], group.as_str(), "{update}");
    removed.expect_nothing_pending().await;
    removed
        .send(json!({"type": 4, "group_id": group, "content": "still here?"}))
        .await;
    assert_eq!(removed.expect(4003).await["code"], 4003);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stranger_limit_holds_across_nodes() {
    let cluster = Cluster::start(2).await;
    let mut on_a = cluster.connect(0, 1).await;
    let mut on_b = cluster.connect(1, 1).await;
    // The sender alternates nodes; each of its devices also gets a copy of the other's.
    let ack = on_a.private(9, "hello 0").await;
    assert_eq!(ack["code"], 2101, "{ack}");
    on_b.expect(2000).await;
    let ack = on_b.private(9, "hello 1").await;
    assert_eq!(ack["code"], 2101, "{ack}");
    on_a.expect(2000).await;
    let ack = on_a.private(9, "hello 2").await;
    assert_eq!(ack["code"], 2101, "{ack}");
    on_b.expect(2000).await;
    let refused = on_b.private(9, "one too many").await;
    assert_eq!(refused["code"], 4029, "{refused}");
    let refused = on_a.private(9, "and again").await;
    assert_eq!(refused["code"], 4029, "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_seen_from_every_node() {
    let cluster = Cluster::start(2).await;
    // Asked of node 1, as user 1, about user 5 (who connects to node 0).
    let online = async || cluster.get(1, "/api/users/5/presence", 1).await.1["online"].clone();
    assert_eq!(online().await, false);
    let five = cluster.connect(0, 5).await;
    cluster.wait_subscribers("chat:u:5", 1);
    assert_eq!(online().await, true);
    five.close().await;
    cluster.wait_subscribers("chat:u:5", 0);
    assert_eq!(online().await, false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_node_clients_reconnect_through_haproxy_and_resync() {
    let mut cluster = Cluster::start(2).await;
    // Pin the victim to node 0 and the sender to node 1.
    let mut victim = cluster.connect(0, 20).await;
    let mut sender = cluster.connect(1, 21).await;
    let mut ids = Vec::new();
    // They are talking (no stranger limit in the way).
    assert_eq!(victim.private(21, "hi").await["code"], 2100);
    sender.expect(2000).await;
    let ack = sender.private(20, "before the crash").await;
    assert_eq!(ack["code"], 2100, "{ack}");
    victim.expect(2000).await;

    cluster.kill_node(0);
    assert!(
        victim.next().await.is_none(),
        "the killed node's socket must end"
    );
    for i in 0..5 {
        let ack = sender.private(20, &format!("while reconnecting {i}")).await;
        assert!(ack["code"] == 2101 || ack["code"] == 2100, "{ack}");
        ids.push(ack["id"].as_str().unwrap().to_string());
    }
    // Reconnect through the load balancer, as a client does: retry until a node takes it
    // (haproxy needs a few health checks to stop routing to the dead node).
    let mut victim = reconnect(&cluster, 20).await;
    let (messages, end) = victim.sync().await;
    let got: Vec<String> = messages
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    for id in &ids {
        assert!(
            got.contains(id),
            "message {id} missing from the resync: {got:?}"
        );
    }
    assert_eq!(end["next_cursor"], "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_through_the_load_balancer() {
    let cluster = Cluster::start(3).await;
    let mut a = cluster.connect_lb(31).await;
    let mut b = cluster.connect_lb(32).await;
    cluster.wait_subscribers("chat:u:32", 1);
    let ack = a.private(32, "via haproxy").await;
    assert_eq!(ack["code"], 2100, "{ack}");
    assert_eq!(b.expect(2000).await["id"], ack["id"]);
    let reply = b.private(31, "back").await;
    assert_eq!(reply["code"], 2100, "{reply}");
    assert_eq!(a.expect(2000).await["id"], reply["id"]);
}

/// Connects through haproxy, retrying refused handshakes for up to 10 s.
async fn reconnect(cluster: &Cluster, user: i64) -> Client {
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let what = "a node taking the reconnect";
    eventually(Duration::from_secs(10), what, async || {
        let mut request = cluster.lb_url().into_client_request().unwrap();
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {}", cluster.token(user)).parse().unwrap(),
        );
        let mut client = Client::open(request, user)
            .await
            .map_err(|e| e.to_string())?;
        match client.next().await {
            Some(Message::Text(text)) => {
                let hello: serde_json::Value = serde_json::from_str(&text).unwrap();
                assert_eq!(hello["code"], 1000, "{hello}");
                Ok(client)
            }
            other => Err(format!("instead of the 1000 frame: {other:?}")),
        }
    })
    .await
}
