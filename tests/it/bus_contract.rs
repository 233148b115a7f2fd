//! Contract tests of the `Bus` seam, written once and run against every implementation:
//! `MemoryBus`, `RedisBus` on one redis-server, and `RedisBus` with sharded pub/sub on a
//! 3-master Redis Cluster. Two `RedisBus` instances on one Redis are two nodes.
//!
//! Subscriptions take effect asynchronously on Redis, so tests poll the subscriber count
//! (PUBSUB NUMSUB / SHARDNUMSUB) before relying on one; nothing sleeps to synchronise.

use bytes::Bytes;
use chat_gateway::bus::envelope::Control;
use chat_gateway::bus::{Bus, Envelope, Inbound, MemoryBus, RedisBus, Topic};
use chat_gateway::settings::{BusSettings, BusUrl};
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::contract;
use crate::support::{Backing, eventually};

const DEADLINE: Duration = Duration::from_secs(20);

/// An `Inbound` that records what it is handed.
#[derive(Default)]
struct Recorder {
    deliveries: Mutex<Vec<(Topic, Bytes)>>,
    resyncs: AtomicUsize,
}

impl Inbound for Recorder {
    fn deliver(&self, topic: Topic, payload: Bytes) {
        self.deliveries.lock().push((topic, payload));
    }

    fn resync(&self) {
        self.resyncs.fetch_add(1, Ordering::SeqCst);
    }
}

impl Recorder {
    /// Waits until `n` deliveries arrived; all of them.
    async fn wait_for(&self, n: usize) -> Vec<(Topic, Bytes)> {
        eventually(DEADLINE, &format!("{n} deliveries"), async || {
            let deliveries = self.deliveries.lock();
            if deliveries.len() >= n {
                Ok(deliveries.clone())
            } else {
                Err(deliveries.len())
            }
        })
        .await
    }
}

/// A bus (a node) on the test's backing, with a recorder attached; `redis` is set for
/// Redis buses.
struct Node {
    bus: Arc<dyn Bus>,
    redis: Option<Arc<RedisBus>>,
    inbound: Arc<Recorder>,
}

impl Node {
    async fn on(backing: &Backing) -> Node {
        let inbound = Arc::new(Recorder::default());
        let (bus, redis): (Arc<dyn Bus>, _) = match backing.settings() {
            None => (Arc::new(MemoryBus::new()), None),
            Some(settings) => {
                let BusUrl::Redis(url) = &settings.url else {
                    panic!("a Redis backing names a redis:// URL")
                };
                let redis = Arc::new(RedisBus::connect(url, &settings).await.expect("connecting"));
                (redis.clone(), Some(redis))
            }
        };
        bus.attach(inbound.clone());
        Node {
            bus,
            redis,
            inbound,
        }
    }

    /// Publishes on this node; how many nodes held `topic` (`publish_counted`).
    async fn reach(&self, topic: &Topic, payload: Bytes) -> usize {
        self.bus.publish_counted(topic, payload).await.unwrap()
    }

    /// Waits until `n` nodes hold `topic` (at once for the memory bus, where subscribing
    /// is synchronous).
    async fn wait_subscribers(&self, topic: &Topic, n: usize) {
        let what = format!("{topic:?} reaching {n} subscribers");
        eventually(DEADLINE, &what, async || {
            self.bus.holders(topic).await.is_ok_and(|count| count == n)
        })
        .await;
    }

    async fn subscribe(&self, topic: Topic) {
        self.bus.subscribe(topic.clone());
        self.wait_subscribers(&topic, 1).await;
    }

    /// Waits until the bus reports `user` online (or offline) as `online` says.
    async fn wait_online(&self, user: i64, online: bool) {
        let what = format!("user {user} online={online}");
        eventually(DEADLINE, &what, async || {
            self.bus.user_online(user).await.unwrap() == online
        })
        .await;
    }

    /// Waits until `ping` succeeds (`up`) or fails (not `up`).
    async fn wait_ping(&self, up: bool) {
        let what = if up {
            "ping recovering"
        } else {
            "ping failing with redis down"
        };
        eventually(DEADLINE, what, async || self.bus.ping().await.is_ok() == up).await;
    }
}

