-- Per-device catch-up: up to which message id each device of a user confirmed receiving what
-- was owed to it (docs/protocol.md, "Catch-up"). One row per device, at most
-- chat.max_device_positions per user (the least recently confirmed is forgotten).
CREATE TABLE device_positions (
    user_id BIGINT NOT NULL,
    device_id VARCHAR(64) NOT NULL,
    confirmed BINARY(16) NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
