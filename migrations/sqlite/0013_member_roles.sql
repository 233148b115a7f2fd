-- A member's role besides ownership: 'admin' or 'member'. The owner is chat_groups.owner_id
-- (one source of truth); an ownership transfer makes the old owner 'admin'.
ALTER TABLE group_members ADD COLUMN role TEXT NOT NULL DEFAULT 'member';
