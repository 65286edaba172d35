-- A message's tags from the send request (version 17), as a JSON array; NULL when it has none.
ALTER TABLE messages ADD COLUMN tags TEXT;
