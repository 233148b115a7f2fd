//! Read state in history pages: the 2200 ending a type 3 page carries `read_upto` and
//! `peer_read_upto`, a type 6 page the reader's `read_upto`, so a client draws ticks.

use crate::on_both_backends;
use crate::support::{Backend, Client, TestApp};

async fn private_history_carries_both_positions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut bob = Client::connect(&app, 2).await;
    let first = alice.stored(2, "one").await;
    let second = alice.stored(2, "two").await;
    bob.expect(2000).await;
    bob.expect(2000).await;
    let (_, end) = alice.history(2, "", None).await;
    assert_eq!(end["read_upto"], "", "nothing of Bob's to read: {end}");
    assert_eq!(end["peer_read_upto"], "", "Bob read nothing yet: {end}");
    assert_eq!(bob.read(&first["id"]).await["code"], 2300);
    alice.expect(2301).await;
    let (page, end) = alice.history(2, "", None).await;
    assert_eq!(page.len(), 2);
    assert_eq!(end["peer_read_upto"], first["id"], "{end}");
    assert_eq!(end["count"], 2);
    let answer = bob.stored(1, "three").await;
    alice.expect(2000).await;
    assert_eq!(alice.read(&answer["id"]).await["code"], 2300);
    bob.expect(2301).await;
    let (_, end) = bob.history(1, "", None).await;
    assert_eq!(
        end["read_upto"], first["id"],
        "what Bob read of Alice's: {end}"
    );
    assert_eq!(
        end["peer_read_upto"], answer["id"],
        "what Alice read of Bob's: {end}"
    );
    assert_ne!(end["peer_read_upto"], second["id"]);
}

async fn group_history_carries_the_read_marker(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let group = app.create_group(1, &[2]).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut bob = Client::connect(&app, 2).await;
    let said = alice.group_stored(&group, "hello").await;
    bob.expect(2000).await;
    let (_, before) = bob.group_history(&group, "", None).await;
    let marker = before["read_upto"].as_str().unwrap().to_string();
    assert!(marker.as_str() < said["id"].as_str().unwrap(), "{before}");
    assert!(before.get("peer_read_upto").is_none(), "{before}");
    assert_eq!(bob.read(&said["id"]).await["code"], 2300);
    let (_, after) = bob.group_history(&group, "", None).await;
    assert_eq!(after["read_upto"], said["id"], "{after}");
}

on_both_backends!(
    private_history_carries_both_positions,
    group_history_carries_the_read_marker,
);
