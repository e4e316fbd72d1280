-- Customer webhooks (Standard Webhooks): a tenant's endpoints, the events
-- its state changes produced (written in the same transaction as the
-- change: the outbox), one delivery per (event, endpoint) and every
-- attempt of it.
CREATE TABLE webhook_endpoints (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    url text NOT NULL,
    -- The event types it is subscribed to (a JSON array of names).
    events jsonb NOT NULL,
    -- `whsec_` + base64: kept as is, since every delivery is signed with it.
    secret text NOT NULL,
    created_at timestamptz NOT NULL,
    -- The receiver answered 410 Gone: nothing more is sent to it.
    disabled_at timestamptz
);
CREATE INDEX webhook_endpoints_tenant_idx ON webhook_endpoints (tenant_id, id);

CREATE TABLE webhook_events (
    -- `webhook-id` is `msg_` + this id in simple form.
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    event_type text NOT NULL,
    data jsonb NOT NULL,
    occurred_at timestamptz NOT NULL
);
CREATE INDEX webhook_events_tenant_idx ON webhook_events (tenant_id, id);

CREATE TABLE webhook_deliveries (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    endpoint_id uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id uuid NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    state text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'delivered', 'failed', 'disabled')),
    -- Attempts claimed so far (also the lease's token: a worker writes the
    -- result of its attempt only while the count is still its own).
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    -- A worker holds the delivery until then (a crashed one's lapses).
    locked_until timestamptz,
    -- Retries go on until `webhooks.retry_for_secs` after this (the
    -- event's time, or the replay's).
    retry_from timestamptz NOT NULL,
    last_status integer,
    last_error text,
    created_at timestamptz NOT NULL,
    finished_at timestamptz,
    UNIQUE (event_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_tenant_idx ON webhook_deliveries (tenant_id, endpoint_id, id);
-- The workers' scan for due deliveries, across tenants (an operational
-- index like calls_unfinished_idx, not a tenant query).
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at)
    WHERE state = 'pending';

CREATE TABLE webhook_attempts (
    id bigserial PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    delivery_id uuid NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt integer NOT NULL,
    started_at timestamptz NOT NULL,
    duration_ms integer NOT NULL,
    status_code integer,
    error text
);
CREATE INDEX webhook_attempts_tenant_idx ON webhook_attempts (tenant_id, delivery_id, id);
