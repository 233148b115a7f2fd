//! Autobahn 9.x-like limits: a message of exactly `server.max_frame_bytes` is accepted, one
//! byte more fails the connection with 1009, from the frame's header alone (no need to send
//! the payload) or from the fragments so far (many small fragments count together), and a
//! burst of many small messages is answered in full and in order.

use super::{connect, fails_with, node, still_served};
use crate::support::raw::{End, FIN, close_payload, op, part, ping_json, whole};

const TOO_BIG: &str = "max_frame_bytes";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_of_exactly_the_limit_is_accepted_one_more_byte_fails_with_1009() {
    let app = node().await;
    let max = app.settings.server.max_frame_bytes;
    let mut raw = connect(&app).await;
    raw.send(&whole(op::TEXT, &ping_json(max))).await;
    raw.expect_code(1003).await;
    // Fragmented, exactly the limit too.
    let message = ping_json(max);
    let (a, b) = message.split_at(max / 3);
    raw.send(&[part(op::TEXT, a), whole(op::CONTINUATION, b)].concat())
        .await;
    raw.expect_code(1003).await;
    still_served(&mut raw).await;
    // One byte more, text or binary: the whole frame sent.
    for opcode in [op::TEXT, op::BINARY] {
        let bytes = whole(opcode, &ping_json(max + 1));
        fails_with(&app, &bytes, None, 1009, TOO_BIG).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_announcing_more_than_the_limit_fails_from_its_header() {
    let app = node().await;
    // 16-bit and 64-bit lengths, up to the largest a frame may announce; nothing of the
    // payload is sent, and the server does not wait for it.
    for len in [65_537u64, 1 << 32, (1 << 63) - 1] {
        let mut raw = connect(&app).await;
        let mut header = vec![FIN | op::TEXT, 0x80 | 127];
        header.extend_from_slice(&len.to_be_bytes());
        header.extend_from_slice(&[1, 2, 3, 4]);
        raw.send(&header).await;
        raw.expect_failed(1009, TOO_BIG).await;
    }
    // A 64-bit length with its top bit set breaks the RFC itself (section 5.2): 1002.
    let mut raw = connect(&app).await;
    let mut header = vec![FIN | op::TEXT, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 63).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    raw.send(&header).await;
    raw.expect_failed(1002, "top bit").await;
    raw.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_fragments_totalling_more_than_the_limit_fail_with_1009() {
    let app = node().await;
    let max = app.settings.server.max_frame_bytes;
    // 100 fragments of 700 bytes: 70,000 bytes, each fragment small.
    let mut frames = vec![part(op::TEXT, &[b' '; 700])];
    frames.extend((0..98).map(|_| part(op::CONTINUATION, &[b' '; 700])));
    frames.push(whole(op::CONTINUATION, &[b' '; 700]));
    assert!(frames.len() * 700 > max);
    fails_with(&app, &frames.concat(), None, 1009, TOO_BIG).await;
    // The rest of the refused message and the client's close frame sent at once, before
    // the 1009 is read: the server skips the rest of the message, reads the close frame
    // and ends the connection cleanly (no reset, which could cost the client the 1009).
    let mut raw = connect(&app).await;
    let close = whole(op::CLOSE, &close_payload(1000, b""));
    raw.send(&[frames.concat(), close].concat()).await;
    raw.expect_failed(1009, TOO_BIG).await;
    assert_eq!(raw.expect_end().await, End::Eof);
    // Many empty fragments cost nothing and count nothing.
    let mut raw = connect(&app).await;
    let mut frames = vec![part(op::TEXT, b"")];
    frames.extend((0..1_000).map(|_| part(op::CONTINUATION, b"")));
    frames.push(whole(op::CONTINUATION, br#"{"type":7}"#));
    raw.send(&frames.concat()).await;
    raw.expect_code(1003).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_small_messages_and_pings_is_answered_in_order() {
    let app = node().await;
    let mut raw = connect(&app).await;
    let mut burst = Vec::new();
    for i in 0..500 {
        burst.extend(whole(op::TEXT, &ping_json(10 + i % 50)));
        burst.extend(whole(op::PING, format!("{i}").as_bytes()));
    }
    raw.send(&burst).await;
    for i in 0..500 {
        raw.expect_code(1003).await;
        assert_eq!(raw.expect_pong().await, format!("{i}").as_bytes());
    }
    still_served(&mut raw).await;
}
