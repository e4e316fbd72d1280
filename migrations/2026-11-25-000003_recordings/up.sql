-- Call recordings. Whether a campaign records its calls is the existing
-- campaigns.recording_enabled flag; a call's recording moves
-- spooled (raw PCM on disk during the call) -> encoding -> ready (an Ogg
-- Opus file) or failed. NULL: the call is not recorded.
ALTER TABLE calls ADD COLUMN recording_status text
    CHECK (recording_status IN ('spooled', 'encoding', 'ready', 'failed'));
ALTER TABLE calls ADD COLUMN recording_bytes bigint CHECK (recording_bytes >= 0);
ALTER TABLE calls ADD COLUMN recording_duration_ms integer CHECK (recording_duration_ms >= 0);
