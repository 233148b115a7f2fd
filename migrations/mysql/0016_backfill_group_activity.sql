-- Each group's newest message, for groups with messages stored before group_activity existed.
INSERT INTO group_activity (group_id, last_id, last_sender, last_preview, last_ts)
SELECT m.group_id, m.id, m.sender_id, LEFT(m.content, 100), m.ts
FROM (SELECT group_id, MAX(id) AS id FROM messages WHERE group_id IS NOT NULL GROUP BY group_id) x
JOIN messages m ON m.id = x.id;
