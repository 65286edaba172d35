-- Alert notices (version 12): what operators were told about guard alerts, deduplicated by
-- key, with the channels used, escalation level and acknowledgement; and how far the notifier
-- has read guard_alerts.
CREATE TABLE alert_notices (
    id TEXT PRIMARY KEY,
    dedup_key TEXT NOT NULL,
    scope TEXT NOT NULL,
    target TEXT NOT NULL,
    signal TEXT NOT NULL,
    action TEXT NOT NULL,
    first_at BIGINT NOT NULL,
    last_at BIGINT NOT NULL,
    count BIGINT NOT NULL,
    level BIGINT NOT NULL,
    notified_at BIGINT NOT NULL,
    sent TEXT NOT NULL,
    acked_at BIGINT,
    acked_by TEXT
);
CREATE INDEX alert_notices_by_key ON alert_notices (dedup_key, last_at);
CREATE TABLE alert_cursor (
    name TEXT PRIMARY KEY,
    at BIGINT NOT NULL,
    alert_id TEXT NOT NULL
);
