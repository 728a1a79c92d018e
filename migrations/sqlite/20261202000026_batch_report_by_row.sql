-- A bulk job keeps up to 100,000 row errors and as many possible duplicates (it kept 1,000),
-- and `GET /v1/registrations/batches/{id}/errors` and `/possible-duplicates` page through them
-- by row: these indexes give each page by seeking to its key, where the primary keys, in the
-- order found, would sort every stored row of the job for each page. Until now the tables held
-- at most a thousand rows per job (deploy/README.md, migration 26, for a large history).
-- A CSV job remembers its file's separator, so that its report is separated the same way.
ALTER TABLE registration_batches ADD COLUMN csv_separator TEXT CHECK (csv_separator IN (',', ';'));
CREATE INDEX IF NOT EXISTS registration_batch_errors_by_row ON registration_batch_errors (batch, line, seq);
CREATE INDEX IF NOT EXISTS registration_batch_duplicates_by_row ON registration_batch_duplicates (batch, line, seq);
