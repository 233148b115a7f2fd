//! Edit (type 11) and delete (type 12): only the sender, within `chat.edit_window` (4008
//! after), stored (`edited_at`, a tombstone with the content gone from the database), pushed
//! to every participant's devices but the sending one (2700, 2710), answered (2701, 2711),
//! reflected in history and unread syncs, idempotent by `client_msg_id`.

use serde_json::{Value, json};
use std::time::Duration;

use crate::on_both_backends;
use crate::support::{Backend, Client, TestApp};

const HOUR_MS: i64 = 3600 * 1000;

fn edit(id: &Value, content: &str, cid: Option<&str>) -> Value {
    let mut frame = json!({"type": 11, "id": id, "content": content});
    if let Some(cid) = cid {
        frame["client_msg_id"] = json!(cid);
    }
    frame
}

fn delete(id: &Value, cid: Option<&str>) -> Value {
    let mut frame = json!({"type": 12, "id": id});
    if let Some(cid) = cid {
        frame["client_msg_id"] = json!(cid);
    }
    frame
}

/// Makes `sender`'s messages `hours` older, behind the server's back.
async fn age(app: &TestApp, sender: i64, hours: i64) {
    app.sql(&format!(
        "UPDATE messages SET ts = ts - {} WHERE sender_id = {sender}",
        hours * HOUR_MS
    ))
    .await;
}

async fn an_edit_reaches_every_device_history_and_sync(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut phone = Client::connect(&app, 1).await;
    let mut laptop = Client::connect(&app, 1).await;
    let mut bob = Client::connect(&app, 2).await;
    let ack = phone.stored(2, "helo").await;
    let id = &ack["id"];
    assert_eq!(bob.expect(2000).await["id"], *id);
    assert_eq!(laptop.expect(2000).await["id"], *id);

    phone.send(edit(id, "hello", Some("e1"))).await;
    let applied = phone.expect(2701).await;
    assert_eq!(applied["id"], *id, "{applied}");
    assert_eq!(applied["client_msg_id"], "e1");
    assert_eq!(applied["recipient_id"], 2);
    let edited_at = applied["edited_at"].as_i64().expect("edited_at");
    assert!(edited_at >= ack["ts"].as_i64().unwrap(), "{applied}");
    for device in [&mut bob, &mut laptop] {
        let pushed = device.expect(2700).await;
        assert_eq!(pushed["id"], *id, "{pushed}");
        assert_eq!(pushed["content"], "hello");
        assert_eq!(pushed["edited_at"], edited_at);
        assert_eq!(pushed["sender_id"], 1);
        assert_eq!(pushed["recipient_id"], 2);
        assert_eq!(pushed["from"], "1->2");
        device.expect_nothing_pending().await;
    }
    phone.expect_nothing_pending().await;

    let (history, _) = bob.history(1, "", None).await;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["content"], "hello");
    assert_eq!(history[0]["edited_at"], edited_at);
    assert!(history[0].get("deleted").is_none(), "{}", history[0]);
    let (unread, _) = bob.sync().await;
    assert_eq!(unread.len(), 1);
    assert_eq!(unread[0]["content"], "hello");
    assert_eq!(unread[0]["edited_at"], edited_at);
}

