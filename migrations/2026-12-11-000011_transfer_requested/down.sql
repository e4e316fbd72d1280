ALTER TABLE calls DROP COLUMN transfer_requested_at;
