-- Recordings whose calls were deleted with their campaign: written in the
-- transaction that deletes the campaign, so the files and objects are
-- deleted by the retention sweeper (on any node) rather than left in the
-- bucket for ever. No foreign keys: the rows outlive their calls, and a
-- tenant's removal must not drop the work of deleting its objects.
CREATE TABLE recording_deletions (
    id bigserial PRIMARY KEY,
    tenant_id uuid NOT NULL,
    call_id uuid NOT NULL,
    -- `calls.recording_store` / `recording_key` as they were (NULL: never
    -- ready; the local path is derived from tenant and call).
    store text,
    key text,
    created_at timestamptz NOT NULL
);
