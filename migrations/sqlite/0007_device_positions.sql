-- Per-device catch-up: up to which message id each device of a user confirmed receiving what
-- was owed to it (docs/protocol.md, "Catch-up"). One row per device, at most
-- chat.max_device_positions per user (the least recently confirmed is forgotten).
CREATE TABLE device_positions (
    user_id INTEGER NOT NULL,
    device_id TEXT NOT NULL,
    confirmed BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, device_id)
) WITHOUT ROWID;
