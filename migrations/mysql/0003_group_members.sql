-- Members of groups; last_read is the id bound up to which the member has read the group.
CREATE TABLE group_members (
    group_id VARCHAR(64) NOT NULL,
    user_id BIGINT NOT NULL,
    joined_at BIGINT NOT NULL,
    last_read BINARY(16) NOT NULL,
    PRIMARY KEY (group_id, user_id),
    KEY ix_user (user_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
