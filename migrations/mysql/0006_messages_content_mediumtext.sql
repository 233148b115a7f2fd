-- Content up to limits.max_content_bytes must fit: TEXT holds only 65,535 bytes, and the
-- writer's INSERT IGNORE would silently truncate anything longer. MEDIUMTEXT holds 16 MiB.
ALTER TABLE messages MODIFY content MEDIUMTEXT NOT NULL;
