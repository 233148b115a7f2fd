-- Who follows a user (live presence fans out to them): by followee.
CREATE INDEX ix_followee ON follows (followee_id, follower_id);
