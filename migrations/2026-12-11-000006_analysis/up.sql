-- Post-call analysis. A campaign's `analysis` settings (summary prompt,
-- structured-data JSON Schema, success rubric) as the API validated them;
-- NULL: its calls are not analysed.
ALTER TABLE campaigns ADD COLUMN analysis jsonb;

-- One analysis per call: the durable queue and the result in one row.
-- Written `pending` in the transaction that finishes a conversation's
-- call; a worker of any node claims it (`running`, leased to the node
-- until `lease_until`: a lapsed lease is taken again), and stores `done`
-- (summary, structured_data validated against the campaign's schema,
-- success) or `error` (never data that failed validation).
CREATE TABLE call_analyses (
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    call_id         uuid NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    campaign_id     uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'running', 'done', 'error')),
    claims          integer NOT NULL DEFAULT 0,
    lease_owner     text,
    lease_until     timestamptz,
    summary         text,
    structured_data jsonb,
    success         jsonb,
    error           text,
    provider        text,
    requested_at    timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    completed_at    timestamptz,
    PRIMARY KEY (tenant_id, call_id)
);

-- The open queue only (pending and leased rows): small, scanned whole by
-- the workers' claim.
CREATE INDEX call_analyses_open_idx ON call_analyses (tenant_id, requested_at)
    WHERE state IN ('pending', 'running');
-- Results export: a campaign's analyses.
CREATE INDEX call_analyses_campaign_idx ON call_analyses (tenant_id, campaign_id);
