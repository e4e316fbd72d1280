-- The retention sweeper's scan: events by age (webhooks.retention_days).
CREATE INDEX webhook_events_occurred_idx ON webhook_events (occurred_at);
