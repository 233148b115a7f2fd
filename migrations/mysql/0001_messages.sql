-- Messages: one row per message (private or group). Ids are UUIDv7 bytes, which sort by time.
-- peer_lo/peer_hi key a private conversation; is_read is the recipient's read flag of a private
-- message; delivered records whether the first send reached an online device.
CREATE TABLE messages (
    id BINARY(16) NOT NULL PRIMARY KEY,
    sender_id BIGINT NOT NULL,
    recipient_id BIGINT NULL,
    group_id VARCHAR(64) NULL,
    peer_lo BIGINT NULL,
    peer_hi BIGINT NULL,
    content TEXT NOT NULL,
    client_msg_id VARCHAR(64) NULL,
    ts BIGINT NOT NULL,
    is_read TINYINT NOT NULL DEFAULT 0,
    delivered TINYINT NOT NULL DEFAULT 0,
    UNIQUE KEY uq_sender_client (sender_id, client_msg_id),
    KEY ix_conversation (peer_lo, peer_hi, id),
    KEY ix_group (group_id, id),
    KEY ix_unread (recipient_id, is_read, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
