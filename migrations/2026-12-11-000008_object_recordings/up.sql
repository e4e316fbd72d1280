-- Recordings in object storage, and their retention.
-- A recording now moves spooled -> encoding -> uploading (the Ogg file is
-- on the encoding node's disk, on its way to the bucket) -> ready, and
-- ready -> expired when its campaign's retention has passed (the object
-- is deleted, the row stays). recording_store says where a ready
-- recording lives ('local': the node's directory, 's3': the bucket),
-- recording_key its object key (or path below the directory), and
-- recording_ready_at when it became ready (the retention clock).
ALTER TABLE calls DROP CONSTRAINT calls_recording_status_check;
ALTER TABLE calls ADD CONSTRAINT calls_recording_status_check
    CHECK (recording_status IN ('spooled', 'encoding', 'uploading', 'ready', 'failed', 'expired'));
ALTER TABLE calls ADD COLUMN recording_store text
    CHECK (recording_store IN ('local', 's3'));
ALTER TABLE calls ADD COLUMN recording_key text;
ALTER TABLE calls ADD COLUMN recording_ready_at timestamptz;
-- The sweeper looks per campaign for ready recordings past a cutoff.
CREATE INDEX calls_recording_ready ON calls (tenant_id, campaign_id, recording_ready_at)
    WHERE recording_status = 'ready';
ALTER TABLE campaigns ADD COLUMN recording_retention_days integer
    CHECK (recording_retention_days BETWEEN 1 AND 3650);
