//! Sharded pub/sub on a Redis Cluster of its own (issue 14, defect 4): when a slot moves to
//! another shard, Redis unsubscribes its channels on the old owner (SUNSUBSCRIBE). The node
//! notices the slot map change, subscribes on the new owner and tells its clients to resync
//! (1002); live delivery resumes without reconnecting.

use serde_json::json;
use std::time::Duration;

use crate::support::services::RedisCluster;
use crate::support::{Backend, Client, TestApp, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_moved_to_another_shard_is_subscribed_there_and_clients_resync() {
    let redis = tokio::task::block_in_place(|| RedisCluster::start(3));
    let url = redis.url();
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.bus.url = url.parse().unwrap();
        s.bus.sharded = true;
    })
    .await;
    let mut alice = Client::connect(&app, 1).await;
    let mut bob = Client::connect(&app, 2).await;
    let ack = alice.stored(2, "before").await;
    assert_eq!(ack["code"], 2100, "{ack}");
    bob.expect(2000).await;

    let channel = format!("{}:u:{{2}}", app.settings.bus.prefix);
    let slot = redis.slot(&channel);
    let to = (redis.owner(slot) + 1) % redis.nodes.len();
    tokio::task::block_in_place(|| redis.migrate_slot(slot, to));

    // Bob's node subscribes on the new owner, then asks its clients to resync.
    bob.expect(1002).await;
    alice.expect(1002).await;
    let mut n = 0;
    let live = eventually(
        Duration::from_secs(15),
        "a live push after the move",
        async || {
            n += 1;
            alice
                .send(json!({"type": 1, "recipient_id": 2, "content": format!("after-{n}")}))
                .await;
            let ack = alice.recv().await;
            if ack["code"] == 2100 {
                Ok(ack)
            } else {
                Err(ack)
            }
        },
    )
    .await;
    // Anything acknowledged 2101 meanwhile is in the sync; the 2100 one arrives live.
    loop {
        let pushed = bob.expect(2000).await;
        if pushed["id"] == live["id"] {
            break;
        }
    }
}
