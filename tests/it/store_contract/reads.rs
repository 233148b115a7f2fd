//! The store contract, reading: unread pages, history pages, read receipts.

use chat_gateway::message::Message;
use chat_gateway::protocol::Cursor;
use chat_gateway::store::ReadOutcome;

use super::*;
use crate::on_both_backends;
use crate::support::Backend;

async fn unread_pages_oldest_first_and_change_nothing(backend: Backend) {
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
    let page = s.unread(2, None, &[], 2).await.unwrap();
    assert_eq!(ids(&page.messages), expected[..2]);
    assert!(page.more);
    assert_eq!(page.messages[0], messages[0]);
    assert_eq!(page.messages[1], messages[1]);
    let page = s.unread(2, Some(expected[1]), &[], 2).await.unwrap();
    assert_eq!(ids(&page.messages), expected[2..4]);
    assert!(page.more);
    let page = s.unread(2, Some(expected[3]), &[], 2).await.unwrap();
    assert_eq!(ids(&page.messages), expected[4..]);
    assert!(!page.more, "exactly the limit left: nothing more");
    let page = s.unread(2, Some(expected[4]), &[], 100).await.unwrap();
    assert!(page.messages.is_empty() && !page.more);
    // Ids already sent are left out, whatever the lower bound.
    let page = s.unread(2, None, &expected[..3], 100).await.unwrap();
    assert_eq!(ids(&page.messages), expected[3..]);
    // Reading them changed nothing: they are all still unread.
    let page = s.unread(2, None, &[], 100).await.unwrap();
    assert_eq!(ids(&page.messages), expected);
    // Untouched for the others.
    let page = s.unread(3, None, &[], 100).await.unwrap();
    assert_eq!(ids(&page.messages), vec![messages[3].id]);
    let page = s.unread(1, None, &[], 100).await.unwrap();
    assert_eq!(ids(&page.messages), vec![messages[5].id]);
    let page = s.unread(9, None, &[], 100).await.unwrap();
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
    let page = s.unread(3, None, &[], 100).await.unwrap();
    assert_eq!(
        ids(&page.messages),
        vec![after.id],
        "nothing from before joining"
    );
    let page = s.unread(2, None, &[], 100).await.unwrap();
    assert_eq!(ids(&page.messages), vec![right_away.id, after.id]);
    // Leaving and joining again starts afresh.
    assert!(s.remove_member("g", 2).await.unwrap());
    let while_away = to_group(1, "g", "while 2 was away", None);
    store_all(s, &[while_away]).await;
    assert!(s.add_member("g", 2).await.unwrap());
    let back = to_group(1, "g", "welcome back", None);
    store_all(s, std::slice::from_ref(&back)).await;
    let page = s.unread(2, None, &[], 100).await.unwrap();
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
    let page = s.unread(2, None, &[], 100).await.unwrap();
    assert_eq!(ids(&page.messages), vec![m[3].id, m[4].id]);
    // The sender receipts their own a2: bob's older b1 is read for them, b2 is not.
    assert_eq!(
        s.mark_read(1, m[2].id).await.unwrap(),
        ReadOutcome::Applied(Target::User(2))
    );
    let page = s.unread(1, None, &[], 100).await.unwrap();
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
    let page = s.unread(2, None, &[], 100).await.unwrap();
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
    assert!(
        s.unread(3, None, &[], 100)
            .await
            .unwrap()
            .messages
            .is_empty()
    );
    assert_eq!(
        s.mark_read(9, m[0].id).await.unwrap(),
        ReadOutcome::NotMember
    );
}

async fn device_positions_move_forward_and_are_bounded(backend: Backend) {
    let f = fixture(backend).await;
    let s = &*f.store;
    assert_eq!(s.device_position(2, "phone").await.unwrap(), None);
    let (older, newer) = (Uuid::now_v7(), Uuid::now_v7());
    s.confirm_delivery(2, "phone", newer, 3).await.unwrap();
    assert_eq!(s.device_position(2, "phone").await.unwrap(), Some(newer));
    // Never back.
    s.confirm_delivery(2, "phone", older, 3).await.unwrap();
    assert_eq!(s.device_position(2, "phone").await.unwrap(), Some(newer));
    // Per user and device.
    assert_eq!(s.device_position(2, "laptop").await.unwrap(), None);
    assert_eq!(s.device_position(3, "phone").await.unwrap(), None);
    // At most `keep` devices per user: the least recently confirmed goes.
    for device in ["laptop", "tablet", "watch"] {
        let at = chat_gateway::ids::millis_now();
        crate::support::eventually(
            std::time::Duration::from_secs(1),
            "the next millisecond",
            async || chat_gateway::ids::millis_now() > at,
        )
        .await;
        s.confirm_delivery(2, device, Uuid::now_v7(), 3)
            .await
            .unwrap();
    }
    assert_eq!(s.device_position(2, "phone").await.unwrap(), None);
    for device in ["laptop", "tablet", "watch"] {
        assert!(s.device_position(2, device).await.unwrap().is_some());
    }
}

/// A member of a few groups (each read as one index range) and of more groups than those
/// ranges cover (one join): the same pages, merged with the private messages in id order,
/// past each group's read marker, without the member's own messages.
async fn unread_merges_every_group_in_order(backend: Backend) {
    let f = fixture(backend).await;
    let s = &*f.store;
    for groups in [3_usize, 40] {
        let reader = 100 + groups as i64;
        let names: Vec<String> = (0..groups).map(|i| format!("many{groups}-{i}")).collect();
        for name in &names {
            s.create_group(new_group(name, 1, &[reader])).await.unwrap();
        }
        let mut messages = Vec::new();
        for k in 0..groups * 2 {
            messages.push(to_group(1, &names[k % groups], &format!("m{k}"), None));
            if k % 7 == 0 {
                messages.push(to_user(5, reader, &format!("p{k}"), None));
            }
            if k % 5 == 0 {
                messages.push(to_group(reader, &names[k % groups], "own", None));
            }
        }
        store_all(s, &messages).await;
        // The first group read up to its first message.
        let first = messages
            .iter()
            .find(|m| m.target == Target::Group(names[0].as_str().into()))
            .unwrap()
            .id;
        s.mark_read(reader, first).await.unwrap();
        let mut expected: Vec<Uuid> = messages
            .iter()
            .filter(|m| m.sender_id != reader && m.id != first)
            .map(|m| m.id)
            .collect();
        expected.sort();

        let mut paged = Vec::new();
        let mut after = None;
        loop {
            let page = s.unread(reader, after, &[], 5).await.unwrap();
            assert!(page.messages.len() <= 5);
            paged.extend(ids(&page.messages));
            after = paged.last().copied();
            if !page.more {
                break;
            }
        }
        assert_eq!(paged, expected, "{groups} groups, pages of 5");
        let page = s.unread(reader, None, &expected[..3], 1000).await.unwrap();
        assert_eq!(
            ids(&page.messages),
            expected[3..],
            "{groups} groups, sent skipped"
        );
    }
}

on_both_backends!(
    unread_merges_every_group_in_order,
    unread_pages_oldest_first_and_change_nothing,
    device_positions_move_forward_and_are_bounded,
    group_unread_starts_at_joining,
    private_history_pages,
    group_history_pages,
    mark_read_private,
    mark_read_group,
);
