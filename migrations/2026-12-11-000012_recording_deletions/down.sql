DROP TABLE recording_deletions;
