ALTER TABLE calls DROP COLUMN recording_duration_ms;
ALTER TABLE calls DROP COLUMN recording_bytes;
ALTER TABLE calls DROP COLUMN recording_status;
