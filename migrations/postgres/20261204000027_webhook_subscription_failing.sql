-- Whether a subscription's last attempt failed: the webhook lease sends one delivery at a time
-- to such a receiver until it answers again, so that receivers that hang hold one send slot
-- each. A new column with a constant default: no rewrite, and a binary of the previous release
-- ignores it.
ALTER TABLE webhook_subscriptions ADD COLUMN failing BOOLEAN NOT NULL DEFAULT FALSE;
