//! Autobahn 2.x, pings and pongs: a ping is answered with a pong carrying its payload (up
//! to the 125 bytes a control frame may hold; more fails the connection with 1002), a pong
//! nobody asked for is ignored, and pings are answered in order, however they arrive.

use super::{connect, fails_with, node, still_served};
use crate::support::raw::{op, whole};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_2_1_to_2_4_a_ping_is_answered_with_its_payload() {
    let app = node().await;
    let payloads: [Vec<u8>; 4] = [
        Vec::new(),
        b"Hello, world!".to_vec(),
        vec![0x00, 0xFF, 0xFE, 0xFD, 0xFC, 0xFB, 0x00, 0xFF],
        (0..125).map(|i| (i * 3) as u8).collect(),
    ];
    for payload in payloads {
        let mut raw = connect(&app).await;
        raw.send(&whole(op::PING, &payload)).await;
        assert_eq!(raw.expect_pong().await, payload);
        still_served(&mut raw).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_2_5_a_ping_over_125_bytes_fails_with_1002() {
    let app = node().await;
    let ping = whole(op::PING, &[b'p'; 126]);
    fails_with(&app, &ping, None, 1002, "control frames").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_2_6_a_125_byte_ping_byte_by_byte() {
    let app = node().await;
    let mut raw = connect(&app).await;
    let payload: Vec<u8> = (0..125).map(|i| (255 - i) as u8).collect();
    raw.send_chopped(&whole(op::PING, &payload), 1).await;
    assert_eq!(raw.expect_pong().await, payload);
    still_served(&mut raw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_2_7_to_2_9_an_unsolicited_pong_is_ignored() {
    let app = node().await;
    // 2.7 and 2.8: with no payload and with one; nothing answers them.
    for payload in [&b""[..], b"unsolicited pong payload"] {
        let mut raw = connect(&app).await;
        raw.send(&whole(op::PONG, payload)).await;
        still_served(&mut raw).await;
    }
    // 2.9: a pong, then a ping: only the ping is answered.
    let mut raw = connect(&app).await;
    let both = [
        whole(op::PONG, b"unsolicited pong payload"),
        whole(op::PING, b"ping payload"),
    ]
    .concat();
    raw.send(&both).await;
    assert_eq!(raw.expect_pong().await, b"ping payload");
    still_served(&mut raw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_2_10_and_2_11_ten_pings_are_answered_in_order() {
    let app = node().await;
    let pings: Vec<Vec<u8>> = (0..10)
        .map(|i| whole(op::PING, format!("payload-{i}").as_bytes()))
        .collect();
    // 2.10: in one write; 2.11: each ping byte by byte.
    for chopped in [false, true] {
        let mut raw = connect(&app).await;
        if chopped {
            for ping in &pings {
                raw.send_chopped(ping, 1).await;
            }
        } else {
            raw.send(&pings.concat()).await;
        }
        for i in 0..10 {
            assert_eq!(raw.expect_pong().await, format!("payload-{i}").as_bytes());
        }
        still_served(&mut raw).await;
    }
}
