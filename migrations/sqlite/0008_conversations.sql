-- The conversation list (GET /api/conversations): one row per user and private peer with
-- the conversation's newest message, updated in the same transaction as each batch of
-- messages; each group's newest in group_activity. See migrations/mysql/0008, 0013 to 0016.
CREATE TABLE conversations (
    user_id INTEGER NOT NULL,
    peer_id INTEGER NOT NULL,
    last_id BLOB NOT NULL,
    last_sender INTEGER NOT NULL,
    last_preview TEXT NOT NULL,
    last_ts INTEGER NOT NULL,
    PRIMARY KEY (user_id, peer_id)
) WITHOUT ROWID;
CREATE INDEX ix_recent ON conversations (user_id, last_id);
CREATE TABLE group_activity (
    group_id TEXT NOT NULL PRIMARY KEY,
    last_id BLOB NOT NULL,
    last_sender INTEGER NOT NULL,
    last_preview TEXT NOT NULL,
    last_ts INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX ix_unread_from ON messages (recipient_id, sender_id, is_read, id);
INSERT INTO conversations (user_id, peer_id, last_id, last_sender, last_preview, last_ts)
SELECT x.user_id, x.peer_id, m.id, m.sender_id, substr(m.content, 1, 100), m.ts
FROM (
    SELECT recipient_id AS user_id, sender_id AS peer_id, MAX(id) AS id FROM messages
    WHERE recipient_id IS NOT NULL GROUP BY recipient_id, sender_id
    UNION ALL
    SELECT sender_id, recipient_id, MAX(id) FROM messages
    WHERE recipient_id IS NOT NULL GROUP BY sender_id, recipient_id
) x JOIN messages m ON m.id = x.id
WHERE true
ON CONFLICT (user_id, peer_id) DO UPDATE SET
    last_sender = CASE WHEN excluded.last_id > last_id THEN excluded.last_sender ELSE last_sender END,
    last_preview = CASE WHEN excluded.last_id > last_id THEN excluded.last_preview ELSE last_preview END,
    last_ts = CASE WHEN excluded.last_id > last_id THEN excluded.last_ts ELSE last_ts END,
    last_id = MAX(last_id, excluded.last_id);
INSERT INTO group_activity (group_id, last_id, last_sender, last_preview, last_ts)
SELECT m.group_id, m.id, m.sender_id, substr(m.content, 1, 100), m.ts
FROM (SELECT group_id, MAX(id) AS id FROM messages WHERE group_id IS NOT NULL GROUP BY group_id) x
JOIN messages m ON m.id = x.id;
