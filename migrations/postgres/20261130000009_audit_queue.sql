-- Audit events written by a change, in the change's own transaction, before they are chained.
-- A change no longer locks the chain's head: the chainer (one task per process) moves queued
-- events into `audit_events` in batches, under the head lock, so concurrent writers commit in
-- parallel and share one chain append. A row here is durable with its change; rows left by a
-- process that stopped before chaining them are chained by the next cycle of any process.
CREATE TABLE audit_queue (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at            TIMESTAMPTZ NOT NULL,
    organization  TEXT NOT NULL,
    subject       TEXT NOT NULL,
    action        TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    request_id    TEXT NOT NULL
);
