DROP INDEX webhook_events_call_idx;
