-- Each group's newest message, for the conversation list: one row per group, updated in the
-- same transaction as each batch of messages (not one row per member).
CREATE TABLE group_activity (
    group_id VARCHAR(64) NOT NULL PRIMARY KEY,
    last_id BINARY(16) NOT NULL,
    last_sender BIGINT NOT NULL,
    last_preview VARCHAR(100) NOT NULL,
    last_ts BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
