-- The push outbox (src/push, docs/protocol.md "Push webhook"): one row per private message
-- stored while push is configured, written in the message's own transaction and due a few
-- seconds later (push.delay). The sending node deletes it when the publish reached an online
-- device; the dispatcher claims due rows (claimed_by, claimed_until: a lease), posts them to
-- push.webhook_url, and deletes them once the webhook answered 2xx, or moves due_at on.
CREATE TABLE push_outbox (
    message_id BLOB NOT NULL,
    user_id INTEGER NOT NULL,
    due_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    claimed_by TEXT NOT NULL DEFAULT '',
    claimed_until INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (message_id, user_id)
) WITHOUT ROWID;
CREATE INDEX push_outbox_due ON push_outbox (due_at);
CREATE INDEX push_outbox_claim ON push_outbox (claimed_by);
