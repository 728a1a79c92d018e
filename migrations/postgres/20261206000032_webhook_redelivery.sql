-- A subscriber may ask for its failed deliveries again (POST /v1/webhooks/{id}/deliveries/
-- {delivery}/redeliver, and /deliveries/redeliver for many): the delivery becomes pending, its
-- attempts kept and numbered on, and `attempt_base` records how many were made before, so that
-- the retry budget and backoff start again. Both columns are added without rewriting the table.
ALTER TABLE webhook_deliveries ADD COLUMN attempt_base BIGINT NOT NULL DEFAULT 0;
ALTER TABLE webhook_deliveries ADD COLUMN redelivered_at TIMESTAMPTZ;

-- A subscription's failed deliveries, for `?status=failed` and redeliveries: few among its
-- delivered history, which the index of all its deliveries would walk. Built inside the
-- migration's transaction, it holds the writes that queue deliveries while it reads the table;
-- with a long history, build it beforehand without holding anything (deploy/README.md,
-- migration 32); this migration then finds it. One left invalid by a failed concurrent build
-- is refused (in this schema: `IF NOT EXISTS` looks nowhere else).
DO $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE c.relname = 'webhook_deliveries_failed' AND c.relnamespace = current_schema()::regnamespace
        AND NOT i.indisvalid
    ) THEN
        RAISE EXCEPTION 'the index webhook_deliveries_failed was left invalid by a failed CREATE INDEX CONCURRENTLY: drop it (DROP INDEX CONCURRENTLY webhook_deliveries_failed) and build it again, or let this migration build it (deploy/README.md, migration 32)';
    END IF;
END
$$;

CREATE INDEX IF NOT EXISTS webhook_deliveries_failed
    ON webhook_deliveries (subscription, id) WHERE status = 'failed';
