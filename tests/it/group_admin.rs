//! Group administration through the REST API: editing a group (pushed live as 2800
//! `updated`), member roles, ownership transfer and the group size limit
//! (`chat.max_group_members`), on both backends.

use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::{Backend, Client, TestApp};

/// Asserts an error answer: the status and a JSON body naming the problem.
fn refused(answer: (u16, Value), status: u16) -> String {
    let (got, body) = answer;
    assert_eq!(got, status, "{body}");
    assert_eq!(body["code"], status, "{body}");
    let error = body["error"].as_str().unwrap_or_default().to_string();
    assert!(!error.is_empty(), "{body}");
    error
}

async fn patch(app: &TestApp, group: &str, user: i64, body: Value) -> (u16, Value) {
    let path = format!("/api/groups/{group}");
    app.request(reqwest::Method::PATCH, &path, Some(user), Some(body))
        .await
}

async fn set_role(app: &TestApp, group: &str, by: i64, user: i64, role: &str) -> (u16, Value) {
    let path = format!("/api/groups/{group}/members/{user}");
    app.request(
        reqwest::Method::PUT,
        &path,
        Some(by),
        Some(json!({"role": role})),
    )
    .await
}

async fn roles(app: &TestApp, group: &str, user: i64) -> Value {
    let (status, list) = app.get(&format!("/api/groups/{group}/members"), user).await;
    assert_eq!(status, 200, "{list}");
    list["roles"].clone()
}

async fn owner_and_admins_edit_the_group_live(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let group = app.create_group(1, &[2, 3]).await;
    let mut member = Client::connect(&app, 3).await;
    let (status, edited) = patch(&app, &group, 1, json!({"name": " Crabs ", "icon": "🦀"})).await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["name"], "Crabs");
    assert_eq!(edited["icon"], "🦀");
    assert_eq!(edited["description"], "", "unnamed fields are kept");
    assert_eq!(edited["my_role"], "owner");
    let update = member.expect(2800).await;
    assert_eq!(update["change"], "updated", "{update}");
    assert_eq!(update["group_id"], group.as_str());
    assert_eq!(update["name"], "Crabs");
    assert_eq!(update["icon"], "🦀");
    assert_eq!(update["description"], "");
    // A plain member may not; an admin may.
    refused(patch(&app, &group, 2, json!({"name": "mine"})).await, 403);
    assert_eq!(set_role(&app, &group, 1, 2, "admin").await.0, 200);
    let (status, edited) = patch(&app, &group, 2, json!({"description": "by an admin"})).await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["description"], "by an admin");
    assert_eq!(edited["name"], "Crabs");
    assert_eq!(edited["my_role"], "admin");
    let (_, got) = app.get(&format!("/api/groups/{group}"), 3).await;
    assert_eq!(got["description"], "by an admin");
    assert_eq!(got["my_role"], "member");
}

async fn edit_refusals(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let group = app.create_group(1, &[2]).await;
    for (body, names) in [
        (json!({}), "name"),
        (json!({"name": ""}), "name"),
        (json!({"name": "x".repeat(256)}), "name"),
        (json!({"description": "x".repeat(4097)}), "description"),
        (json!({"icon": "x".repeat(1025)}), "icon"),
        (json!({"colour": "red"}), "colour"),
        (json!({"name": 5}), "name"),
    ] {
        let error = refused(patch(&app, &group, 1, body.clone()).await, 400);
        assert!(error.contains(names), "{body} → {error}");
    }
    refused(
        patch(&app, &group, 9, json!({"name": "outsider"})).await,
        403,
    );
    refused(
        patch(&app, "no-such-group", 1, json!({"name": "x"})).await,
        404,
    );
    let (_, got) = app.get(&format!("/api/groups/{group}"), 1).await;
    assert_eq!(got["name"], "test group", "nothing changed");
}

