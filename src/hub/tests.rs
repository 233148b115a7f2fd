//! The hub's own tests: reference counts, delivery to local connections only, presence,
//! the device limit, the sweep and the drain, over a bus that records what the hub asks of
//! it.

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;

use super::Hub;
use crate::bus::envelope::Control;
use crate::bus::{Bus, BusError, Envelope, Inbound, MemoryBus, Topic};
use crate::ids::UserId;
use crate::metrics::Metrics;
use crate::ws::outbox::Outbox;

/// What the hub asked of the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Call {
    Subscribe(Topic),
    Unsubscribe(Topic),
}

/// The product's `MemoryBus`, recording subscribe and unsubscribe calls; `others` pretends
/// that many other nodes hold every user topic (they count in a publish's receivers).
#[derive(Default)]
struct Recording {
    inner: MemoryBus,
    calls: Mutex<Vec<Call>>,
    others: usize,
}

impl Recording {
    fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock())
    }
}

#[async_trait]
impl Bus for Recording {
    fn attach(&self, inbound: Arc<dyn Inbound>) {
        self.inner.attach(inbound);
    }

    async fn publish(&self, topic: &Topic, payload: Bytes) -> Result<(), BusError> {
        self.inner.publish(topic, payload).await
    }

    async fn holders(&self, topic: &Topic) -> Result<usize, BusError> {
        let here = self.inner.holders(topic).await?;
        let others = if matches!(topic, Topic::User(_)) {
            self.others
        } else {
            0
        };
        Ok(here + others)
    }

    fn subscribe(&self, topic: Topic) {
        self.calls.lock().push(Call::Subscribe(topic.clone()));
        self.inner.subscribe(topic);
    }

    fn unsubscribe(&self, topic: Topic) {
        self.calls.lock().push(Call::Unsubscribe(topic.clone()));
        self.inner.unsubscribe(topic);
    }

    async fn ping(&self) -> Result<(), BusError> {
        Ok(())
    }
}

/// A hub over a recording bus: at most 2 devices per user, groups lingering `linger`.
fn hub(linger: Duration, others: usize) -> (Arc<Hub>, Arc<Recording>) {
    let bus = Arc::new(Recording {
        others,
        ..Recording::default()
    });
    let hub = Hub::new(
        bus.clone(),
        linger,
        2,
        Duration::ZERO,
        Arc::new(Metrics::default()),
    );
    assert_eq!(bus.take(), [Call::Subscribe(Topic::Control)]);
    (hub, bus)
}

/// An outbox without a socket: everything pushed stays queued, where a test can count it.
fn outbox() -> Arc<Outbox> {
    Arc::new(Outbox::new(None, 16))
}

fn user(id: UserId) -> Topic {
    Topic::User(id)
}

fn group(id: &str) -> Topic {
    Topic::Group(id.into())
}

#[tokio::test]
async fn first_connection_subscribes_and_the_last_unsubscribes() {
    let (hub, bus) = hub(Duration::ZERO, 0);
    assert!(hub.register(1, 10, outbox()));
    hub.add_groups(1, ["g".into(), "h".into()]);
    let mut calls = bus.take();
    calls[1..].sort_by_key(|c| format!("{c:?}"));
    assert_eq!(
        calls,
        [
            Call::Subscribe(user(1)),
            Call::Subscribe(group("g")),
            Call::Subscribe(group("h"))
        ]
    );

    assert!(
        !hub.register(1, 11, outbox()),
        "a second device is not the first"
    );
    hub.add_groups(1, ["g".into()]);
    assert_eq!(bus.take(), [], "the second device subscribes nothing");

    hub.unregister(1, 10);
    assert_eq!(bus.take(), [], "one device is still here");
    assert!(hub.is_local(1));

    hub.unregister(1, 11);
    let mut calls = bus.take();
    calls[1..].sort_by_key(|c| format!("{c:?}"));
    assert_eq!(
        calls,
        [
            Call::Unsubscribe(user(1)),
            Call::Unsubscribe(group("g")),
            Call::Unsubscribe(group("h"))
        ]
    );
    assert!(!hub.is_local(1));
}

