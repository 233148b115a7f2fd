//! Storage failing for real (a table renamed away behind the server's back): sends get 5000
//! and are NOT stored, reads get 5000, REST gets 503; once storage is back, a retry with
//! the same `client_msg_id` is stored exactly once.

use chat_gateway::Settings;
use chat_gateway::settings::StoreUrl;
use serde_json::json;

use crate::on_both_backends;
use crate::support::services::MariaDb;
use crate::support::{Backend, Client, TestApp};

const BREAK_MESSAGES: &str = "ALTER TABLE messages RENAME TO messages_away";
const MEND_MESSAGES: &str = "ALTER TABLE messages_away RENAME TO messages";

async fn private_send_gets_5000_and_retry_stores_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut bob = Client::connect(&app, 2).await;
    app.sql(BREAK_MESSAGES).await;
    let frame =
        json!({"type": 1, "recipient_id": 2, "content": "important", "client_msg_id": "r-1"});
    alice.send(frame.clone()).await;
    let failure = alice.expect(5000).await;
    assert_eq!(failure["client_msg_id"], "r-1", "{failure}");
    assert!(
        failure["reason"].as_str().unwrap().contains("not stored"),
        "{failure}"
    );
    // Nothing was published either, and the connection is fine.
    bob.expect_nothing_pending().await;
    alice.expect_nothing_pending().await;
    app.sql(MEND_MESSAGES).await;
    alice.send(frame).await;
    let ack = alice.expect(2100).await;
    assert_eq!(ack["client_msg_id"], "r-1");
    assert_eq!(bob.expect(2000).await["id"], ack["id"]);
    bob.expect_nothing_pending().await;
    let (history, _) = bob.history(1, "", None).await;
    assert_eq!(history.len(), 1, "stored exactly once: {history:?}");
}

async fn group_send_gets_5000(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let group = app.create_group(1, &[2]).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut bob = Client::connect(&app, 2).await;
    app.sql(BREAK_MESSAGES).await;
    let frame =
        json!({"type": 4, "group_id": group, "content": "all of you", "client_msg_id": "rg-1"});
    alice.send(frame.clone()).await;
    assert_eq!(alice.expect(5000).await["client_msg_id"], "rg-1");
    bob.expect_nothing_pending().await;
    app.sql(MEND_MESSAGES).await;
    alice.send(frame).await;
    let ack = alice.expect(2100).await;
    assert_eq!(bob.expect(2000).await["id"], ack["id"]);
    let (history, _) = bob.group_history(&group, "", None).await;
    assert_eq!(history.len(), 1);
}

async fn reads_get_5000(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let group = app.create_group(1, &[2]).await;
    let mut alice = Client::connect(&app, 1).await;
    let m = alice.stored(2, "stored before the failure").await;
    let mut bob = Client::connect(&app, 2).await;
    app.sql(BREAK_MESSAGES).await;
    for frame in [
        json!({"type": 2}),
        json!({"type": 3, "recipient_id": 1, "content": ""}),
        json!({"type": 6, "group_id": group, "content": ""}),
        json!({"type": 5, "content": m["id"]}),
    ] {
        bob.send(frame.clone()).await;
        let failure = bob.expect(5000).await;
        assert!(failure["reason"].is_string(), "{frame}: {failure}");
    }
    bob.expect_nothing_pending().await;
    app.sql(MEND_MESSAGES).await;
    // The failed sync did not lose anything.
    let (unread, _) = bob.sync().await;
    assert_eq!(unread.len(), 1);
    assert_eq!(unread[0]["id"], m["id"]);
}

async fn failed_sends_do_not_count_as_stranger_messages(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    app.sql(BREAK_MESSAGES).await;
    for _ in 0..4 {
        assert_eq!(alice.private(2, "lost").await["code"], 5000);
    }
    app.sql(MEND_MESSAGES).await;
    for _ in 0..3 {
        assert_eq!(alice.private(2, "kept").await["code"], 2101);
    }
    assert_eq!(alice.private(2, "one too many").await["code"], 4029);
}

async fn rest_gets_503_when_storage_fails(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let group = app.create_group(1, &[2]).await;
    app.sql("ALTER TABLE group_members RENAME TO group_members_away")
        .await;
    for (status, body) in [
        app.get("/api/me/groups", 1).await,
        app.get(&format!("/api/groups/{group}"), 1).await,
        app.post("/api/groups", 1, json!({"name": "new"})).await,
    ] {
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["code"], 503, "{body}");
        assert!(body["error"].is_string(), "{body}");
    }
    app.sql("ALTER TABLE group_members_away RENAME TO group_members")
        .await;
    let (status, body) = app.get(&format!("/api/groups/{group}"), 1).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["member_count"], 2);
}

on_both_backends!(
    private_send_gets_5000_and_retry_stores_once,
    group_send_gets_5000,
    reads_get_5000,
    failed_sends_do_not_count_as_stranger_messages,
    rest_gets_503_when_storage_fails,
);

/// A gateway on a mariadbd of the test's own (to restart it), and that server.
async fn app_on_own_mariadb(adjust: impl FnOnce(&mut Settings)) -> (TestApp, MariaDb) {
    let db = MariaDb::own();
    let url = db.fresh_database().await;
    // (Sqlite only for the settings it starts from: the URL is replaced, and the shared
    // mariadbd is not started for nothing.)
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.storage.url = StoreUrl::try_from(url).expect("a store URL");
        adjust(s);
    })
    .await;
    (app, db)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_send_after_a_mysql_restart_is_stored() {
    let (app, mut db) = app_on_own_mariadb(|_| {}).await;
    let mut alice = Client::connect(&app, 1).await;
    // The batching writer holds its connection from this first batch on.
    alice.stored(2, "before the restart").await;
    db.restart();
    for (cid, content) in [("r-1", "first after the restart"), ("r-2", "second")] {
        let frame = json!({"type": 1, "recipient_id": 2, "content": content, "client_msg_id": cid});
        alice.send(frame).await;
        let ack = alice.recv().await;
        assert_eq!(
            ack["code"], 2101,
            "stored (Bob is offline), not 5000: {ack}"
        );
        assert_eq!(ack["client_msg_id"], cid);
    }
    let stored = app
        .sql_int("SELECT COUNT(*) FROM messages WHERE client_msg_id IN ('r-1', 'r-2')")
        .await;
    assert_eq!(stored, 2, "each stored once");
}
