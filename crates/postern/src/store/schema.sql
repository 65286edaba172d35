-- Schema shared by both backends; {BLOB} and {SERIAL} are filled in per backend.
CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    secret_hash TEXT NOT NULL,
    scopes TEXT NOT NULL,
    description TEXT,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    last_used_at BIGINT
);
CREATE TABLE admins (
    username TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    must_change BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    key_id TEXT,
    source TEXT NOT NULL,
    mail_from TEXT NOT NULL,
    recipients TEXT NOT NULL,
    subject TEXT,
    message_id_header TEXT NOT NULL,
    raw {BLOB} NOT NULL,
    size BIGINT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    claimed_by TEXT,
    lease_until BIGINT,
    in_doubt BIGINT NOT NULL,
    provider TEXT,
    last_error TEXT
);
CREATE INDEX messages_due ON messages (next_attempt_at) WHERE status IN ('queued', 'deferred');
CREATE INDEX messages_sending ON messages (lease_until) WHERE status = 'sending';
CREATE TABLE message_events (
    id {SERIAL},
    message_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    recipient TEXT,
    provider TEXT,
    detail TEXT
);
CREATE INDEX message_events_by_message ON message_events (message_id, id);
CREATE TABLE idempotency (
    tenant_id TEXT NOT NULL,
    key TEXT NOT NULL,
    message_id TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
