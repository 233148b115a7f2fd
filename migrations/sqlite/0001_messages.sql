-- Messages: one row per message (private or group). Ids are UUIDv7 bytes, which sort by time.
-- peer_lo/peer_hi key a private conversation; is_read is the recipient's read flag of a private
-- message; delivered records whether the first send reached an online device.
CREATE TABLE messages (
    id BLOB NOT NULL PRIMARY KEY,
    sender_id INTEGER NOT NULL,
    recipient_id INTEGER NULL,
    group_id TEXT NULL,
    peer_lo INTEGER NULL,
    peer_hi INTEGER NULL,
    content TEXT NOT NULL,
    client_msg_id TEXT NULL,
    ts INTEGER NOT NULL,
    is_read INTEGER NOT NULL DEFAULT 0,
    delivered INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE UNIQUE INDEX uq_sender_client ON messages (sender_id, client_msg_id);
CREATE INDEX ix_conversation ON messages (peer_lo, peer_hi, id);
CREATE INDEX ix_group ON messages (group_id, id);
CREATE INDEX ix_unread ON messages (recipient_id, is_read, id);
