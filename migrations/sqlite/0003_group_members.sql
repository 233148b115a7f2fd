-- Members of groups; last_read is the id bound up to which the member has read the group.
CREATE TABLE group_members (
    group_id TEXT NOT NULL,
    user_id INTEGER NOT NULL,
    joined_at INTEGER NOT NULL,
    last_read BLOB NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX ix_user ON group_members (user_id);
