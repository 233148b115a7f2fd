//! `server.metrics_bind`: metrics and health on a private listener, `/metrics` off the
//! public one; and `chat-gateway healthcheck`, which the container image runs.

use std::path::Path;
use std::process::Command;

use crate::support::services::free_port;
use crate::support::{Backend, Client, TestApp};

fn private(app: &TestApp, path: &str) -> String {
    let addr = app.metrics_addr.expect("a metrics listener");
    format!("http://{addr}{path}")
}

#[tokio::test]
async fn metrics_and_health_move_to_the_private_listener() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.server.metrics_bind = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    assert_ne!(app.metrics_addr, Some(app.addr));
    let _client = Client::connect(&app, 1).await;
    let http = reqwest::Client::new();
    let get = async |url: String| {
        let res = http.get(url).send().await.expect("a request");
        (res.status().as_u16(), res.text().await.unwrap_or_default())
    };
    let (status, text) = get(private(&app, "/metrics")).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("chat_connections 1"), "{text}");
    let (status, text) = get(private(&app, "/health/ready")).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"ready\""), "{text}");
    assert_eq!(get(private(&app, "/health/live")).await.0, 200);
    // Nothing else is served there, and /metrics is no longer public.
    assert_eq!(get(private(&app, "/ws")).await.0, 404);
    assert_eq!(get(private(&app, "/api/groups")).await.0, 404);
    assert_eq!(get(app.url("/metrics")).await.0, 404);
    // Health stays on the public listener for load balancers that check it there.
    assert_eq!(get(app.url("/health/ready")).await.0, 200);
}

#[tokio::test]
async fn the_same_address_twice_is_refused() {
    let mut settings = chat_gateway::Settings::default();
    settings.server.metrics_bind = Some(settings.server.bind);
    let problem = settings.validate().expect_err("refused");
    assert!(problem.contains("server.metrics_bind"), "{problem}");
}

/// `chat-gateway healthcheck [--live]` with the node's own settings in the environment.
fn healthcheck(bind: &str, metrics_bind: Option<&str>, live: bool) -> std::process::Output {
    let mut command = Command::new(Path::new(env!("CARGO_BIN_EXE_chat-gateway")));
    command.arg("healthcheck").env("CHAT__SERVER__BIND", bind);
    if let Some(metrics_bind) = metrics_bind {
        command.env("CHAT__SERVER__METRICS_BIND", metrics_bind);
    }
    if live {
        command.arg("--live");
    }
    command.output().expect("running chat-gateway healthcheck")
}

#[tokio::test]
async fn healthcheck_exits_0_for_a_ready_node_and_1_for_none() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.server.metrics_bind = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let bind = app.addr.to_string();
    let metrics = app.metrics_addr.unwrap().to_string();
    // `Command::output` blocks: off the runtime's threads, so the node keeps answering.
    let out = tokio::task::spawn_blocking(move || {
        [
            healthcheck(&bind, Some(&metrics), false),
            healthcheck(&bind, Some(&metrics), true),
            healthcheck(&bind, None, false),
        ]
    })
    .await
    .unwrap();
    for output in &out {
        assert!(output.status.success(), "{output:?}");
    }
    let nobody = format!("127.0.0.1:{}", free_port());
    let out = tokio::task::spawn_blocking(move || healthcheck(&nobody, None, false))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unhealthy: /health/ready"), "{stderr}");
}
