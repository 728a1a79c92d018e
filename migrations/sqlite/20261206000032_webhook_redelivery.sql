-- A subscriber may ask for its failed deliveries again: the delivery becomes pending, its
-- attempts kept and numbered on, and `attempt_base` records how many were made before, so that
-- the retry budget and backoff start again.
ALTER TABLE webhook_deliveries ADD COLUMN attempt_base INTEGER NOT NULL DEFAULT 0;
ALTER TABLE webhook_deliveries ADD COLUMN redelivered_at TEXT;

-- A subscription's failed deliveries, for `?status=failed` and redeliveries: few among its
-- delivered history, which the index of all its deliveries would walk.
CREATE INDEX IF NOT EXISTS webhook_deliveries_failed
    ON webhook_deliveries (subscription, id) WHERE status = 'failed';
