-- Suppression list per tenant (version 4). Addresses are stored lowercased.
CREATE TABLE suppressions (
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    address TEXT NOT NULL,
    reason TEXT NOT NULL,
    source TEXT NOT NULL,
    detail TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, address)
);
