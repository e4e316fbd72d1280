-- talky's initial schema. Every tenant-owned table carries tenant_id and
-- every index on such a table leads with it: all queries are tenant-scoped.

CREATE TABLE tenants (
    id          uuid PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- First characters of the key, shown to operators to tell keys apart.
    prefix       text NOT NULL,
    -- SHA-256 of the whole key; the key itself is never stored.
    key_hash     bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id, id);

CREATE TABLE campaigns (
    id                     uuid PRIMARY KEY,
    tenant_id              uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name                   text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    state                  text NOT NULL DEFAULT 'draft'
        CHECK (state IN ('draft', 'running', 'paused', 'stopping', 'completed', 'cancelled')),
    -- The agent.
    system_prompt          text NOT NULL,
    greeting               text NOT NULL,
    voicemail_message      text,
    -- What to do when a machine answers: leave voicemail_message or hang up.
    voicemail_action       text NOT NULL DEFAULT 'hangup' CHECK (voicemail_action IN ('leave_message', 'hangup')),
    voice                  text NOT NULL,
    language               text NOT NULL,
    llm_model              text NOT NULL,
    caller_id              text NOT NULL,
    -- Calling window, in each contact's own local time.
    window_start           time NOT NULL,
    window_end             time NOT NULL,
    -- Days of week the window is open: bit 0 = Monday ... bit 6 = Sunday.
    window_days            smallint NOT NULL CHECK (window_days BETWEEN 1 AND 127),
    max_concurrent_calls   integer NOT NULL CHECK (max_concurrent_calls BETWEEN 1 AND 10000),
    max_attempts           integer NOT NULL CHECK (max_attempts BETWEEN 1 AND 100),
    -- Base delay before a retry; doubled per attempt, jittered.
    retry_backoff_secs     integer NOT NULL CHECK (retry_backoff_secs BETWEEN 0 AND 2592000),
    max_call_duration_secs integer NOT NULL CHECK (max_call_duration_secs BETWEEN 10 AND 7200),
    recording_enabled      boolean NOT NULL DEFAULT false,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX campaigns_tenant_idx ON campaigns (tenant_id, id);
CREATE INDEX campaigns_tenant_state_idx ON campaigns (tenant_id, state);

CREATE TABLE contacts (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    campaign_id     uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    phone           text NOT NULL CHECK (phone ~ '^\+[1-9][0-9]{6,14}$'),
    name            text,
    -- IANA zone; NULL when the number spans several zones and none was given.
    timezone        text,
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
    status          text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'in_progress', 'retry', 'completed', 'failed', 'dnc')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz,
    last_outcome    text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- One contact per number per campaign (a campaign has one tenant).
    UNIQUE (tenant_id, campaign_id, phone)
);
CREATE INDEX contacts_tenant_campaign_idx ON contacts (tenant_id, campaign_id, id);
CREATE INDEX contacts_tenant_due_idx ON contacts (tenant_id, campaign_id, status, next_attempt_at);
CREATE INDEX contacts_tenant_phone_idx ON contacts (tenant_id, phone);

CREATE TABLE dnc_numbers (
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    phone      text NOT NULL CHECK (phone ~ '^\+[1-9][0-9]{6,14}$'),
    reason     text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, phone)
);

CREATE TABLE calls (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    campaign_id      uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    contact_id       uuid NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    -- The dial intent: written before the provider is asked to call, unique
    -- per (campaign, contact, attempt) so a contact is never dialled twice
    -- for the same attempt, whatever crashes in between.
    attempt          integer NOT NULL CHECK (attempt >= 1),
    phone            text NOT NULL,
    provider         text NOT NULL DEFAULT 'vonage',
    provider_call_id text,
    status           text NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'dialing', 'ringing', 'answered', 'machine', 'conversation', 'ending', 'finished')),
    outcome          text,
    hangup_reason    text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    dialed_at        timestamptz,
    answered_at      timestamptz,
    ended_at         timestamptz,
    duration_secs    integer CHECK (duration_secs >= 0),
    UNIQUE (tenant_id, campaign_id, contact_id, attempt)
);
CREATE UNIQUE INDEX calls_provider_call_idx ON calls (provider, provider_call_id) WHERE provider_call_id IS NOT NULL;
CREATE INDEX calls_tenant_idx ON calls (tenant_id, id);
CREATE INDEX calls_tenant_campaign_idx ON calls (tenant_id, campaign_id, id);

CREATE TABLE call_events (
    id                 bigserial PRIMARY KEY,
    -- NULL while the event's call is unknown (it is stored all the same).
    tenant_id          uuid REFERENCES tenants (id) ON DELETE CASCADE,
    call_id            uuid REFERENCES calls (id) ON DELETE CASCADE,
    provider           text NOT NULL DEFAULT 'vonage',
    provider_call_id   text NOT NULL,
    status             text NOT NULL,
    provider_timestamp timestamptz NOT NULL,
    payload            jsonb NOT NULL,
    received_at        timestamptz NOT NULL DEFAULT now(),
    -- Providers retry webhooks: the same event stored twice is one event.
    UNIQUE (provider, provider_call_id, status, provider_timestamp)
);
CREATE INDEX call_events_tenant_call_idx ON call_events (tenant_id, call_id, provider_timestamp);

CREATE TABLE call_turns (
    id                 bigserial PRIMARY KEY,
    tenant_id          uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    call_id            uuid NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    seq                integer NOT NULL CHECK (seq >= 0),
    speaker            text NOT NULL CHECK (speaker IN ('agent', 'user')),
    -- What was said (user) or generated (agent).
    text               text NOT NULL,
    -- For the agent: only the words the callee actually heard (barge-in).
    heard_text         text,
    interrupted        boolean NOT NULL DEFAULT false,
    started_at         timestamptz NOT NULL,
    ended_at           timestamptz,
    -- Latency split, milliseconds (agent turns).
    stt_ms             integer,
    llm_first_token_ms integer,
    tts_first_audio_ms integer,
    first_frame_ms     integer,
    voice_to_voice_ms  integer,
    UNIQUE (tenant_id, call_id, seq)
);
