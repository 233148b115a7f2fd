-- Conversations a user muted (PUT /api/mutes/...): never pushed to that user. A private
-- conversation is (user_id, peer_id, ''), a group (user_id, 0, group_id).
CREATE TABLE push_mutes (
    user_id BIGINT NOT NULL,
    peer_id BIGINT NOT NULL,
    group_id VARCHAR(64) NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, peer_id, group_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
