-- Guard ledger (version 11): what Postern delivered through each provider, counted by time,
-- to compare with the provider's own counter (SES SentLast24Hours) on every account poll.
CREATE INDEX message_events_delivered ON message_events (provider, at) WHERE kind = 'delivered';
