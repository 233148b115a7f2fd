//! Unread sync (type 2): my unread private and group messages, oldest first, which become
//! read; live pushes stay unread until synced or receipted; group unread is per member and
//! starts at joining; `limit` and `next_cursor`.

use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::{Backend, Client, TestApp, many_frames};

fn ids(messages: &[Value]) -> Vec<Value> {
    messages.iter().map(|m| m["id"].clone()).collect()
}

async fn sync_returns_everything_unread_oldest_first(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let group = app.create_group(3, &[2]).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut carol = Client::connect(&app, 3).await;
    let sent = vec![
        alice.stored(2, "a1").await,
        carol.stored(2, "c1").await,
        carol.group_stored(&group, "g1").await,
        alice.stored(2, "a2").await,
        carol.group_stored(&group, "g2").await,
        alice.stored(2, "a3").await,
    ];
    let mut bob = Client::connect(&app, 2).await;
    let (unread, end) = bob.sync().await;
    assert_eq!(
        ids(&unread),
        ids(&sent),
        "oldest first, private and group mixed"
    );
    let contents: Vec<_> = unread.iter().map(|m| m["content"].clone()).collect();
    assert_eq!(
        contents,
        ["a1", "c1", "g1", "a2", "g2", "a3"].map(Value::from)
    );
    for (message, ack) in unread.iter().zip(&sent) {
        assert_eq!(message["source"], "unread");
        assert_eq!(message["ts"], ack["ts"]);
        assert_eq!(message["code"], 2000);
    }
    assert_eq!(unread[0]["sender_id"], 1);
    assert_eq!(unread[0]["recipient_id"], 2);
    assert_eq!(unread[0]["from"], "1->2");
    assert_eq!(unread[2]["group_id"], group.as_str());
    assert_eq!(unread[2]["sender_id"], 3);
    assert_eq!(end["count"], 6);
    assert_eq!(end["next_cursor"], "");
    assert_eq!(end["from"], "");
    let (again, end) = bob.sync().await;
    assert!(again.is_empty(), "synced messages are read: {again:?}");
    assert_eq!(end["count"], 0);
    assert_eq!(end["next_cursor"], "");
}

async fn own_messages_are_never_unread(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let group = app.create_group(1, &[2]).await;
    let mut alice = Client::connect(&app, 1).await;
    alice.stored(2, "private").await;
    alice.group_stored(&group, "group").await;
    let (unread, _) = alice.sync().await;
    assert!(unread.is_empty(), "{unread:?}");
    let mut bob = Client::connect(&app, 2).await;
    let (unread, _) = bob.sync().await;
    assert_eq!(unread.len(), 2);
}

async fn live_pushed_messages_stay_unread_until_synced(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let group = app.create_group(1, &[2]).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut bob = Client::connect(&app, 2).await;
    let private = alice.private(2, "pushed").await;
    assert_eq!(private["code"], 2100);
    bob.expect(2000).await;
    let grouped = alice.group(&group, "pushed to the group").await;
    assert_eq!(grouped["code"], 2100);
    bob.expect(2000).await;
    // Bob's client crashed before showing them: they come back on the next connection.
    drop(bob);
    let mut bob = Client::connect(&app, 2).await;
    let (unread, _) = bob.sync().await;
    assert_eq!(
        ids(&unread),
        vec![private["id"].clone(), grouped["id"].clone()]
    );
    assert!(unread.iter().all(|m| m["source"] == "unread"));
    let (again, _) = bob.sync().await;
    assert!(again.is_empty(), "{again:?}");
}

async fn group_unread_is_per_member(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let group = app.create_group(1, &[2, 3]).await;
    let mut alice = Client::connect(&app, 1).await;
    let g1 = alice.group_stored(&group, "g1").await;
    let g2 = alice.group_stored(&group, "g2").await;
    let mut bob = Client::connect(&app, 2).await;
    let (unread, _) = bob.sync().await;
    assert_eq!(ids(&unread), vec![g1["id"].clone(), g2["id"].clone()]);
    let (unread, _) = bob.sync().await;
    assert!(unread.is_empty());
    // Bob's sync did not read them for carol.
    let mut carol = Client::connect(&app, 3).await;
    let (unread, _) = carol.sync().await;
    assert_eq!(ids(&unread), vec![g1["id"].clone(), g2["id"].clone()]);
    let g3 = alice.group_stored(&group, "g3").await;
    carol.expect(2000).await;
    bob.expect(2000).await;
    let (unread, _) = carol.sync().await;
    assert_eq!(ids(&unread), vec![g3["id"].clone()]);
    let (unread, _) = bob.sync().await;
    assert_eq!(ids(&unread), vec![g3["id"].clone()]);
}

