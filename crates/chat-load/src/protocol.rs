//! The wire: server frames as the load tool reads them (only the fields it needs, borrowed),
//! the client frames it sends, and the `client_msg_id` that carries a message's identity
//! and send time through the gateway.

use chat_gateway::protocol::client::UNREAD_LIMIT;
use serde::Deserialize;
use std::borrow::Cow;

/// A server frame; unknown fields (content, from, …) are skipped.
#[derive(Deserialize, Debug)]
pub struct Incoming<'a> {
    /// The frame's code (docs/protocol.md).
    pub code: u16,
    /// Message id (2000, 2100, 2101).
    #[serde(borrow, default)]
    pub id: Option<Cow<'a, str>>,
    /// The sender's id for the message (2000, 2100, 2101; also on refusals).
    #[serde(borrow, default)]
    pub client_msg_id: Option<Cow<'a, str>>,
    /// `live`, `unread` or `history` (2000).
    #[serde(borrow, default)]
    pub source: Option<Cow<'a, str>>,
    /// Where the next unread page starts; empty at the end (2200).
    #[serde(borrow, default)]
    pub next_cursor: Option<Cow<'a, str>>,
    /// The newest message of an unread page, to confirm (2200).
    #[serde(borrow, default)]
    pub last_id: Option<Cow<'a, str>>,
    /// Why (1001, 4xxx, 5000).
    #[serde(borrow, default)]
    pub reason: Option<Cow<'a, str>>,
}

impl<'a> Incoming<'a> {
    /// Parses one text frame; `None` when it is not a JSON object with a code.
    pub fn parse(text: &'a str) -> Option<Incoming<'a>> {
        serde_json::from_str(text).ok()
    }
}

/// Client frame type 2: the next page of unread messages, as large as the server allows.
pub fn sync() -> String {
    format!(r#"{{"type":2,"limit":{}}}"#, UNREAD_LIMIT.1)
}

/// Client frame type 9: this device holds what it was owed up to `id` (per-device catch-up:
/// its next connection's syncs start after it).
pub fn confirm(id: &str) -> String {
    format!(r#"{{"type":9,"content":"{id}"}}"#)
}

/// Client frame type 5: `id` and everything older in its conversation become read.
pub fn read_receipt(id: &str) -> String {
    format!(r#"{{"type":5,"content":"{id}"}}"#)
}

/// Where a stream's messages go.
#[derive(Debug, Clone)]
pub enum Destination {
    /// A private message to this user id.
    User(i64),
    /// A group message to this group id.
    Group(String),
}

/// The constant head of every frame a stream sends, up to the variable part of its
/// `client_msg_id`: built once so that a send formats only two numbers.
pub fn frame_head(dest: &Destination, content: &str, tag: &str, stream: u32) -> String {
    let target = match dest {
        Destination::User(id) => format!(r#""type":1,"recipient_id":{id}"#),
        Destination::Group(id) => format!(r#""type":4,"group_id":"{id}""#),
    };
    format!(r#"{{{target},"content":"{content}","client_msg_id":"{tag}:{stream}:"#)
}

/// A complete frame: `head`, then the message's sequence number, the time it was due by
/// the schedule and how late it actually went out (µs).
pub fn frame(head: &str, seq: u32, due_us: u64, late_us: u64) -> String {
    let mut s = String::with_capacity(head.len() + 32);
    s.push_str(head);
    use std::fmt::Write;
    let _ = write!(s, "{seq}:{due_us}:{late_us}\"}}");
    s
}

/// A private message of the setup phase (not measured): `tag:setup:n` as its id.
pub fn setup_frame(recipient: i64, tag: &str, n: u32) -> String {
    format!(
        r#"{{"type":1,"recipient_id":{recipient},"content":"hello","client_msg_id":"{tag}:setup:{n}"}}"#
    )
}

/// What a `client_msg_id` of this run says about its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgKey {
    /// The stream (sender and destination) it belongs to.
    pub stream: u32,
    /// Its sequence number in the stream, from 0.
    pub seq: u32,
    /// When the schedule said it was due, in µs since the run began: latency is measured
    /// from here, so a late send cannot hide a slow server (coordinated omission).
    pub due_us: u64,
    /// How much later than due it was actually written to the socket, µs.
    pub late_us: u64,
}

impl MsgKey {
    /// When it was actually written to the socket, µs since the run began.
    pub fn sent_us(&self) -> u64 {
        self.due_us + self.late_us
    }
}

impl MsgKey {
    /// Decodes `tag:stream:seq:due_us:late_us`; `None` for ids of other runs or other
    /// clients.
    pub fn decode(cid: &str, tag: &str) -> Option<MsgKey> {
        let rest = cid.strip_prefix(tag)?.strip_prefix(':')?;
        let mut parts = rest.splitn(4, ':');
        Some(MsgKey {
            stream: parts.next()?.parse().ok()?,
            seq: parts.next()?.parse().ok()?,
            due_us: parts.next()?.parse().ok()?,
            late_us: parts.next()?.parse().ok()?,
        })
    }
}

/// A random run tag: telling this run's messages from those of earlier runs with the same
/// user ids (their unread leftovers come back in syncs), and keeping `client_msg_id`s unique
/// across runs (the gateway deduplicates on them).
pub fn run_tag() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..8)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_gateway::protocol::client::MAX_CLIENT_MSG_ID;

    #[test]
    fn frames_round_trip_their_key() {
        let head = frame_head(&Destination::User(7), "xx", "tag1", 3);
        let text = frame(&head, 42, 123456, 789);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], 1);
        assert_eq!(v["recipient_id"], 7);
        let cid = v["client_msg_id"].as_str().unwrap();
        assert!(cid.chars().count() <= MAX_CLIENT_MSG_ID);
        let key = MsgKey::decode(cid, "tag1").unwrap();
        assert_eq!(
            key,
            MsgKey {
                stream: 3,
                seq: 42,
                due_us: 123456,
                late_us: 789,
            }
        );
        assert_eq!(key.sent_us(), 124245);
        // The longest id a run makes (a day in µs, a million streams, a billion sends) fits.
        let longest = frame(
            &frame_head(&Destination::User(1), "x", "abcdefgh", 999_999),
            u32::MAX,
            86_400_000_000,
            86_400_000_000,
        );
        let v: serde_json::Value = serde_json::from_str(&longest).unwrap();
        assert!(v["client_msg_id"].as_str().unwrap().chars().count() <= MAX_CLIENT_MSG_ID);
        assert_eq!(MsgKey::decode(cid, "other"), None);
        let group = frame(
            &frame_head(&Destination::Group("g-1".into()), "y", "t", 0),
            0,
            0,
            0,
        );
        let v: serde_json::Value = serde_json::from_str(&group).unwrap();
        assert_eq!(v["group_id"], "g-1");
    }

    #[test]
    fn reads_server_frames() {
        let f = Incoming::parse(
            r#"{"code":2000,"content":"hi \"x\"","from":"1->2","id":"abc","client_msg_id":"t:1:2:3","source":"live","sender_id":1}"#,
        )
        .unwrap();
        assert_eq!(f.code, 2000);
        assert_eq!(f.source.as_deref(), Some("live"));
        assert_eq!(f.client_msg_id.as_deref(), Some("t:1:2:3"));
        assert!(Incoming::parse("nope").is_none());
    }

    #[test]
    fn syncs_ask_for_the_largest_page() {
        let v: serde_json::Value = serde_json::from_str(&sync()).unwrap();
        assert_eq!(v["type"], 2);
        assert_eq!(v["limit"], 500);
    }
}
