//! Typing (type 10): forwarded as 2600 to the other participants' devices and the sender's
//! other devices, never stored, at most one "start" per connection and conversation every
//! 3 s (4291 otherwise), a "stop" only after a forwarded "start", groups for members only,
//! a blocked sender's typing refused.

use serde_json::{Value, json};
use std::time::Duration;

use crate::on_both_backends;
use crate::support::{Backend, Client, TestApp};

fn start_to(user: i64) -> Value {
    json!({"type": 10, "recipient_id": user, "content": "start"})
}

fn stop_to(user: i64) -> Value {
    json!({"type": 10, "recipient_id": user, "content": "stop"})
}

async fn private_typing_reaches_the_peer_and_my_other_devices(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut phone = Client::connect(&app, 1).await;
    let mut laptop = Client::connect(&app, 1).await;
    let mut b1 = Client::connect(&app, 2).await;
    let mut b2 = Client::connect(&app, 2).await;
    // "start" is the default state.
    phone.send(json!({"type": 10, "recipient_id": 2})).await;
    for device in [&mut b1, &mut b2, &mut laptop] {
        let event = device.expect(2600).await;
        assert_eq!(event["state"], "start", "{event}");
        assert_eq!(event["content"], "start");
        assert_eq!(event["sender_id"], 1);
        assert_eq!(event["recipient_id"], 2);
        assert_eq!(event["from"], "1->2");
        assert!(event.get("group_id").is_none(), "{event}");
    }
    // A stop passes at once (no rate), but only once per forwarded start.
    phone.send(stop_to(2)).await;
    phone.send(stop_to(2)).await;
    for device in [&mut b1, &mut b2, &mut laptop] {
        let event = device.expect(2600).await;
        assert_eq!(event["state"], "stop", "{event}");
        device.expect_nothing_pending().await;
    }
    // A stop without a start is dropped, silently.
    b1.send(stop_to(1)).await;
    b1.expect_nothing_pending().await;
    phone.expect_nothing_pending().await;
    laptop.expect_nothing_pending().await;
}

async fn typing_is_never_stored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut bob = Client::connect(&app, 2).await;
    alice.send(start_to(2)).await;
    assert_eq!(bob.expect(2600).await["state"], "start");
    alice.send(stop_to(2)).await;
    assert_eq!(bob.expect(2600).await["state"], "stop");
    let (messages, _) = bob.sync().await;
    assert!(messages.is_empty(), "{messages:?}");
    let (history, _) = bob.history(1, "", None).await;
    assert!(history.is_empty(), "{history:?}");
    assert_eq!(app.sql_int("SELECT COUNT(*) FROM messages").await, 0);
}

async fn one_start_per_conversation_every_three_seconds(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut alice_laptop = Client::connect(&app, 1).await;
    let mut bob = Client::connect(&app, 2).await;
    let mut carol = Client::connect(&app, 3).await;
    alice.send(start_to(2)).await;
    assert_eq!(bob.expect(2600).await["state"], "start");
    assert_eq!(alice_laptop.expect(2600).await["recipient_id"], 2);

    alice.send(start_to(2)).await;
    let refused = alice.expect(4291).await;
    assert_eq!(refused["recipient_id"], 2, "{refused}");
    let wait = refused["retry_after_ms"].as_u64().expect("retry_after_ms");
    assert!((1..=3000).contains(&wait), "{refused}");
    bob.expect_nothing_pending().await;

    // Per conversation: another peer takes a start at once.
    alice.send(start_to(3)).await;
    assert_eq!(carol.expect(2600).await["sender_id"], 1);
    assert_eq!(alice_laptop.expect(2600).await["recipient_id"], 3);
    // Per connection: the laptop's own start to bob passes.
    alice_laptop.send(start_to(2)).await;
    assert_eq!(bob.expect(2600).await["state"], "start");
    assert_eq!(alice.expect(2600).await["recipient_id"], 2);

    // Once the wait the server named has passed, the phone's next start is forwarded.
    tokio::time::sleep(Duration::from_millis(wait)).await;
    alice.send(start_to(2)).await;
    let event = bob.expect(2600).await;
    assert_eq!(event["state"], "start");
    assert_eq!(alice_laptop.expect(2600).await["recipient_id"], 2);
    alice.expect_nothing_pending().await;
}

async fn group_typing_for_members_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let group = app.create_group(1, &[2, 3]).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut bob = Client::connect(&app, 2).await;
    let mut carol = Client::connect(&app, 3).await;
    let mut outsider = Client::connect(&app, 4).await;
    alice
        .send(json!({"type": 10, "group_id": group, "content": "start"}))
        .await;
    for member in [&mut bob, &mut carol] {
        let event = member.expect(2600).await;
        assert_eq!(event["group_id"], group.as_str(), "{event}");
        assert_eq!(event["sender_id"], 1);
        assert_eq!(event["from"], format!("1->{group}"));
        assert!(event.get("recipient_id").is_none(), "{event}");
    }
    alice.expect_nothing_pending().await;

    outsider.send(json!({"type": 10, "group_id": group})).await;
    let refused = outsider.expect(4003).await;
    assert!(
        refused["reason"].as_str().unwrap().contains("not a member"),
        "{refused}"
    );
    outsider
        .send(json!({"type": 10, "group_id": "no-such-group"}))
        .await;
    outsider.expect(4004).await;
    for member in [&mut alice, &mut bob, &mut carol] {
        member.expect_nothing_pending().await;
    }
}

async fn a_blocked_senders_typing_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, _) = app.put("/api/blocks/1", 2).await;
    assert_eq!(status, 201);
    let mut alice = Client::connect(&app, 1).await;
    let mut bob = Client::connect(&app, 2).await;
    alice.send(start_to(2)).await;
    let refused = alice.expect(4003).await;
    assert!(
        refused["reason"]
            .as_str()
            .unwrap()
            .contains("does not accept"),
        "{refused}"
    );
    // The refused start is not forwarded, so neither is a stop.
    alice.send(stop_to(2)).await;
    alice.expect_nothing_pending().await;
    bob.expect_nothing_pending().await;
    // The other way is not blocked.
    bob.send(start_to(1)).await;
    assert_eq!(alice.expect(2600).await["sender_id"], 2);
}

async fn bad_typing_frames_name_the_problem(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    alice.send(start_to(1)).await;
    let refused = alice.expect(4000).await;
    assert_eq!(refused["reason"], "recipient_id must not be yourself");
    alice
        .send(json!({"type": 10, "recipient_id": 2, "content": "typing"}))
        .await;
    let refused = alice.expect(4000).await;
    assert_eq!(refused["reason"], r#"content must be "start" or "stop""#);
    alice
        .send(json!({"type": 10, "recipient_id": 2, "group_id": "g"}))
        .await;
    alice.expect(4000).await;
}

on_both_backends!(
    private_typing_reaches_the_peer_and_my_other_devices,
    typing_is_never_stored,
    one_start_per_conversation_every_three_seconds,
    group_typing_for_members_only,
    a_blocked_senders_typing_is_refused,
    bad_typing_frames_name_the_problem,
);
