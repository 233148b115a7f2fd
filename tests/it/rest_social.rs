//! Follows, blocks and presence over REST; a blocked sender's private messages get 4003 and
//! are stored nowhere.

use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::{Backend, Client, TestApp};

fn refused(answer: (u16, Value), status: u16) {
    let (got, body) = answer;
    assert_eq!(got, status, "{body}");
    assert_eq!(body["code"], status, "{body}");
    assert!(body["error"].is_string(), "{body}");
}

async fn follow_list_unfollow(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = app.post("/api/follows", 1, json!({"user_id": 3})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user_id"], 3);
    let (status, _) = app.post("/api/follows", 1, json!({"user_id": 2})).await;
    assert_eq!(status, 201);
    let (status, body) = app.post("/api/follows", 1, json!({"user_id": 3})).await;
    assert_eq!(
        status, 200,
        "following again is fine and changes nothing: {body}"
    );
    let (status, body) = app.put("/api/follows/7", 1).await;
    assert_eq!(status, 201, "{body}");
    let (status, list) = app.get("/api/follows", 1).await;
    assert_eq!(status, 200);
    assert_eq!(list["following"], json!([2, 3, 7]));
    let (_, others) = app.get("/api/follows", 3).await;
    assert_eq!(others["following"], json!([]), "following is one-way");
    let (status, _) = app.delete("/api/follows/3", 1).await;
    assert_eq!(status, 204);
    refused(app.delete("/api/follows/3", 1).await, 404);
    let (_, list) = app.get("/api/follows", 1).await;
    assert_eq!(list["following"], json!([2, 7]));
}

async fn follow_refusals(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    refused(
        app.post("/api/follows", 1, json!({"user_id": 1})).await,
        400,
    );
    refused(
        app.post("/api/follows", 1, json!({"user_id": 0})).await,
        400,
    );
    refused(app.post("/api/follows", 1, json!({})).await, 400);
    refused(
        app.post("/api/follows", 1, json!({"user_id": "x"})).await,
        400,
    );
    refused(app.put("/api/follows/abc", 1).await, 400);
    refused(app.delete("/api/follows/-2", 1).await, 400);
    refused(
        app.request(reqwest::Method::GET, "/api/follows", None, None)
            .await,
        401,
    );
    refused(
        app.request(
            reqwest::Method::POST,
            "/api/follows",
            None,
            Some(json!({"user_id": 2})),
        )
        .await,
        401,
    );
    let (_, list) = app.get("/api/follows", 1).await;
    assert_eq!(list["following"], json!([]));
}

async fn block_list_unblock(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = app.post("/api/blocks", 1, json!({"user_id": 5})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user_id"], 5);
    let (status, _) = app.put("/api/blocks/4", 1).await;
    assert_eq!(status, 201);
    let (status, _) = app.put("/api/blocks/4", 1).await;
    assert_eq!(status, 200);
    let (status, list) = app.get("/api/blocks", 1).await;
    assert_eq!(status, 200);
    assert_eq!(list["blocked"], json!([4, 5]));
    let (status, _) = app.delete("/api/blocks/5", 1).await;
    assert_eq!(status, 204);
    refused(app.delete("/api/blocks/5", 1).await, 404);
    let (_, list) = app.get("/api/blocks", 1).await;
    assert_eq!(list["blocked"], json!([4]));
    refused(app.post("/api/blocks", 1, json!({"user_id": 1})).await, 400);
    refused(
        app.post("/api/blocks", 1, json!({"user_id": -1})).await,
        400,
    );
    refused(
        app.request(reqwest::Method::GET, "/api/blocks", None, None)
            .await,
        401,
    );
}

async fn blocked_sender_gets_4003_and_nothing_is_stored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut bob = Client::connect(&app, 2).await;
    let (status, _) = app.post("/api/blocks", 2, json!({"user_id": 1})).await;
    assert_eq!(status, 201);
    alice
        .send(
            json!({"type": 1, "recipient_id": 2, "content": "let me talk", "client_msg_id": "k-1"}),
        )
        .await;
    let refusal = alice.expect(4003).await;
    assert_eq!(refusal["client_msg_id"], "k-1");
    assert!(refusal["reason"].is_string());
    // No push, no copy to alice's other devices, nothing stored anywhere.
    let mut alice_laptop = Client::connect(&app, 1).await;
    assert_eq!(alice.private(2, "again").await["code"], 4003);
    bob.expect_nothing_pending().await;
    alice_laptop.expect_nothing_pending().await;
    let (unread, _) = bob.sync().await;
    assert!(unread.is_empty(), "{unread:?}");
    let (history, _) = bob.history(1, "", None).await;
    assert!(history.is_empty(), "{history:?}");
    let (history, _) = alice.history(2, "", None).await;
    assert!(history.is_empty(), "{history:?}");
    // The block is one-way: bob can still write to alice.
    let ack = bob.private(1, "but I can write to you").await;
    assert_eq!(ack["code"], 2100, "{ack}");
    alice.expect(2000).await;
    // Unblocked, alice's messages go through again.
    let (status, _) = app.delete("/api/blocks/1", 2).await;
    assert_eq!(status, 204);
    let ack = alice.private(2, "thanks").await;
    assert_eq!(ack["code"], 2100, "{ack}");
    assert_eq!(bob.expect(2000).await["content"], "thanks");
}

async fn blocks_do_not_affect_groups(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let group = app.create_group(1, &[2]).await;
    let (status, _) = app.post("/api/blocks", 2, json!({"user_id": 1})).await;
    assert_eq!(status, 201);
    let mut alice = Client::connect(&app, 1).await;
    let mut bob = Client::connect(&app, 2).await;
    let ack = alice.group(&group, "still in the group").await;
    assert_eq!(ack["code"], 2100, "{ack}");
    assert_eq!(bob.expect(2000).await["id"], ack["id"]);
}

async fn presence_follows_connections(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = app.get("/api/users/2/presence", 1).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"user_id": 2, "online": false}));
    let phone = Client::connect(&app, 2).await;
    let laptop = Client::connect(&app, 2).await;
    let (_, body) = app.get("/api/users/2/presence", 1).await;
    assert_eq!(body["online"], true);
    phone.close().await;
    let (_, body) = app.get("/api/users/2/presence", 1).await;
    assert_eq!(body["online"], true, "the laptop is still connected");
    laptop.close().await;
    app.wait_offline(2, 1).await;
    refused(
        app.request(reqwest::Method::GET, "/api/users/2/presence", None, None)
            .await,
        401,
    );
    refused(app.get("/api/users/0/presence", 1).await, 400);
    refused(app.get("/api/users/abc/presence", 1).await, 400);
}

on_both_backends!(
    presence_of_many_users_at_once,
    follow_list_unfollow,
    follow_refusals,
    block_list_unblock,
    blocked_sender_gets_4003_and_nothing_is_stored,
    blocks_do_not_affect_groups,
    presence_follows_connections,
);

/// `POST /api/presence`: up to 500 users at once; bad input named.
async fn presence_of_many_users_at_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let _alice = Client::connect(&app, 1).await;
    let _carol = Client::connect(&app, 3).await;
    let (status, body) = app
        .post(
            "/api/presence",
            9,
            serde_json::json!({"user_ids": [1, 2, 3, 3]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["online"],
        serde_json::json!({"1": true, "2": false, "3": true})
    );
    let many: Vec<i64> = (1..=501).collect();
    let (status, body) = app
        .post("/api/presence", 9, serde_json::json!({ "user_ids": many }))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("500"), "{body}");
    let (status, _) = app
        .post("/api/presence", 9, serde_json::json!({"user_ids": [0]}))
        .await;
    assert_eq!(status, 400);
}
