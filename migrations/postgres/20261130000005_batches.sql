-- Bulk registration jobs and the row errors they found.

CREATE TABLE registration_batches (
    id                 TEXT PRIMARY KEY,
    organization       TEXT NOT NULL REFERENCES organizations (id),
    subject            TEXT NOT NULL,
    product            TEXT,
    format             TEXT NOT NULL CHECK (format IN ('csv', 'ndjson')),
    status             TEXT NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'failed')),
    -- The uploaded file, on a disk every replica reads, until the job ends.
    spool_path         TEXT NOT NULL,
    -- The claim token of the worker processing it: progress from any other is refused.
    worker             TEXT,
    rows_total         BIGINT,
    rows_processed     BIGINT NOT NULL DEFAULT 0,
    households_created BIGINT NOT NULL DEFAULT 0,
    households_skipped BIGINT NOT NULL DEFAULT 0,
    rows_failed        BIGINT NOT NULL DEFAULT 0,
    errors_total       BIGINT NOT NULL DEFAULT 0,
    failure_code       TEXT,
    failure_en         TEXT,
    failure_fr         TEXT,
    created_at         TIMESTAMPTZ NOT NULL,
    started_at         TIMESTAMPTZ,
    -- The last progress written: a running job whose heartbeat is old lost its worker.
    heartbeat_at       TIMESTAMPTZ,
    finished_at        TIMESTAMPTZ
);
CREATE INDEX registration_batches_status ON registration_batches (status, created_at);

CREATE TABLE registration_batch_errors (
    batch      TEXT NOT NULL REFERENCES registration_batches (id),
    seq        BIGINT NOT NULL,
    line       BIGINT NOT NULL,
    household  TEXT NOT NULL,
    field      TEXT NOT NULL,
    code       TEXT NOT NULL,
    message_en TEXT NOT NULL,
    message_fr TEXT NOT NULL,
    PRIMARY KEY (batch, seq)
);
