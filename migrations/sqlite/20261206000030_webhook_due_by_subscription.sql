-- The webhook lease takes each subscription's oldest due deliveries, up to the sends it may
-- still start, from an index of the pending ones by subscription. It used to walk the due
-- deliveries of every subscription in time order, past those of subscriptions that had no send
-- left to start, at every lease (one follows every send).
CREATE INDEX IF NOT EXISTS webhook_deliveries_due_by_subscription
    ON webhook_deliveries (subscription, next_attempt_at, id) WHERE status = 'pending';
