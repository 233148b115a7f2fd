//! The `Store` conformance suite: the trait's contract (store/mod.rs), called directly on a
//! store from `chat_gateway::store::connect`, unchanged on SQLite and on MySQL.

use std::sync::Arc;
use std::time::Duration;

use chat_gateway::message::{Message, Target};
use chat_gateway::protocol::Cursor;
use chat_gateway::settings::StorageSettings;
use chat_gateway::store::{InsertOutcome, NewGroup, ReadOutcome, Role, Store, StoreError};
use uuid::Uuid;

use crate::on_both_backends;
use crate::support::app::{execute_sql, test_settings};
use crate::support::{Backend, eventually};

/// A migrated store on a fresh database, its settings, and the dir holding a SQLite file.
struct Fixture {
    store: Arc<dyn Store>,
    settings: StorageSettings,
    backend: Backend,
    _dir: tempfile::TempDir,
}

async fn fixture(backend: Backend) -> Fixture {
    let (settings, dir) = test_settings(backend).await;
    let store = chat_gateway::store::connect(&settings.storage)
        .await
        .expect("connecting the store");
    Fixture {
        store,
        settings: settings.storage,
        backend,
        _dir: dir,
    }
}

fn to_user(from: i64, to: i64, content: &str, cid: Option<&str>) -> Message {
    Message::new(
        from,
        Target::User(to),
        content.to_string(),
        cid.map(str::to_string),
    )
}

fn to_group(from: i64, group: &str, content: &str, cid: Option<&str>) -> Message {
    Message::new(
        from,
        Target::Group(group.into()),
        content.to_string(),
        cid.map(str::to_string),
    )
}

fn new_group(id: &str, owner: i64, members: &[i64]) -> NewGroup {
    NewGroup {
        id: id.into(),
        name: format!("group {id}"),
        description: "about".into(),
        icon: "icon.png".into(),
        owner_id: owner,
        members: members.to_vec(),
    }
}

fn ids(messages: &[Message]) -> Vec<Uuid> {
    messages.iter().map(|m| m.id).collect()
}

/// Stores messages one batch each, asserting each was stored.
/// The ids of `user`'s groups (from `user_group_ids`), sorted.
async fn group_ids_of(store: &dyn Store, user: i64) -> Vec<String> {
    let mut ids: Vec<String> = store
        .user_group_ids(user)
        .await
        .unwrap()
        .iter()
        .map(|g| g.to_string())
        .collect();
    ids.sort();
    ids
}

async fn store_all(store: &dyn Store, messages: &[Message]) {
    for m in messages {
        let outcome = store.insert_messages(std::slice::from_ref(m), &[]).await;
        assert_eq!(outcome.unwrap(), vec![InsertOutcome::Stored], "{m:?}");
    }
}

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

async fn take_unread_oldest_first_then_read(backend: Backend) {
    let f = fixture(backend).await;
    let s = &*f.store;
    s.create_group(new_group("g", 3, &[2])).await.unwrap();
    let messages = vec![
        to_user(1, 2, "p1", None),
        to_group(3, "g", "g1", None),
        to_user(4, 2, "p2", None),
        to_group(2, "g", "own group message", None),
        to_user(1, 9, "for someone else", None),
        to_user(2, 1, "own private message", None),
        to_group(3, "g", "g2", None),
        to_user(1, 2, "p3", None),
    ];
    store_all(s, &messages).await;
    let expected = [
        messages[0].id,
        messages[1].id,
        messages[2].id,
        messages[6].id,
        messages[7].id,
    ];
    let page = s.take_unread(2, 2).await.unwrap();
    assert_eq!(ids(&page.messages), expected[..2]);
    assert!(page.more);
    assert_eq!(page.messages[0], messages[0]);
    assert_eq!(page.messages[1], messages[1]);
    let page = s.take_unread(2, 2).await.unwrap();
    assert_eq!(ids(&page.messages), expected[2..4]);
    assert!(page.more);
    let page = s.take_unread(2, 2).await.unwrap();
    assert_eq!(ids(&page.messages), expected[4..]);
    assert!(!page.more, "exactly the limit left: nothing more");
    let page = s.take_unread(2, 100).await.unwrap();
    assert!(page.messages.is_empty() && !page.more);
    // Untouched for the others.
    let page = s.take_unread(3, 100).await.unwrap();
    assert_eq!(ids(&page.messages), vec![messages[3].id]);
    let page = s.take_unread(1, 100).await.unwrap();
    assert_eq!(ids(&page.messages), vec![messages[5].id]);
    let page = s.take_unread(9, 100).await.unwrap();
    assert_eq!(ids(&page.messages), vec![messages[4].id]);
}

