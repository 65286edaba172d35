-- Guard alerts (version 7): what tripped, the evidence, and the action taken.
CREATE TABLE guard_alerts (
    id TEXT PRIMARY KEY,
    at BIGINT NOT NULL,
    scope TEXT NOT NULL,
    target TEXT NOT NULL,
    signal TEXT NOT NULL,
    evidence TEXT NOT NULL,
    action TEXT NOT NULL
);
CREATE INDEX guard_alerts_by_time ON guard_alerts (at);
