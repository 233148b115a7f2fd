//! History pages (types 3 and 6): newest first, strictly older than the cursor, `limit`,
//! `next_cursor` chaining to "", every cursor form (empty, message id, RFC 3339, unix ms),
//! both directions of a conversation, and only my own conversations.

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use serde_json::{Value, json};
use std::time::Duration;

use crate::on_both_backends;
use crate::support::{Backend, Client, TestApp, eventually, many_frames};

fn ids(messages: &[Value]) -> Vec<Value> {
    messages.iter().map(|m| m["id"].clone()).collect()
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Waits (by polling the clock, at most a few milliseconds) until the wall clock has passed
/// `ts`, so the next message gets a later millisecond.
async fn after_millisecond(ts: &Value) {
    let ts = ts.as_i64().expect("ts");
    eventually(Duration::from_secs(2), "the clock moving on", async || {
        now_ms() > ts
    })
    .await;
}

/// Alice and bob (both connected) take turns sending `n` messages, each in its own
/// millisecond; the acknowledgements, oldest first. Pushes are consumed.
async fn conversation(alice: &mut Client, bob: &mut Client, n: usize) -> Vec<Value> {
    let mut sent = Vec::new();
    for i in 0..n {
        let (from, to, peer) = if i % 2 == 0 {
            (&mut *alice, &mut *bob, 2)
        } else {
            (&mut *bob, &mut *alice, 1)
        };
        let ack = from.private(peer, &format!("m{i}")).await;
        assert_eq!(ack["code"], 2100, "{ack}");
        assert_eq!(to.expect(2000).await["id"], ack["id"]);
        after_millisecond(&ack["ts"]).await;
        sent.push(ack);
    }
    sent
}

/// Follows `next_cursor` with `fetch` from "now" to the end; every page and the ids in order.
async fn all_pages(
    client: &mut Client,
    fetch: impl Fn(&str) -> Value,
) -> (Vec<Vec<Value>>, Vec<Value>) {
    let mut cursor = String::new();
    let mut pages = Vec::new();
    let mut all = Vec::new();
    loop {
        let (messages, end) = client.page(fetch(&cursor)).await;
        assert_eq!(end["count"], messages.len(), "{end}");
        assert!(messages.iter().all(|m| m["source"] == "history"));
        all.extend(ids(&messages));
        pages.push(messages);
        cursor = end["next_cursor"]
            .as_str()
            .expect("next_cursor")
            .to_string();
        if cursor.is_empty() {
            return (pages, all);
        }
        assert_eq!(
            &cursor,
            all.last().unwrap().as_str().unwrap(),
            "cursor = oldest of the page"
        );
        assert!(pages.len() < 100, "next_cursor never ends");
    }
}

async fn private_history_pages_across_cursors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut bob = Client::connect(&app, 2).await;
    let sent = conversation(&mut alice, &mut bob, 25).await;
    let newest_first: Vec<Value> = ids(&sent).into_iter().rev().collect();
    for (me, peer) in [(&mut bob, 1), (&mut alice, 2)] {
        let (pages, all) = all_pages(
            me,
            |cursor| json!({"type": 3, "recipient_id": peer, "content": cursor, "limit": 10}),
        )
        .await;
        let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
        assert_eq!(sizes, [10, 10, 5]);
        assert_eq!(all, newest_first, "newest first, both directions, no gaps");
        let senders: Vec<_> = pages
            .concat()
            .iter()
            .map(|m| m["sender_id"].clone())
            .collect();
        assert!(senders.contains(&json!(1)) && senders.contains(&json!(2)));
    }
    // History is not a read: bob still has alice's messages unread.
    let (unread, _) = bob.sync_limit(500).await;
    assert_eq!(unread.len(), 13);
}

async fn history_default_and_maximum_limit(backend: Backend) {
    let app = TestApp::spawn_with(backend, many_frames).await;
    let group = app.create_group(1, &[2]).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut bob = Client::connect(&app, 2).await;
    bob.private(1, "hi").await;
    alice.expect(2000).await;
    bob.close().await;
    for i in 0..105 {
        alice.stored(2, &format!("p{i}")).await;
        alice.group_stored(&group, &format!("g{i}")).await;
    }
    let (page, end) = alice.history(2, "", None).await;
    assert_eq!(page.len(), 10, "default limit");
    assert_eq!(end["next_cursor"], page[9]["id"]);
    let (page, end) = alice.history(2, "", Some(100)).await;
    assert_eq!(page.len(), 100);
    assert_eq!(page[0]["content"], "p104");
    let (rest, end) = alice
        .history(2, end["next_cursor"].as_str().unwrap(), Some(100))
        .await;
    assert_eq!(rest.len(), 6);
    assert_eq!(rest[5]["content"], "hi");
    assert_eq!(end["next_cursor"], "");
    let (page, _) = alice.group_history(&group, "", None).await;
    assert_eq!(page.len(), 10);
    let (page, end) = alice.group_history(&group, "", Some(100)).await;
    assert_eq!(page.len(), 100);
    assert_ne!(end["next_cursor"], "");
}

