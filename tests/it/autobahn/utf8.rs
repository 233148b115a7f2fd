//! Autobahn 6.x, UTF-8 handling: a text message must be valid UTF-8 as a whole (RFC 6455
//! section 8.1), wherever its fragments split it, even inside a code point; anything else
//! (overlong forms, surrogates, code points above U+10FFFF, stray continuation bytes,
//! truncated sequences, bytes that never occur in UTF-8), whole or split across fragments,
//! fails the connection with 1007.

use serde_json::json;

use super::{connect, fails_with, node, sender_and_recipient, still_served};
use crate::support::raw::{fragments, op, whole};

const BAD_UTF8: &str = "not valid UTF-8";

/// Valid UTF-8 that Autobahn sends (6.2, 6.5-6.8 and 6.23): mixed scripts, the first and
/// last code point of each sequence length, the edges of the surrogate gap, the
/// noncharacters (valid in UTF-8) and the replacement character.
const VALID: [&str; 14] = [
    "Hello-µ@ßöäüàá-UTF-8!!",
    "κόσμε",
    "\u{80}",
    "\u{7FF}",
    "\u{800}",
    "\u{D7FF}",
    "\u{E000}",
    "\u{FFFD}",
    "\u{FFFE}",
    "\u{FFFF}",
    "\u{10000}",
    "\u{10FFFF}",
    "\u{FEFF}BOM first",
    "😀 an emoji of 4 bytes",
];

/// Invalid UTF-8 (Autobahn 6.3, 6.8-6.22): each is refused on its own and inside text.
const INVALID: [&[u8]; 30] = [
    // 6.3: valid text, then a surrogate, then more text.
    b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
    // Beyond U+10FFFF, and the 5- and 6-byte forms UTF-8 no longer has.
    b"\xf4\x90\x80\x80",
    b"\xf7\xbf\xbf\xbf",
    b"\xf8\x88\x80\x80\x80",
    b"\xfc\x84\x80\x80\x80\x80",
    // Stray continuation bytes.
    b"\x80",
    b"\xbf",
    b"\x80\xbf\x80",
    // Start bytes followed by a space instead of a continuation.
    b"\xc0 ",
    b"\xe0 ",
    b"\xf0 ",
    // Sequences whose last byte is missing.
    b"\xdf",
    b"\xef\xbf",
    b"\xf4\x8f\xbf",
    // Bytes that never occur.
    b"\xfe",
    b"\xff",
    b"\xfe\xfe\xff\xff",
    // Overlong forms: '/' and NUL in 2, 3 and 4 bytes, and the longest overlong of each.
    b"\xc0\xaf",
    b"\xe0\x80\xaf",
    b"\xf0\x80\x80\xaf",
    b"\xc0\x80",
    b"\xe0\x80\x80",
    b"\xc1\xbf",
    b"\xe0\x9f\xbf",
    b"\xf0\x8f\xbf\xbf",
    // Surrogates, alone and as a pair (CESU-8).
    b"\xed\xa0\x80",
    b"\xed\xaf\xbf",
    b"\xed\xb0\x80",
    b"\xed\xbf\xbf",
    b"\xed\xa0\x80\xed\xb0\x80",
];

/// `{"type":7,"s":"<bytes>"}`: a frame the server answers with 1003 when `bytes` is valid.
fn ping_with(bytes: &[u8]) -> Vec<u8> {
    [br#"{"type":7,"s":""#.as_slice(), bytes, br#""}"#].concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_6_2_and_6_5_to_6_8_valid_text_is_accepted() {
    let app = node().await;
    let mut raw = connect(&app).await;
    for text in VALID {
        raw.send(&whole(op::TEXT, &ping_with(text.as_bytes())))
            .await;
        let answer = raw.expect_json().await;
        assert_eq!(answer["code"], 1003, "{text:?}: {answer}");
    }
    // U+0000 is valid UTF-8 (6.7.1): only the JSON refuses it, with the protocol's 4000.
    raw.send(&whole(op::TEXT, b"{\"type\":7,\"s\":\"\0\"}"))
        .await;
    raw.expect_code(4000).await;
    still_served(&mut raw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_6_2_3_and_6_6_valid_text_split_inside_code_points_reaches_its_recipient() {
    // Fragments of 1 to 4 bytes cut every multi-byte character somewhere; the recipient
    // gets the content exactly.
    let (_app, mut raw, mut bob) = sender_and_recipient().await;
    let content = VALID.join(" ");
    let text = json!({"type": 1, "recipient_id": bob.user, "content": content}).to_string();
    for size in 1..=4 {
        let pieces: Vec<&[u8]> = text.as_bytes().chunks(size).collect();
        raw.send(&fragments(op::TEXT, &pieces).concat()).await;
        assert_eq!(raw.expect_json().await["code"], 2100);
        assert_eq!(bob.expect(2000).await["content"], content.as_str());
    }
    // The 4-byte character alone, a byte per fragment, each fragment its own write.
    let emoji = "😀".as_bytes();
    let mut pieces: Vec<&[u8]> = vec![br#"{"type":7,"s":""#];
    pieces.extend(emoji.chunks(1));
    pieces.push(br#""}"#);
    let frames = fragments(op::TEXT, &pieces);
    raw.send_each(&frames).await;
    raw.expect_code(1003).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_6_3_and_6_8_to_6_22_invalid_text_fails_with_1007() {
    let app = node().await;
    for bytes in INVALID {
        // Alone, as the whole payload, and inside an otherwise valid JSON frame.
        fails_with(&app, &whole(op::TEXT, bytes), None, 1007, BAD_UTF8).await;
        let framed = whole(op::TEXT, &ping_with(bytes));
        fails_with(&app, &framed, None, 1007, BAD_UTF8).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_6_4_invalid_text_split_across_fragments_fails_with_1007() {
    let app = node().await;
    let kosme = "κόσμε".as_bytes();
    let cases: [&[&[u8]]; 5] = [
        // 6.4.1: valid, then a fragment of a code point above U+10FFFF, then more.
        &[kosme, b"\xf4\x90\x80\x80", b"edited"],
        // 6.4.2: the bad sequence split between two fragments.
        &[&[kosme, b"\xf4"].concat(), b"\x90\x80\x80edited"],
        // A surrogate split byte by byte across three fragments.
        &[b"\xed", b"\xa0", b"\x80"],
        // A message that ends inside a code point: its last fragment is empty.
        &[&[kosme, b"\xce"].concat(), b""],
        // Valid fragments, an invalid byte in the last one.
        &[b"{\"type\":7,", b"\"s\":\"\xff\"}"],
    ];
    for pieces in cases {
        let bytes = fragments(op::TEXT, pieces).concat();
        fails_with(&app, &bytes, None, 1007, BAD_UTF8).await;
        // 6.4.3 and 6.4.4: the same, byte by byte.
        fails_with(&app, &bytes, Some(1), 1007, BAD_UTF8).await;
    }
}