async fn group_unread_starts_at_joining(backend: Backend) {
    let f = fixture(backend).await;
    let s = &*f.store;
    s.create_group(new_group("g", 1, &[2])).await.unwrap();
    let right_away = to_group(1, "g", "right after creation", None);
    store_all(s, std::slice::from_ref(&right_away)).await;
    assert!(s.add_member("g", 3).await.unwrap());
    let after = to_group(1, "g", "after 3 joined", None);
    store_all(s, std::slice::from_ref(&after)).await;
    let page = s.take_unread(3, 100).await.unwrap();
    assert_eq!(
        ids(&page.messages),
        vec![after.id],
        "nothing from before joining"
    );
    let page = s.take_unread(2, 100).await.unwrap();
    assert_eq!(ids(&page.messages), vec![right_away.id, after.id]);
    // Leaving and joining again starts afresh.
    assert!(s.remove_member("g", 2).await.unwrap());
    let while_away = to_group(1, "g", "while 2 was away", None);
    store_all(s, &[while_away]).await;
    assert!(s.add_member("g", 2).await.unwrap());
    let back = to_group(1, "g", "welcome back", None);
    store_all(s, std::slice::from_ref(&back)).await;
    let page = s.take_unread(2, 100).await.unwrap();
    assert_eq!(ids(&page.messages), vec![back.id]);
}

async fn private_history_pages(backend: Backend) {
    let f = fixture(backend).await;
    let s = &*f.store;
    let mut conversation = Vec::new();
    for i in 0..7 {
        let (from, to) = if i % 2 == 0 { (1, 2) } else { (2, 1) };
        conversation.push(to_user(from, to, &format!("m{i}"), None));
    }
    store_all(s, &conversation).await;
    store_all(
        s,
        &[
            to_user(1, 3, "elsewhere", None),
            to_user(3, 2, "elsewhere", None),
        ],
    )
    .await;
    let newest_first: Vec<Uuid> = ids(&conversation).into_iter().rev().collect();
    for (me, peer) in [(1, 2), (2, 1)] {
        let page = s.private_history(me, peer, Cursor::NOW, 3).await.unwrap();
        assert_eq!(ids(&page.messages), newest_first[..3]);
        assert!(page.more);
        let next = Cursor(page.messages[2].id);
        let page = s.private_history(me, peer, next, 3).await.unwrap();
        assert_eq!(ids(&page.messages), newest_first[3..6]);
        assert!(page.more);
        let next = Cursor(page.messages[2].id);
        let page = s.private_history(me, peer, next, 3).await.unwrap();
        assert_eq!(ids(&page.messages), newest_first[6..]);
        assert!(!page.more);
    }
    let page = s.private_history(1, 2, Cursor::NOW, 7).await.unwrap();
    assert!(!page.more, "exactly the limit: nothing more");
    let page = s
        .private_history(1, 2, Cursor(conversation[0].id), 10)
        .await
        .unwrap();
    assert!(page.messages.is_empty());
    let page = s
        .private_history(1, 2, Cursor::at_millis(0), 10)
        .await
        .unwrap();
    assert!(page.messages.is_empty());
    let page = s.private_history(2, 3, Cursor::NOW, 10).await.unwrap();
    assert_eq!(page.messages.len(), 1);
}

