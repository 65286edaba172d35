-- Key policies, expiry, rotation and last use (version 5).
ALTER TABLE api_keys ADD COLUMN policy TEXT;
ALTER TABLE api_keys ADD COLUMN expires_at BIGINT;
ALTER TABLE api_keys ADD COLUMN grace_until BIGINT;
ALTER TABLE api_keys ADD COLUMN successor_id TEXT;
ALTER TABLE api_keys ADD COLUMN last_ip TEXT;
CREATE INDEX messages_by_key ON messages (key_id, created_at);