async fn roles_decide_who_manages_members(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let group = app.create_group(1, &[2, 3]).await;
    let members = format!("/api/groups/{group}/members");
    assert_eq!(
        roles(&app, &group, 3).await,
        json!({"1": "owner", "2": "member", "3": "member"})
    );
    let mut watcher = Client::connect(&app, 3).await;
    let (status, set) = set_role(&app, &group, 1, 2, "admin").await;
    assert_eq!(status, 200, "{set}");
    assert_eq!(
        set,
        json!({"group_id": group, "user_id": 2, "role": "admin"})
    );
    let told = watcher.expect(2800).await;
    assert_eq!(told["change"], "role", "{told}");
    assert_eq!(told["user_id"], 2);
    assert_eq!(told["role"], "admin");
    let (_, list) = app.get(&members, 1).await;
    assert_eq!(
        list["members"],
        json!([1, 2, 3]),
        "old clients keep their list"
    );
    assert_eq!(
        list["roles"],
        json!({"1": "owner", "2": "admin", "3": "member"})
    );
    // An admin adds and removes plain members…
    let (status, body) = app.post(&members, 2, json!({"user_id": 4})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(app.delete(&format!("{members}/4"), 2).await.0, 204);
    // …but not admins or the owner, and does not set roles or delete the group.
    assert_eq!(set_role(&app, &group, 1, 3, "admin").await.0, 200);
    refused(app.delete(&format!("{members}/3"), 2).await, 403);
    refused(app.delete(&format!("{members}/1"), 2).await, 403);
    refused(set_role(&app, &group, 2, 3, "member").await, 403);
    refused(app.delete(&format!("/api/groups/{group}"), 2).await, 403);
    // The owner demotes; a plain member manages nothing.
    assert_eq!(set_role(&app, &group, 1, 3, "member").await.0, 200);
    refused(app.post(&members, 3, json!({"user_id": 5})).await, 403);
    assert_eq!(app.delete(&format!("{members}/3"), 1).await.0, 204);
    assert_eq!(
        app.delete(&format!("{members}/2"), 1).await.0,
        204,
        "the owner removes an admin"
    );
    assert_eq!(roles(&app, &group, 1).await, json!({"1": "owner"}));
}

async fn role_refusals(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let group = app.create_group(1, &[2]).await;
    let error = refused(set_role(&app, &group, 1, 2, "owner").await, 400);
    assert!(error.contains("/owner"), "{error}");
    refused(set_role(&app, &group, 1, 2, "king").await, 400);
    refused(set_role(&app, &group, 1, 1, "member").await, 409);
    refused(set_role(&app, &group, 1, 7, "admin").await, 404);
    refused(set_role(&app, &group, 9, 2, "admin").await, 403);
    refused(set_role(&app, "no-such-group", 1, 2, "admin").await, 404);
    let path = format!("/api/groups/{group}/members/2");
    let bad = json!({"role": "admin", "extra": 1});
    refused(
        app.request(reqwest::Method::PUT, &path, Some(1), Some(bad))
            .await,
        400,
    );
    assert_eq!(
        roles(&app, &group, 1).await,
        json!({"1": "owner", "2": "member"})
    );
}

async fn ownership_moves_to_a_member(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let group = app.create_group(1, &[2, 3]).await;
    let owner = format!("/api/groups/{group}/owner");
    refused(app.post(&owner, 2, json!({"user_id": 2})).await, 403);
    refused(app.post(&owner, 1, json!({"user_id": 9})).await, 404);
    refused(app.post(&owner, 1, json!({"user_id": 1})).await, 409);
    refused(app.post(&owner, 1, json!({"user_id": 0})).await, 400);
    refused(
        app.post("/api/groups/nope/owner", 1, json!({"user_id": 2}))
            .await,
        404,
    );
    let mut watcher = Client::connect(&app, 3).await;
    let (status, moved) = app.post(&owner, 1, json!({"user_id": 2})).await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["owner_id"], 2);
    assert_eq!(moved["my_role"], "admin");
    let told = [watcher.expect(2800).await, watcher.expect(2800).await];
    assert_eq!(
        told.iter()
            .map(|t| (t["user_id"].clone(), t["role"].clone()))
            .collect::<Vec<_>>(),
        [(json!(2), json!("owner")), (json!(1), json!("admin"))]
    );
    assert_eq!(
        roles(&app, &group, 3).await,
        json!({"1": "admin", "2": "owner", "3": "member"})
    );
    // The old owner is an admin now: no delete, no roles, but may leave.
    refused(app.delete(&format!("/api/groups/{group}"), 1).await, 403);
    refused(set_role(&app, &group, 1, 3, "admin").await, 403);
    refused(app.post(&owner, 1, json!({"user_id": 3})).await, 403);
    let (status, _) = app
        .request(
            reqwest::Method::POST,
            &format!("/api/groups/{group}/leave"),
            Some(1),
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(app.delete(&format!("/api/groups/{group}"), 2).await.0, 204);
}

async fn group_size_is_limited(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.chat.max_group_members = 3).await;
    let error = refused(
        app.post(
            "/api/groups",
            1,
            json!({"name": "big", "members": [2, 3, 4]}),
        )
        .await,
        409,
    );
    assert!(error.contains("chat.max_group_members"), "{error}");
    let (status, group) = app
        .post(
            "/api/groups",
            1,
            json!({"name": "full", "members": [2, 3, 1, 2]}),
        )
        .await;
    assert_eq!(status, 201, "the owner and repeats count once: {group}");
    let id = group["id"].as_str().unwrap();
    let members = format!("/api/groups/{id}/members");
    let error = refused(app.post(&members, 1, json!({"user_id": 4})).await, 409);
    assert!(error.contains("at most 3"), "{error}");
    assert_eq!(app.delete(&format!("{members}/3"), 1).await.0, 204);
    // Concurrent adds into one free seat: exactly one gets it.
    let adds = (10..20).map(|user| app.post(&members, 1, json!({"user_id": user})));
    let answers = futures_util::future::join_all(adds).await;
    let added = answers.iter().filter(|(status, _)| *status == 201).count();
    assert_eq!(added, 1, "{answers:?}");
    assert!(
        answers.iter().all(|(s, _)| *s == 201 || *s == 409),
        "{answers:?}"
    );
    let (_, got) = app.get(&format!("/api/groups/{id}"), 1).await;
    assert_eq!(got["member_count"], 3);
}

on_both_backends!(
    owner_and_admins_edit_the_group_live,
    edit_refusals,
    roles_decide_who_manages_members,
    role_refusals,
    ownership_moves_to_a_member,
    group_size_is_limited,
);
