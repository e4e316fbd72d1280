-- When the call asked its provider for a cold transfer (written before the
-- request goes out): after a crash the reconciler leaves such a leg up,
-- since it is the callee talking with a person, and records `transferred`.
ALTER TABLE calls ADD COLUMN transfer_requested_at timestamptz;
