-- Messages per status, kept in the transaction of every change by triggers, so that a metrics
-- scrape reads a few rows instead of counting the whole `messages` table.
--
-- On PostgreSQL many transactions write at once (group commits, every node's workers), so a
-- row per status updated in place would make them queue on its lock, and two transactions
-- taking two such rows in opposite orders would deadlock. Each statement instead appends its
-- changes as rows of deltas, which take no lock; the count is their sum, and
-- `Store::fold_message_counts` folds them into one row per status now and then.
-- Inserts and deletes: statement-level triggers with transition tables, one small insert per
-- statement whatever the number of rows (a group commit writes one row per status in it).
CREATE TABLE message_counts (
    status TEXT NOT NULL,
    n BIGINT NOT NULL
);
INSERT INTO message_counts (status, n) SELECT status, COUNT(*) FROM messages GROUP BY status;
CREATE FUNCTION message_counts_track() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO message_counts (status, n) SELECT status, COUNT(*) FROM new_rows GROUP BY status;
    ELSE
        INSERT INTO message_counts (status, n) SELECT status, -COUNT(*) FROM old_rows GROUP BY status;
    END IF;
    RETURN NULL;
END
$$;
-- A change of status, row by row: the WHEN clause is checked without calling the function, so
-- the many updates that change no status (leases, retries' times) cost nothing, and the others
-- skip the copies of the old and new rows a statement-level trigger would be handed.
CREATE FUNCTION message_counts_move() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO message_counts (status, n) VALUES (OLD.status, -1), (NEW.status, 1);
    RETURN NULL;
END
$$;
CREATE TRIGGER messages_counted_insert AFTER INSERT ON messages
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION message_counts_track();
CREATE TRIGGER messages_counted_update AFTER UPDATE OF status ON messages
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION message_counts_move();
CREATE TRIGGER messages_counted_delete AFTER DELETE ON messages
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION message_counts_track();
