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
    rows_total         INTEGER,
    rows_processed     INTEGER NOT NULL DEFAULT 0,
    households_created INTEGER NOT NULL DEFAULT 0,
    households_skipped INTEGER NOT NULL DEFAULT 0,
    rows_failed        INTEGER NOT NULL DEFAULT 0,
    errors_total       INTEGER NOT NULL DEFAULT 0,
    failure_code       TEXT,
    failure_en         TEXT,
    failure_fr         TEXT,
    created_at         TEXT NOT NULL,
    started_at         TEXT,
    -- The last progress written: a running job whose heartbeat is old lost its worker.
    heartbeat_at       TEXT,
    finished_at        TEXT
) STRICT;
CREATE INDEX registration_batches_status ON registration_batches (status, created_at);

CREATE TABLE registration_batch_errors (
    batch      TEXT NOT NULL REFERENCES registration_batches (id),
    seq        INTEGER NOT NULL,
    line       INTEGER NOT NULL,
    household  TEXT NOT NULL,
    field      TEXT NOT NULL,
    code       TEXT NOT NULL,
    message_en TEXT NOT NULL,
    message_fr TEXT NOT NULL,
    PRIMARY KEY (batch, seq)
) STRICT;
