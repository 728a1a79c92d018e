-- The webhook lease counts each subscription's deliveries under a live lease, at every slot a
-- sender frees: an index on the live leases keeps that from reading the whole backlog.
CREATE INDEX webhook_deliveries_leased ON webhook_deliveries (locked_until, subscription) WHERE status = 'pending';
