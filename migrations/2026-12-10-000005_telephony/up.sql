-- Which provider places a campaign's calls: Vonage, Twilio, or Vonage and
-- Twilio for an attempt Vonage provably did not place (never both legs).
-- Campaigns of before keep Vonage, the only provider they had; new ones
-- take the server's `dialer.default_telephony` when they name none.
ALTER TABLE campaigns ADD COLUMN telephony text NOT NULL DEFAULT 'vonage'
    CHECK (telephony IN ('vonage', 'twilio', 'vonage_then_twilio'));
-- The provider that placed a call's leg (or is being asked to: it is
-- written before a provider other than the default is asked), and the
-- provider that sent an event.
ALTER TABLE calls ADD CONSTRAINT calls_provider_check
    CHECK (provider IN ('vonage', 'twilio'));
ALTER TABLE call_events ADD CONSTRAINT call_events_provider_check
    CHECK (provider IN ('vonage', 'twilio'));
