//! Autobahn 5.x, fragmentation: a fragmented text message is reassembled however its
//! fragments arrive, with control frames answered between them; a fragmented control frame,
//! a continuation with nothing to continue and a new message before the last fragment of
//! the previous one fail the connection with 1002.

use serde_json::json;

use super::{connect, fails_with, node, sender_and_recipient, still_served};
use crate::support::raw::{Delivery, fragments, op, part, whole};

const CONTROL: &str = "control frames must be whole";
const NOTHING_TO_CONTINUE: &str = "continuation frame without a message to continue";
const NEW_MESSAGE: &str = "new message before the last fragment";

/// `{"type":7}` in two fragments, a ping between them when `ping` is set.
fn two_fragments(ping: bool) -> Vec<Vec<u8>> {
    let mut frames = vec![part(op::TEXT, b"{\"type\":")];
    if ping {
        frames.push(whole(op::PING, b"between fragments"));
    }
    frames.push(whole(op::CONTINUATION, b"7}"));
    frames
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_5_1_and_5_2_fragmented_pings_and_pongs_fail_with_1002() {
    let app = node().await;
    for opcode in [op::PING, op::PONG] {
        let bytes = [
            part(opcode, b"fragment1"),
            whole(op::CONTINUATION, b"fragment2"),
        ]
        .concat();
        fails_with(&app, &bytes, None, 1002, CONTROL).await;
    }
    // A close frame cannot be fragmented either.
    let close = [
        part(op::CLOSE, &1000u16.to_be_bytes()),
        whole(op::CONTINUATION, b""),
    ]
    .concat();
    fails_with(&app, &close, None, 1002, CONTROL).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_5_3_to_5_8_two_fragments_with_or_without_a_ping_between() {
    // In one write, frame by frame and byte by byte (5.3-5.5 without a ping, 5.6-5.8
    // with one): the ping is answered first, then the reassembled message.
    let app = node().await;
    for ping in [false, true] {
        for how in Delivery::ALL {
            let mut raw = connect(&app).await;
            raw.deliver(&two_fragments(ping), how).await;
            if ping {
                assert_eq!(raw.expect_pong().await, b"between fragments");
            }
            raw.expect_code(1003).await;
            still_served(&mut raw).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_5_9_to_5_14_a_continuation_with_nothing_to_continue_fails_with_1002() {
    let app = node().await;
    // 5.9-5.11: a final continuation first; 5.12-5.14: a non-final one. Then a valid
    // fragmented message, never answered.
    for first in [whole(op::CONTINUATION, b"x"), part(op::CONTINUATION, b"x")] {
        let bytes = [first, two_fragments(false).concat()].concat();
        for chunk in [None, Some(1)] {
            fails_with(&app, &bytes, chunk, 1002, NOTHING_TO_CONTINUE).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_5_15_a_continuation_after_the_last_fragment_fails_with_1002() {
    // Text fragment, final continuation (a whole message: answered), then a continuation
    // and a text fragment: the first of those fails the connection.
    let app = node().await;
    let mut raw = connect(&app).await;
    let bytes = [
        two_fragments(false).concat(),
        part(op::CONTINUATION, b"fragment3"),
        part(op::TEXT, b"fragment4"),
    ]
    .concat();
    raw.send(&bytes).await;
    raw.expect_code(1003).await;
    raw.expect_failed(1002, NOTHING_TO_CONTINUE).await;
    raw.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_5_17_to_5_18_a_new_data_frame_mid_message_fails_with_1002() {
    let app = node().await;
    for (second, fin) in [(op::TEXT, true), (op::TEXT, false), (op::BINARY, true)] {
        let next = if fin {
            whole(second, b"{}")
        } else {
            part(second, b"{}")
        };
        let bytes = [part(op::TEXT, b"{\"type\":"), next].concat();
        fails_with(&app, &bytes, None, 1002, NEW_MESSAGE).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_5_19_and_5_20_pings_between_many_fragments_frame_by_frame() {
    // Five fragments with a ping after the first and the fourth, each frame its own write
    // and the answer to each ping read before the next frame goes: the message is
    // reassembled across the exchange.
    let app = node().await;
    let mut raw = connect(&app).await;
    let text = br#"{"type":7,"p":"fragmented"}"#;
    let pieces: Vec<&[u8]> = text.chunks(6).collect();
    let frames = fragments(op::TEXT, &pieces);
    assert_eq!(frames.len(), 5);
    for (i, frame) in frames.iter().enumerate() {
        raw.send(frame).await;
        if i == 0 || i == 3 {
            let payload = format!("ping {i}");
            raw.send(&whole(op::PING, payload.as_bytes())).await;
            assert_eq!(raw.expect_pong().await, payload.as_bytes());
        }
    }
    raw.expect_code(1003).await;
    still_served(&mut raw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fragmented_text_message_reaches_its_recipient_unchanged() {
    // Fragments of every size from 1 byte, empty fragments among them, the message's
    // content arriving intact at another user.
    let (_app, mut raw, mut bob) = sender_and_recipient().await;
    for size in [1, 2, 3, 7, 64, 500] {
        let content = format!("fragments of {size} byte(s): Grüße, κόσμε, 😀");
        let text = json!({"type": 1, "recipient_id": bob.user, "content": content}).to_string();
        let mut pieces: Vec<&[u8]> = vec![b""];
        pieces.extend(text.as_bytes().chunks(size));
        pieces.push(b"");
        raw.send(&fragments(op::TEXT, &pieces).concat()).await;
        let ack = raw.expect_json().await;
        assert_eq!(ack["code"], 2100, "{ack}");
        assert_eq!(bob.expect(2000).await["content"], content.as_str());
    }
    still_served(&mut raw).await;
}