/// Checks every cursor form against the messages `sent` (oldest first, each in its own
/// millisecond) with `fetch(cursor)` answering one page of at most 100.
async fn check_cursor_forms(client: &mut Client, sent: &[Value], fetch: impl Fn(&str) -> Value) {
    let page = |messages: Vec<Value>| ids(&messages);
    let older_than = |k: usize| -> Vec<Value> { ids(&sent[..k]).into_iter().rev().collect() };
    let everything = older_than(sent.len());
    // Empty: now.
    let (messages, _) = client.page(fetch("")).await;
    assert_eq!(page(messages), everything);
    for k in [0, 1, 3, sent.len() - 1] {
        let expected = older_than(k);
        // A message id: strictly older than that message.
        let id = sent[k]["id"].as_str().unwrap();
        let (messages, _) = client.page(fetch(id)).await;
        assert_eq!(page(messages), expected, "cursor = id of message {k}");
        // Unix milliseconds of that message: everything of earlier milliseconds.
        let ms = sent[k]["ts"].as_i64().unwrap();
        let (messages, _) = client.page(fetch(&ms.to_string())).await;
        assert_eq!(page(messages), expected, "cursor = {ms} ms");
        // The same instant in RFC 3339, in UTC and with an offset.
        let at = DateTime::<Utc>::from_timestamp_millis(ms).unwrap();
        let utc = at.to_rfc3339_opts(SecondsFormat::Millis, true);
        let (messages, _) = client.page(fetch(&utc)).await;
        assert_eq!(page(messages), expected, "cursor = {utc}");
        let east = at
            .with_timezone(&FixedOffset::east_opt(2 * 3600).unwrap())
            .to_rfc3339_opts(SecondsFormat::Millis, false);
        let (messages, _) = client.page(fetch(&east)).await;
        assert_eq!(page(messages), expected, "cursor = {east}");
    }
    // One millisecond after the newest includes it; the epoch and 1970 include nothing.
    let after = sent.last().unwrap()["ts"].as_i64().unwrap() + 1;
    let (messages, _) = client.page(fetch(&after.to_string())).await;
    assert_eq!(page(messages), everything);
    for cursor in ["0", "1970-01-01T00:00:00Z"] {
        let (messages, end) = client.page(fetch(cursor)).await;
        assert!(messages.is_empty(), "{cursor}: {messages:?}");
        assert_eq!(end["next_cursor"], "");
    }
}

async fn private_history_cursor_forms(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut bob = Client::connect(&app, 2).await;
    let sent = conversation(&mut alice, &mut bob, 6).await;
    check_cursor_forms(
        &mut bob,
        &sent,
        |cursor| json!({"type": 3, "recipient_id": 1, "content": cursor, "limit": 100}),
    )
    .await;
}

async fn group_history_pages_across_cursors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let group = app.create_group(1, &[2, 3]).await;
    let mut members = [
        Client::connect(&app, 1).await,
        Client::connect(&app, 2).await,
        Client::connect(&app, 3).await,
    ];
    let mut sent = Vec::new();
    for i in 0..23 {
        let sender = i % 3;
        let ack = members[sender].group(&group, &format!("g{i}")).await;
        assert_eq!(ack["code"], 2100, "{ack}");
        for (j, other) in members.iter_mut().enumerate() {
            if j != sender {
                assert_eq!(other.expect(2000).await["id"], ack["id"]);
            }
        }
        sent.push(ack);
    }
    let newest_first: Vec<Value> = ids(&sent).into_iter().rev().collect();
    let (pages, all) = all_pages(
        &mut members[2],
        |cursor| json!({"type": 6, "group_id": group, "content": cursor, "limit": 7}),
    )
    .await;
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [7, 7, 7, 2]);
    assert_eq!(all, newest_first);
    let first = &pages[0][0];
    assert_eq!(first["group_id"], group.as_str());
    assert_eq!(first["content"], "g22");
    assert_eq!(first["sender_id"], 2);
}

async fn group_history_cursor_forms(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let group = app.create_group(1, &[2]).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut bob = Client::connect(&app, 2).await;
    let mut sent = Vec::new();
    for i in 0..6 {
        let (sender, other) = if i % 2 == 0 {
            (&mut alice, &mut bob)
        } else {
            (&mut bob, &mut alice)
        };
        let ack = sender.group_stored(&group, &format!("g{i}")).await;
        assert_eq!(other.expect(2000).await["id"], ack["id"]);
        after_millisecond(&ack["ts"]).await;
        sent.push(ack);
    }
    check_cursor_forms(
        &mut alice,
        &sent,
        |cursor| json!({"type": 6, "group_id": group, "content": cursor, "limit": 100}),
    )
    .await;
}

async fn history_shows_only_my_own_conversation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut bob = Client::connect(&app, 2).await;
    conversation(&mut alice, &mut bob, 4).await;
    let mut carol = Client::connect(&app, 3).await;
    // Carol asking for "user 1" or "user 2" gets her own (empty) conversation with them.
    for peer in [1, 2] {
        let (messages, end) = carol.history(peer, "", None).await;
        assert!(messages.is_empty(), "carol sees {messages:?}");
        assert_eq!(end["count"], 0);
    }
    let mine = carol.private(1, "hello alice").await;
    assert_eq!(alice.expect(2000).await["id"], mine["id"]);
    let (messages, _) = carol.history(1, "", None).await;
    assert_eq!(ids(&messages), vec![mine["id"].clone()]);
    // And alice's conversation with bob does not include carol's message.
    let (messages, _) = alice.history(2, "", None).await;
    assert_eq!(messages.len(), 4);
    assert!(messages.iter().all(|m| m["sender_id"] != 3));
    // Nor may carol page through it with a cursor taken from it.
    let (messages, _) = carol
        .history(2, messages[0]["id"].as_str().unwrap(), None)
        .await;
    assert!(messages.is_empty(), "{messages:?}");
}

on_both_backends!(
    private_history_pages_across_cursors,
    history_default_and_maximum_limit,
    private_history_cursor_forms,
    group_history_pages_across_cursors,
    group_history_cursor_forms,
    history_shows_only_my_own_conversation,
);
