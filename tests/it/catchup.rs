//! Per-device catch-up (issue 14, defect 1): an unread sync reads and never writes; each
//! device catches up from the position it confirmed (type 9), so a reply lost with its
//! connection comes back, and one device's sync leaves the others' owed messages alone;
//! only a read receipt makes messages read, for every device.

use serde_json::{Value, json};
use std::time::Duration;

use crate::on_both_backends;
use crate::support::{Backend, Client, TestApp, eventually, many_frames};
use chat_gateway::settings::Settings;

fn contents(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m["content"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// A gateway whose catch-up has no overlap, so positions are exact.
async fn exact(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, |s| {
        s.chat.catchup_overlap = Duration::ZERO;
        strangers_welcome(s);
    })
    .await
}

/// Alice may send Bob more than the stranger limit.
fn strangers_welcome(settings: &mut Settings) {
    settings.limits.stranger_messages = 1_000_000;
}

async fn a_sync_whose_reply_was_lost_comes_back(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    for text in ["m1", "m2", "m3"] {
        alice.stored(2, text).await;
    }
    // Bob's phone asks for its unread messages and its connection dies before it reads
    // the reply: nothing of it was confirmed.
    let mut phone = Client::connect_device(&app, 2, "phone").await;
    phone.send(json!({"type": 2})).await;
    drop(phone);
    let mut phone = Client::connect_device(&app, 2, "phone").await;
    assert_eq!(contents(&phone.sync_all(100).await), ["m1", "m2", "m3"]);
    // A client that names no device gets them too: they are unread.
    let mut legacy = Client::connect(&app, 2).await;
    assert_eq!(contents(&legacy.sync_all(100).await), ["m1", "m2", "m3"]);
}

async fn a_reply_lost_in_a_full_outbound_queue_comes_back(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.server.outbound_queue = 4;
        s.limits.max_content_bytes = 60_000;
        many_frames(s);
        strangers_welcome(s);
    })
    .await;
    let mut alice = Client::connect(&app, 1).await;
    let mut sent = Vec::new();
    let pad = "x".repeat(50_000);
    for i in 0..40 {
        alice.stored(2, &format!("m{i:04}{pad}")).await;
        sent.push(format!("m{i:04}"));
    }
    // A phone asks for a page and stops reading; live pushes then overflow its queue and
    // the server closes it (1013) with most of the page unsent.
    let mut phone = Client::connect_small_buffer_to(&app, 2, "?device_id=phone").await;
    phone.send(json!({"type": 2, "limit": 40})).await;
    loop {
        let n = sent.len();
        let ack = alice.stored(2, &format!("m{n:04}{pad}")).await;
        sent.push(format!("m{n:04}"));
        if ack["code"] == 2101 {
            break; // the phone was closed as too slow
        }
        assert!(sent.len() < 2000, "the phone's queue never overflowed");
    }
    phone.expect_close_code(1013).await;
    let mut phone = Client::connect_device(&app, 2, "phone").await;
    let got: Vec<String> = contents(&phone.sync_all(100).await)
        .iter()
        .map(|c| c[..5].to_string())
        .collect();
    assert_eq!(got, sent);
}

async fn one_devices_sync_leaves_the_other_devices_owed(backend: Backend) {
    let app = exact(backend).await;
    let group = app.create_group(3, &[2]).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut carol = Client::connect(&app, 3).await;
    alice.stored(2, "a1").await;
    carol.group_stored(&group, "g1").await;
    alice.stored(2, "a2").await;
    let mut phone = Client::connect_device(&app, 2, "phone").await;
    let got = phone.sync_all(100).await;
    assert_eq!(contents(&got), ["a1", "g1", "a2"]);
    let answer = phone.confirm(&got[2]["id"]).await;
    assert_eq!(answer["code"], 2500, "{answer}");
    assert_eq!(answer["position"], got[2]["id"], "{answer}");
    phone.close().await;
    let mut laptop = Client::connect_device(&app, 2, "laptop").await;
    assert_eq!(contents(&laptop.sync_all(100).await), ["a1", "g1", "a2"]);
    // The phone, on a new connection, starts after what it confirmed.
    alice.stored(2, "a3").await;
    let mut phone = Client::connect_device(&app, 2, "phone").await;
    assert_eq!(contents(&phone.sync_all(100).await), ["a3"]);
}