fn frame(i: usize) -> String {
    format!(r#"{{"code":2000,"n":{i}}}"#)
}

async fn publish_without_subscribers_counts_zero(backing: Backing) {
    let node = Node::on(&backing).await;
    let payload = Envelope::deliver(None, &frame(0));
    assert_eq!(node.reach(&Topic::User(1), payload.clone()).await, 0);
    let group = Topic::Group("nobody".into());
    assert_eq!(node.reach(&group, payload).await, 0);
    assert!(node.inbound.deliveries.lock().is_empty());
}

async fn delivery_reaches_the_attached_inbound(backing: Backing) {
    let node = Node::on(&backing).await;
    let user = Topic::User(7);
    let group = Topic::Group("team-1".into());
    node.subscribe(user.clone()).await;
    node.subscribe(group.clone()).await;
    let to_user = Envelope::deliver(Some(42), &frame(1));
    let to_group = Envelope::deliver(None, &frame(2));
    assert_eq!(node.reach(&user, to_user.clone()).await, 1);
    assert_eq!(node.reach(&group, to_group.clone()).await, 1);
    assert_eq!(
        node.inbound.wait_for(2).await,
        vec![(user, to_user), (group, to_group)]
    );
}

async fn deliveries_keep_order_and_skip(backing: Backing) {
    let node = Node::on(&backing).await;
    let group = Topic::Group("ordered".into());
    node.subscribe(group.clone()).await;
    let count = 200;
    for i in 0..count {
        let skip = (i % 3 != 0).then_some(i as u64 + 1);
        let payload = Envelope::deliver(skip, &frame(i));
        assert_eq!(node.reach(&group, payload).await, 1);
    }
    let got = node.inbound.wait_for(count).await;
    assert_eq!(got.len(), count, "no duplicates");
    for (i, (topic, payload)) in got.into_iter().enumerate() {
        assert_eq!(topic, group);
        let expected = Envelope::Deliver {
            skip: (i % 3 != 0).then_some(i as u64 + 1),
            frame: Bytes::from(frame(i)),
        };
        assert_eq!(Envelope::decode(payload), Some(expected), "delivery {i}");
    }
}

async fn unsubscribe_stops_delivery(backing: Backing) {
    let node = Node::on(&backing).await;
    let (gone, kept) = (Topic::User(1), Topic::User(2));
    node.subscribe(gone.clone()).await;
    node.subscribe(kept.clone()).await;
    node.bus.unsubscribe(gone.clone());
    node.wait_subscribers(&gone, 0).await;
    let payload = Envelope::deliver(None, &frame(0));
    assert_eq!(node.reach(&gone, payload.clone()).await, 0);
    // Deliveries arrive in publish order: had `gone` been delivered, it would come first.
    assert_eq!(node.reach(&kept, payload.clone()).await, 1);
    assert_eq!(node.inbound.wait_for(1).await, vec![(kept, payload)]);
}

async fn changes_apply_in_call_order(backing: Backing) {
    let node = Node::on(&backing).await;
    let churned = Topic::Group("churn".into());
    let dropped = Topic::Group("dropped".into());
    for _ in 0..50 {
        node.bus.subscribe(churned.clone());
        node.bus.unsubscribe(churned.clone());
        node.bus.subscribe(dropped.clone());
    }
    node.bus.subscribe(churned.clone());
    node.bus.unsubscribe(dropped.clone());
    // Never subscribed: must not disturb the others (no empty UNSUBSCRIBE).
    node.bus.unsubscribe(Topic::User(404));
    node.wait_subscribers(&churned, 1).await;
    node.wait_subscribers(&dropped, 0).await;
    let payload = Envelope::deliver(None, &frame(0));
    assert_eq!(node.reach(&dropped, payload.clone()).await, 0);
    assert_eq!(node.reach(&churned, payload.clone()).await, 1);
    assert_eq!(node.inbound.wait_for(1).await, vec![(churned, payload)]);
}

async fn control_topic_carries_membership_changes(backing: Backing) {
    let node = Node::on(&backing).await;
    node.subscribe(Topic::Control).await;
    let change = Control::MemberRemoved {
        group: "g1".into(),
        user: 3,
    };
    let payload = Envelope::control(&change);
    assert_eq!(node.reach(&Topic::Control, payload).await, 1);
    let got = node.inbound.wait_for(1).await;
    assert_eq!(got[0].0, Topic::Control);
    assert_eq!(
        Envelope::decode(got[0].1.clone()),
        Some(Envelope::Control(change))
    );
}

async fn user_online_follows_subscriptions(backing: Backing) {
    let node = Node::on(&backing).await;
    assert!(!node.bus.user_online(5).await.unwrap());
    node.bus.subscribe(Topic::User(5));
    node.wait_online(5, true).await;
    assert!(!node.bus.user_online(6).await.unwrap());
    node.bus.unsubscribe(Topic::User(5));
    node.wait_online(5, false).await;
    node.bus.ping().await.unwrap();
}

/// Presence is its own operation: plain `publish` reports nothing, `holders` counts the
/// nodes holding a topic, and `publish_counted` agrees with it.
async fn presence_is_separate_from_publish(backing: Backing) {
    let node = Node::on(&backing).await;
    let topic = Topic::Group("presence".into());
    assert_eq!(node.bus.holders(&topic).await.unwrap(), 0);
    node.bus
        .publish(&topic, Envelope::deliver(None, &frame(0)))
        .await
        .unwrap();
    node.subscribe(topic.clone()).await;
    assert_eq!(node.bus.holders(&topic).await.unwrap(), 1);
    let payload = Envelope::deliver(None, &frame(1));
    node.bus.publish(&topic, payload.clone()).await.unwrap();
    // Only what was published while the topic was held arrives.
    assert_eq!(
        node.inbound.wait_for(1).await,
        vec![(topic.clone(), payload)]
    );
    node.bus.unsubscribe(topic.clone());
    node.wait_subscribers(&topic, 0).await;
    let after = Envelope::deliver(None, &frame(2));
    assert_eq!(node.reach(&topic, after).await, 0);
}

async fn two_nodes_each_receive(backing: Backing) {
    let (a, b) = (Node::on(&backing).await, Node::on(&backing).await);
    let group = Topic::Group("shared".into());
    a.bus.subscribe(group.clone());
    b.bus.subscribe(group.clone());
    a.wait_subscribers(&group, 2).await;
    let first = Envelope::deliver(None, &frame(1));
    let second = Envelope::deliver(None, &frame(2));
    assert_eq!(a.reach(&group, first.clone()).await, 2);
    assert_eq!(b.reach(&group, second.clone()).await, 2);
    let both = vec![(group.clone(), first), (group.clone(), second)];
    assert_eq!(a.inbound.wait_for(2).await, both);
    assert_eq!(b.inbound.wait_for(2).await, both);

    // Presence is cluster-wide: b sees a's user.
    a.bus.subscribe(Topic::User(9));
    b.wait_online(9, true).await;

    b.bus.unsubscribe(group.clone());
    a.wait_subscribers(&group, 1).await;
    let third = Envelope::deliver(None, &frame(3));
    assert_eq!(b.reach(&group, third.clone()).await, 1);
    assert_eq!(a.inbound.wait_for(3).await[2], (group, third));
}

async fn reconnects_resubscribes_and_resyncs(mut backing: Backing) {
    let node = Node::on(&backing).await;
    let redis = node.redis.clone().expect("a redis bus");
    let (kept, added, dropped) = (Topic::User(1), Topic::User(2), Topic::Group("g".into()));
    node.subscribe(kept.clone()).await;
    node.subscribe(dropped.clone()).await;
    assert_eq!(node.inbound.resyncs.load(Ordering::SeqCst), 0);

    backing.redis_server().kill();
    node.wait_ping(false).await;
    let payload = Envelope::deliver(None, &frame(0));
    assert!(
        node.bus
            .publish_counted(&kept, payload.clone())
            .await
            .is_err()
    );
    // Changes made while Redis is down neither block nor get lost.
    let queued = Instant::now();
    node.bus.subscribe(added.clone());
    node.bus.unsubscribe(dropped.clone());
    assert!(queued.elapsed() < Duration::from_millis(50));

    backing.redis_server().restart();
    eventually(DEADLINE, "resync after reconnect", async || {
        node.inbound.resyncs.load(Ordering::SeqCst) >= 1
    })
    .await;
    assert!(redis.stats().resubscribes >= 1);
    node.wait_subscribers(&kept, 1).await;
    node.wait_subscribers(&added, 1).await;
    node.wait_subscribers(&dropped, 0).await;
    node.wait_ping(true).await;
    assert_eq!(node.reach(&kept, payload.clone()).await, 1);
    assert_eq!(node.reach(&added, payload.clone()).await, 1);
    assert_eq!(node.reach(&dropped, payload.clone()).await, 0);
    assert_eq!(
        node.inbound.wait_for(2).await,
        vec![(kept, payload.clone()), (added, payload)]
    );
    assert_eq!(redis.stats().lagged, 0);
}

#[tokio::test]
async fn redis_connect_fails_fast_without_redis() {
    let port = crate::support::services::free_port();
    let settings = BusSettings {
        url: format!("redis://user:hunter2@127.0.0.1:{port}")
            .parse()
            .unwrap(),
        ..BusSettings::default()
    };
    let start = Instant::now();
    let BusUrl::Redis(url) = &settings.url else {
        unreachable!()
    };
    let error = RedisBus::connect(url, &settings)
        .await
        .err()
        .expect("no redis listens there");
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(!error.to_string().contains("hunter2"), "{error}");
}

contract! {
    every: [
        publish_without_subscribers_counts_zero,
        delivery_reaches_the_attached_inbound,
        deliveries_keep_order_and_skip,
        unsubscribe_stops_delivery,
        changes_apply_in_call_order,
        control_topic_carries_membership_changes,
        user_online_follows_subscriptions,
        presence_is_separate_from_publish,
    ],
    memory: [],
    redis: [two_nodes_each_receive, reconnects_resubscribes_and_resyncs],
    sharded: [two_nodes_each_receive],
}
