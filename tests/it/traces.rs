//! Traces: with `traces.otlp_endpoint` set, a node exports its spans (handshake, connection,
//! send, store_batch, publish) over OTLP/HTTP to a collector (here a receiver of the test's
//! own), and its JSON log lines inside a connection carry the connection id and trace id.

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use parking_lot::Mutex;
use prost::Message as _;
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::support::app::SECRET;
use crate::support::client::{Client, WAIT};
use crate::support::cluster::http_status;
use crate::support::guarded::{Guarded, Spawn};
use crate::support::services::free_port;
use crate::support::{eventually, eventually_blocking};
use chat_gateway::auth::Authenticator;

/// What the receiver was sent: every POST's body, raw.
type Received = Arc<Mutex<Vec<Bytes>>>;

/// An OTLP/HTTP traces receiver on a free loopback port: its URL and what it received.
async fn receiver() -> (String, Received) {
    let received = Received::default();
    let app = axum::Router::new()
        .route(
            "/v1/traces",
            post(|State(received): State<Received>, body: Bytes| async move {
                received.lock().push(body);
                // An empty ExportTraceServiceResponse: everything accepted.
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v1/traces"), received)
}

/// Every span received so far.
fn spans(received: &Received) -> Vec<Span> {
    let bodies = received.lock().clone();
    bodies
        .iter()
        .map(|body| ExportTraceServiceRequest::decode(body.as_ref()).expect("OTLP protobuf"))
        .flat_map(|request| request.resource_spans)
        .flat_map(|resource| resource.scope_spans)
        .flat_map(|scope| scope.spans)
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_exports_its_spans_and_logs_carry_the_trace() {
    let (endpoint, received) = receiver().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let env: Vec<(String, String)> = [
        ("CHAT__SERVER__BIND", format!("127.0.0.1:{port}")),
        (
            "CHAT__STORAGE__URL",
            format!("sqlite:{}/chat.db", dir.path().display()),
        ),
        ("CHAT__AUTH__JWT_SECRET", SECRET.into()),
        ("CHAT__TRACES__OTLP_ENDPOINT", endpoint),
        ("CHAT__LOG__FORMAT", "json".into()),
        ("CHAT__LOG__LEVEL", "info,chat_gateway=debug".into()),
        // The batch exporter's interval (the SDK's variable; 5 s by default).
        ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let log = dir.path().join("gateway.log");
    let program = Path::new(env!("CARGO_BIN_EXE_chat-gateway"));
    let spawn = Spawn {
        env: &env,
        setup: None,
    };
    let _node = Guarded::spawn_with(program, &[], &log, spawn);
    eventually_blocking(Duration::from_secs(20), "the gateway ready", || {
        http_status(port, "/health/ready") == Some(200)
    });

    let auth = Authenticator::new(SECRET.as_bytes());
    let url = format!("ws://127.0.0.1:{port}/ws");
    let token = |user| auth.mint(user, Duration::from_secs(600));
    let mut alice = Client::connect_url(&url, &token(1), 1).await;
    let mut bob = Client::connect_url(&url, &token(2), 2).await;
    let secret_words = "the contents never leave in a span";
    alice.stored(2, secret_words).await;
    assert_eq!(bob.expect(2000).await["content"], secret_words);
    drop(alice);
    drop(bob);

    // The connection spans end with their connections; the exporter sends within ~100 ms.
    let spans = eventually(WAIT, "every kind of span exported", async || {
        let spans = spans(&received);
        let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
        let wanted = ["handshake", "connection", "send", "store_batch", "publish"];
        if wanted.iter().all(|w| names.contains(w))
            && names.iter().filter(|n| **n == "connection").count() == 2
        {
            Ok(spans)
        } else {
            Err(names.join(","))
        }
    })
    .await;
    // alice's send is a child of her connection, in its trace; its publish a child of it.
    let send = spans.iter().find(|s| s.name == "send").unwrap();
    let connection = spans
        .iter()
        .find(|s| s.name == "connection" && s.span_id == send.parent_span_id)
        .expect("the send's parent is a connection span");
    assert_eq!(send.trace_id, connection.trace_id);
    assert!(
        spans
            .iter()
            .any(|s| s.name == "publish" && s.parent_span_id == send.span_id),
        "no publish under the send"
    );
    let batch = spans.iter().find(|s| s.name == "store_batch").unwrap();
    assert!(
        batch.attributes.iter().any(|a| a.key == "messages"),
        "{batch:?}"
    );
    // Contents and tokens stay out of what is exported.
    for body in received.lock().iter() {
        let text = String::from_utf8_lossy(body);
        assert!(!text.contains(secret_words), "message contents exported");
        assert!(!text.contains(&token(1)[..20]), "a token exported");
    }

    // alice's "connected" line carries her connection's id and trace id.
    let trace = hex(&connection.trace_id);
    let lines = std::fs::read_to_string(&log).expect("the node's log");
    let connected: Vec<Value> = lines
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["fields"]["message"] == "connected")
        .collect();
    assert!(
        connected
            .iter()
            .any(|l| l["span"]["trace_id"] == trace.as_str() && l["span"]["conn"].is_number()),
        "no connected line with trace {trace} in\n{lines}"
    );
}
