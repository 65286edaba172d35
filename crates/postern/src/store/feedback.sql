-- Feedback received (version 6): bounces, complaints, auto-replies, delivery reports, each tied
-- to the message it is about when Postern sent it (orphans have no message).
CREATE TABLE feedback (
    id TEXT PRIMARY KEY,
    tenant_id TEXT,
    message_id TEXT,
    recipient TEXT NOT NULL,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    hard BIGINT NOT NULL,
    status TEXT,
    reply_code TEXT,
    feedback_type TEXT,
    source TEXT NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE INDEX feedback_by_tenant ON feedback (tenant_id, received_at);
CREATE INDEX feedback_orphans ON feedback (received_at) WHERE message_id IS NULL;
CREATE INDEX messages_by_header ON messages (message_id_header);
