-- Admin accounts: roles, TOTP, lockout; recovery codes, sessions and admin tokens (version 10).
-- `must_change` (from version 1) marks an account still on its one-time password, not enrolled.
ALTER TABLE admins ADD COLUMN role TEXT NOT NULL DEFAULT 'owner';
ALTER TABLE admins ADD COLUMN tenant_id TEXT REFERENCES tenants (id);
ALTER TABLE admins ADD COLUMN totp_secret TEXT;
ALTER TABLE admins ADD COLUMN totp_last_step BIGINT NOT NULL DEFAULT 0;
ALTER TABLE admins ADD COLUMN failed_logins BIGINT NOT NULL DEFAULT 0;
ALTER TABLE admins ADD COLUMN locked_until BIGINT;
ALTER TABLE admins ADD COLUMN disabled_at BIGINT;
ALTER TABLE admins ADD COLUMN last_login_at BIGINT;
CREATE TABLE admin_recovery_codes (
    username TEXT NOT NULL REFERENCES admins (username),
    code_hash TEXT NOT NULL,
    used_at BIGINT,
    PRIMARY KEY (username, code_hash)
);
CREATE TABLE admin_sessions (
    id_hash TEXT PRIMARY KEY,
    username TEXT NOT NULL REFERENCES admins (username),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    source_ip TEXT
);
CREATE TABLE admin_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    tenant_id TEXT REFERENCES tenants (id),
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT,
    last_used_at BIGINT
);