async fn repeated_syncs_on_one_connection_page_forward(backend: Backend) {
    let app = exact(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    for i in 1..=5 {
        alice.stored(2, &format!("m{i}")).await;
    }
    let mut phone = Client::connect_device(&app, 2, "phone").await;
    let (first, end) = phone.sync_limit(2).await;
    assert_eq!(contents(&first), ["m1", "m2"]);
    assert_eq!(end["content"], "more");
    assert_eq!(end["next_cursor"], first[1]["id"]);
    assert_eq!(end["last_id"], first[1]["id"]);
    let (second, _) = phone.sync_limit(2).await;
    assert_eq!(contents(&second), ["m3", "m4"]);
    let (third, end) = phone.sync_limit(2).await;
    assert_eq!(contents(&third), ["m5"]);
    assert_eq!(end["content"], "end");
    assert_eq!(end["next_cursor"], "");
    assert_eq!(end["last_id"], third[0]["id"]);
    let (none, end) = phone.sync_limit(2).await;
    assert!(
        none.is_empty(),
        "each message once per connection: {none:?}"
    );
    assert_eq!(end["last_id"], "");
    // Nothing was confirmed: a new connection of the phone gets everything again.
    phone.close().await;
    let mut phone = Client::connect_device(&app, 2, "phone").await;
    assert_eq!(phone.sync_all(2).await.len(), 5);
}

async fn a_read_clears_the_catchup_of_every_device(backend: Backend) {
    let app = exact(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    alice.stored(2, "m1").await;
    let last = alice.stored(2, "m2").await;
    let mut phone = Client::connect_device(&app, 2, "phone").await;
    let mut laptop = Client::connect_device(&app, 2, "laptop").await;
    let read = phone.read(&last["id"]).await;
    assert_eq!(read["code"], 2300, "{read}");
    alice.expect(2301).await;
    // The laptop is told, and owes nothing more.
    let told = laptop.expect(2301).await;
    assert_eq!(told["id"], last["id"]);
    let (owed, _) = laptop.sync().await;
    assert!(
        owed.is_empty(),
        "read messages are owed to no device: {owed:?}"
    );
    // Reads only count what they name: a newer message is owed to both.
    alice.stored(2, "m3").await;
    laptop.expect(2000).await;
    phone.expect(2000).await;
    let mut tablet = Client::connect_device(&app, 2, "tablet").await;
    assert_eq!(contents(&tablet.sync_all(100).await), ["m3"]);
}

async fn a_confirmation_counts_only_as_far_as_the_connections_syncs_sent(backend: Backend) {
    let app = exact(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    alice.stored(2, "m1").await;
    alice.stored(2, "m2").await;
    let mut phone = Client::connect_device(&app, 2, "phone").await;
    alice.stored(2, "m3").await;
    let live = phone.expect(2000).await;
    // The phone confirms a live message without having synced: m1 and m2 were never sent
    // to this connection, so the position does not move.
    let answer = phone.confirm(&live["id"]).await;
    assert_eq!(answer["code"], 2500, "{answer}");
    assert_eq!(answer["position"], "", "{answer}");
    // Halfway through a catch-up it counts up to the last message sent.
    let (page, _) = phone.sync_limit(1).await;
    assert_eq!(contents(&page), ["m1"]);
    let answer = phone.confirm(&live["id"]).await;
    assert_eq!(answer["position"], page[0]["id"], "{answer}");
    phone.close().await;
    let mut phone = Client::connect_device(&app, 2, "phone").await;
    assert_eq!(contents(&phone.sync_all(100).await), ["m2", "m3"]);
    // Even caught up, a live message counts only once a sync has sent it: a live push is
    // at most once, so the connection cannot vouch for what came before it.
    let last = alice.stored(2, "m4").await;
    phone.expect(2000).await;
    let answer = phone.confirm(&last["id"]).await;
    assert_ne!(answer["position"], last["id"], "{answer}");
    let (page, end) = phone.sync().await;
    assert_eq!(contents(&page), ["m4"]);
    assert_eq!(end["last_id"], last["id"]);
    let answer = phone.confirm(&last["id"]).await;
    assert_eq!(answer["position"], last["id"], "{answer}");
    phone.close().await;
    let mut phone = Client::connect_device(&app, 2, "phone").await;
    assert!(phone.sync_all(100).await.is_empty());
}

async fn the_overlap_repeats_what_was_confirmed_just_before(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_eq!(app.settings.chat.catchup_overlap, Duration::from_secs(5));
    let mut alice = Client::connect(&app, 1).await;
    alice.stored(2, "m1").await;
    let mut phone = Client::connect_device(&app, 2, "phone").await;
    let got = phone.sync_all(100).await;
    phone.confirm(&got[0]["id"]).await;
    phone.close().await;
    // Stored less than chat.catchup_overlap before the confirmed position: it comes again
    // (clients drop repeats by id).
    let mut phone = Client::connect_device(&app, 2, "phone").await;
    let again = phone.sync_all(100).await;
    assert_eq!(contents(&again), ["m1"]);
    assert_eq!(again[0]["id"], got[0]["id"]);
}

async fn device_positions_are_bounded_per_user(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.chat.catchup_overlap = Duration::ZERO;
        s.chat.max_device_positions = 2;
    })
    .await;
    let mut alice = Client::connect(&app, 1).await;
    alice.stored(2, "m1").await;
    for device in ["d1", "d2", "d3"] {
        let mut bob = Client::connect_device(&app, 2, device).await;
        let got = bob.sync_all(100).await;
        bob.confirm(&got[0]["id"]).await;
        bob.close().await;
        // Confirmed in distinct milliseconds, so "least recently" is well defined.
        let at = chat_gateway::ids::millis_now();
        eventually(Duration::from_secs(1), "the next millisecond", async || {
            chat_gateway::ids::millis_now() > at
        })
        .await;
    }
    let kept = app
        .sql_int("SELECT COUNT(*) FROM device_positions WHERE user_id = 2")
        .await;
    assert_eq!(kept, 2);
    // d1 was forgotten: it catches up as a new device, from the oldest unread message.
    let mut d1 = Client::connect_device(&app, 2, "d1").await;
    assert_eq!(contents(&d1.sync_all(100).await), ["m1"]);
    let mut d3 = Client::connect_device(&app, 2, "d3").await;
    assert!(d3.sync_all(100).await.is_empty());
}

async fn confirmations_are_checked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut legacy = Client::connect(&app, 2).await;
    let id = uuid::Uuid::now_v7().to_string();
    legacy.send(json!({"type": 9, "content": id})).await;
    let refused = legacy.expect(4000).await;
    assert!(
        refused["reason"]
            .as_str()
            .unwrap()
            .contains("needs a device"),
        "{refused}"
    );
    let mut phone = Client::connect_device(&app, 2, "phone").await;
    phone.send(json!({"type": 9, "content": "yesterday"})).await;
    let refused = phone.expect(4000).await;
    assert_eq!(refused["reason"], "content must be a message id (a UUID)");
    let future = uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
        uuid::NoContext,
        4_000_000_000,
        0,
    ));
    phone
        .send(json!({"type": 9, "content": future.to_string()}))
        .await;
    let refused = phone.expect(4000).await;
    assert_eq!(refused["reason"], "content is a message id from the future");
    // A device id that is not one is refused at the handshake, naming the parameter.
    let query = format!("?token={}&device_id=a%2Fb", app.token(2));
    let (status, body) = app.handshake(&query, &[]).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("device_id"),
        "{body}"
    );
}

