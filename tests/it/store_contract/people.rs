//! The store contract, people: the stranger exemption, groups and members, follows and
//! blocks, and a reconnected store that keeps everything.

use chat_gateway::protocol::Cursor;
use chat_gateway::store::{InsertOutcome, Role, StoreError};

use super::*;
use crate::on_both_backends;
use crate::support::Backend;

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
    assert!(
        s.unread(3, None, &[], 10)
            .await
            .unwrap()
            .messages
            .is_empty()
    );
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
    stranger_exemption,
    groups_and_members,
    follows_and_blocks,
    reconnecting_keeps_everything,
);
