-- Webhook subscriptions and the outbox: deliveries are written in the same transaction as the
-- change they announce, and a worker POSTs them later, with retries.
CREATE TABLE webhook_subscriptions (
    id           TEXT PRIMARY KEY,
    organization TEXT NOT NULL REFERENCES organizations (id),
    url          TEXT NOT NULL,
    -- Space-separated event types, with a leading and trailing space for matching.
    events       TEXT NOT NULL,
    secret       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    deleted_at   TEXT
) STRICT;
CREATE INDEX webhook_subscriptions_organization ON webhook_subscriptions (organization, id);

CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    subscription    TEXT NOT NULL REFERENCES webhook_subscriptions (id),
    event_id        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL,
    next_attempt_at TEXT NOT NULL,
    -- A worker's lease: another worker takes the delivery only after it expires.
    locked_until    TEXT,
    lock_owner      TEXT,
    created_at      TEXT NOT NULL,
    delivered_at    TEXT
) STRICT;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_subscription ON webhook_deliveries (subscription, id);

CREATE TABLE webhook_attempts (
    delivery    TEXT NOT NULL REFERENCES webhook_deliveries (id),
    attempt     INTEGER NOT NULL,
    at          TEXT NOT NULL,
    status_code INTEGER,
    error       TEXT,
    duration_ms INTEGER NOT NULL,
    PRIMARY KEY (delivery, attempt)
) STRICT;
