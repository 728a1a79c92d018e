-- Settlement batches (bordereaux) and their payments. A claim belongs to at most one batch:
-- claims.settlement is set when the batch takes it.
CREATE TABLE settlements (
    id           TEXT PRIMARY KEY,
    mutuelle     TEXT NOT NULL REFERENCES organizations (id),
    payee        TEXT NOT NULL REFERENCES organizations (id),
    period_start TEXT NOT NULL,
    period_end   TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('open', 'partially_paid', 'paid')),
    total_xof    INTEGER NOT NULL CHECK (total_xof > 0),
    paid_xof     INTEGER NOT NULL CHECK (paid_xof >= 0 AND paid_xof <= total_xof),
    created_at   TEXT NOT NULL
) STRICT;
CREATE INDEX settlements_mutuelle ON settlements (mutuelle, id);

CREATE TABLE settlement_payments (
    id         TEXT PRIMARY KEY,
    settlement TEXT NOT NULL REFERENCES settlements (id),
    amount_xof INTEGER NOT NULL CHECK (amount_xof > 0),
    paid_at    TEXT NOT NULL,
    reference  TEXT NOT NULL,
    created_at TEXT NOT NULL
) STRICT;
CREATE INDEX settlement_payments_settlement ON settlement_payments (settlement, created_at);
CREATE INDEX claims_settlement ON claims (settlement);
