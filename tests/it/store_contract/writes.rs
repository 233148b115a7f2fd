//! The store contract, writing: batches with mixed outcomes, atomic batches, the marks
//! that tell a repeated `client_msg_id` its first code.

use chat_gateway::protocol::Cursor;
use chat_gateway::store::InsertOutcome;

use super::*;
use crate::on_both_backends;
use crate::support::Backend;

async fn insert_batch_with_mixed_outcomes(backend: Backend) {
    let f = fixture(backend).await;
    let s = &*f.store;
    s.create_group(new_group("g", 1, &[2])).await.unwrap();
    assert!(s.block(5, 1).await.unwrap());
    let earlier = to_user(1, 2, "earlier", Some("c0"));
    store_all(s, std::slice::from_ref(&earlier)).await;

    let batch = vec![
        to_user(1, 2, "plain", None),
        to_user(1, 5, "blocked", None),
        to_group(3, "g", "outsider", None),
        to_group(2, "g", "member", Some("cg")),
        to_user(1, 3, "repeat of c0", Some("c0")),
        to_user(1, 2, "first c1", Some("c1")),
        to_user(1, 4, "second c1", Some("c1")),
        to_group(3, "no-such-group", "nowhere", None),
        to_user(5, 1, "the blocker may write", None),
    ];
    let outcomes = s.insert_messages(&batch, &[]).await.unwrap();
    assert_eq!(
        outcomes,
        vec![
            InsertOutcome::Stored,
            InsertOutcome::Blocked,
            InsertOutcome::NotMember,
            InsertOutcome::Stored,
            InsertOutcome::Duplicate {
                id: earlier.id,
                ts: earlier.ts,
                delivered: true
            },
            InsertOutcome::Stored,
            InsertOutcome::Duplicate {
                id: batch[5].id,
                ts: batch[5].ts,
                delivered: true
            },
            InsertOutcome::NotMember,
            InsertOutcome::Stored,
        ]
    );
    // Exactly the stored ones are there, as they were sent.
    let page = s.private_history(1, 2, Cursor::NOW, 100).await.unwrap();
    assert_eq!(
        ids(&page.messages),
        vec![batch[5].id, batch[0].id, earlier.id]
    );
    assert_eq!(page.messages[1], batch[0]);
    assert_eq!(page.messages[0].client_msg_id.as_deref(), Some("c1"));
    let page = s.private_history(1, 5, Cursor::NOW, 100).await.unwrap();
    assert_eq!(ids(&page.messages), vec![batch[8].id]);
    for peer in [3, 4] {
        let page = s.private_history(1, peer, Cursor::NOW, 100).await.unwrap();
        assert!(page.messages.is_empty(), "{peer}: {page:?}");
    }
    let page = s.group_history("g", Cursor::NOW, 100).await.unwrap();
    assert_eq!(page.messages, vec![batch[3].clone()]);
    let page = s
        .group_history("no-such-group", Cursor::NOW, 100)
        .await
        .unwrap();
    assert!(page.messages.is_empty());
    assert_eq!(s.insert_messages(&[], &[]).await.unwrap(), vec![]);
}

/// A trigger that makes inserting a message whose content is "boom" fail.
fn boom_trigger(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => {
            "CREATE TRIGGER refuse_boom BEFORE INSERT ON messages WHEN NEW.content = 'boom' \
             BEGIN SELECT RAISE(ABORT, 'boom refused'); END"
        }
        Backend::MySql => {
            "CREATE TRIGGER refuse_boom BEFORE INSERT ON messages FOR EACH ROW \
             BEGIN IF NEW.content = 'boom' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'boom refused'; END IF; END"
        }
    }
}

async fn insert_batch_is_atomic(backend: Backend) {
    let f = fixture(backend).await;
    let s = &*f.store;
    let first = to_user(1, 2, "first", Some("a0"));
    store_all(s, std::slice::from_ref(&first)).await;
    execute_sql(f.settings.url.expose(), boom_trigger(f.backend)).await;
    let good = to_user(1, 2, "good", Some("a1"));
    let bad = to_user(1, 2, "boom", None);
    let result = s
        .insert_messages(&[good.clone(), bad], std::slice::from_ref(&first.id))
        .await;
    assert!(result.is_err(), "{result:?}");
    // Nothing of the failed batch happened: neither the good message nor the undelivered mark.
    let page = s.private_history(1, 2, Cursor::NOW, 100).await.unwrap();
    assert_eq!(ids(&page.messages), vec![first.id]);
    let again = to_user(1, 2, "first", Some("a0"));
    assert_eq!(
        s.insert_messages(&[again], &[]).await.unwrap(),
        vec![InsertOutcome::Duplicate {
            id: first.id,
            ts: first.ts,
            delivered: true
        }]
    );
    // The same good message in a later batch is stored (its client_msg_id is unused).
    store_all(s, std::slice::from_ref(&good)).await;
    let page = s.private_history(1, 2, Cursor::NOW, 100).await.unwrap();
    assert_eq!(ids(&page.messages), vec![good.id, first.id]);
}