async fn group_history_pages(backend: Backend) {
    let f = fixture(backend).await;
    let s = &*f.store;
    s.create_group(new_group("g", 1, &[2, 3])).await.unwrap();
    s.create_group(new_group("h", 1, &[])).await.unwrap();
    let messages: Vec<Message> = (0..5)
        .map(|i| to_group(1 + i % 3, "g", &format!("g{i}"), None))
        .collect();
    store_all(s, &messages).await;
    store_all(s, &[to_group(1, "h", "other group", None)]).await;
    let newest_first: Vec<Uuid> = ids(&messages).into_iter().rev().collect();
    let page = s.group_history("g", Cursor::NOW, 2).await.unwrap();
    assert_eq!(ids(&page.messages), newest_first[..2]);
    assert!(page.more);
    let page = s
        .group_history("g", Cursor(page.messages[1].id), 10)
        .await
        .unwrap();
    assert_eq!(ids(&page.messages), newest_first[2..]);
    assert!(!page.more);
    assert_eq!(page.messages[2], messages[0]);
}

async fn mark_read_private(backend: Backend) {
    let f = fixture(backend).await;
    let s = &*f.store;
    let m = vec![
        to_user(1, 2, "a1", None),
        to_user(2, 1, "b1", None),
        to_user(1, 2, "a2", None),
        to_user(3, 2, "c1", None),
        to_user(1, 2, "a3", None),
        to_user(2, 1, "b2", None),
    ];
    store_all(s, &m).await;
    // The recipient reads a2: a1 and a2 are read, a3 and carol's c1 are not.
    assert_eq!(
        s.mark_read(2, m[2].id).await.unwrap(),
        ReadOutcome::Applied(Target::User(1))
    );
    let page = s.take_unread(2, 100).await.unwrap();
    assert_eq!(ids(&page.messages), vec![m[3].id, m[4].id]);
    // The sender receipts their own a2: bob's older b1 is read for them, b2 is not.
    assert_eq!(
        s.mark_read(1, m[2].id).await.unwrap(),
        ReadOutcome::Applied(Target::User(2))
    );
    let page = s.take_unread(1, 100).await.unwrap();
    assert_eq!(ids(&page.messages), vec![m[5].id]);
    // Someone else's message, or no message at all.
    assert_eq!(
        s.mark_read(4, m[0].id).await.unwrap(),
        ReadOutcome::NotFound
    );
    assert_eq!(
        s.mark_read(2, Uuid::now_v7()).await.unwrap(),
        ReadOutcome::NotFound
    );
}

async fn mark_read_group(backend: Backend) {
    let f = fixture(backend).await;
    let s = &*f.store;
    s.create_group(new_group("g", 1, &[2, 3])).await.unwrap();
    let m: Vec<Message> = (0..3)
        .map(|i| to_group(1, "g", &format!("g{i}"), None))
        .collect();
    store_all(s, &m).await;
    assert_eq!(
        s.mark_read(2, m[1].id).await.unwrap(),
        ReadOutcome::Applied(Target::Group("g".into()))
    );
    let page = s.take_unread(2, 100).await.unwrap();
    assert_eq!(ids(&page.messages), vec![m[2].id]);
    // Reading an older one after a newer changes nothing.
    assert_eq!(
        s.mark_read(3, m[2].id).await.unwrap(),
        ReadOutcome::Applied(Target::Group("g".into()))
    );
    assert_eq!(
        s.mark_read(3, m[0].id).await.unwrap(),
        ReadOutcome::Applied(Target::Group("g".into()))
    );
    assert!(s.take_unread(3, 100).await.unwrap().messages.is_empty());
    assert_eq!(
        s.mark_read(9, m[0].id).await.unwrap(),
        ReadOutcome::NotMember
    );
}

