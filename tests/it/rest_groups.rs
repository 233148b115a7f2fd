//! The groups REST API: create, get (with member count), add/remove members, leave, list
//! members, list my groups, delete; each refusal with its status and a JSON
//! `{"error", "code"}` body.

use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::{Backend, TestApp};

/// Asserts an error answer: the status and a JSON body carrying it.
fn refused(answer: (u16, Value), status: u16) {
    let (got, body) = answer;
    assert_eq!(got, status, "{body}");
    assert_eq!(body["code"], status, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
}

async fn leave(app: &TestApp, group: &str, user: i64) -> (u16, Value) {
    app.request(
        reqwest::Method::POST,
        &format!("/api/groups/{group}/leave"),
        Some(user),
        None,
    )
    .await
}

async fn create_and_get(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, created) = app
        .post(
            "/api/groups",
            1,
            json!({"name": "  Rustaceans ", "description": "crabs", "icon": "🦀", "members": [3, 2, 2, 1]}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    assert!(uuid::Uuid::try_parse(id).is_ok(), "a uuid by default: {id}");
    assert_eq!(created["name"], "Rustaceans");
    assert_eq!(created["description"], "crabs");
    assert_eq!(created["icon"], "🦀");
    assert_eq!(created["owner_id"], 1);
    assert_eq!(
        created["member_count"], 3,
        "owner and members, deduplicated"
    );
    assert!(created["created_at"].as_i64().unwrap() > 1_600_000_000_000);
    assert_eq!(created["my_role"], "owner");
    for (member, role) in [(1, "owner"), (2, "member"), (3, "member")] {
        let (status, got) = app.get(&format!("/api/groups/{id}"), member).await;
        assert_eq!(status, 200, "{got}");
        let mut got = got;
        assert_eq!(got["my_role"], role, "{got}");
        got["my_role"] = created["my_role"].clone();
        assert_eq!(got, created);
    }
    // A chosen id, with only a name.
    let (status, chosen) = app
        .post("/api/groups", 5, json!({"id": "team-42", "name": "team"}))
        .await;
    assert_eq!(status, 201, "{chosen}");
    assert_eq!(chosen["id"], "team-42");
    assert_eq!(chosen["member_count"], 1);
    assert_eq!(chosen["description"], "");
}

async fn create_refusals(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for body in [
        json!({}),
        json!({"name": ""}),
        json!({"name": "   "}),
        json!({"name": "x".repeat(256)}),
        json!({"name": "ok", "id": "bad id"}),
        json!({"name": "ok", "id": ""}),
        json!({"name": "ok", "members": [0]}),
        json!({"name": "ok", "members": [-1]}),
        json!({"name": "ok", "members": "2"}),
        json!({"name": "ok", "colour": "red"}),
        json!({"name": 5}),
        json!([1, 2]),
    ] {
        refused(app.post("/api/groups", 1, body).await, 400);
    }
    let res = reqwest::Client::new()
        .post(app.url("/api/groups"))
        .bearer_auth(app.token(1))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    refused(
        app.request(
            reqwest::Method::POST,
            "/api/groups",
            None,
            Some(json!({"name": "anon"})),
        )
        .await,
        401,
    );
    let (status, _) = app
        .post("/api/groups", 1, json!({"id": "taken", "name": "first"}))
        .await;
    assert_eq!(status, 201);
    refused(
        app.post("/api/groups", 2, json!({"id": "taken", "name": "second"}))
            .await,
        409,
    );
    let (_, group) = app.get("/api/groups/taken", 1).await;
    assert_eq!(group["name"], "first", "the conflict changed nothing");
    let (_, mine) = app.get("/api/me/groups", 1).await;
    assert_eq!(mine["groups"].as_array().unwrap().len(), 1, "{mine}");
}

async fn get_refusals(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let group = app.create_group(1, &[2]).await;
    refused(app.get(&format!("/api/groups/{group}"), 3).await, 403);
    refused(app.get("/api/groups/no-such-group", 1).await, 404);
    refused(app.get("/api/groups/bad%20id", 1).await, 400);
    refused(
        app.request(
            reqwest::Method::GET,
            &format!("/api/groups/{group}"),
            None,
            None,
        )
        .await,
        401,
    );
    refused(
        app.get(&format!("/api/groups/{group}/members"), 3).await,
        403,
    );
    refused(app.get("/api/groups/no-such-group/members", 1).await, 404);
}

async fn owner_adds_and_removes_members(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let group = app.create_group(1, &[2]).await;
    let members = format!("/api/groups/{group}/members");
    let (status, body) = app.post(&members, 1, json!({"user_id": 3})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user_id"], 3);
    assert_eq!(body["group_id"], group.as_str());
    let (status, list) = app.get(&members, 3).await;
    assert_eq!(status, 200);
    assert_eq!(list["members"], json!([1, 2, 3]));
    assert_eq!(list["group_id"], group.as_str());
    let (_, got) = app.get(&format!("/api/groups/{group}"), 1).await;
    assert_eq!(got["member_count"], 3);
    refused(app.post(&members, 1, json!({"user_id": 3})).await, 409);
    refused(app.post(&members, 1, json!({"user_id": 1})).await, 409);
    let (status, _) = app.delete(&format!("{members}/2"), 1).await;
    assert_eq!(status, 204);
    let (_, list) = app.get(&members, 1).await;
    assert_eq!(list["members"], json!([1, 3]));
    let (_, got) = app.get(&format!("/api/groups/{group}"), 1).await;
    assert_eq!(got["member_count"], 2);
    refused(app.delete(&format!("{members}/2"), 1).await, 404);
    refused(app.get(&format!("/api/groups/{group}"), 2).await, 403);
}

async fn member_management_refusals(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let group = app.create_group(1, &[2, 3]).await;
    let members = format!("/api/groups/{group}/members");
    // Members are not owners; outsiders are not members.
    refused(app.post(&members, 2, json!({"user_id": 4})).await, 403);
    refused(app.post(&members, 9, json!({"user_id": 4})).await, 403);
    refused(app.delete(&format!("{members}/3"), 2).await, 403);
    refused(app.delete(&format!("{members}/3"), 9).await, 403);
    // Unknown groups, bad users, bad bodies.
    refused(
        app.post("/api/groups/nope/members", 1, json!({"user_id": 4}))
            .await,
        404,
    );
    refused(app.delete("/api/groups/nope/members/2", 1).await, 404);
    refused(app.post(&members, 1, json!({"user_id": 0})).await, 400);
    refused(app.post(&members, 1, json!({})).await, 400);
    refused(app.delete(&format!("{members}/abc"), 1).await, 400);
    refused(app.delete(&format!("{members}/0"), 1).await, 400);
    let (_, list) = app.get(&members, 1).await;
    assert_eq!(list["members"], json!([1, 2, 3]), "nothing changed");
}

async fn members_leave(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let group = app.create_group(1, &[2, 3]).await;
    let (status, _) = leave(&app, &group, 2).await;
    assert_eq!(status, 204);
    // Removing oneself is leaving too.
    let (status, _) = app
        .delete(&format!("/api/groups/{group}/members/3"), 3)
        .await;
    assert_eq!(status, 204);
    let (_, list) = app.get(&format!("/api/groups/{group}/members"), 1).await;
    assert_eq!(list["members"], json!([1]));
    refused(leave(&app, &group, 2).await, 403);
    refused(leave(&app, &group, 1).await, 409);
    refused(leave(&app, "no-such-group", 2).await, 404);
    let (_, got) = app.get(&format!("/api/groups/{group}"), 1).await;
    assert_eq!(got["member_count"], 1);
}

async fn my_groups(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = app.create_group(1, &[2]).await;
    let second = app.create_group(2, &[3]).await;
    let third = app.create_group(3, &[1, 2]).await;
    let listed = |body: &Value| -> Vec<Value> {
        body["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["id"].clone())
            .collect()
    };
    let (status, mine) = app.get("/api/me/groups", 2).await;
    assert_eq!(status, 200);
    assert_eq!(
        listed(&mine),
        [first.clone(), second.clone(), third.clone()].map(Value::from)
    );
    let third_listed = &mine["groups"][2];
    assert_eq!(third_listed["member_count"], 3);
    assert_eq!(third_listed["owner_id"], 3);
    assert_eq!(third_listed["name"], "test group");
    let (_, mine) = app.get("/api/me/groups", 1).await;
    assert_eq!(
        listed(&mine),
        [first.clone(), third.clone()].map(Value::from)
    );
    let (_, mine) = app.get("/api/me/groups", 4).await;
    assert_eq!(mine["groups"], json!([]));
    leave(&app, &third, 1).await;
    let (_, mine) = app.get("/api/me/groups", 1).await;
    assert_eq!(listed(&mine), [Value::from(first)]);
    refused(
        app.request(reqwest::Method::GET, "/api/me/groups", None, None)
            .await,
        401,
    );
}

async fn owner_deletes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let group = app.create_group(1, &[2]).await;
    let path = format!("/api/groups/{group}");
    refused(app.delete(&path, 2).await, 403);
    refused(app.delete(&path, 9).await, 403);
    refused(app.delete("/api/groups/no-such-group", 1).await, 404);
    let (status, body) = app.delete(&path, 1).await;
    assert_eq!(status, 204, "{body}");
    refused(app.get(&path, 1).await, 404);
    refused(app.get(&format!("{path}/members"), 2).await, 404);
    refused(app.delete(&path, 1).await, 404);
    let (_, mine) = app.get("/api/me/groups", 2).await;
    assert_eq!(mine["groups"], json!([]));
    // The id is free again.
    let (status, _) = app
        .post("/api/groups", 2, json!({"id": group, "name": "reborn"}))
        .await;
    assert_eq!(status, 201);
    let (_, members) = app.get(&format!("{path}/members"), 2).await;
    assert_eq!(members["members"], json!([2]), "no members left over");
}

on_both_backends!(
    create_and_get,
    create_refusals,
    get_refusals,
    owner_adds_and_removes_members,
    member_management_refusals,
    members_leave,
    my_groups,
    owner_deletes,
);