#[tokio::test]
async fn a_group_is_held_while_any_member_is_here() {
    let (hub, bus) = hub(Duration::ZERO, 0);
    hub.register(1, 10, outbox());
    hub.add_groups(1, ["g".into()]);
    hub.register(2, 20, outbox());
    hub.add_groups(2, ["g".into()]);
    assert_eq!(
        bus.take(),
        [
            Call::Subscribe(user(1)),
            Call::Subscribe(group("g")),
            Call::Subscribe(user(2))
        ]
    );
    hub.unregister(1, 10);
    assert_eq!(bus.take(), [Call::Unsubscribe(user(1))]);
    hub.unregister(2, 20);
    assert_eq!(
        bus.take(),
        [Call::Unsubscribe(user(2)), Call::Unsubscribe(group("g"))]
    );
}

/// Paused time: the linger runs on tokio's clock, which advances only when every task
/// waits, so each step below happens at an exact instant.
#[tokio::test(start_paused = true)]
async fn group_release_waits_for_the_linger() {
    let linger = Duration::from_millis(100);
    let (hub, bus) = hub(linger, 0);
    hub.register(1, 10, outbox());
    hub.add_groups(1, ["g".into()]);
    hub.unregister(1, 10);
    assert_eq!(
        bus.take(),
        [
            Call::Subscribe(user(1)),
            Call::Subscribe(group("g")),
            Call::Unsubscribe(user(1))
        ],
        "the group's topic lingers"
    );

    // A member back within the linger finds the topic still held, also after the first
    // linger ran out.
    hub.register(2, 20, outbox());
    hub.add_groups(2, ["g".into()]);
    tokio::time::sleep(linger * 2).await;
    assert_eq!(bus.take(), [Call::Subscribe(user(2))]);

    // The last member gone: held for the linger, released after it.
    hub.unregister(2, 20);
    assert_eq!(bus.take(), [Call::Unsubscribe(user(2))]);
    tokio::time::sleep(linger / 2).await;
    assert_eq!(bus.take(), [], "still within the linger");
    tokio::time::sleep(linger).await;
    assert_eq!(bus.take(), [Call::Unsubscribe(group("g"))]);
}

#[tokio::test]
async fn membership_changes_from_the_control_topic() {
    let (hub, bus) = hub(Duration::ZERO, 0);
    hub.register(1, 10, outbox());
    bus.take();
    let control = |c: Control| hub.deliver(Topic::Control, Envelope::control(&c));
    control(Control::MemberAdded {
        group: "g".into(),
        user: 1,
    });
    control(Control::MemberAdded {
        group: "g".into(),
        user: 99,
    });
    assert_eq!(
        bus.take(),
        [Call::Subscribe(group("g"))],
        "only local users count"
    );
    control(Control::MemberRemoved {
        group: "g".into(),
        user: 1,
    });
    assert_eq!(bus.take(), [Call::Unsubscribe(group("g"))]);
    control(Control::MemberAdded {
        group: "g".into(),
        user: 1,
    });
    control(Control::GroupDeleted { group: "g".into() });
    assert_eq!(
        bus.take(),
        [Call::Subscribe(group("g")), Call::Unsubscribe(group("g"))]
    );
}

#[tokio::test]
async fn deliveries_reach_local_connections_only() {
    let (hub, _bus) = hub(Duration::ZERO, 0);
    let (a1, a2, b, c) = (outbox(), outbox(), outbox(), outbox());
    hub.register(1, 10, a1.clone());
    hub.register(1, 11, a2.clone());
    hub.register(2, 20, b.clone());
    hub.register(3, 30, c.clone());
    hub.add_groups(1, ["g".into()]);
    hub.add_groups(2, ["g".into()]);

    hub.deliver(user(1), Envelope::deliver(None, "{}"));
    assert_eq!((a1.len(), a2.len(), b.len(), c.len()), (1, 1, 0, 0));

    // The sender's own device is skipped.
    hub.deliver(group("g"), Envelope::deliver(Some(10), "{}"));
    assert_eq!((a1.len(), a2.len(), b.len(), c.len()), (1, 2, 1, 0));

    // Users and groups this node does not hold: nothing.
    hub.deliver(user(4), Envelope::deliver(None, "{}"));
    hub.deliver(group("other"), Envelope::deliver(None, "{}"));
    assert_eq!((a1.len(), a2.len(), b.len(), c.len()), (1, 2, 1, 0));
    assert_eq!(hub.connections(), 4);
}

