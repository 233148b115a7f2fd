-- The push outbox (src/push, docs/protocol.md "Push webhook"): one row per private message
-- stored while push is configured, written in the message's own transaction and due a few
-- seconds later (push.delay). The sending node deletes it when the publish reached an online
-- device; the dispatcher of any node claims due rows (claimed_by, claimed_until: a lease, so
-- the rows of a node that dies go to the others), posts them to push.webhook_url, and deletes
-- them once the webhook answered 2xx, or moves due_at on for a retry.
CREATE TABLE push_outbox (
    message_id BINARY(16) NOT NULL,
    user_id BIGINT NOT NULL,
    due_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    claimed_by VARCHAR(64) NOT NULL DEFAULT '',
    claimed_until BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (message_id, user_id),
    KEY ix_due (due_at),
    KEY ix_claim (claimed_by)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
