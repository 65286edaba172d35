-- A message's accept event is its row (version 15): the accept no longer stores a 'queued'
-- event; readers put one first, from the row's created_at and source, and pass over any
-- stored one (those written before this version, or by a node of an older version still
-- running against the same database). The console counts accepts from the rows, by time and
-- tenant out of this index alone. Building it reads the messages table once; on PostgreSQL
-- writes to that table wait until it is built.
CREATE INDEX messages_by_time ON messages (created_at, tenant_id);
