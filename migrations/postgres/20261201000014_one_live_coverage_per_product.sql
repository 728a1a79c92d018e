-- A person holds a product at most once at a time (terminated coverages aside). The service
-- checks this before writing, but two registrations of one stored person, committing at the same
-- moment on PostgreSQL, could both pass the check: this index makes the second fail instead,
-- and the service answers it 409 `already_covered`.
-- A database where that race already happened holds such pairs, and the index cannot be built:
-- the migration then stops with the query that lists them (deploy/README.md, "Upgrading").
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM coverages WHERE status <> 'terminated'
               GROUP BY beneficiary, product HAVING count(*) > 1) THEN
        RAISE EXCEPTION 'some people hold one product twice; terminate the extra coverages, then start again. They are: SELECT beneficiary, product, array_agg(id ORDER BY id) FROM coverages WHERE status <> ''terminated'' GROUP BY beneficiary, product HAVING count(*) > 1';
    END IF;
END $$;
CREATE UNIQUE INDEX coverages_one_live_per_product ON coverages (beneficiary, product) WHERE status <> 'terminated';
