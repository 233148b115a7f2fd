-- Unread counts and read positions per private conversation, computed when the list is read:
-- one index range per conversation.
CREATE INDEX ix_unread_from ON messages (recipient_id, sender_id, is_read, id);
