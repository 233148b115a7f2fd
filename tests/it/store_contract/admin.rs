//! The store contract, group administration and presence: roles, ownership transfer,
//! editing a group, adding within the size limit, read positions for history ticks, and
//! followers for live presence.

use chat_gateway::store::{GroupPatch, Joined, Role, Transfer};

use super::*;
use crate::on_both_backends;
use crate::support::Backend;

async fn roles_and_ownership(backend: Backend) {
    let f = fixture(backend).await;
    let s = &*f.store;
    s.create_group(new_group("g", 1, &[2, 3])).await.unwrap();
    let all = |a, b, c| vec![(1, a), (2, b), (3, c)];
    assert_eq!(
        s.member_roles("g").await.unwrap(),
        all(Role::Owner, Role::Member, Role::Member)
    );
    assert!(s.set_admin("g", 2, true).await.unwrap());
    assert!(
        s.set_admin("g", 2, true).await.unwrap(),
        "a repeat is no error"
    );
    assert!(!s.set_admin("g", 9, true).await.unwrap(), "not a member");
    assert_eq!(s.role("g", 2).await.unwrap(), Some(Role::Admin));
    assert!(s.member_roles("nope").await.unwrap().is_empty());
    assert_eq!(
        s.transfer_owner("g", 1, 9).await.unwrap(),
        Transfer::NotMember
    );
    assert_eq!(
        s.transfer_owner("g", 2, 3).await.unwrap(),
        Transfer::NotOwner
    );
    assert_eq!(
        s.transfer_owner("nope", 1, 2).await.unwrap(),
        Transfer::NoGroup
    );
    assert_eq!(
        s.group("g").await.unwrap().unwrap().owner_id,
        1,
        "nothing changed"
    );
    assert_eq!(s.transfer_owner("g", 1, 3).await.unwrap(), Transfer::Done);
    assert_eq!(s.group("g").await.unwrap().unwrap().owner_id, 3);
    assert_eq!(
        s.member_roles("g").await.unwrap(),
        all(Role::Admin, Role::Admin, Role::Owner)
    );
    assert!(s.set_admin("g", 1, false).await.unwrap());
    assert_eq!(s.role("g", 1).await.unwrap(), Some(Role::Member));
    // Leaving and coming back starts as a plain member.
    assert!(s.remove_member("g", 2).await.unwrap());
    assert!(s.add_member("g", 2).await.unwrap());
    assert_eq!(s.role("g", 2).await.unwrap(), Some(Role::Member));
}

async fn editing_a_group(backend: Backend) {
    let f = fixture(backend).await;
    let s = &*f.store;
    let created = s.create_group(new_group("g", 1, &[])).await.unwrap();
    let patch = GroupPatch {
        name: Some("renamed".into()),
        icon: Some("i.png".into()),
        ..GroupPatch::default()
    };
    let edited = s.update_group("g", &patch).await.unwrap().unwrap();
    assert_eq!(edited.name, "renamed");
    assert_eq!(edited.icon, "i.png");
    assert_eq!(edited.description, created.description, "kept");
    assert_eq!(s.group("g").await.unwrap(), Some(edited.clone()));
    let unchanged = s.update_group("g", &GroupPatch::default()).await.unwrap();
    assert_eq!(unchanged, Some(edited));
    assert_eq!(s.update_group("nope", &patch).await.unwrap(), None);
}

async fn adding_within_the_limit(backend: Backend) {
    let f = fixture(backend).await;
    let s = &*f.store;
    s.create_group(new_group("g", 1, &[2])).await.unwrap();
    assert_eq!(s.add_member_within("g", 3, 3).await.unwrap(), Joined::Added);
    assert_eq!(
        s.add_member_within("g", 3, 9).await.unwrap(),
        Joined::Already
    );
    assert_eq!(s.add_member_within("g", 4, 3).await.unwrap(), Joined::Full);
    assert_eq!(
        s.add_member_within("nope", 4, 3).await.unwrap(),
        Joined::NoGroup
    );
    assert_eq!(s.members("g").await.unwrap(), vec![1, 2, 3]);
    // Concurrent adds never pass the limit.
    let adds = (10..30).map(|u| s.add_member_within("g", u, 6));
    let joined = futures_util::future::join_all(adds).await;
    let added = joined
        .iter()
        .filter(|j| matches!(j, Ok(Joined::Added)))
        .count();
    assert_eq!(added, 3, "{joined:?}");
    assert_eq!(s.group("g").await.unwrap().unwrap().member_count, 6);
}

async fn read_positions(backend: Backend) {
    let f = fixture(backend).await;
    let s = &*f.store;
    assert_eq!(s.private_read_upto(1, 2).await.unwrap(), (None, None));
    let sent = [
        to_user(1, 2, "a", None),
        to_user(1, 2, "b", None),
        to_user(2, 1, "c", None),
    ];
    store_all(s, &sent).await;
    s.mark_read(2, sent[0].id).await.unwrap();
    assert_eq!(
        s.private_read_upto(1, 2).await.unwrap(),
        (None, Some(sent[0].id))
    );
    assert_eq!(
        s.private_read_upto(2, 1).await.unwrap(),
        (Some(sent[0].id), None)
    );
    s.mark_read(1, sent[2].id).await.unwrap();
    assert_eq!(
        s.private_read_upto(1, 2).await.unwrap(),
        (Some(sent[2].id), Some(sent[0].id))
    );
    s.create_group(new_group("g", 1, &[2])).await.unwrap();
    let said = to_group(1, "g", "hi", None);
    store_all(s, std::slice::from_ref(&said)).await;
    let joined = s.group_read_upto("g", 2).await.unwrap().unwrap();
    assert!(joined < said.id);
    s.mark_read(2, said.id).await.unwrap();
    assert_eq!(s.group_read_upto("g", 2).await.unwrap(), Some(said.id));
    assert_eq!(s.group_read_upto("g", 9).await.unwrap(), None);
}

async fn followers_except_blocked(backend: Backend) {
    let f = fixture(backend).await;
    let s = &*f.store;
    for follower in [5, 3, 4, 6] {
        s.follow(follower, 1).await.unwrap();
    }
    s.follow(1, 7).await.unwrap();
    s.block(1, 4).await.unwrap();
    s.block(6, 1).await.unwrap();
    assert_eq!(s.followers(1, 10).await.unwrap(), vec![3, 5, 6]);
    assert_eq!(s.followers(1, 2).await.unwrap(), vec![3, 5, 6], "limit + 1");
    assert_eq!(s.followers(1, 1).await.unwrap(), vec![3, 5]);
    assert!(s.followers(9, 10).await.unwrap().is_empty());
}

on_both_backends!(
    roles_and_ownership,
    editing_a_group,
    adding_within_the_limit,
    read_positions,
    followers_except_blocked,
);
