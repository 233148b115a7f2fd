-- Edits and deletes by (sender, client_msg_id): a repeated request with the same
-- client_msg_id answers the first one's result and is not applied again. No content is kept
-- here, so a delete leaves no copy of the text behind.
CREATE TABLE edits (
    sender_id INTEGER NOT NULL,
    client_msg_id TEXT NOT NULL,
    message_id BLOB NOT NULL,
    deleted INTEGER NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (sender_id, client_msg_id)
) WITHOUT ROWID;
