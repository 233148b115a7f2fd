//! The handshake check (`accept_key` and what the HTTP server does before it) as a property,
//! over raw TCP to a real node: generated handshakes, each a valid one with up to three
//! mutations (headers dropped, repeated or given any value, the method changed, unknown and
//! too many headers added), always get an HTTP answer (101, 400, 401, 405, 426 or 431; a
//! single known mutation its documented one), a 101 always carries the right
//! Sec-WebSocket-Accept, and a client already connected is served throughout.

use base64::Engine as _;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::support::client::WAIT;
use crate::support::{Backend, Client, TestApp, many_frames};

/// The required headers of a valid handshake, by index.
const HOST: usize = 0;
const UPGRADE: usize = 1;
const CONNECTION: usize = 2;
const VERSION: usize = 3;
const KEY: usize = 4;
const AUTHORIZATION: usize = 5;

/// One change to a valid handshake.
#[derive(Debug, Clone)]
enum Mutation {
    /// Another method than GET.
    Method(String),
    /// A required header left out.
    Drop(usize),
    /// A required header sent twice.
    Repeat(usize),
    /// A required header with another value (any bytes but CR and LF).
    Replace(usize, Vec<u8>),
    /// A key that is the base64 of `n` bytes.
    KeyOf(Vec<u8>),
    /// An unknown header.
    Extra(String, Vec<u8>),
    /// This many unknown headers (hyper takes at most 100).
    Many(usize),
}

impl Mutation {
    /// The status this mutation alone gets, where it is certain.
    fn status(&self) -> Option<u16> {
        match self {
            // HEAD is served by GET's route, which refuses it as not an upgrade.
            Mutation::Method(method) if method == "HEAD" => Some(426),
            Mutation::Method(_) => Some(405),
            Mutation::Drop(HOST | KEY) => Some(400),
            Mutation::Drop(UPGRADE | CONNECTION | VERSION) => Some(426),
            Mutation::Drop(AUTHORIZATION) => Some(401),
            Mutation::Drop(_) => None,
            Mutation::Repeat(VERSION) => Some(426),
            Mutation::Repeat(KEY) => Some(400),
            Mutation::Repeat(_) | Mutation::Replace(..) | Mutation::Extra(..) => None,
            Mutation::KeyOf(nonce) if nonce.len() == 16 => Some(101),
            Mutation::KeyOf(_) => Some(400),
            Mutation::Many(_) => Some(431),
        }
    }
}

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[ -~]{0,40}".prop_map(String::into_bytes),
        vec(
            any::<u8>().prop_filter("no CR or LF", |b| *b != b'\r' && *b != b'\n'),
            0..40
        ),
        prop_oneof![
            Just("13"),
            Just("websocket"),
            Just("upgrade"),
            Just("keep-alive, Upgrade"),
            Just(""),
            Just("dGhlIHNhbXBsZSBub25jZQ=="),
            Just("8"),
            Just("13, 13"),
        ]
        .prop_map(|s| s.as_bytes().to_vec()),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        prop_oneof![
            Just("POST"),
            Just("PUT"),
            Just("HEAD"),
            Just("DELETE"),
            Just("get")
        ]
        .prop_map(|m| Mutation::Method(m.to_string())),
        (0..6usize).prop_map(Mutation::Drop),
        (0..5usize).prop_map(Mutation::Repeat),
        (0..5usize, header_value()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        prop_oneof![vec(any::<u8>(), 16..=16), vec(any::<u8>(), 0..40)].prop_map(Mutation::KeyOf),
        ("x-[a-z]{1,10}", header_value()).prop_map(|(n, v)| Mutation::Extra(n, v)),
        (101..200usize).prop_map(Mutation::Many),
    ]
}

