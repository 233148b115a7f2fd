//! Every server frame code and WebSocket close code, with what a client should do about it.
//!
//! Ranges: 1xxx connection state, 2xxx success, 4xxx the client's request was refused
//! (do not retry unchanged), 5xxx the server could not do it (retry).

/// First frame on every connection: authenticated, carries `user_id`.
pub const CONNECTED: u16 = 1000;
/// The server is closing this connection (drain, replaced, too slow): reconnect with backoff.
pub const CLOSING: u16 = 1001;
/// Deliveries may have been missed (the node's bus link dropped): send a type 2 sync.
pub const SYNC_NEEDED: u16 = 1002;
/// Answer to an application ping (client frame type 7).
pub const PONG: u16 = 1003;
/// The connection's token expires at `expires_at` (unix seconds): send a fresh one (type 8)
/// before then, or the connection closes with 1008 "token expired".
pub const TOKEN_EXPIRING: u16 = 1004;

/// A message: live push, or one item of an unread sync or a history page.
pub const MESSAGE: u16 = 2000;
/// Your message is stored and reached at least one online device of the recipient.
pub const STORED_DELIVERED: u16 = 2100;
/// Your message is stored; no device of the recipient is online (it waits for their sync).
pub const STORED_OFFLINE: u16 = 2101;
/// End of an unread sync or a history page.
pub const PAGE_END: u16 = 2200;
/// Read receipt applied.
pub const READ_APPLIED: u16 = 2300;
/// Someone read messages of a conversation you are part of (pushed; see docs/protocol.md).
pub const READ_BY_PEER: u16 = 2301;

/// A delivery confirmation (type 9) was taken: `position` is where the device's catch-up
/// now starts (never past what this connection's syncs sent).
pub const DELIVERY_CONFIRMED: u16 = 2500;

/// Someone is typing (or stopped: `state`) in a conversation of yours; clear the indicator
/// after `TYPING_EXPIRY_MS` without a new "start".
pub const TYPING: u16 = 2600;
/// A message was edited (pushed): `id`, the new `content`, `edited_at`.
pub const MESSAGE_EDITED: u16 = 2700;
/// Your edit (type 11) is stored and pushed.
pub const EDIT_APPLIED: u16 = 2701;
/// A message was deleted (pushed): `id`, `deleted_at`; drop its content.
pub const MESSAGE_DELETED: u16 = 2710;
/// Your delete (type 12) is stored and pushed.
pub const DELETE_APPLIED: u16 = 2711;
/// How long a client shows a typing indicator after the last "start" it received.
pub const TYPING_EXPIRY_MS: u64 = 5000;
/// The user's conversation list changed in a way no message frame shows: a group membership
/// was added or removed, or a group deleted, edited or a member's role changed (`change`,
/// `group_id`).
pub const CONVERSATION_UPDATE: u16 = 2800;

/// A user the receiver follows came online or went offline (`user_id`, `online`).
pub const PRESENCE: u16 = 2900;

/// A fresh token (type 8) was accepted: the connection now lasts until `expires_at`.
pub const TOKEN_REFRESHED: u16 = 2400;

/// A fresh token (type 8) was refused; `reason` says why (the 401 reasons of the handshake,
/// or that it names another user). The connection keeps its old token.
pub const TOKEN_REFUSED: u16 = 4001;
/// Malformed or invalid frame; `reason` names the problem.
pub const BAD_FRAME: u16 = 4000;
/// Not allowed: not a member of that group, or the recipient blocked you.
pub const FORBIDDEN: u16 = 4003;
/// No such group, user or message.
pub const NOT_FOUND: u16 = 4004;
/// The message is older than `chat.edit_window`: it can no longer be edited or deleted.
pub const EDIT_WINDOW_PASSED: u16 = 4008;
/// Stranger limit reached: the recipient has not answered yet.
pub const STRANGER_LIMIT: u16 = 4029;
/// Too many frames: the connection sent faster than `limits.frames_per_second` (with a
/// burst of `limits.frame_burst`); this frame was dropped unread. `retry_after_ms` says when
/// the next one will be taken. Keeping on closes the connection with 1008.
pub const RATE_LIMITED: u16 = 4290;
/// A typing "start" (type 10) within 3 s of the last one forwarded for that conversation:
/// not forwarded; `retry_after_ms` says when the next one will be.
pub const TYPING_TOO_FAST: u16 = 4291;
/// Content longer than `limits.max_content_bytes`.
pub const TOO_LONG: u16 = 4130;
/// Storage unavailable: the message was NOT stored; retry with the same `client_msg_id`.
pub const STORAGE_UNAVAILABLE: u16 = 5000;

/// WebSocket close codes the server uses (RFC 6455 section 7.4 plus the registered 1012/1013).
pub mod close {
    /// Normal closure, answering a client's close.
    pub const NORMAL: u16 = 1000;
    /// The client broke the WebSocket protocol (RFC 6455): an unmasked frame, a reserved
    /// bit or opcode, a fragment out of order, an oversized control frame.
    pub const PROTOCOL: u16 = 1002;
    /// A text frame that is not valid UTF-8.
    pub const INVALID_DATA: u16 = 1007;
    /// Policy: the connection was replaced by a newer one of the same user (device limit),
    /// its token expired, it kept sending over its frame rate, or it left a message
    /// incomplete longer than `server.fragment_timeout`.
    pub const POLICY: u16 = 1008;
    /// A frame larger than `server.max_frame_bytes`.
    pub const TOO_BIG: u16 = 1009;
    /// The node is draining (shutdown or restart): reconnect, the load balancer picks another.
    pub const RESTART: u16 = 1012;
    /// The client read too slowly and its outbound queue overflowed: reconnect and sync.
    pub const TRY_AGAIN_LATER: u16 = 1013;
}
