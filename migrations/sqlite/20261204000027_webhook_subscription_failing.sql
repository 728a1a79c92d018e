-- Whether a subscription's last attempt failed: the webhook lease sends one delivery at a time
-- to such a receiver until it answers again, so that receivers that hang hold one send slot
-- each. A binary of the previous release ignores the column.
ALTER TABLE webhook_subscriptions ADD COLUMN failing INTEGER NOT NULL DEFAULT 0 CHECK (failing IN (0, 1));