/// The request bytes of a valid handshake for `app` with `mutations` applied, and the key
/// it sends (the last one, if repeated).
fn request(app: &TestApp, mutations: &[Mutation]) -> (Vec<u8>, Vec<u8>) {
    let mut method = "GET".to_string();
    let mut headers: Vec<(String, Vec<u8>)> = [
        ("Host", app.addr.to_string()),
        ("Upgrade", "websocket".into()),
        ("Connection", "Upgrade".into()),
        ("Sec-WebSocket-Version", "13".into()),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==".into()),
        ("Authorization", format!("Bearer {}", app.token(7))),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value.into_bytes()))
    .collect();
    let required: Vec<String> = headers.iter().map(|(name, _)| name.clone()).collect();
    let mut extra = Vec::new();
    for mutation in mutations {
        match mutation {
            Mutation::Method(m) => method = m.clone(),
            Mutation::Drop(i) => headers.retain(|(name, _)| *name != required[*i]),
            Mutation::Repeat(i) => {
                if let Some(header) = headers.iter().find(|(name, _)| *name == required[*i]) {
                    extra.push(header.clone());
                }
            }
            Mutation::Replace(i, value) => {
                for (name, old) in headers.iter_mut() {
                    if *name == required[*i] {
                        *old = value.clone();
                    }
                }
            }
            Mutation::KeyOf(nonce) => {
                let key = base64::engine::general_purpose::STANDARD.encode(nonce);
                for (name, old) in headers.iter_mut() {
                    if *name == required[KEY] {
                        *old = key.clone().into_bytes();
                    }
                }
            }
            Mutation::Extra(name, value) => extra.push((name.clone(), value.clone())),
            Mutation::Many(n) => {
                extra.extend((0..*n).map(|i| (format!("x-many-{i}"), b"v".to_vec())))
            }
        }
    }
    headers.extend(extra);
    let key = headers
        .iter()
        .rev()
        .find(|(name, _)| *name == required[KEY])
        .map(|(_, value)| value.clone())
        .unwrap_or_default();
    let mut bytes = format!("{method} /ws HTTP/1.1\r\n").into_bytes();
    for (name, value) in headers {
        bytes.extend_from_slice(name.as_bytes());
        bytes.extend_from_slice(b": ");
        bytes.extend_from_slice(&value);
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"\r\n");
    (bytes, key)
}

/// Sends `bytes` on a new connection; the answer's status and head (lower-cased).
async fn answer(app: &TestApp, bytes: &[u8]) -> Result<(u16, String), TestCaseError> {
    let mut socket = TcpStream::connect(app.addr).await.expect("connecting");
    // The server may answer (431, 400) before reading all of a long request and close.
    let _ = socket.write_all(bytes).await;
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout(WAIT, socket.read(&mut byte)).await {
            Ok(Ok(1)) => head.push(byte[0]),
            other => {
                let seen = String::from_utf8_lossy(&head);
                return Err(TestCaseError::fail(format!(
                    "no answer ({other:?}): {seen:?}"
                )));
            }
        }
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let status = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| TestCaseError::fail(format!("not an HTTP answer: {head:?}")))?;
    Ok((status, head))
}

/// One generated handshake against the node, with the bystander checked after it.
async fn check(
    app: &TestApp,
    bystander: &mut Client,
    mutations: &[Mutation],
) -> Result<(), TestCaseError> {
    let (bytes, key) = request(app, mutations);
    let (status, head) = answer(app, &bytes).await?;
    prop_assert!(
        [101, 400, 401, 405, 426, 431].contains(&status),
        "{status} for {mutations:?}: {head}"
    );
    if let [single] = mutations
        && let Some(expected) = single.status()
    {
        prop_assert_eq!(status, expected, "{:?}: {}", single, head);
    }
    if mutations.is_empty() {
        prop_assert_eq!(status, 101, "{}", head);
    }
    if status == 101 {
        let accept = derive_accept_key(&key).to_ascii_lowercase();
        let line = format!("sec-websocket-accept: {accept}\r\n");
        prop_assert!(head.contains(&line), "{line:?} missing: {head}");
    }
    if status == 426 && head.contains("sec-websocket-version") {
        prop_assert!(head.contains("sec-websocket-version: 13\r\n"), "{head}");
    }
    // The client already connected is still served.
    bystander.send(json!({"type": 7})).await;
    bystander.expect(1003).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_handshakes_get_an_answer_and_never_disturb_other_clients() {
    // The connected client pings after every case: more than the default frame burst.
    let app = TestApp::spawn_with(Backend::Sqlite, many_frames).await;
    let bystander = std::cell::RefCell::new(Client::connect(&app, 1).await);
    let handle = tokio::runtime::Handle::current();
    let config = Config {
        cases: 96,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let result = tokio::task::block_in_place(|| {
        runner.run(&vec(mutation(), 0..=3), |mutations| {
            handle.block_on(check(&app, &mut bystander.borrow_mut(), &mutations))
        })
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
