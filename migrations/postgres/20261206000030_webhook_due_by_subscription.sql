-- The webhook lease takes each subscription's oldest due deliveries, up to the sends it may
-- still start, from an index of the pending ones by subscription. It used to walk the due
-- deliveries of every subscription in time order, past those of subscriptions that had no send
-- left to start: with a backlog of 8,000 that was 72 ms per lease, and a lease follows every
-- send, which held a receiver that answers at once to about 12 deliveries a second.
--
-- Built inside the migration's transaction, the index holds the writes that queue deliveries
-- (every change that a subscription asked for) while it reads the table. With a long history of
-- deliveries, build it beforehand without holding anything (deploy/README.md, migration 30);
-- this migration then finds it. One left invalid by a failed concurrent build is refused.
DO $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE c.relname = 'webhook_deliveries_due_by_subscription' AND NOT i.indisvalid
    ) THEN
        RAISE EXCEPTION 'the index webhook_deliveries_due_by_subscription was left invalid by a failed CREATE INDEX CONCURRENTLY: drop it (DROP INDEX CONCURRENTLY webhook_deliveries_due_by_subscription) and build it again, or let this migration build it (deploy/README.md, migration 30)';
    END IF;
END
$$;

CREATE INDEX IF NOT EXISTS webhook_deliveries_due_by_subscription
    ON webhook_deliveries (subscription, next_attempt_at, id) WHERE status = 'pending';
