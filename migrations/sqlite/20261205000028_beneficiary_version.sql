-- A person's version, for `PATCH /v1/beneficiaries/{id}` (`ETag`, `If-Match`): one more with
-- each correction. A new column with a constant default: every person stored so far is at
-- version 1, and a binary of the previous release ignores it.
ALTER TABLE beneficiaries ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