async fn a_delete_leaves_a_tombstone_without_content(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut phone = Client::connect(&app, 1).await;
    let mut laptop = Client::connect(&app, 1).await;
    let mut bob = Client::connect(&app, 2).await;
    let ack = phone.stored(2, "a secret to take back").await;
    let id = &ack["id"];
    bob.expect(2000).await;
    laptop.expect(2000).await;

    phone.send(delete(id, None)).await;
    let applied = phone.expect(2711).await;
    assert_eq!(applied["id"], *id, "{applied}");
    let deleted_at = applied["deleted_at"].as_i64().expect("deleted_at");
    for device in [&mut bob, &mut laptop] {
        let pushed = device.expect(2710).await;
        assert_eq!(pushed["id"], *id, "{pushed}");
        assert_eq!(pushed["deleted"], true);
        assert_eq!(pushed["deleted_at"], deleted_at);
        assert_eq!(pushed["content"], "");
        assert_eq!(pushed["recipient_id"], 2);
    }
    // Gone from the database, not only hidden.
    let left = app
        .sql_int("SELECT COUNT(*) FROM messages WHERE content LIKE '%secret%'")
        .await;
    assert_eq!(left, 0);
    assert_eq!(
        app.sql_int("SELECT COUNT(*) FROM messages WHERE content = '' AND deleted_at IS NOT NULL")
            .await,
        1
    );
    // History and sync show the tombstone: an old client sees an empty message.
    let (history, _) = phone.history(2, "", None).await;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["id"], *id);
    assert_eq!(history[0]["content"], "");
    assert_eq!(history[0]["deleted"], true);
    assert_eq!(history[0]["deleted_at"], deleted_at);
    let (unread, _) = bob.sync().await;
    assert_eq!(unread.len(), 1);
    assert_eq!(unread[0]["deleted"], true);
    assert_eq!(unread[0]["content"], "");

    // Deleting again answers the same and pushes nothing; editing a deleted message is 4004.
    phone.send(delete(id, None)).await;
    let again = phone.expect(2711).await;
    assert_eq!(again["deleted_at"], deleted_at);
    phone.send(edit(id, "back again", None)).await;
    let refused = phone.expect(4004).await;
    assert!(
        refused["reason"].as_str().unwrap().contains("deleted"),
        "{refused}"
    );
    bob.expect_nothing_pending().await;
    laptop.expect_nothing_pending().await;
}

async fn only_the_sender_edits_or_deletes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let group = app.create_group(1, &[2]).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut bob = Client::connect(&app, 2).await;
    let private = alice.stored(2, "mine").await;
    bob.expect(2000).await;
    let in_group = alice.group_stored(&group, "mine too").await;
    bob.expect(2000).await;
    for id in [&private["id"], &in_group["id"]] {
        bob.send(edit(id, "yours now", Some("x1"))).await;
        let refused = bob.expect(4003).await;
        assert_eq!(refused["client_msg_id"], "x1", "{refused}");
        bob.send(delete(id, None)).await;
        bob.expect(4003).await;
    }
    let unknown = json!("01890000-0000-7000-8000-000000000001");
    alice.send(edit(&unknown, "x", None)).await;
    alice.expect(4004).await;
    alice.send(delete(&unknown, None)).await;
    alice.expect(4004).await;
    // Nothing changed.
    let (history, _) = bob.history(1, "", None).await;
    assert_eq!(history[0]["content"], "mine");
    assert!(history[0].get("edited_at").is_none(), "{}", history[0]);
    alice.expect_nothing_pending().await;
}

async fn the_edit_window_defaults_to_48_hours(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_eq!(
        app.settings.chat.edit_window,
        Duration::from_secs(48 * 3600)
    );
    let mut alice = Client::connect(&app, 1).await;
    let first = alice.stored(2, "47 hours ago").await;
    age(&app, 1, 47).await;
    let second = alice.stored(2, "49 hours ago").await;
    age(&app, 1, 2).await; // the first is now 49 h old, the second 2 h
    alice.send(edit(&first["id"], "too late", None)).await;
    let refused = alice.expect(4008).await;
    assert!(
        refused["reason"]
            .as_str()
            .unwrap()
            .contains("chat.edit_window (2days)"),
        "{refused}"
    );
    alice.send(delete(&first["id"], None)).await;
    alice.expect(4008).await;
    alice.send(edit(&second["id"], "in time", None)).await;
    alice.expect(2701).await;
}

async fn the_edit_window_is_configurable(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.chat.edit_window = Duration::from_secs(3600);
    })
    .await;
    let mut alice = Client::connect(&app, 1).await;
    let old = alice.stored(2, "two hours ago").await;
    age(&app, 1, 2).await;
    let fresh = alice.stored(2, "just now").await;
    alice.send(delete(&old["id"], None)).await;
    alice.expect(4008).await;
    alice.send(delete(&fresh["id"], None)).await;
    alice.expect(2711).await;
}

