-- The kill switch (version 3): active pauses, and which pause (or guard action) holds a message.
CREATE TABLE pauses (
    scope TEXT NOT NULL,
    target TEXT NOT NULL,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (scope, target)
);
ALTER TABLE messages ADD COLUMN held_by TEXT;
CREATE INDEX messages_held ON messages (held_by, created_at) WHERE status = 'held';
