//! Read receipts (type 5): 2300 back; that message and everything older in its conversation
//! become read for me (never newer ones, never other conversations, never for others); the
//! peer and my other devices learn of it (2301); someone else's message is 4004.

use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::{Backend, Client, TestApp};

fn ids(messages: &[Value]) -> Vec<Value> {
    messages.iter().map(|m| m["id"].clone()).collect()
}

async fn receipt_reads_that_message_and_older_not_newer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    let m1 = alice.stored(2, "m1").await;
    let m2 = alice.stored(2, "m2").await;
    let m3 = alice.stored(2, "m3").await;
    let mut bob = Client::connect(&app, 2).await;
    let applied = bob.read(&m2["id"]).await;
    assert_eq!(applied["code"], 2300, "{applied}");
    assert_eq!(applied["id"], m2["id"]);
    assert_eq!(applied["content"], m2["id"]);
    let (unread, _) = bob.sync().await;
    assert_eq!(
        ids(&unread),
        vec![m3["id"].clone()],
        "m1 and m2 read, m3 not"
    );
    // Reading an older one again changes nothing and is still applied.
    assert_eq!(bob.read(&m1["id"]).await["code"], 2300);
    let (unread, _) = bob.sync().await;
    assert!(unread.is_empty());
}

async fn receipt_is_per_conversation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut carol = Client::connect(&app, 3).await;
    let from_carol = carol.stored(2, "from carol, earlier").await;
    let from_alice = alice.stored(2, "from alice, later").await;
    let mut bob = Client::connect(&app, 2).await;
    assert_eq!(bob.read(&from_alice["id"]).await["code"], 2300);
    alice.expect(2301).await;
    let (unread, _) = bob.sync().await;
    assert_eq!(
        ids(&unread),
        vec![from_carol["id"].clone()],
        "carol's conversation is untouched although older"
    );
}

async fn receipt_on_a_live_push(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut bob = Client::connect(&app, 2).await;
    alice.private(2, "first").await;
    bob.expect(2000).await;
    let second = alice.private(2, "second").await;
    let pushed = bob.expect(2000).await;
    assert_eq!(pushed["id"], second["id"]);
    // Shown on screen: bob acknowledges the newest, which reads both.
    assert_eq!(bob.read(&pushed["id"]).await["code"], 2300);
    let (unread, _) = bob.sync().await;
    assert!(unread.is_empty(), "{unread:?}");
    // Alice learns that bob read up to the second message.
    let receipt = alice.expect(2301).await;
    assert_eq!(receipt["id"], second["id"]);
    assert_eq!(receipt["reader_id"], 2);
    assert_eq!(receipt["from"], "2->1");
    alice.expect_nothing_pending().await;
}

async fn receipt_reaches_my_other_devices(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut phone = Client::connect(&app, 2).await;
    let mut laptop = Client::connect(&app, 2).await;
    let m = alice.private(2, "read me").await;
    phone.expect(2000).await;
    laptop.expect(2000).await;
    assert_eq!(phone.read(&m["id"]).await["code"], 2300);
    let receipt = laptop.expect(2301).await;
    assert_eq!(receipt["id"], m["id"]);
    assert_eq!(receipt["reader_id"], 2);
    assert_eq!(alice.expect(2301).await["id"], m["id"]);
    phone.expect_nothing_pending().await;
}

async fn sender_receipt_reads_the_peers_older_messages(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut bob = Client::connect(&app, 2).await;
    let a1 = alice.private(2, "a1").await;
    bob.expect(2000).await;
    bob.private(1, "b1").await;
    alice.expect(2000).await;
    let a2 = alice.private(2, "a2").await;
    bob.expect(2000).await;
    let b2 = bob.private(1, "b2").await;
    alice.expect(2000).await;
    // Alice receipts her own a2: bob's b1 (older) is read for her, b2 (newer) is not.
    assert_eq!(alice.read(&a2["id"]).await["code"], 2300);
    bob.expect(2301).await;
    let (unread, _) = alice.sync().await;
    assert_eq!(ids(&unread), vec![b2["id"].clone()]);
    // It did not read anything for bob.
    let (unread, _) = bob.sync().await;
    assert_eq!(ids(&unread), vec![a1["id"].clone(), a2["id"].clone()]);
}

async fn receipt_for_someone_elses_message_is_4004(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    let m = alice.stored(2, "between alice and bob").await;
    let mut carol = Client::connect(&app, 3).await;
    let refusal = carol.read(&m["id"]).await;
    assert_eq!(refusal["code"], 4004, "{refusal}");
    carol.expect_nothing_pending().await;
    alice.expect_nothing_pending().await;
    // An id that names no message at all.
    let unknown = json!(uuid::Uuid::now_v7().to_string());
    assert_eq!(carol.read(&unknown).await["code"], 4004);
    // Still unread for bob.
    let mut bob = Client::connect(&app, 2).await;
    let (unread, _) = bob.sync().await;
    assert_eq!(ids(&unread), vec![m["id"].clone()]);
}

