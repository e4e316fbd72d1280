-- A campaign may hand a call to a person (cold transfer): the number the
-- provider connects the callee to, and the line the agent says first.
-- Both or neither: a campaign without them offers the LLM no transfer.
ALTER TABLE campaigns ADD COLUMN transfer_number text;
ALTER TABLE campaigns ADD COLUMN transfer_announce text;
ALTER TABLE campaigns ADD CONSTRAINT campaigns_transfer_check
    CHECK ((transfer_number IS NULL) = (transfer_announce IS NULL));