async fn stranger_exemption(backend: Backend) {
    let f = fixture(backend).await;
    let s = &*f.store;
    assert!(!s.stranger_exempt(1, 2).await.unwrap());
    // One-way follows, in either direction, are not enough.
    s.follow(1, 2).await.unwrap();
    assert!(!s.stranger_exempt(1, 2).await.unwrap());
    assert!(!s.stranger_exempt(2, 1).await.unwrap());
    s.follow(2, 1).await.unwrap();
    assert!(s.stranger_exempt(1, 2).await.unwrap());
    assert!(s.stranger_exempt(2, 1).await.unwrap());
    s.unfollow(2, 1).await.unwrap();
    assert!(!s.stranger_exempt(1, 2).await.unwrap());
    // Having written to someone does not exempt you; their answer does, for both.
    store_all(s, &[to_user(3, 4, "hello", None)]).await;
    assert!(!s.stranger_exempt(3, 4).await.unwrap());
    assert!(s.stranger_exempt(4, 3).await.unwrap());
    store_all(s, &[to_user(4, 3, "hi", None)]).await;
    assert!(s.stranger_exempt(3, 4).await.unwrap());
    // Group messages are no answer.
    s.create_group(new_group("g", 5, &[6])).await.unwrap();
    store_all(s, &[to_group(6, "g", "hi all", None)]).await;
    assert!(!s.stranger_exempt(5, 6).await.unwrap());
}

async fn groups_and_members(backend: Backend) {
    let f = fixture(backend).await;
    let s = &*f.store;
    let created = s
        .create_group(new_group("g", 1, &[3, 2, 1, 3]))
        .await
        .unwrap();
    assert_eq!(&*created.id, "g");
    assert_eq!(created.owner_id, 1);
    assert_eq!(created.member_count, 3);
    assert_eq!(created.name, "group g");
    assert_eq!(s.group("g").await.unwrap(), Some(created.clone()));
    assert_eq!(s.group("nope").await.unwrap(), None);
    assert!(matches!(
        s.create_group(new_group("g", 7, &[])).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.group("g").await.unwrap().unwrap().owner_id, 1);
    assert_eq!(s.role("g", 1).await.unwrap(), Some(Role::Owner));
    assert_eq!(s.role("g", 2).await.unwrap(), Some(Role::Member));
    assert_eq!(s.role("g", 9).await.unwrap(), Some(Role::Outsider));
    assert_eq!(s.role("nope", 1).await.unwrap(), None);
    assert!(s.add_member("g", 9).await.unwrap());
    assert!(!s.add_member("g", 9).await.unwrap());
    assert_eq!(s.members("g").await.unwrap(), vec![1, 2, 3, 9]);
    assert_eq!(s.group("g").await.unwrap().unwrap().member_count, 4);
    assert!(s.remove_member("g", 2).await.unwrap());
    assert!(!s.remove_member("g", 2).await.unwrap());
    assert_eq!(s.members("g").await.unwrap(), vec![1, 3, 9]);
    assert_eq!(s.role("g", 2).await.unwrap(), Some(Role::Outsider));

    let other = s.create_group(new_group("h", 3, &[])).await.unwrap();
    let of_3: Vec<String> = s
        .user_groups(3)
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.id.to_string())
        .collect();
    assert_eq!(of_3, ["g", "h"]);
    assert_eq!(group_ids_of(s, 3).await, ["g", "h"]);
    assert!(s.user_groups(2).await.unwrap().is_empty());
    assert_eq!(s.user_groups(3).await.unwrap()[1], other);

    store_all(s, &[to_group(1, "g", "soon gone", None)]).await;
    assert!(s.delete_group("g").await.unwrap());
    assert!(!s.delete_group("g").await.unwrap());
    assert_eq!(s.group("g").await.unwrap(), None);
    assert_eq!(s.role("g", 1).await.unwrap(), None);
    assert!(s.members("g").await.unwrap().is_empty());
    assert!(
        s.group_history("g", Cursor::NOW, 10)
            .await
            .unwrap()
            .messages
            .is_empty()
    );
    assert!(s.take_unread(3, 10).await.unwrap().messages.is_empty());
    assert_eq!(group_ids_of(s, 3).await, ["h"]);
}

