DROP INDEX calls_unfinished_idx;
ALTER TABLE calls DROP COLUMN node_id;