async fn a_repeated_client_msg_id_answers_the_first_result(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut bob = Client::connect(&app, 2).await;
    let ack = alice.stored(2, "v1").await;
    let id = &ack["id"];
    bob.expect(2000).await;

    alice.send(edit(id, "v2", Some("e1"))).await;
    let first = alice.expect(2701).await;
    assert_eq!(bob.expect(2700).await["content"], "v2");
    alice.send(edit(id, "v3", Some("e2"))).await;
    alice.expect(2701).await;
    assert_eq!(bob.expect(2700).await["content"], "v3");
    // The retry of e1 (its answer lost, say) is not applied over v3.
    alice.send(edit(id, "v2", Some("e1"))).await;
    let repeat = alice.expect(2701).await;
    assert_eq!(repeat["edited_at"], first["edited_at"], "{repeat}");
    assert_eq!(repeat["id"], *id);
    assert_eq!(repeat["client_msg_id"], "e1");
    bob.expect_nothing_pending().await;
    let (history, _) = bob.history(1, "", None).await;
    assert_eq!(history[0]["content"], "v3");

    // A refused request does not take its client_msg_id.
    let other = bob.stored(1, "bob's").await;
    alice.expect(2000).await;
    alice.send(delete(&other["id"], Some("d1"))).await;
    alice.expect(4003).await;
    alice.send(delete(id, Some("d1"))).await;
    let deleted = alice.expect(2711).await;
    assert_eq!(bob.expect(2710).await["id"], *id);
    alice.send(delete(id, Some("d1"))).await;
    let again = alice.expect(2711).await;
    assert_eq!(again["deleted_at"], deleted["deleted_at"]);
    bob.expect_nothing_pending().await;
    assert_eq!(app.sql_int("SELECT COUNT(*) FROM edits").await, 3);
}

async fn group_edits_reach_every_member_device(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let group = app.create_group(1, &[2, 3]).await;
    let mut a1 = Client::connect(&app, 1).await;
    let mut a2 = Client::connect(&app, 1).await;
    let mut bob = Client::connect(&app, 2).await;
    let mut carol = Client::connect(&app, 3).await;
    let mut outsider = Client::connect(&app, 4).await;
    let ack = a1.group_stored(&group, "draft").await;
    let id = &ack["id"];
    for device in [&mut a2, &mut bob, &mut carol] {
        device.expect(2000).await;
    }
    a1.send(edit(id, "final", None)).await;
    let applied = a1.expect(2701).await;
    assert_eq!(applied["group_id"], group.as_str(), "{applied}");
    for device in [&mut a2, &mut bob, &mut carol] {
        let pushed = device.expect(2700).await;
        assert_eq!(pushed["content"], "final");
        assert_eq!(pushed["group_id"], group.as_str());
        assert!(pushed.get("recipient_id").is_none(), "{pushed}");
    }
    a1.send(delete(id, None)).await;
    a1.expect(2711).await;
    for device in [&mut a2, &mut bob, &mut carol] {
        let pushed = device.expect(2710).await;
        assert_eq!(pushed["id"], *id);
        assert_eq!(pushed["group_id"], group.as_str());
        device.expect_nothing_pending().await;
    }
    outsider.expect_nothing_pending().await;
    let (history, _) = carol.group_history(&group, "", None).await;
    assert_eq!(history[0]["deleted"], true);
    assert_eq!(history[0]["content"], "");
    assert!(history[0]["edited_at"].is_i64(), "{}", history[0]);
}

async fn bad_edits_name_the_problem(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.limits.max_content_bytes = 10).await;
    let mut alice = Client::connect(&app, 1).await;
    let ack = alice.stored(2, "short").await;
    alice
        .send(edit(&ack["id"], "far longer than ten bytes", Some("e")))
        .await;
    let refused = alice.expect(4130).await;
    assert_eq!(refused["client_msg_id"], "e");
    alice.send(edit(&ack["id"], "  ", None)).await;
    assert_eq!(
        alice.expect(4000).await["reason"],
        "content must not be empty"
    );
    alice.send(json!({"type": 12})).await;
    assert_eq!(
        alice.expect(4000).await["reason"],
        "missing field: id (a message id)"
    );
}

on_both_backends!(
    an_edit_reaches_every_device_history_and_sync,
    a_delete_leaves_a_tombstone_without_content,
    only_the_sender_edits_or_deletes,
    the_edit_window_defaults_to_48_hours,
    the_edit_window_is_configurable,
    a_repeated_client_msg_id_answers_the_first_result,
    group_edits_reach_every_member_device,
    bad_edits_name_the_problem,
    concurrent_edits_apply_once_and_deletes_win,
);