async fn group_receipt_is_per_member(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let group = app.create_group(1, &[2, 3]).await;
    let mut alice = Client::connect(&app, 1).await;
    let g1 = alice.group_stored(&group, "g1").await;
    let g2 = alice.group_stored(&group, "g2").await;
    let g3 = alice.group_stored(&group, "g3").await;
    let mut bob = Client::connect(&app, 2).await;
    let applied = bob.read(&g2["id"]).await;
    assert_eq!(applied["code"], 2300, "{applied}");
    assert_eq!(applied["id"], g2["id"]);
    let (unread, _) = bob.sync().await;
    assert_eq!(ids(&unread), vec![g3["id"].clone()]);
    let mut carol = Client::connect(&app, 3).await;
    let (unread, _) = carol.sync().await;
    assert_eq!(
        ids(&unread),
        vec![g1["id"].clone(), g2["id"].clone(), g3["id"].clone()]
    );
}

async fn group_receipt_by_a_non_member_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let group = app.create_group(1, &[2]).await;
    let mut alice = Client::connect(&app, 1).await;
    let g = alice.group_stored(&group, "members only").await;
    let mut mallory = Client::connect(&app, 9).await;
    let refusal = mallory.read(&g["id"]).await;
    assert_eq!(refusal["code"], 4003, "{refusal}");
    mallory.expect_nothing_pending().await;
    let mut bob = Client::connect(&app, 2).await;
    let (unread, _) = bob.sync().await;
    assert_eq!(ids(&unread), vec![g["id"].clone()]);
}

async fn group_reads_reach_every_member_of_a_small_group(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let group = app.create_group(1, &[2, 3]).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut carol = Client::connect(&app, 3).await;
    let g1 = alice.group_stored(&group, "g1").await;
    carol.expect(2000).await;
    let mut bob = Client::connect(&app, 2).await;
    let mut bobs_tablet = Client::connect(&app, 2).await;
    assert_eq!(bob.read(&g1["id"]).await["code"], 2300);
    for member in [&mut alice, &mut carol, &mut bobs_tablet] {
        let told = member.expect(2301).await;
        assert_eq!(told["reader_id"], 2, "{told}");
        assert_eq!(told["id"], g1["id"], "{told}");
        assert_eq!(told["group_id"], group.as_str(), "{told}");
    }
    bob.expect_nothing_pending().await;
}

async fn large_groups_keep_only_read_positions(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.chat.group_receipts_max_members = 2).await;
    let group = app.create_group(1, &[2, 3]).await;
    let mut alice = Client::connect(&app, 1).await;
    let g1 = alice.group_stored(&group, "g1").await;
    let mut bob = Client::connect(&app, 2).await;
    let mut bobs_tablet = Client::connect(&app, 2).await;
    assert_eq!(bob.read(&g1["id"]).await["code"], 2300);
    // Three members: only Bob's own devices are told; Alice can look it up.
    assert_eq!(bobs_tablet.expect(2301).await["reader_id"], 2);
    alice.expect_nothing_pending().await;
    let (status, body) = app
        .get(
            &format!(
                "/api/groups/{group}/messages/{}/reads",
                g1["id"].as_str().unwrap()
            ),
            1,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["readers"], json!([2]));
    assert_eq!(body["read_count"], 1);
    assert_eq!(body["member_count"], 2);
}

async fn read_by_pages_members_past_the_message(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let group = app.create_group(1, &[2, 3, 4, 5]).await;
    let mut alice = Client::connect(&app, 1).await;
    let g1 = alice.group_stored(&group, "g1").await;
    let g2 = alice.group_stored(&group, "g2").await;
    for reader in [2, 4, 5] {
        let mut member = Client::connect(&app, reader).await;
        // 5 reads only up to g1.
        let id = if reader == 5 { &g1["id"] } else { &g2["id"] };
        member
            .send(json!({"type": 5, "content": id.as_str().unwrap()}))
            .await;
        // Earlier readers' receipts (2301) may come first.
        while member.recv().await["code"] != 2300 {}
    }
    let path = |id: &Value, query: &str| {
        format!(
            "/api/groups/{group}/messages/{}/reads{query}",
            id.as_str().unwrap()
        )
    };
    let (status, body) = app.get(&path(&g2["id"], "?limit=1"), 3).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["readers"], json!([2]));
    assert_eq!(body["read_count"], 2);
    assert_eq!(body["member_count"], 4);
    assert_eq!(body["next_after"], 2);
    let (_, body) = app.get(&path(&g2["id"], "?limit=1&after=2"), 3).await;
    assert_eq!(body["readers"], json!([4]));
    assert_eq!(body["next_after"], Value::Null);
    let (_, body) = app.get(&path(&g1["id"], ""), 3).await;
    assert_eq!(body["readers"], json!([2, 4, 5]));
    // Members only; the message must be the group's; ids are checked.
    assert_eq!(app.get(&path(&g1["id"], ""), 9).await.0, 403);
    let other = app.create_group(9, &[]).await;
    let stray = format!(
        "/api/groups/{other}/messages/{}/reads",
        g1["id"].as_str().unwrap()
    );
    assert_eq!(app.get(&stray, 9).await.0, 404);
    let (status, body) = app
        .get(&format!("/api/groups/{group}/messages/nope/reads"), 1)
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(app.get(&path(&g1["id"], "?limit=0"), 1).await.0, 400);
}

on_both_backends!(
    group_reads_reach_every_member_of_a_small_group,
    large_groups_keep_only_read_positions,
    read_by_pages_members_past_the_message,
    receipt_reads_that_message_and_older_not_newer,
    receipt_is_per_conversation,
    receipt_on_a_live_push,
    receipt_reaches_my_other_devices,
    sender_receipt_reads_the_peers_older_messages,
    receipt_for_someone_elses_message_is_4004,
    group_receipt_is_per_member,
    group_receipt_by_a_non_member_is_refused,
);
