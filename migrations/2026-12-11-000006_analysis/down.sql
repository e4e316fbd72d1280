DROP TABLE call_analyses;
ALTER TABLE campaigns DROP COLUMN analysis;