/// Typing and an edit and a delete cross nodes: through Redis to the peer and to the
/// sender's other device on another node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_and_edits_cross_nodes() {
    let cluster = crate::support::cluster::Cluster::start(2).await;
    let mut phone = cluster.connect(0, 1).await;
    let mut laptop = cluster.connect(1, 1).await;
    let mut bob = cluster.connect(1, 2).await;
    cluster.wait_subscribers("chat:u:2", 1);
    phone
        .send(json!({"type": 10, "recipient_id": 2, "content": "start"}))
        .await;
    for device in [&mut bob, &mut laptop] {
        let typing = device.expect(2600).await;
        assert_eq!(typing["sender_id"], 1, "{typing}");
        assert_eq!(typing["state"], "start");
    }
    let ack = phone.stored(2, "across nodes, misspelt").await;
    let id = &ack["id"];
    for device in [&mut bob, &mut laptop] {
        assert_eq!(device.expect(2000).await["id"], *id);
    }
    phone.send(edit(id, "across nodes", Some("e1"))).await;
    let applied = phone.expect(2701).await;
    for device in [&mut bob, &mut laptop] {
        let pushed = device.expect(2700).await;
        assert_eq!(pushed["content"], "across nodes", "{pushed}");
        assert_eq!(pushed["edited_at"], applied["edited_at"]);
    }
    // The same client_msg_id through the other node: answered, not applied again.
    laptop.send(edit(id, "across nodes", Some("e1"))).await;
    let repeat = laptop.expect(2701).await;
    assert_eq!(repeat["edited_at"], applied["edited_at"], "{repeat}");
    laptop.send(delete(id, None)).await;
    laptop.expect(2711).await;
    for device in [&mut bob, &mut phone] {
        assert_eq!(device.expect(2710).await["id"], *id);
        device.expect_nothing_pending().await;
    }
}

/// The store's side, called directly and concurrently: of many requests with one
/// `client_msg_id`, exactly one is applied and all answer its result; an edit racing a
/// delete never brings the content back.
async fn concurrent_edits_apply_once_and_deletes_win(backend: Backend) {
    use chat_gateway::message::{Message, Target};
    use chat_gateway::store::{Edit, EditOutcome};

    let (settings, _dir) = crate::support::app::test_settings(backend).await;
    let store = chat_gateway::store::connect(&settings.storage)
        .await
        .expect("connecting the store");
    let messages: Vec<Message> = (0..6)
        .map(|i| Message::new(1, Target::User(2), format!("m{i}"), None))
        .collect();
    store.insert_messages(&messages, &[]).await.unwrap();
    let now = chat_gateway::ids::millis_now();
    let change = |id, content: Option<String>, cid: Option<&str>| Edit {
        sender: 1,
        id,
        content,
        client_msg_id: cid.map(str::to_string),
        now,
        not_before: 0,
    };

    let edits = (0..6).map(|i| {
        let (store, edit) = (
            store.clone(),
            change(messages[0].id, Some(format!("v{i}")), Some("same")),
        );
        tokio::spawn(async move { store.edit_message(&edit).await.unwrap() })
    });
    let mut fresh = 0;
    for outcome in futures_util::future::join_all(edits).await {
        match outcome.unwrap() {
            EditOutcome::Applied {
                repeat,
                at,
                deleted,
                ..
            } => {
                fresh += usize::from(!repeat);
                assert_eq!((at, deleted), (now, false));
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(fresh, 1);

    for message in &messages[1..] {
        let (s1, s2) = (store.clone(), store.clone());
        let (edit, delete) = (
            change(message.id, Some("resurrected".into()), None),
            change(message.id, None, None),
        );
        let (edited, deleted) = tokio::join!(
            tokio::spawn(async move { s1.edit_message(&edit).await.unwrap() }),
            tokio::spawn(async move { s2.edit_message(&delete).await.unwrap() }),
        );
        assert!(matches!(
            deleted.unwrap(),
            EditOutcome::Applied { deleted: true, .. }
        ));
        // The edit came first (then deleted), or after the delete (refused).
        let edited = edited.unwrap();
        assert!(
            matches!(edited, EditOutcome::Applied { .. } | EditOutcome::Deleted),
            "{edited:?}"
        );
        let page = store
            .private_history(1, 2, chat_gateway::protocol::Cursor::parse("").unwrap(), 10)
            .await
            .unwrap();
        let stored = page.messages.iter().find(|m| m.id == message.id).unwrap();
        assert_eq!(stored.content, "");
        assert_eq!(stored.deleted_at, Some(now));
    }
}
