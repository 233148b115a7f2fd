//! The frame reader on any bytes, split across reads as the input says: no panic, nothing
//! over the size limit, text always UTF-8, and the same outcome (messages, control frames,
//! errors) however the bytes are split, byte by byte included.
#![no_main]

use chat_gateway::ws::frame::{FrameError, Incoming, read_pieces};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first two bytes choose the size limit and the size of the reads; the rest is
    // what the client sends.
    let [limit, chunk, bytes @ ..] = data else {
        return;
    };
    let max = 16 + usize::from(*limit) * 64;
    let chunk = 1 + usize::from(*chunk);
    let whole = read_pieces([bytes], max);
    for outcome in &whole {
        match outcome {
            Ok(Incoming::Text(text)) => {
                assert!(text.len() <= max, "text over the limit");
                assert!(std::str::from_utf8(text).is_ok(), "text that is not UTF-8");
            }
            Ok(Incoming::Binary(len)) => assert!(*len <= max, "binary over the limit"),
            Ok(Incoming::Ping(payload)) => assert!(payload.len() <= 125, "a long ping"),
            Ok(Incoming::Pong | Incoming::Close) => {}
            Err(FrameError::Protocol(rule)) => assert!(!rule.is_empty(), "an unnamed rule"),
            Err(FrameError::TooBig | FrameError::BadUtf8) => {}
        }
    }
    assert_eq!(
        read_pieces(bytes.chunks(chunk), max),
        whole,
        "split in {chunk}s"
    );
    assert_eq!(
        read_pieces(bytes.chunks(1), max),
        whole,
        "split byte by byte"
    );
});
