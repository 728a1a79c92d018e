-- A person's version, for `PATCH /v1/beneficiaries/{id}` (`ETag`, `If-Match`): one more with
-- each correction. A new column with a constant default: no rewrite, every person stored so
-- far is at version 1, and a binary of the previous release ignores it.
ALTER TABLE beneficiaries ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
