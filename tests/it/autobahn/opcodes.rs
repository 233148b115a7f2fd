//! Autobahn 4.x, opcodes: the reserved data opcodes (3-7) and the reserved control opcodes
//! (0xB-0xF) fail the connection with 1002, with or without a payload, after answering
//! what came before and answering nothing after.

use super::{answered_then_failed, fails_with, node};
use crate::support::raw::{Delivery, FIN, frame};

const DATA: [u8; 5] = [0x3, 0x4, 0x5, 0x6, 0x7];
const CONTROL: [u8; 5] = [0xB, 0xC, 0xD, 0xE, 0xF];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_4_1_1_4_1_2_4_2_1_4_2_2_reserved_opcodes_fail_with_1002() {
    let app = node().await;
    for opcode in DATA.into_iter().chain(CONTROL) {
        for payload in [&b""[..], b"reserved opcode payload"] {
            let bytes = frame(FIN | opcode, payload);
            fails_with(&app, &bytes, None, 1002, "unknown opcode").await;
        }
    }
    // Not final either: the opcode is refused before any fragmentation rule.
    fails_with(&app, &frame(0x3, b"x"), None, 1002, "unknown opcode").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_4_1_3_to_4_2_5_a_message_then_a_reserved_opcode_then_a_ping() {
    // A data opcode (4.1.3-4.1.5) and a control opcode (4.2.3-4.2.5), each in one write,
    // frame by frame and byte by byte: the message is answered, the ping after the bad
    // frame is not.
    let app = node().await;
    for (opcode, how) in [0x5, 0x6, 0x7, 0xD, 0xE, 0xF]
        .into_iter()
        .zip(Delivery::ALL.into_iter().cycle())
    {
        let bad = frame(FIN | opcode, b"reserved");
        answered_then_failed(&app, bad, how, "unknown opcode").await;
    }
}
