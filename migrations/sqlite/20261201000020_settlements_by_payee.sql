-- `GET /v1/settlements` lists a payee's batches, newest first, as it lists a mutuelle's
-- (settlements_mutuelle).
CREATE INDEX settlements_payee ON settlements (payee, id);
