-- Audit events written by a change, in the change's own transaction, before they are chained.
-- The chainer (one task per process) moves queued events into `audit_events` in batches under
-- the head; see the PostgreSQL migration of the same name.
CREATE TABLE audit_queue (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    at            TEXT NOT NULL,
    organization  TEXT NOT NULL,
    subject       TEXT NOT NULL,
    action        TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    request_id    TEXT NOT NULL
) STRICT;
