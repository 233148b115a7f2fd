//! Redis failing for real under a running gateway (killed, then restarted on its port):
//! messages sent meanwhile are stored and acknowledged 2101 (not delivered live), every
//! client is told to resync with 1002 once the subscriptions are back, the resync returns
//! what was missed, and live delivery resumes without reconnecting.

use serde_json::{Value, json};
use std::time::Duration;

use crate::support::services::Redis;
use crate::support::{Backend, Client, TestApp, eventually};

fn private(to: i64, content: &str, cid: &str) -> Value {
    json!({"type": 1, "recipient_id": to, "content": content, "client_msg_id": cid})
}

#[tokio::test]
async fn redis_outage_acks_2101_then_asks_clients_to_resync() {
    let mut redis = Redis::start();
    let url = redis.url();
    let app = TestApp::spawn_with(Backend::Sqlite, |s| s.bus.url = url.parse().unwrap()).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut bob = Client::connect(&app, 2).await;
    // A conversation (so the stranger counters, also in Redis, are not consulted again).
    for (from, to, who) in [(1, 2, "a"), (2, 1, "b"), (1, 2, "c")] {
        let (sender, receiver) = if from == 1 {
            (&mut alice, &mut bob)
        } else {
            (&mut bob, &mut alice)
        };
        sender.send(private(to, "hi", &format!("warm-{who}"))).await;
        sender.expect(2100).await;
        receiver.expect(2000).await;
    }

    redis.kill();
    alice.send(private(2, "during the outage", "out-1")).await;
    let ack = alice.recv().await;
    assert_eq!(ack["code"], 2101, "stored, not delivered live: {ack}");
    assert_eq!(ack["client_msg_id"], "out-1");

    redis.restart();
    assert_eq!(bob.expect(1002).await["code"], 1002);
    assert_eq!(alice.expect(1002).await["code"], 1002);
    let (unread, _) = bob.sync().await;
    let missed: Vec<&Value> = unread
        .iter()
        .filter(|m| m["content"] == "during the outage")
        .collect();
    assert_eq!(missed.len(), 1, "the resync returns it: {unread:?}");
    assert_eq!(missed[0]["id"], ack["id"]);

    // Live again on the same connections, once the publisher is back too.
    let mut n = 0;
    let what = "live delivery after the restart";
    let live = eventually(Duration::from_secs(15), what, async || {
        n += 1;
        alice.send(private(2, "after", &format!("after-{n}"))).await;
        let ack = alice.recv().await;
        match ack["code"].as_u64() {
            Some(2100) => Ok(ack),
            Some(2101) => Err(ack),
            _ => panic!("unexpected {ack}"),
        }
    })
    .await;
    let pushed = bob.expect(2000).await;
    assert_eq!(pushed["id"], live["id"]);
}
