//! Autobahn 7.x, the closing handshake: a client's close frame is answered with a close
//! frame and then the server ends the TCP connection (RFC 6455 sections 5.5.1 and 7.1.1);
//! nothing after a close frame is answered. A close payload is empty or a 2-byte code that
//! may travel on the wire (1000-1003, 1007-1014 and 3000-4999; 1012-1014 are IANA-registered
//! since the RFC) with an optional UTF-8 reason, the whole at most 125 bytes: a 1-byte
//! payload, a code that may not travel, or a longer payload fails the connection with 1002,
//! a reason that is not UTF-8 with 1007.
//!
//! The RFC asks for a close frame in answer and says an endpoint "typically echos the status
//! code it received"; the gateway answers 1000 (normal closure) to every valid close, which
//! Autobahn also counts as a clean close. The tests accept either.

use super::{app_ping, connect, fails_with, node};
use crate::support::raw::{End, close_payload, op, part, ping_json, whole};

/// The server's answer to a close with `sent` (None: an empty payload) is a clean close:
/// its code is 1000 or the code it received, and (section 7.1.1) it closes TCP first.
fn assert_clean_answer(sent: Option<u16>, answer: (Option<u16>, String)) {
    let (code, reason) = answer;
    assert!(
        code == Some(1000) || (code.is_some() && code == sent),
        "answer to {sent:?}: {code:?} {reason:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_7_1_1_a_message_then_a_close_is_answered_in_order() {
    let app = node().await;
    let mut raw = connect(&app).await;
    raw.send(&app_ping()).await;
    raw.expect_code(1003).await;
    let answer = raw.close_with(&close_payload(1000, b"")).await;
    assert_clean_answer(Some(1000), answer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_7_1_2_to_7_1_4_nothing_after_a_close_frame_is_answered() {
    let app = node().await;
    let close = whole(op::CLOSE, &close_payload(1000, b""));
    let after = [
        // 7.1.2: a second close; 7.1.3: a ping; 7.1.4: a text message.
        close.clone(),
        whole(op::PING, b"after close"),
        app_ping(),
    ];
    for next in after {
        let mut raw = connect(&app).await;
        raw.send(&[close.clone(), next].concat()).await;
        assert_clean_answer(Some(1000), raw.expect_close().await);
        assert_eq!(raw.expect_end().await, End::Eof);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_7_1_5_and_7_1_6_a_close_mid_message_or_after_a_large_one() {
    let app = node().await;
    // 7.1.5: a fragment of a message, then a close: the message is dropped unanswered.
    let mut raw = connect(&app).await;
    raw.send(
        &[
            part(op::TEXT, b"{\"type\":"),
            whole(op::CLOSE, &close_payload(1000, b"")),
        ]
        .concat(),
    )
    .await;
    assert_clean_answer(Some(1000), raw.expect_close().await);
    assert_eq!(raw.expect_end().await, End::Eof);
    // 7.1.6: a large message, then a ping and a close at once: the answers come first.
    let mut raw = connect(&app).await;
    let bytes = [
        whole(op::TEXT, &ping_json(60_000)),
        whole(op::PING, b"before close"),
        whole(op::CLOSE, &close_payload(1000, b"")),
    ]
    .concat();
    raw.send(&bytes).await;
    raw.expect_code(1003).await;
    assert_eq!(raw.expect_pong().await, b"before close");
    assert_clean_answer(Some(1000), raw.expect_close().await);
    assert_eq!(raw.expect_end().await, End::Eof);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_7_3_1_and_7_3_3_to_7_3_5_valid_close_payloads_are_answered() {
    let app = node().await;
    let long_reason = vec![b'*'; 123];
    let cases: [(Option<u16>, Vec<u8>); 5] = [
        // 7.3.1: no payload at all.
        (None, Vec::new()),
        // 7.3.3: a code alone.
        (Some(1000), close_payload(1000, b"")),
        // 7.3.4: a code and a reason.
        (Some(1000), close_payload(1000, b"Hello World!")),
        // 7.3.5: the longest reason a control frame holds (2 + 123 = 125 bytes).
        (Some(1000), close_payload(1000, &long_reason)),
        // A reason in several scripts.
        (
            Some(1001),
            close_payload(1001, "au revoir, до свидания, 再见".as_bytes()),
        ),
    ];
    for (code, payload) in cases {
        let mut raw = connect(&app).await;
        assert_clean_answer(code, raw.close_with(&payload).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_7_3_2_and_7_3_6_a_1_byte_or_over_long_close_payload_fails_with_1002() {
    let app = node().await;
    fails_with(&app, &whole(op::CLOSE, &[0x03]), None, 1002, "2-byte code").await;
    // 7.3.6: a 124-byte reason makes a 126-byte control frame.
    let payload = close_payload(1000, &[b'*'; 124]);
    let bytes = whole(op::CLOSE, &payload);
    fails_with(&app, &bytes, None, 1002, "control frames").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_7_5_1_a_close_reason_that_is_not_utf8_fails_with_1007() {
    let app = node().await;
    for reason in [
        &b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited"[..],
        b"\xff",
        b"ok \xc0\xaf",
    ] {
        let bytes = whole(op::CLOSE, &close_payload(1000, reason));
        fails_with(&app, &bytes, None, 1007, "not valid UTF-8").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_7_7_valid_close_codes_are_answered() {
    let app = node().await;
    let codes = [
        1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000,
        4999,
    ];
    for code in codes {
        let mut raw = connect(&app).await;
        let answer = raw.close_with(&close_payload(code, b"")).await;
        assert_clean_answer(Some(code), answer);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_7_9_close_codes_that_may_not_travel_fail_with_1002() {
    let app = node().await;
    let codes = [
        0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65_535,
    ];
    for code in codes {
        let bytes = whole(op::CLOSE, &close_payload(code, b""));
        fails_with(&app, &bytes, None, 1002, "close code").await;
    }
}
