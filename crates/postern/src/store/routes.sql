-- Per-tenant routes and route moves (version 2).
CREATE TABLE routes (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants (id),
    providers TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE route_moves (
    id TEXT PRIMARY KEY,
    tenant_id TEXT REFERENCES tenants (id),
    from_provider TEXT NOT NULL,
    to_provider TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX messages_deferred_by_provider ON messages (provider) WHERE status = 'deferred';
