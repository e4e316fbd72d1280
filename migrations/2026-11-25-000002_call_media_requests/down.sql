ALTER TABLE calls DROP COLUMN do_not_call;
ALTER TABLE calls DROP COLUMN callback_at;
ALTER TABLE calls DROP COLUMN media_token_used_at;
ALTER TABLE calls DROP COLUMN media_token_hash;
