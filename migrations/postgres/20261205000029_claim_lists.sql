-- `GET /v1/claims` reads each page from an index in id order instead of walking every claim from
-- the oldest: a party's claims by role and state (provider, submitter, base payer, mutuelle),
-- every caller's by state. Without them a mutuelle's work queue (`status=awaiting_complementary`,
-- whose claims are the newest) or a new provider's empty list walked the whole table: 0.1 to
-- 0.3 s per page at 200,000 claims. A settlement's claims are read in id order from their own
-- index, which replaces the one of `settlement` alone.
--
-- Built inside the migration's transaction, each index holds claim writes (not checks or reads)
-- while it reads the table. With a long history, build them beforehand without holding anything
-- (deploy/README.md, migration 29); this migration then finds them. One left invalid by a failed
-- concurrent build is named, not taken as built.
DO $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE c.relname IN ('claims_by_status', 'claims_by_provider', 'claims_by_submitter',
                            'claims_by_base_payer', 'claims_by_routed_to', 'claims_by_settlement')
          AND NOT i.indisvalid
    ) THEN
        RAISE EXCEPTION 'an index of claims left invalid by a failed CREATE INDEX CONCURRENTLY: drop it (DROP INDEX CONCURRENTLY and its name) and build it again, or let this migration build it (deploy/README.md, migration 29)';
    END IF;
END
$$;

CREATE INDEX IF NOT EXISTS claims_by_status ON claims (status, id);
CREATE INDEX IF NOT EXISTS claims_by_provider ON claims (provider, status, id);
CREATE INDEX IF NOT EXISTS claims_by_submitter ON claims (submitter, status, id);
CREATE INDEX IF NOT EXISTS claims_by_base_payer ON claims (base_payer, status, id);
CREATE INDEX IF NOT EXISTS claims_by_routed_to ON claims (routed_to, status, id);
CREATE INDEX IF NOT EXISTS claims_by_settlement ON claims (settlement, id);
DROP INDEX IF EXISTS claims_settlement;
