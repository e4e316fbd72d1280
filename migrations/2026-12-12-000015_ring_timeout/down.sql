ALTER TABLE campaigns DROP COLUMN ring_timeout_secs;
