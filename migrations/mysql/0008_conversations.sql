-- The conversation list (GET /api/conversations): one row per user and private peer with
-- the conversation's newest message, updated in the same transaction as each batch of
-- messages. Groups keep theirs in group_activity (0013). The newest first: ix_recent.
CREATE TABLE conversations (
    user_id BIGINT NOT NULL,
    peer_id BIGINT NOT NULL,
    last_id BINARY(16) NOT NULL,
    last_sender BIGINT NOT NULL,
    last_preview VARCHAR(100) NOT NULL,
    last_ts BIGINT NOT NULL,
    PRIMARY KEY (user_id, peer_id),
    KEY ix_recent (user_id, last_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