#[tokio::test]
async fn a_device_over_the_limit_replaces_the_oldest() {
    let (hub, _bus) = hub(Duration::ZERO, 0);
    let (first, second, third) = (outbox(), outbox(), outbox());
    hub.register(1, 10, first.clone());
    hub.register(1, 11, second.clone());
    hub.register(1, 12, third.clone());
    assert!(first.is_stopped());
    assert!(!second.is_stopped() && !third.is_stopped());
    assert_eq!(hub.connections(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_drain_asks_every_connection_to_end_spread_over_the_window() {
    let (hub, _bus) = hub(Duration::ZERO, 0);
    let outboxes: Vec<_> = (1..=3).map(|_| outbox()).collect();
    for (i, outbox) in outboxes.iter().enumerate() {
        hub.register(i as UserId + 1, i as u64 + 1, outbox.clone());
    }
    let started = tokio::time::Instant::now();
    hub.drain(Duration::from_secs(3)).await;
    for outbox in &outboxes {
        assert!(outbox.is_draining());
    }
    // Three connections, three slices a second apart: the last asked 2 s after the first.
    assert_eq!(started.elapsed(), Duration::from_secs(2));
}

#[tokio::test]
async fn the_sweep_visits_one_slice() {
    let (hub, _bus) = hub(Duration::ZERO, 0);
    let (in_slice, also, elsewhere) = (outbox(), outbox(), outbox());
    hub.register(1, 1, in_slice.clone());
    hub.register(2, 1 + super::SWEEP_SLICES, also.clone());
    hub.register(3, 2, elsewhere.clone());
    hub.sweep(1, Duration::from_secs(60), super::STUCK_WRITE);
    assert_eq!(
        (in_slice.len(), also.len(), elsewhere.len()),
        (1, 1, 0),
        "pinged"
    );
    // Silence is counted in whole milliseconds of the wall clock: wait until one has passed.
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while in_slice.silent_for() == 0 || also.silent_for() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the clock did not move"
        );
        tokio::task::yield_now().await;
    }
    hub.sweep(1, Duration::ZERO, super::STUCK_WRITE);
    assert!(in_slice.is_stopped() && also.is_stopped(), "silent: closed");
    assert!(!elsewhere.is_stopped());
}

#[tokio::test]
async fn alone_with_a_user_no_echo() {
    let (hub, _bus) = hub(Duration::ZERO, 0);
    let first = hub.register(1, 10, outbox());
    hub.announce(1, first).await;
    assert!(!hub.needs_echo(1, 10), "no other device anywhere");
    let first = hub.register(1, 11, outbox());
    hub.announce(1, first).await;
    assert!(hub.needs_echo(1, 10), "another device here");
    assert!(hub.needs_echo(2, 20), "a user not here: copy");
}

/// Paused time: the answer comes 20 ms into the wait, so an announce that ends at 20 ms
/// ended on the answer, not on `PRESENCE_WAIT`.
#[tokio::test(start_paused = true)]
async fn another_node_answering_makes_the_user_shared() {
    let (hub, _bus) = hub(Duration::ZERO, 1);
    let first = hub.register(1, 10, outbox());
    let answer = {
        let hub = hub.clone();
        async move {
            // The other node answers this node's DeviceJoined.
            tokio::time::sleep(Duration::from_millis(20)).await;
            let present = Control::Present {
                user: 1,
                to: hub.node,
            };
            hub.deliver(user(1), Envelope::control(&present));
        }
    };
    let started = tokio::time::Instant::now();
    tokio::join!(hub.announce(1, first), answer);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(20) && waited < super::presence::PRESENCE_WAIT,
        "{waited:?}"
    );
    assert!(hub.needs_echo(1, 10), "the other node holds a device");
}

#[tokio::test]
async fn group_presence_tells_other_local_members() {
    let (hub, _bus) = hub(Duration::ZERO, 0);
    hub.register(1, 10, outbox());
    hub.add_groups(1, ["g".into()]);
    let alone = hub.group_presence(&"g".into(), 10);
    assert!(alone.holds_topic && !alone.other_local);
    hub.register(2, 20, outbox());
    hub.add_groups(2, ["g".into()]);
    assert!(hub.group_presence(&"g".into(), 10).other_local);
    assert!(!hub.group_presence(&"other".into(), 10).holds_topic);
}
