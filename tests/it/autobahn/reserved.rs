//! Autobahn 3.x, reserved bits: no extension is negotiated, so a frame with any of RSV1-3
//! set fails the connection with 1002, whatever its opcode; what came before it is
//! answered, and nothing after it is.

use super::{answered_then_failed, fails_with, node};
use crate::support::raw::{Delivery, FIN, frame, op};

const RSV1: u8 = 0x40;
const RSV2: u8 = 0x20;
const RSV3: u8 = 0x10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_3_1_and_3_5_to_3_7_any_reserved_bit_fails_with_1002() {
    let app = node().await;
    let cases = [
        // 3.1: RSV1 on a text frame.
        frame(FIN | RSV1 | op::TEXT, br#"{"type":7}"#),
        // 3.2's bad frame alone: RSV2.
        frame(FIN | RSV2 | op::TEXT, br#"{"type":7}"#),
        // 3.5: RSV1 and RSV3 on a binary frame.
        frame(FIN | RSV1 | RSV3 | op::BINARY, &[0xFF; 8]),
        // 3.6: RSV2 and RSV3 on a ping.
        frame(FIN | RSV2 | RSV3 | op::PING, b"ping"),
        // 3.7: all three on a close frame.
        frame(FIN | RSV1 | RSV2 | RSV3 | op::CLOSE, &1000u16.to_be_bytes()),
        // On a fragment that is not the first.
        [
            frame(op::TEXT, b"{\"type\""),
            frame(FIN | RSV3 | op::CONTINUATION, b":7}"),
        ]
        .concat(),
    ];
    for bytes in cases {
        fails_with(&app, &bytes, None, 1002, "reserved bits").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_3_2_to_3_4_a_message_then_reserved_bits_then_a_ping() {
    // In one write (3.2), frame by frame (3.3) and byte by byte (3.4): the message is
    // answered, the ping after the bad frame is not.
    let app = node().await;
    for how in Delivery::ALL {
        let bad = frame(FIN | RSV2 | op::TEXT, br#"{"type":7}"#);
        answered_then_failed(&app, bad, how, "reserved bits").await;
    }
}
