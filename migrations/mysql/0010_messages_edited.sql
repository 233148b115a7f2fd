-- Edit and delete (docs/protocol.md, "Edit and delete"): when a message was last edited, and
-- when it was deleted. A deleted message keeps its row as a tombstone (ids, conversation,
-- time) with its content set to '': the text is gone from the database, not only hidden.
ALTER TABLE messages ADD COLUMN edited_at BIGINT NULL, ADD COLUMN deleted_at BIGINT NULL;
