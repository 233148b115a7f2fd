-- Edits and deletes by (sender, client_msg_id): a repeated request with the same
-- client_msg_id answers the first one's result and is not applied again. No content is kept
-- here, so a delete leaves no copy of the text behind.
CREATE TABLE edits (
    sender_id BIGINT NOT NULL,
    client_msg_id VARCHAR(64) NOT NULL,
    message_id BINARY(16) NOT NULL,
    deleted TINYINT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (sender_id, client_msg_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
