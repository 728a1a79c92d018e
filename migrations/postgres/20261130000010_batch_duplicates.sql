-- People a bulk job created without a national id who look like people already known
-- (API.md: likely matches are reported, never merged).

ALTER TABLE registration_batches ADD COLUMN possible_duplicates_total BIGINT NOT NULL DEFAULT 0;

CREATE TABLE registration_batch_duplicates (
    batch       TEXT NOT NULL REFERENCES registration_batches (id),
    seq         BIGINT NOT NULL,
    line        BIGINT NOT NULL,
    household   TEXT NOT NULL,
    field       TEXT NOT NULL,
    -- The person created, and whom they look like: ids separated by commas.
    beneficiary TEXT NOT NULL,
    matches     TEXT NOT NULL,
    PRIMARY KEY (batch, seq)
);