async fn undelivered_marks_name_the_first_code(backend: Backend) {
    let f = fixture(backend).await;
    let s = &*f.store;
    let a = to_user(1, 2, "a", Some("d-a"));
    let b = to_user(1, 2, "b", Some("d-b"));
    let c = to_user(1, 2, "c", Some("d-c"));
    store_all(s, &[a.clone(), b.clone(), c.clone()]).await;
    s.mark_undelivered(&[a.id]).await.unwrap();
    s.mark_undelivered(&[]).await.unwrap();
    // Marks may also ride on the next batch, applied before its duplicate checks.
    let repeat_b = to_user(1, 2, "b", Some("d-b"));
    let outcomes = s
        .insert_messages(std::slice::from_ref(&repeat_b), &[b.id])
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        vec![InsertOutcome::Duplicate {
            id: b.id,
            ts: b.ts,
            delivered: false
        }]
    );
    // Unmarked messages are stored as delivered.
    let repeats = [
        to_user(1, 2, "a", Some("d-a")),
        to_user(1, 2, "c", Some("d-c")),
    ];
    let outcomes = s.insert_messages(&repeats, &[]).await.unwrap();
    assert_eq!(
        outcomes,
        vec![
            InsertOutcome::Duplicate {
                id: a.id,
                ts: a.ts,
                delivered: false
            },
            InsertOutcome::Duplicate {
                id: c.id,
                ts: c.ts,
                delivered: true
            },
        ]
    );
}

/// The newest message of each of `user`'s conversations, by peer (or group id), with its
/// preview.
async fn newest(s: &dyn Store, user: i64) -> Vec<(String, Uuid, String)> {
    let (list, _) = s.conversations(user, Cursor::NOW.0, 100).await.unwrap();
    let mut rows: Vec<_> = list
        .into_iter()
        .map(|c| {
            let key = match (c.peer_id, &c.group_id) {
                (Some(peer), _) => peer.to_string(),
                (None, Some(g)) => g.to_string(),
                (None, None) => String::new(),
            };
            let last = c.last_message.expect("a last message");
            (key, last.id, last.preview)
        })
        .collect();
    rows.sort();
    rows
}

async fn repeats_never_move_the_conversation_list(backend: Backend) {
    let f = fixture(backend).await;
    let s = &*f.store;
    s.create_group(new_group("g", 1, &[2])).await.unwrap();
    let first = to_user(1, 2, "first", Some("r0"));
    store_all(s, std::slice::from_ref(&first)).await;
    // 200 characters, two of them multi-byte: the preview keeps the first 100 characters.
    let long: String = "é".repeat(2) + &"x".repeat(198);
    let reply = to_user(2, 1, &long, None);
    store_all(s, std::slice::from_ref(&reply)).await;
    let in_group = to_group(2, "g", "in the group", Some("r1"));
    store_all(s, std::slice::from_ref(&in_group)).await;

    // Repeats of stored messages, and a key repeated within the batch: newer ids, none kept.
    let batch = vec![
        to_user(1, 2, "first", Some("r0")),
        to_group(2, "g", "in the group", Some("r1")),
        to_user(2, 1, "once", Some("r2")),
        to_user(2, 1, "twice", Some("r2")),
    ];
    let outcomes = s.insert_messages(&batch, &[]).await.unwrap();
    assert_eq!(
        outcomes[0],
        InsertOutcome::Duplicate {
            id: first.id,
            ts: first.ts,
            delivered: true
        }
    );
    assert_eq!(
        outcomes[1],
        InsertOutcome::Duplicate {
            id: in_group.id,
            ts: in_group.ts,
            delivered: true
        }
    );
    assert_eq!(outcomes[2], InsertOutcome::Stored);
    assert_eq!(
        outcomes[3],
        InsertOutcome::Duplicate {
            id: batch[2].id,
            ts: batch[2].ts,
            delivered: true
        }
    );
    // Both users' lists show the newest message kept: "once", not the later "twice".
    for (user, peer) in [(1, 2), (2, 1)] {
        assert_eq!(
            newest(s, user).await,
            vec![
                (peer.to_string(), batch[2].id, "once".to_string()),
                ("g".to_string(), in_group.id, "in the group".to_string()),
            ],
            "user {user}"
        );
    }

    // Without repeats, the list takes the newest of the batch and the preview is cut at 100
    // characters.
    let later = to_user(1, 2, "later", None);
    let newest_one = to_user(2, 1, &long, None);
    store_all(s, &[later, newest_one.clone()]).await;
    let expected: String = long.chars().take(100).collect();
    assert_eq!(
        newest(s, 1).await[0],
        ("2".to_string(), newest_one.id, expected.clone())
    );
    assert_eq!(
        newest(s, 2).await[0],
        ("1".to_string(), newest_one.id, expected)
    );
    assert_eq!(reply.content.chars().count(), 200);
}

on_both_backends!(
    insert_batch_with_mixed_outcomes,
    repeats_never_move_the_conversation_list,
    insert_batch_is_atomic,
    undelivered_marks_name_the_first_code,
);
