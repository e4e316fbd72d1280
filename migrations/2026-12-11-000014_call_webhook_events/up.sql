-- A call's events (call.started / call.ended name it `id`, call.analyzed
-- and contact.do_not_call `call_id`): GET /api/v1/calls/{id}/deliveries.
CREATE INDEX webhook_events_call_idx
    ON webhook_events (tenant_id, (COALESCE(data ->> 'call_id', data ->> 'id')));
