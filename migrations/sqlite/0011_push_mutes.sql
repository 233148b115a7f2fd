-- Conversations a user muted (PUT /api/mutes/...): never pushed to that user. A private
-- conversation is (user_id, peer_id, ''), a group (user_id, 0, group_id).
CREATE TABLE push_mutes (
    user_id INTEGER NOT NULL,
    peer_id INTEGER NOT NULL,
    group_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, peer_id, group_id)
) WITHOUT ROWID;
