-- Messages per tenant and status, kept in the transaction of every change, so that a metrics
-- scrape or the console's queue depth reads a few rows instead of counting the
-- `messages` table, whose rows hold the MIME text. SQLite has one writer at a time: one row
-- per tenant and status, updated in place.
--
-- New messages are counted by the group commit that inserts them (the only code that inserts
-- messages), once per batch: a trigger on insert would run for every row of the hottest path
-- (`store::accept::COUNT_ACCEPTED_SQLITE`). Changes of status and deletes, from anywhere, are
-- counted by the triggers below.
CREATE TABLE message_counts (
    tenant_id TEXT NOT NULL,
    status TEXT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, status)
) WITHOUT ROWID;
INSERT INTO message_counts (tenant_id, status, n)
    SELECT tenant_id, status, COUNT(*) FROM messages GROUP BY tenant_id, status;
CREATE TRIGGER messages_counted_update AFTER UPDATE OF status, tenant_id ON messages
    WHEN OLD.status IS NOT NEW.status OR OLD.tenant_id IS NOT NEW.tenant_id BEGIN
    UPDATE message_counts SET n = n - 1 WHERE tenant_id = OLD.tenant_id AND status = OLD.status;
    INSERT INTO message_counts (tenant_id, status, n) VALUES (NEW.tenant_id, NEW.status, 1)
        ON CONFLICT (tenant_id, status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER messages_counted_delete AFTER DELETE ON messages BEGIN
    UPDATE message_counts SET n = n - 1 WHERE tenant_id = OLD.tenant_id AND status = OLD.status;
END;