/// A message that becomes visible after a newer one was sent (its node's batch committed
/// later, or its clock lags) is sent by the next sync of the same connection.
async fn a_message_stored_late_with_an_older_id_is_not_skipped(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    let first = alice.stored(2, "m1").await;
    let mut phone = Client::connect_device(&app, 2, "phone").await;
    assert_eq!(contents(&phone.sync_all(100).await), ["m1"]);
    // Stored now, with an id 2 ms older than m1's.
    let m1 = uuid::Uuid::parse_str(first["id"].as_str().unwrap()).unwrap();
    let mut bytes = *m1.as_bytes();
    let millis = u64::from_be_bytes([
        0, 0, bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5],
    ]) - 2;
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    let late = uuid::Uuid::from_bytes(bytes);
    app.sql(&format!(
        "INSERT INTO messages (id, sender_id, recipient_id, peer_lo, peer_hi, content, ts, is_read, delivered) \
         VALUES (X'{}', 1, 2, 1, 2, 'late', {millis}, 0, 1)",
        late.simple()
    ))
    .await;
    let again = phone.sync_all(100).await;
    assert_eq!(contents(&again), ["late"], "sent once, m1 not again");
    let (none, _) = phone.sync().await;
    assert!(none.is_empty(), "{none:?}");
}

on_both_backends!(
    a_message_stored_late_with_an_older_id_is_not_skipped,
    a_sync_whose_reply_was_lost_comes_back,
    a_reply_lost_in_a_full_outbound_queue_comes_back,
    one_devices_sync_leaves_the_other_devices_owed,
    repeated_syncs_on_one_connection_page_forward,
    a_read_clears_the_catchup_of_every_device,
    a_confirmation_counts_only_as_far_as_the_connections_syncs_sent,
    the_overlap_repeats_what_was_confirmed_just_before,
    device_positions_are_bounded_per_user,
    confirmations_are_checked,
);
