-- Messages per status, kept in the transaction of every change by triggers, so that a metrics
-- scrape reads a few rows instead of counting the whole `messages` table, whose rows hold the
-- MIME text. SQLite has one writer at a time: one row per status, updated in place.
CREATE TABLE message_counts (
    status TEXT PRIMARY KEY,
    n BIGINT NOT NULL
) WITHOUT ROWID;
INSERT INTO message_counts (status, n) SELECT status, COUNT(*) FROM messages GROUP BY status;
CREATE TRIGGER messages_counted_insert AFTER INSERT ON messages BEGIN
    INSERT INTO message_counts (status, n) VALUES (NEW.status, 1)
        ON CONFLICT (status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER messages_counted_update AFTER UPDATE OF status ON messages
    WHEN OLD.status IS NOT NEW.status BEGIN
    UPDATE message_counts SET n = n - 1 WHERE status = OLD.status;
    INSERT INTO message_counts (status, n) VALUES (NEW.status, 1)
        ON CONFLICT (status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER messages_counted_delete AFTER DELETE ON messages BEGIN
    UPDATE message_counts SET n = n - 1 WHERE status = OLD.status;
END;
