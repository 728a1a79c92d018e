-- People, their coverages and contributions.

CREATE TABLE beneficiaries (
    id                   TEXT PRIMARY KEY,
    nid_country          TEXT,
    nid_type             TEXT,
    nid_value            TEXT,
    family_name          TEXT NOT NULL,
    given_names          TEXT NOT NULL,
    -- Names folded without accents, case or punctuation: the key of likely matches.
    match_key            TEXT NOT NULL,
    sex                  TEXT NOT NULL CHECK (sex IN ('F', 'M')),
    birth_date           DATE NOT NULL,
    birth_date_precision TEXT NOT NULL CHECK (birth_date_precision IN ('day', 'year')),
    phone                TEXT,
    region               TEXT,
    district             TEXT,
    commune              TEXT,
    created_at           TIMESTAMPTZ NOT NULL,
    CHECK ((nid_country IS NULL) = (nid_value IS NULL) AND (nid_type IS NULL) = (nid_value IS NULL))
);
-- Same (country, type, value) = same person, whichever organisation registers them.
CREATE UNIQUE INDEX beneficiaries_national_id ON beneficiaries (nid_country, nid_type, nid_value);
CREATE INDEX beneficiaries_likely_match ON beneficiaries (match_key, birth_date, sex);

CREATE TABLE coverages (
    id                 TEXT PRIMARY KEY,
    beneficiary        TEXT NOT NULL REFERENCES beneficiaries (id),
    product            TEXT NOT NULL REFERENCES products (id),
    organization       TEXT NOT NULL REFERENCES organizations (id),
    layer              TEXT NOT NULL CHECK (layer IN ('base', 'complementary', 'primary')),
    member_number      TEXT NOT NULL,
    -- True when member_number is this person's own (a principal, or a dependant given one);
    -- false when a dependant carries the household's number.
    own_number         BOOLEAN NOT NULL,
    relationship       TEXT NOT NULL CHECK (relationship IN ('principal', 'spouse', 'child', 'parent', 'other')),
    principal_coverage TEXT REFERENCES coverages (id),
    start_date         DATE NOT NULL,
    end_date           DATE,
    status             TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'terminated')),
    paid_through       DATE,
    version            BIGINT NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX coverages_member_number ON coverages (organization, member_number) WHERE own_number;
CREATE INDEX coverages_beneficiary ON coverages (beneficiary, organization);
CREATE INDEX coverages_principal ON coverages (principal_coverage);

CREATE TABLE contributions (
    id           TEXT PRIMARY KEY,
    coverage     TEXT NOT NULL REFERENCES coverages (id),
    amount_xof   BIGINT NOT NULL CHECK (amount_xof > 0),
    period_start DATE NOT NULL,
    period_end   DATE NOT NULL,
    paid_at      DATE NOT NULL,
    reference    TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX contributions_coverage ON contributions (coverage, paid_at DESC, id DESC);
