-- How long the callee may stay silent before the agent asks again ("Are
-- you still there?"); after the second reprompt the agent says goodbye.
ALTER TABLE campaigns
    ADD COLUMN reprompt_after_secs integer NOT NULL DEFAULT 8
        CHECK (reprompt_after_secs BETWEEN 3 AND 60);
