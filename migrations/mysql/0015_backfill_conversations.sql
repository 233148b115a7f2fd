-- The conversation list of messages stored before it existed: each (user, peer)'s newest
-- message in either direction, and each group's newest.
INSERT INTO conversations (user_id, peer_id, last_id, last_sender, last_preview, last_ts)
SELECT x.user_id, x.peer_id, m.id, m.sender_id, LEFT(m.content, 100), m.ts
FROM (
    SELECT recipient_id AS user_id, sender_id AS peer_id, MAX(id) AS id FROM messages
    WHERE recipient_id IS NOT NULL GROUP BY recipient_id, sender_id
    UNION ALL
    SELECT sender_id, recipient_id, MAX(id) FROM messages
    WHERE recipient_id IS NOT NULL GROUP BY sender_id, recipient_id
) x JOIN messages m ON m.id = x.id
ON DUPLICATE KEY UPDATE
    last_sender = IF(VALUES(last_id) > last_id, VALUES(last_sender), last_sender),
    last_preview = IF(VALUES(last_id) > last_id, VALUES(last_preview), last_preview),
    last_ts = IF(VALUES(last_id) > last_id, VALUES(last_ts), last_ts),
    last_id = GREATEST(last_id, VALUES(last_id));
