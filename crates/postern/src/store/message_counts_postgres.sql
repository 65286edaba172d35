-- Messages per status, kept in the transaction of every change by triggers, so that a metrics
-- scrape reads a few rows instead of counting the whole `messages` table.
--
-- On PostgreSQL many transactions write at once (group commits, every node's workers), so a
-- row per status updated in place would make them queue on its lock, and two transactions
-- taking two such rows in opposite orders would deadlock. Each statement instead appends its
-- changes as rows of deltas, which take no lock; the count is their sum, and
-- `Store::fold_message_counts` folds them into one row per status now and then.
-- Statement-level triggers with transition tables: one small insert per statement, whatever
-- the number of rows it changed (a pause's hold of 100,000 messages writes a few rows).
CREATE TABLE message_counts (
    status TEXT NOT NULL,
    n BIGINT NOT NULL
);
INSERT INTO message_counts (status, n) SELECT status, COUNT(*) FROM messages GROUP BY status;
CREATE FUNCTION message_counts_track() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO message_counts (status, n) SELECT status, COUNT(*) FROM new_rows GROUP BY status;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO message_counts (status, n) SELECT status, -COUNT(*) FROM old_rows GROUP BY status;
    ELSE
        INSERT INTO message_counts (status, n)
        SELECT status, SUM(d) FROM (
            SELECT o.status, -1 AS d FROM old_rows o JOIN new_rows w ON w.id = o.id WHERE w.status <> o.status
            UNION ALL
            SELECT w.status, 1 AS d FROM old_rows o JOIN new_rows w ON w.id = o.id WHERE w.status <> o.status
        ) AS moved GROUP BY status;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER messages_counted_insert AFTER INSERT ON messages
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION message_counts_track();
CREATE TRIGGER messages_counted_update AFTER UPDATE ON messages
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION message_counts_track();
CREATE TRIGGER messages_counted_delete AFTER DELETE ON messages
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION message_counts_track();
