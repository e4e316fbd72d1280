ALTER TABLE campaigns DROP COLUMN reprompt_after_secs;
