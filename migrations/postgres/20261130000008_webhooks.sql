-- Webhook subscriptions and the outbox: deliveries are written in the same transaction as the
-- change they announce, and a worker POSTs them later, with retries.
CREATE TABLE webhook_subscriptions (
    id           TEXT PRIMARY KEY,
    organization TEXT NOT NULL REFERENCES organizations (id),
    url          TEXT NOT NULL,
    -- Space-separated event types, with a leading and trailing space for matching.
    events       TEXT NOT NULL,
    secret       TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    deleted_at   TIMESTAMPTZ
);
CREATE INDEX webhook_subscriptions_organization ON webhook_subscriptions (organization, id);

CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    subscription    TEXT NOT NULL REFERENCES webhook_subscriptions (id),
    event_id        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        BIGINT NOT NULL,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    -- A worker's lease: another worker takes the delivery only after it expires.
    locked_until    TIMESTAMPTZ,
    lock_owner      TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    delivered_at    TIMESTAMPTZ
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_subscription ON webhook_deliveries (subscription, id);

CREATE TABLE webhook_attempts (
    delivery    TEXT NOT NULL REFERENCES webhook_deliveries (id),
    attempt     BIGINT NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    status_code BIGINT,
    error       TEXT,
    duration_ms BIGINT NOT NULL,
    PRIMARY KEY (delivery, attempt)
);
