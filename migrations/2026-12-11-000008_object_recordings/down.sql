ALTER TABLE campaigns DROP COLUMN recording_retention_days;
DROP INDEX calls_recording_ready;
ALTER TABLE calls DROP COLUMN recording_ready_at;
ALTER TABLE calls DROP COLUMN recording_key;
ALTER TABLE calls DROP COLUMN recording_store;
UPDATE calls SET recording_status = 'ready' WHERE recording_status = 'uploading';
UPDATE calls SET recording_status = NULL WHERE recording_status = 'expired';
ALTER TABLE calls DROP CONSTRAINT calls_recording_status_check;
ALTER TABLE calls ADD CONSTRAINT calls_recording_status_check
    CHECK (recording_status IN ('spooled', 'encoding', 'ready', 'failed'));
