-- Which process runs a call: the node id (`redis.node_id`) of the talky
-- process whose dialer wrote the intent. A call whose node is gone (its
-- heartbeat lapsed, or it is this node's own id at start-up) and that is
-- not finished is reconciled with the provider by a live node.
ALTER TABLE calls ADD COLUMN node_id text;
-- The reconciler's scan: the few calls not finished, across tenants (an
-- operational index like calls_provider_call_idx, not a tenant query).
CREATE INDEX calls_unfinished_idx ON calls (node_id) WHERE status <> 'finished';
