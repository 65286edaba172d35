-- A message's accept event is its row (version 15): the accept no longer stores a 'queued'
-- event, and readers put one first, from the row's created_at and source. The events stored
-- before this are exactly those, so they go; the console counts accepts by the row's time.
DELETE FROM message_events WHERE kind = 'queued';
CREATE INDEX messages_by_time ON messages (created_at);
