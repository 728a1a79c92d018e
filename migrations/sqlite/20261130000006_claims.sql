-- Claims, kept whole as JSON (read and priced whole) beside the columns they are found by.
CREATE TABLE claims (
    id           TEXT PRIMARY KEY,
    provider     TEXT NOT NULL REFERENCES organizations (id),
    submitter    TEXT NOT NULL REFERENCES organizations (id),
    external_id  TEXT NOT NULL,
    beneficiary  TEXT NOT NULL REFERENCES beneficiaries (id),
    service_date TEXT NOT NULL,
    status       TEXT NOT NULL,
    base_payer   TEXT,
    routed_to    TEXT,
    settlement   TEXT,
    version      INTEGER NOT NULL,
    body         TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
) STRICT;
-- A second claim with the same external id from one provider is a duplicate payment.
CREATE UNIQUE INDEX claims_external_id ON claims (provider, external_id);
CREATE INDEX claims_routed ON claims (routed_to, status, service_date);
CREATE INDEX claims_beneficiary ON claims (beneficiary);
CREATE INDEX claims_updated ON claims (updated_at);
