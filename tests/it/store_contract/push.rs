//! The store contract, push (store/push.rs): outbox rows in the message's own commit,
//! exclusive claims whose leases expire, retries, mutes.

use chat_gateway::store::InsertOutcome;
use chat_gateway::store::push::Muted;
use std::collections::HashSet;
use std::time::Duration;

use super::*;
use crate::on_both_backends;
use crate::support::Backend;

const HOUR: i64 = 3_600_000;

async fn outbox_rows_ride_in_the_message_commit(backend: Backend) {
    let f = fixture(backend).await;
    let s = &*f.store;
    let outbox = s.push();
    s.create_group(new_group("g", 1, &[2])).await.unwrap();
    assert!(s.block(5, 1).await.unwrap());
    store_all(s, &[to_user(1, 2, "before push was on", Some("c0"))]).await;
    assert_eq!(outbox.depth().await.unwrap(), 0, "push off: no rows");

    outbox.enable(Duration::from_secs(60), true);
    let batch = vec![
        to_user(1, 2, "private", None),
        to_user(1, 5, "blocked", None),
        to_group(2, "g", "group", None),
        to_group(3, "g", "outsider", None),
        to_user(1, 3, "repeat of c0", Some("c0")),
        to_user(1, 2, "c9 once", Some("c9")),
        to_user(1, 2, "c9 twice", Some("c9")),
    ];
    let outcomes = s.insert_messages(&batch, &[]).await.unwrap();
    assert_eq!(outcomes[0], InsertOutcome::Stored);
    assert_eq!(outcomes[1], InsertOutcome::Blocked);
    assert_eq!(outcomes[2], InsertOutcome::Stored);
    assert_eq!(outcomes[3], InsertOutcome::NotMember);
    assert!(
        matches!(outcomes[4], InsertOutcome::Duplicate { .. }),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[5], InsertOutcome::Stored);
    assert!(
        matches!(outcomes[6], InsertOutcome::Duplicate { .. }),
        "{outcomes:?}"
    );
    let ts = batch[0].ts;
    assert!(
        outbox
            .claim("early", ts + 59_000, Duration::from_secs(30), 10)
            .await
            .unwrap()
            .is_empty(),
        "not due before push.delay"
    );
    let mut rows = outbox
        .claim("n1", ts + 61_000, Duration::from_secs(30), 10)
        .await
        .unwrap();
    rows.sort_by_key(|r| r.message_id);
    // The private messages (their recipient) and the group message (user 0). A repeat of a
    // stored message is refused before the insert and gets no row; a key repeated within
    // the batch does (the insert ignores its message), and that row claims no message.
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert!(
        !rows.iter().any(|r| r.message_id == batch[4].id),
        "{rows:?}"
    );
    let once = rows.iter().find(|r| r.message_id == batch[5].id).unwrap();
    assert_eq!(once.message, Some((1, None, batch[5].ts)));
    let private = rows.iter().find(|r| r.message_id == batch[0].id).unwrap();
    assert_eq!(private.user_id, 2);
    assert_eq!(private.attempts, 0);
    assert_eq!(private.message, Some((1, None, batch[0].ts)));
    let group = rows.iter().find(|r| r.message_id == batch[2].id).unwrap();
    assert_eq!(group.user_id, 0);
    assert_eq!(group.message, Some((2, Some("g".into()), batch[2].ts)));
    let repeat = rows.iter().find(|r| r.message_id == batch[6].id).unwrap();
    assert_eq!(repeat.message, None);

    // A live delivery deletes its message's row.
    let live = to_user(1, 2, "delivered live", None);
    store_all(s, std::slice::from_ref(&live)).await;
    assert_eq!(outbox.depth().await.unwrap(), 5);
    outbox.delivered_live(&[live.id]).await.unwrap();
    assert_eq!(outbox.depth().await.unwrap(), 4);
}

async fn claims_are_exclusive_and_leases_expire(backend: Backend) {
    let f = fixture(backend).await;
    let s = &*f.store;
    let outbox = s.push();
    outbox.enable(Duration::ZERO, false);
    let batch: Vec<Message> = (0..20).map(|i| to_user(1, 100 + i, "m", None)).collect();
    s.insert_messages(&batch, &[]).await.unwrap();
    let now = batch[19].ts + HOUR;
    let lease = Duration::from_secs(60);
    let (a, b) = tokio::join!(
        outbox.claim("a", now, lease, 100),
        outbox.claim("b", now, lease, 100)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let a_ids: HashSet<_> = a.iter().map(|r| r.message_id).collect();
    let b_ids: HashSet<_> = b.iter().map(|r| r.message_id).collect();
    assert!(a_ids.is_disjoint(&b_ids), "a row goes to one claimer");
    assert_eq!(a_ids.len() + b_ids.len(), 20);
    assert!(
        outbox
            .claim("c", now + 1, lease, 100)
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );

    // A claimer that died: its rows go to the next once the lease ran out.
    let later = now + 60_001;
    let all = outbox.claim("d", later, lease, 100).await.unwrap();
    assert_eq!(all.len(), 20);
    let keys: Vec<(Uuid, i64)> = all.iter().map(|r| (r.message_id, r.user_id)).collect();
    let retry_at = later + HOUR;
    outbox.retry_at(&keys[..5], retry_at).await.unwrap();
    outbox.remove(&keys[5..10]).await.unwrap();
    assert_eq!(outbox.depth().await.unwrap(), 15);
    let expired = outbox.claim("e", later + 60_001, lease, 100).await.unwrap();
    assert_eq!(expired.len(), 10, "the rows not retried nor removed");
    let retried = outbox.claim("f", retry_at, lease, 100).await.unwrap();
    let retried_keys: HashSet<_> = retried.iter().map(|r| (r.message_id, r.user_id)).collect();
    assert!(keys[..5].iter().all(|k| retried_keys.contains(k)));
    assert!(
        retried
            .iter()
            .filter(|r| keys[..5].contains(&(r.message_id, r.user_id)))
            .all(|r| r.attempts == 1)
    );
    let limited = outbox.claim("g", retry_at + HOUR, lease, 3).await.unwrap();
    assert_eq!(limited.len(), 3, "at most the limit");
}

async fn mutes_are_per_user_and_conversation(backend: Backend) {
    let f = fixture(backend).await;
    let outbox = f.store.push();
    let team = Muted::Group("team".into());
    assert!(outbox.mute(1, &Muted::User(2)).await.unwrap());
    assert!(
        !outbox.mute(1, &Muted::User(2)).await.unwrap(),
        "muted already"
    );
    assert!(outbox.mute(1, &team).await.unwrap());
    assert!(outbox.mute(3, &Muted::User(1)).await.unwrap());
    assert_eq!(
        outbox.mutes(1).await.unwrap(),
        vec![Muted::User(2), team.clone()]
    );
    let asked = vec![
        (1, Muted::User(2)),
        (1, Muted::User(3)),
        (2, Muted::User(1)),
        (1, team.clone()),
        (2, team.clone()),
        (3, Muted::User(1)),
    ];
    let muted = outbox.muted(&asked).await.unwrap();
    assert_eq!(
        muted,
        vec![(1, Muted::User(2)), (1, team.clone()), (3, Muted::User(1))]
    );
    assert!(outbox.unmute(1, &team).await.unwrap());
    assert!(!outbox.unmute(1, &team).await.unwrap());
    assert_eq!(outbox.mutes(1).await.unwrap(), vec![Muted::User(2)]);
}

on_both_backends!(
    outbox_rows_ride_in_the_message_commit,
    claims_are_exclusive_and_leases_expire,
    mutes_are_per_user_and_conversation,
);
