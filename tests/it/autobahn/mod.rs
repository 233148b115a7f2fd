//! RFC 6455 conformance of the server's own framing, case by case after the Autobahn
//! TestSuite's case list (whose numbers the test names carry), over raw TCP with the
//! `Raw` client. The gateway does not echo: where Autobahn expects an echo, a text message
//! is a JSON type 7 frame whose answer (a 1003 pong frame) shows it arrived whole, a
//! message whose content matters goes to a second user who must receive it unchanged, and a
//! binary message is answered with a 4000 frame (binary is refused by the protocol, and the
//! connection stays open). Where the server fails the connection it first sends a 1001 JSON
//! frame naming the rule, then its close frame.
//!
//! Each test spawns its own node (SQLite; framing never waits on the store) and runs each
//! case on a connection of its own, of a user of its own, as Autobahn does.
//!
//! `failing.rs` holds what follows a failed connection and the floods: the server waiting
//! a bounded time for the client's close frame, clients that flood pings or binary frames
//! without reading (1013), a message left incomplete (1008).

mod close;
mod failing;
mod fragmentation;
mod framing;
mod limits;
mod opcodes;
mod pings;
mod reserved;
mod utf8;

use std::sync::atomic::{AtomicI64, Ordering};

use crate::support::raw::{Delivery, Raw, op, whole};
use crate::support::{Backend, Client, TestApp, many_frames};

/// A node for one test's cases. Cases send frames in bursts the per-connection frame rate
/// would refuse (4290): that limit is tested on its own in edge.rs, so these nodes lift it.
pub async fn node() -> TestApp {
    TestApp::spawn_with(Backend::Sqlite, many_frames).await
}

/// For the cases that check what a recipient receives: a node on which a user may send
/// any number of messages to another who never answered (the stranger rule would refuse
/// the fourth), a raw connection of a sender and a client of the recipient.
pub async fn sender_and_recipient() -> (TestApp, Raw, Client) {
    let app = TestApp::spawn_with(Backend::Sqlite, |settings| {
        many_frames(settings);
        settings.limits.stranger_messages = 1_000;
    })
    .await;
    let recipient = Client::connect(&app, user()).await;
    let sender = connect(&app).await;
    (app, sender, recipient)
}

/// A user id no other case uses, so that cases never meet through the device limit or a
/// delivery.
pub fn user() -> i64 {
    static NEXT: AtomicI64 = AtomicI64::new(1_000);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A new connection of a new user, past its 1000 frame.
pub async fn connect(app: &TestApp) -> Raw {
    Raw::connect(app, user()).await
}

/// A type 7 text frame, which the server answers with a 1003 frame.
pub fn app_ping() -> Vec<u8> {
    whole(op::TEXT, br#"{"type":7}"#)
}

/// The connection is still served, with nothing else pending: a type 7 gets its 1003 as
/// the very next frame.
pub async fn still_served(raw: &mut Raw) {
    raw.send(&app_ping()).await;
    raw.expect_code(1003).await;
}

/// On a new connection, `bytes` sent in one write (or in writes of `chunk` bytes) make the
/// server fail the connection with `code`, naming `reason`, before answering anything;
/// then the client completes the closing handshake and the server ends the connection.
pub async fn fails_with(
    app: &TestApp,
    bytes: &[u8],
    chunk: Option<usize>,
    code: u16,
    reason: &str,
) {
    let mut raw = connect(app).await;
    match chunk {
        None => raw.send(bytes).await,
        Some(chunk) => raw.send_until_refused(bytes, chunk).await,
    }
    raw.expect_failed(code, reason).await;
    raw.finish().await;
}

/// Autobahn's "message, bad frame, ping" (3.2-3.4, 4.1.3-4.1.5, 4.2.3-4.2.5): a type 7
/// message, then `bad`, then a ping, delivered as `how` says (frame by frame, the answer to
/// the message is read before `bad` goes). The message is answered, the connection fails
/// with 1002 naming `reason`, and the ping is never answered.
pub async fn answered_then_failed(app: &TestApp, bad: Vec<u8>, how: Delivery, reason: &str) {
    let mut raw = connect(app).await;
    let ping = whole(op::PING, b"never answered");
    match how {
        Delivery::FrameByFrame => {
            raw.send(&app_ping()).await;
            raw.expect_code(1003).await;
            raw.send(&bad).await;
            raw.send_until_refused(&ping, ping.len()).await;
        }
        Delivery::OneWrite => raw.send(&[app_ping(), bad, ping].concat()).await,
        Delivery::ByteByByte => {
            let bytes = [app_ping(), bad, ping].concat();
            raw.send_until_refused(&bytes, 1).await;
        }
    }
    if how != Delivery::FrameByFrame {
        raw.expect_code(1003).await;
    }
    raw.expect_failed(1002, reason).await;
    raw.finish().await;
}
