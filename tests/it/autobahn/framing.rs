//! Autobahn 1.x, framing: text and binary messages at the edges of each length encoding
//! (7-bit up to 125, 16-bit from 126, and the 64-bit form above 65,535, which
//! `server.max_frame_bytes` (64 KiB by default) leaves just one length of), sent in one
//! write, in writes of 997 bytes, and byte by byte.

use super::{connect, node, still_served};
use crate::support::raw::{op, ping_json, whole};

/// The lengths of Autobahn 1.1.x / 1.2.x that fit within the default limit of 65,536.
const LENGTHS: [usize; 7] = [10, 125, 126, 127, 128, 65_535, 65_536];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_1_1_text_of_each_length_encoding_arrives_whole() {
    let app = node().await;
    assert_eq!(app.settings.server.max_frame_bytes, 65_536);
    for len in LENGTHS {
        let mut raw = connect(&app).await;
        raw.send(&whole(op::TEXT, &ping_json(len))).await;
        raw.expect_code(1003).await;
        still_served(&mut raw).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_1_1_1_an_empty_text_message_is_answered_not_failed() {
    // Valid framing, but not a JSON frame: the protocol's 4000, and the connection stays.
    let app = node().await;
    let mut raw = connect(&app).await;
    raw.send(&whole(op::TEXT, b"")).await;
    let refused = raw.expect_code(4000).await;
    assert!(
        refused["content"]
            .as_str()
            .unwrap()
            .contains("invalid JSON"),
        "{refused}"
    );
    still_served(&mut raw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_1_1_8_text_of_64_kib_in_997_byte_writes() {
    let app = node().await;
    let mut raw = connect(&app).await;
    raw.send_chopped(&whole(op::TEXT, &ping_json(65_536)), 997)
        .await;
    raw.expect_code(1003).await;
    still_served(&mut raw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_frames_at_the_length_edges_byte_by_byte() {
    // Every header byte, the masking key and the payload each in a segment of their own:
    // the reader must wait for each part of the header (2, 4 or 10 bytes, then the key).
    let app = node().await;
    for len in [10, 125, 126, 127, 128, 1_000] {
        let mut raw = connect(&app).await;
        raw.send_chopped(&whole(op::TEXT, &ping_json(len)), 1).await;
        raw.expect_code(1003).await;
        still_served(&mut raw).await;
    }
    // The 64-bit length form byte by byte, up to the start of its payload.
    let mut raw = connect(&app).await;
    let frame = whole(op::TEXT, &ping_json(65_536));
    raw.send_chopped(&frame[..15], 1).await;
    raw.send(&frame[15..]).await;
    raw.expect_code(1003).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_1_2_binary_of_each_length_encoding_is_refused_with_4000() {
    let app = node().await;
    for len in [0, 125, 126, 127, 128, 65_535, 65_536] {
        let payload: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
        let mut raw = connect(&app).await;
        raw.send(&whole(op::BINARY, &payload)).await;
        let refused = raw.expect_code(4000).await;
        assert!(
            refused["content"].as_str().unwrap().contains("binary"),
            "{len}: {refused}"
        );
        still_served(&mut raw).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_1_2_8_binary_in_997_byte_writes_and_byte_by_byte() {
    let app = node().await;
    let mut raw = connect(&app).await;
    let big: Vec<u8> = (0..65_536).map(|i| (i % 253) as u8).collect();
    raw.send_chopped(&whole(op::BINARY, &big), 997).await;
    raw.expect_code(4000).await;
    raw.send_chopped(&whole(op::BINARY, &big[..200]), 1).await;
    raw.expect_code(4000).await;
    still_served(&mut raw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_sent_back_to_back_in_one_write_are_answered_in_order() {
    // Many frames in one segment, and one frame split over two segments at every offset
    // of its header: the reader keeps what it has not parsed yet.
    let app = node().await;
    let mut raw = connect(&app).await;
    let lengths = [10, 126, 17, 300, 125, 65_000, 11];
    let batch: Vec<u8> = lengths
        .iter()
        .flat_map(|&len| whole(op::TEXT, &ping_json(len)))
        .collect();
    raw.send(&batch).await;
    for _ in lengths {
        raw.expect_code(1003).await;
    }
    let frame = whole(op::TEXT, &ping_json(300));
    for split in 1..frame.len().min(12) {
        raw.send(&frame[..split]).await;
        raw.send(&frame[split..]).await;
        raw.expect_code(1003).await;
    }
    still_served(&mut raw).await;
}
