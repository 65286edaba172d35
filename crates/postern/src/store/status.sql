-- The status page and incident broadcasts (version 14): incidents and their updates, what the
-- delivering nodes last knew of each provider's health, tenants' contacts, and what each
-- broadcast sent.
CREATE TABLE incidents (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    resolved_at BIGINT
);
CREATE INDEX incidents_by_update ON incidents (updated_at);
CREATE TABLE incident_updates (
    incident_id TEXT NOT NULL REFERENCES incidents (id),
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    state TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (incident_id, seq)
);
CREATE TABLE provider_health (
    provider TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    channel TEXT NOT NULL,
    state TEXT NOT NULL,
    since BIGINT NOT NULL,
    reason TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE tenant_contacts (
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    channel TEXT NOT NULL,
    address TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, channel)
);
CREATE TABLE broadcast_deliveries (
    broadcast_id TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    address TEXT NOT NULL,
    provider TEXT,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (broadcast_id, tenant_id, channel)
);
