//! The `Store` conformance suite: the trait's contract (store/mod.rs), called directly on a
//! store from `chat_gateway::store::connect`, unchanged on SQLite and on MySQL. The cases
//! are grouped by what they exercise: `writes`, `reads`, `people`.

mod admin;
mod people;
mod push;
mod reads;
mod writes;

use std::sync::Arc;
use std::time::Duration;

use chat_gateway::message::{Message, Target};
use chat_gateway::settings::StorageSettings;
use chat_gateway::store::{InsertOutcome, NewGroup, Store};
use uuid::Uuid;

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

/// Stores messages one batch each, asserting each was stored.
async fn store_all(store: &dyn Store, messages: &[Message]) {
    for m in messages {
        let outcome = store.insert_messages(std::slice::from_ref(m), &[]).await;
        assert_eq!(outcome.unwrap(), vec![InsertOutcome::Stored], "{m:?}");
    }
}

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
