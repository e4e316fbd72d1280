-- The media socket of a call is opened with a single-use token: only its
-- SHA-256 is stored, and when it was spent.
ALTER TABLE calls ADD COLUMN media_token_hash bytea;
ALTER TABLE calls ADD COLUMN media_token_used_at timestamptz;
-- What the callee asked for during the call, stored the moment it was
-- asked, so a crash before the campaign records the outcome loses nothing.
ALTER TABLE calls ADD COLUMN callback_at timestamptz;
ALTER TABLE calls ADD COLUMN do_not_call boolean NOT NULL DEFAULT false;
