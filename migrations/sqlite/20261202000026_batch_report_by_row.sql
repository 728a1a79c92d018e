-- A bulk job keeps up to 100,000 row errors and as many possible duplicates (it kept 1,000),
-- and `GET /v1/registrations/batches/{id}/errors` and `/possible-duplicates` page through them
-- by row: these indexes give each page by seeking to its key, where the primary keys, in the
-- order found, would sort every stored row of the job for each page. The tables hold at most a
-- thousand rows per job so far, so the build is short.
CREATE INDEX IF NOT EXISTS registration_batch_errors_by_row ON registration_batch_errors (batch, line, seq);
CREATE INDEX IF NOT EXISTS registration_batch_duplicates_by_row ON registration_batch_duplicates (batch, line, seq);
