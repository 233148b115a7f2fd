//! The OpenAPI document (`GET /api/openapi.json`) cannot drift from the routes: it is valid
//! OpenAPI 3.1 JSON; every operation it lists is served (and answers with a status it
//! documents); no other method is served on its paths; and the router definitions register
//! no `/api` route outside it. The reference page (`/api/docs`) is served with its CSP.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::support::{Backend, TestApp};

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

async fn document(app: &TestApp) -> Value {
    let res = reqwest::get(app.url("/api/openapi.json"))
        .await
        .expect("GET /api/openapi.json");
    assert_eq!(res.status(), 200, "the document needs no token");
    let kind = res.headers()["content-type"].to_str().unwrap().to_string();
    assert!(kind.starts_with("application/json"), "{kind}");
    let text = res.text().await.unwrap();
    serde_json::from_str(&text).expect("the document is JSON")
}

/// Every `$ref` under `value`.
fn refs(value: &Value, found: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                found.insert(r.clone());
            }
            map.values().for_each(|v| refs(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
        _ => {}
    }
}

#[tokio::test]
async fn the_document_is_openapi_3_1_and_complete() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let doc = document(&app).await;
    let version = doc["openapi"].as_str().expect("an openapi version");
    assert!(version.starts_with("3.1."), "{version}");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    let error = &schemas["ErrorBody"];
    assert_eq!(
        error["required"],
        serde_json::json!(["error", "code"]),
        "{error}"
    );
    let mut found = BTreeSet::new();
    refs(&doc, &mut found);
    for r in &found {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{r} is a schema reference"));
        assert!(schemas.contains_key(name), "{r} names no schema");
    }
    let paths = doc["paths"].as_object().expect("paths");
    let mut operations = 0;
    for (path, item) in paths {
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            operations += 1;
            let answers = op["responses"].as_object().expect("responses");
            assert!(
                answers.keys().any(|s| s.starts_with('2')),
                "{method} {path} documents no success"
            );
            let secured = op["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
            if secured {
                for status in ["401", "503"] {
                    assert!(answers.contains_key(status), "{method} {path}: {status}");
                }
            }
            for (status, answer) in answers {
                assert!(
                    answer["description"].is_string(),
                    "{method} {path} {status}"
                );
                if status.starts_with('4') || status.starts_with('5') {
                    assert!(
                        answer["content"]["application/json"]["schema"].is_object(),
                        "{method} {path}: {status} has the error body's schema"
                    );
                }
            }
            for param in op["parameters"].as_array().into_iter().flatten() {
                if param["in"] == "path" {
                    let name = param["name"].as_str().unwrap();
                    assert!(path.contains(&format!("{{{name}}}")), "{path} {name}");
                    assert_eq!(param["required"], true, "{path} {name}");
                }
            }
        }
    }
    assert!(operations >= 30, "only {operations} operations");
    for path in ["/api/groups", "/api/conversations", "/api/dev/token"] {
        assert!(paths.contains_key(path), "{path} is documented");
    }
    assert!(
        !paths.contains_key("/ws"),
        "the WebSocket is docs/protocol.md's"
    );
}

/// `path` with each `{param}` replaced by a value of its schema.
fn concrete(path: &str, op: &Value) -> String {
    let mut out = path.to_string();
    for param in op["parameters"].as_array().into_iter().flatten() {
        if param["in"] != "path" {
            continue;
        }
        let schema = &param["schema"];
        let value = if schema["type"] == "integer" {
            "2"
        } else if schema["format"] == "uuid" {
            "01a2142a-1b22-7d01-8c55-0e4a31c0ff12"
        } else {
            "no-such-group"
        };
        out = out.replace(&format!("{{{}}}", param["name"].as_str().unwrap()), value);
    }
    out
}

#[tokio::test]
async fn every_documented_operation_is_served_and_no_other_method() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let doc = document(&app).await;
    let http = reqwest::Client::new();
    let token = app.token(1);
    for (path, item) in doc["paths"].as_object().unwrap() {
        let some_op = METHODS.iter().find_map(|m| item.get(*m)).unwrap();
        let url = app.url(&concrete(path, some_op));
        for method in METHODS {
            let verb = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let res = http
                .request(verb, &url)
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            let text = res.text().await.unwrap_or_default();
            match item.get(method) {
                Some(op) => {
                    assert_ne!(status, 405, "{method} {url} is documented: {text}");
                    assert!(
                        !text.contains("no such endpoint"),
                        "{method} {url} is documented but not routed"
                    );
                    assert!(
                        op["responses"].get(status.to_string()).is_some(),
                        "{method} {url} answered {status}, which it does not document: {text}"
                    );
                }
                None => assert_eq!(
                    status, 405,
                    "{method} {url} is served but not documented: {text}"
                ),
            }
        }
    }
}

/// The first argument of each `.route(` in `source`, when it is a string literal.
fn literal_routes(source: &str) -> Vec<String> {
    let mut found = Vec::new();
    for call in [".route(", ".route_service(", ".nest(", ".nest_service("] {
        for (at, _) in source.match_indices(call) {
            let rest = source[at + call.len()..].trim_start();
            if let Some(literal) = rest.strip_prefix('"') {
                let end = literal.find('"').unwrap_or(literal.len());
                found.push(literal[..end].to_string());
            } else {
                found.push(format!("<not a literal: {}>", &rest[..rest.len().min(40)]));
            }
        }
    }
    found
}

#[test]
fn no_api_route_bypasses_the_document() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/http");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
    assert!(files.len() > 5, "{dir} has the HTTP modules");
    for file in files {
        // Code only: comments may show what not to do.
        let source: String = std::fs::read_to_string(&file)
            .unwrap()
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .map(|l| format!("{l}\n"))
            .collect();
        for route in literal_routes(&source) {
            assert!(
                !route.starts_with("/api") && !route.contains("not a literal: \"/api"),
                "{}: {route} is registered with .route(): register it with \
                 .routes(routes!(handler)) and a #[utoipa::path] (src/http/openapi.rs)",
                file.display()
            );
        }
    }
}

#[tokio::test]
async fn the_reference_page_is_served_with_a_strict_policy() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let res = reqwest::get(app.url("/api/docs")).await.unwrap();
    assert_eq!(res.status(), 200);
    let headers = res.headers().clone();
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("default-src 'none'"), "{policy}");
    assert!(policy.contains("script-src 'sha256-"), "{policy}");
    assert!(policy.contains("connect-src 'self'"), "{policy}");
    assert!(!policy.contains("unsafe"), "{policy}");
    let page = res.text().await.unwrap();
    assert!(page.contains("openapi.json"), "the page reads the document");
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "no CDN"
    );
}
