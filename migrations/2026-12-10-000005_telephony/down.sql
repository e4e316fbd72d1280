ALTER TABLE call_events DROP CONSTRAINT call_events_provider_check;
ALTER TABLE calls DROP CONSTRAINT calls_provider_check;
ALTER TABLE campaigns DROP COLUMN telephony;
