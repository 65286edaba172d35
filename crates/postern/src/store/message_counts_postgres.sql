-- Messages per tenant and status, kept in the transaction of every change, so that a metrics
-- scrape or the console's queue depth reads a few rows instead of counting the
-- `messages` table.
--
-- On PostgreSQL many transactions write at once (group commits, every node's workers), so a
-- row per status updated in place would make them queue on its lock, and two transactions
-- taking two such rows in opposite orders would deadlock. Changes are instead appended as rows
-- of deltas, which take no lock; a count is their sum, and `Store::fold_message_counts` folds
-- them into one row per tenant and status now and then.
--
-- Writers to `messages` (an older node still running) wait until this commits: a write that
-- committed after the count below began, and before the triggers existed, would be counted by
-- neither, and the counts would stay wrong.
LOCK TABLE messages IN SHARE ROW EXCLUSIVE MODE;
CREATE TABLE message_counts (
    tenant_id TEXT NOT NULL,
    status TEXT NOT NULL,
    n BIGINT NOT NULL
);
INSERT INTO message_counts (tenant_id, status, n)
    SELECT tenant_id, status, COUNT(*) FROM messages GROUP BY tenant_id, status;
-- Inserts and deletes: statement-level triggers with transition tables, one small insert per
-- statement whatever the number of rows (a group commit adds one row per tenant and status in
-- it). On SQLite the group commit counts its inserts itself, sparing the hottest path a trigger
-- per row; here a trigger per statement costs a batch about what that does, and counts the
-- inserts of any writer, such as a node of an older version during a rolling upgrade.
CREATE FUNCTION message_counts_track() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO message_counts (tenant_id, status, n)
            SELECT tenant_id, status, COUNT(*) FROM new_rows GROUP BY tenant_id, status;
    ELSE
        INSERT INTO message_counts (tenant_id, status, n)
            SELECT tenant_id, status, -COUNT(*) FROM old_rows GROUP BY tenant_id, status;
    END IF;
    RETURN NULL;
END
$$;
-- A change of status, row by row: the WHEN clause is checked without calling the function, so
-- the many updates that change no status (leases, retries' times) cost nothing, and the others
-- skip the copies of the old and new rows a statement-level trigger would be handed (measured:
-- a statement-level trigger here cost delivery about a tenth more than this one).
CREATE FUNCTION message_counts_move() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO message_counts (tenant_id, status, n)
        VALUES (OLD.tenant_id, OLD.status, -1), (NEW.tenant_id, NEW.status, 1);
    RETURN NULL;
END
$$;
CREATE TRIGGER messages_counted_insert AFTER INSERT ON messages
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION message_counts_track();
CREATE TRIGGER messages_counted_update AFTER UPDATE OF status, tenant_id ON messages
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.tenant_id IS DISTINCT FROM NEW.tenant_id)
    EXECUTE FUNCTION message_counts_move();
CREATE TRIGGER messages_counted_delete AFTER DELETE ON messages
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION message_counts_track();
