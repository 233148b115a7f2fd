//! Adaptive batching through the real server: many connections sending at once (what the
//! writer's group commit and the paced flusher batch) get every message stored once,
//! acknowledged, and delivered in each sender's order, private and in a large group. That
//! nothing waits a fixed interval when there is nothing to batch is shown by the unit tests
//! of `store/writer.rs` and `ws/flusher.rs`, on tokio's paused clock.

use serde_json::json;

use crate::on_both_backends;
use crate::support::app::many_frames;
use crate::support::{Backend, Client, TestApp};

/// Senders, and messages each sends back to back without waiting for the answers.
const SENDERS: i64 = 8;
const EACH: usize = 30;

async fn concurrent_private_senders_keep_their_order(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        many_frames(s);
        s.limits.stranger_messages = 1_000;
    })
    .await;
    let mut bob = Client::connect(&app, 2).await;
    let mut senders = Vec::new();
    for from in 10..10 + SENDERS {
        senders.push(Client::connect(&app, from).await);
    }
    // Every sender's frames go out before any answer is read: the node has them all at
    // once, from every connection.
    for (sender, from) in senders.iter_mut().zip(10..) {
        for n in 0..EACH {
            sender
                .send(json!({
                    "type": 1, "recipient_id": 2,
                    "content": format!("{from}:{n}"),
                    "client_msg_id": format!("{from}-{n}"),
                }))
                .await;
        }
    }
    for (sender, from) in senders.iter_mut().zip(10..) {
        for n in 0..EACH {
            let ack = sender.recv().await;
            assert_eq!(ack["code"], 2100, "{ack}");
            assert_eq!(
                ack["client_msg_id"],
                format!("{from}-{n}"),
                "answers in order"
            );
        }
    }
    let mut next = vec![0; SENDERS as usize];
    for _ in 0..SENDERS as usize * EACH {
        let pushed = bob.expect(2000).await;
        let (from, n) = pushed["content"].as_str().unwrap().split_once(':').unwrap();
        let sender = from.parse::<usize>().unwrap() - 10;
        assert_eq!(n.parse::<usize>().unwrap(), next[sender], "{pushed}");
        next[sender] += 1;
    }
    bob.expect_nothing_pending().await;
    let stored = app
        .sql_int("SELECT COUNT(*) FROM messages WHERE recipient_id = 2")
        .await;
    assert_eq!(stored, SENDERS * EACH as i64, "each stored once");
}

async fn concurrent_large_group_senders_keep_their_order(backend: Backend) {
    let app = TestApp::spawn_with(backend, many_frames).await;
    // 70 members on one node: over the 64 that makes a fan-out paced (ws/flusher.rs).
    let members: Vec<i64> = (2..=70).collect();
    let group = app.create_group(1, &members).await;
    let mut clients = Vec::new();
    for &member in &members {
        clients.push(Client::connect(&app, member).await);
    }
    let posters = 3;
    for (client, from) in clients.iter_mut().zip(2..).take(posters) {
        for n in 0..10 {
            client
                .send(json!({"type": 4, "group_id": group, "content": format!("{from}:{n}")}))
                .await;
        }
    }
    for (client, &member) in clients.iter_mut().zip(&members) {
        let mut next = [0; 3];
        let mut acks = 0;
        let own = (member as usize).checked_sub(2).filter(|&i| i < posters);
        let expected = 10 * (posters - own.map_or(0, |_| 1));
        let mut got = 0;
        while got < expected || (own.is_some() && acks < 10) {
            let frame = client.recv().await;
            if frame["code"] == 2100 {
                acks += 1;
                continue;
            }
            assert_eq!(frame["code"], 2000, "member {member}: {frame}");
            let (from, n) = frame["content"].as_str().unwrap().split_once(':').unwrap();
            let poster = from.parse::<usize>().unwrap() - 2;
            assert_ne!(
                Some(poster),
                own,
                "member {member}: its own message came back"
            );
            assert_eq!(n.parse::<usize>().unwrap(), next[poster], "member {member}");
            next[poster] += 1;
            got += 1;
        }
        client.expect_nothing_pending().await;
    }
}

on_both_backends!(
    concurrent_private_senders_keep_their_order,
    concurrent_large_group_senders_keep_their_order,
);
