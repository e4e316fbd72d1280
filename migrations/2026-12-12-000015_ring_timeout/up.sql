-- How long a campaign's calls ring before they are given up as unanswered.
-- At least 15 s (US Telemarketing Sales Rule: four rings or 15 seconds
-- before abandoning an unanswered call); at most Vonage's 120 s.
ALTER TABLE campaigns
    ADD COLUMN ring_timeout_secs integer NOT NULL DEFAULT 45
        CHECK (ring_timeout_secs BETWEEN 15 AND 120);