async fn new_member_does_not_get_old_group_messages_as_unread(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let group = app.create_group(1, &[2]).await;
    let mut alice = Client::connect(&app, 1).await;
    let old = alice.group_stored(&group, "before carol joined").await;
    let (status, _) = app
        .post(
            &format!("/api/groups/{group}/members"),
            1,
            json!({"user_id": 3}),
        )
        .await;
    assert_eq!(status, 201);
    let new = alice.group_stored(&group, "after carol joined").await;
    let mut carol = Client::connect(&app, 3).await;
    let (unread, _) = carol.sync().await;
    assert_eq!(ids(&unread), vec![new["id"].clone()]);
    // The old message is still in the group's history for her.
    let (history, _) = carol.group_history(&group, "", None).await;
    assert_eq!(ids(&history), vec![new["id"].clone(), old["id"].clone()]);
}

async fn message_right_after_joining_is_unread(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    // A message sent in the very millisecond a member joined was said after they joined: it
    // must be unread for them. New groups until a few messages land in the joining
    // millisecond (the group's created_at).
    let mut sent = Vec::new();
    let mut same_millisecond = 0;
    while same_millisecond < 3 && sent.len() < 40 {
        let (status, group) = app
            .post("/api/groups", 1, json!({"name": "quick", "members": [2]}))
            .await;
        assert_eq!(status, 201, "{group}");
        let ack = alice
            .group_stored(group["id"].as_str().unwrap(), "right away")
            .await;
        if ack["ts"] == group["created_at"] {
            same_millisecond += 1;
        }
        sent.push(ack);
    }
    let mut bob = Client::connect(&app, 2).await;
    let (unread, _) = bob.sync_limit(500).await;
    assert_eq!(
        ids(&unread),
        ids(&sent),
        "every message sent after joining is unread ({same_millisecond} in the joining millisecond)"
    );
}

async fn sync_limit_and_next_cursor(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let group = app.create_group(1, &[2]).await;
    // Friends, so that the stranger limit does not interfere.
    for (me, other) in [(1, 2), (2, 1)] {
        let (status, _) = app
            .post("/api/follows", me, json!({"user_id": other}))
            .await;
        assert_eq!(status, 201);
    }
    let mut alice = Client::connect(&app, 1).await;
    let mut sent = Vec::new();
    for i in 0..3 {
        sent.push(alice.stored(2, &format!("p{i}")).await);
        sent.push(alice.group_stored(&group, &format!("g{i}")).await);
    }
    sent.push(alice.group_stored(&group, "g3").await);
    let mut bob = Client::connect(&app, 2).await;
    let mut seen = Vec::new();
    for expected in [2, 2, 2, 1] {
        let (unread, end) = bob.sync_limit(2).await;
        assert_eq!(unread.len(), expected, "{end}");
        assert_eq!(end["count"], expected);
        if expected == 2 {
            assert_eq!(end["next_cursor"], unread[1]["id"], "more remain: {end}");
        } else {
            assert_eq!(end["next_cursor"], "", "nothing remains: {end}");
        }
        seen.extend(unread);
    }
    assert_eq!(ids(&seen), ids(&sent));
    // Exactly `limit` left: no next_cursor, since nothing remains after them.
    for content in ["x", "y"] {
        alice.stored(2, content).await;
        assert_eq!(bob.expect(2000).await["source"], "live");
    }
    let (unread, end) = bob.sync_limit(2).await;
    assert!(unread.iter().all(|m| m["source"] == "unread"));
    assert_eq!(unread.len(), 2);
    assert_eq!(end["next_cursor"], "");
    let (unread, end) = bob.sync().await;
    assert!(unread.is_empty());
    assert_eq!(end["count"], 0);
}

async fn sync_default_limit_is_100(backend: Backend) {
    let app = TestApp::spawn_with(backend, many_frames).await;
    let group = app.create_group(1, &[2]).await;
    let mut alice = Client::connect(&app, 1).await;
    for i in 0..101 {
        alice.group_stored(&group, &format!("m{i}")).await;
    }
    let mut bob = Client::connect(&app, 2).await;
    let (unread, end) = bob.sync().await;
    assert_eq!(unread.len(), 100);
    assert_eq!(end["next_cursor"], unread[99]["id"]);
    let (unread, end) = bob.sync().await;
    assert_eq!(unread.len(), 1);
    assert_eq!(unread[0]["content"], "m100");
    assert_eq!(end["next_cursor"], "");
}

on_both_backends!(
    sync_returns_everything_unread_oldest_first,
    own_messages_are_never_unread,
    live_pushed_messages_stay_unread_until_synced,
    group_unread_is_per_member,
    new_member_does_not_get_old_group_messages_as_unread,
    message_right_after_joining_is_unread,
    sync_limit_and_next_cursor,
    sync_default_limit_is_100,
);
