-- A person holds a product at most once at a time (terminated coverages aside). The service
-- checks this before writing, but two registrations of one stored person, committing at the same
-- moment on PostgreSQL, could both pass the check: this index makes the second fail instead,
-- and the service answers it 409 `already_covered`.
CREATE UNIQUE INDEX coverages_one_live_per_product ON coverages (beneficiary, product) WHERE status <> 'terminated';
