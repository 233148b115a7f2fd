//! The JSON frame decoder on any text: no panic, and either a valid frame (whose fields
//! keep the documented limits) or a refusal with a reason.
#![no_main]

use chat_gateway::protocol::{ClientFrame, DecodeError};
use libfuzzer_sys::fuzz_target;

/// `limits.max_content_bytes`, small so that the fuzzer reaches it.
const MAX_CONTENT: usize = 64;

fuzz_target!(|data: &[u8]| {
    // A text frame is UTF-8 by the time it is decoded (the reader checks).
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match ClientFrame::parse(text, MAX_CONTENT) {
        Ok(ClientFrame::Private {
            recipient,
            content,
            client_msg_id,
        }) => {
            assert!(recipient > 0);
            assert!(content.len() <= MAX_CONTENT && !content.trim().is_empty());
            assert!(client_msg_id.is_none_or(|id| !id.is_empty() && id.chars().count() <= 64));
        }
        Ok(ClientFrame::Group {
            content,
            client_msg_id,
            ..
        }) => {
            assert!(content.len() <= MAX_CONTENT && !content.trim().is_empty());
            assert!(client_msg_id.is_none_or(|id| !id.is_empty() && id.chars().count() <= 64));
        }
        Ok(ClientFrame::SyncUnread { limit }) => assert!((1..=500).contains(&limit)),
        Ok(ClientFrame::PrivateHistory { peer, limit, .. }) => {
            assert!(peer > 0);
            assert!((1..=100).contains(&limit));
        }
        Ok(ClientFrame::GroupHistory { limit, .. }) => assert!((1..=100).contains(&limit)),
        Ok(ClientFrame::Read { .. } | ClientFrame::Ping) => {}
        Ok(ClientFrame::Refresh { token }) => assert!(!token.expose().trim().is_empty()),
        Err(DecodeError::Invalid(reason)) => assert!(!reason.is_empty()),
        Err(DecodeError::TooLong { limit }) => assert_eq!(limit, MAX_CONTENT),
    }
});
