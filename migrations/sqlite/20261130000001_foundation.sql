-- Organisations, the hash-chained audit log and idempotency keys.
-- Instants are stored as RFC 3339 text in UTC, which sorts in time order.

CREATE TABLE organizations (
    id                  TEXT PRIMARY KEY,
    kind                TEXT NOT NULL CHECK (kind IN ('operator', 'mutuelle', 'scheme', 'provider', 'auditor')),
    country             TEXT NOT NULL CHECK (length(country) = 2),
    name                TEXT NOT NULL,
    registration_number TEXT,
    created_at          TEXT NOT NULL
) STRICT;

CREATE TABLE audit_events (
    seq           INTEGER PRIMARY KEY,
    at            TEXT NOT NULL,
    organization  TEXT NOT NULL,
    subject       TEXT NOT NULL,
    action        TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    request_id    TEXT NOT NULL,
    digest        TEXT NOT NULL,
    prev_digest   TEXT NOT NULL
) STRICT;
CREATE INDEX audit_events_organization ON audit_events (organization, seq);
CREATE INDEX audit_events_resource ON audit_events (resource_type, resource_id, seq);

CREATE TABLE audit_head (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    seq    INTEGER NOT NULL,
    digest TEXT NOT NULL
) STRICT;
INSERT INTO audit_head (id, seq, digest)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE idempotency_keys (
    organization  TEXT NOT NULL,
    key           TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    response      TEXT,
    created_at    TEXT NOT NULL,
    PRIMARY KEY (organization, key)
) STRICT;
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
