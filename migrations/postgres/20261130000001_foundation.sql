-- Organisations, the hash-chained audit log and idempotency keys.

CREATE TABLE organizations (
    id                  TEXT PRIMARY KEY,
    kind                TEXT NOT NULL CHECK (kind IN ('operator', 'mutuelle', 'scheme', 'provider', 'auditor')),
    country             TEXT NOT NULL CHECK (length(country) = 2),
    name                TEXT NOT NULL,
    registration_number TEXT,
    created_at          TIMESTAMPTZ NOT NULL
);

CREATE TABLE audit_events (
    seq           BIGINT PRIMARY KEY,
    at            TIMESTAMPTZ NOT NULL,
    organization  TEXT NOT NULL,
    subject       TEXT NOT NULL,
    action        TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    request_id    TEXT NOT NULL,
    digest        TEXT NOT NULL,
    prev_digest   TEXT NOT NULL
);
CREATE INDEX audit_events_organization ON audit_events (organization, seq);
CREATE INDEX audit_events_resource ON audit_events (resource_type, resource_id, seq);

-- The one row writers lock to append: held from the append to the commit, never during the
-- change itself, so concurrent writers only queue for the few statements of the append.
CREATE TABLE audit_head (
    id     SMALLINT PRIMARY KEY CHECK (id = 1),
    seq    BIGINT NOT NULL,
    digest TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, digest)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE idempotency_keys (
    organization  TEXT NOT NULL,
    key           TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    response      TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (organization, key)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