async fn follows_and_blocks(backend: Backend) {
    let f = fixture(backend).await;
    let s = &*f.store;
    assert!(s.follow(1, 3).await.unwrap());
    assert!(s.follow(1, 2).await.unwrap());
    assert!(!s.follow(1, 3).await.unwrap());
    assert_eq!(s.following(1).await.unwrap(), vec![2, 3]);
    assert!(s.following(2).await.unwrap().is_empty());
    assert!(s.unfollow(1, 3).await.unwrap());
    assert!(!s.unfollow(1, 3).await.unwrap());
    assert_eq!(s.following(1).await.unwrap(), vec![2]);

    assert!(s.block(1, 5).await.unwrap());
    assert!(s.block(1, 4).await.unwrap());
    assert!(!s.block(1, 5).await.unwrap());
    assert_eq!(s.blocked(1).await.unwrap(), vec![4, 5]);
    assert!(s.blocked(5).await.unwrap().is_empty());
    assert_eq!(
        s.insert_messages(&[to_user(5, 1, "hey", None)], &[])
            .await
            .unwrap(),
        vec![InsertOutcome::Blocked]
    );
    assert!(s.unblock(1, 5).await.unwrap());
    assert!(!s.unblock(1, 5).await.unwrap());
    assert_eq!(s.blocked(1).await.unwrap(), vec![4]);
    assert_eq!(
        s.insert_messages(&[to_user(5, 1, "hey", None)], &[])
            .await
            .unwrap(),
        vec![InsertOutcome::Stored]
    );
}

async fn reconnecting_keeps_everything(backend: Backend) {
    let f = fixture(backend).await;
    let m = to_user(1, 2, "kept", Some("k"));
    store_all(&*f.store, std::slice::from_ref(&m)).await;
    f.store.create_group(new_group("g", 1, &[])).await.unwrap();
    f.store.ping().await.unwrap();
    // Migrating again is a no-op; a second store sees the same data.
    let second = chat_gateway::store::connect(&f.settings).await.unwrap();
    let page = second.private_history(2, 1, Cursor::NOW, 10).await.unwrap();
    assert_eq!(page.messages, vec![m]);
    assert!(second.group("g").await.unwrap().is_some());
    chat_gateway::store::migrate(&f.settings).await.unwrap();
}

on_both_backends!(
    insert_batch_with_mixed_outcomes,
    insert_batch_is_atomic,
    undelivered_marks_name_the_first_code,
    take_unread_oldest_first_then_read,
    group_unread_starts_at_joining,
    private_history_pages,
    group_history_pages,
    mark_read_private,
    mark_read_group,
    stranger_exemption,
    groups_and_members,
    follows_and_blocks,
    reconnecting_keeps_everything,
);

/// SQLite only: the write-ahead log is copied into the database file in the background,
/// long before a committing connection would checkpoint it itself (at 50,000 pages), so
/// the writer's commits never wait for checkpoint writes and the log does not grow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_log_is_checkpointed_in_the_background() {
    let f = fixture(Backend::Sqlite).await;
    let db = f._dir.path().join("chat.db");
    let size = || std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
    let before = size();
    let batch: Vec<Message> = (0..400)
        .map(|i| to_user(1, 2, &"x".repeat(2000), Some(&format!("c{i}"))))
        .collect();
    let outcomes = f.store.insert_messages(&batch, &[]).await.unwrap();
    assert!(outcomes.iter().all(|o| *o == InsertOutcome::Stored));
    // 400 rows of 2 KB: about 200 pages in the log, none in the file until a checkpoint.
    let what = format!("the database file growing past {before} + 800,000 bytes");
    eventually(Duration::from_secs(10), &what, async || {
        let now = size();
        if now >= before + 400 * 2000 {
            Ok(())
        } else {
            Err(format!("{now} bytes"))
        }
    })
    .await;
}
