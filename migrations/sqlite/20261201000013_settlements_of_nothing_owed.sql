-- A batch may total 0 XOF: claims adjudicated with nothing owed are settled by a batch like any
-- other, and a batch of only such claims is paid when it is created.
-- SQLite cannot change a CHECK in place: both tables are rebuilt, the payments first pointing at
-- the new batches table, so that no foreign key is ever left dangling (renaming a table rewrites
-- the references to it).
CREATE TABLE settlements_next (
    id           TEXT PRIMARY KEY,
    mutuelle     TEXT NOT NULL REFERENCES organizations (id),
    payee        TEXT NOT NULL REFERENCES organizations (id),
    period_start TEXT NOT NULL,
    period_end   TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('open', 'partially_paid', 'paid')),
    total_xof    INTEGER NOT NULL CHECK (total_xof >= 0),
    paid_xof     INTEGER NOT NULL CHECK (paid_xof >= 0 AND paid_xof <= total_xof),
    created_at   TEXT NOT NULL
) STRICT;
INSERT INTO settlements_next (id, mutuelle, payee, period_start, period_end, status, total_xof, paid_xof, created_at)
    SELECT id, mutuelle, payee, period_start, period_end, status, total_xof, paid_xof, created_at FROM settlements;

CREATE TABLE settlement_payments_next (
    id         TEXT PRIMARY KEY,
    settlement TEXT NOT NULL REFERENCES settlements_next (id),
    amount_xof INTEGER NOT NULL CHECK (amount_xof > 0),
    paid_at    TEXT NOT NULL,
    reference  TEXT NOT NULL,
    created_at TEXT NOT NULL
) STRICT;
INSERT INTO settlement_payments_next (id, settlement, amount_xof, paid_at, reference, created_at)
    SELECT id, settlement, amount_xof, paid_at, reference, created_at FROM settlement_payments;

DROP TABLE settlement_payments;
DROP TABLE settlements;
ALTER TABLE settlements_next RENAME TO settlements;
ALTER TABLE settlement_payments_next RENAME TO settlement_payments;
CREATE INDEX settlements_mutuelle ON settlements (mutuelle, id);
CREATE INDEX settlement_payments_settlement ON settlement_payments (settlement, created_at);
