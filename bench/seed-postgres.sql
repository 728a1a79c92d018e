-- 1,000,000 people for the eligibility benchmark: each holds a complementary coverage with the
-- bench mutuelle; every second one also a base coverage with the bench scheme (the TG shape).
-- :people, :comp_product and :base_product are psql variables.
INSERT INTO beneficiaries (id, nid_country, nid_type, nid_value, family_name, given_names, match_key, sex,
                           birth_date, birth_date_precision, created_at)
SELECT 'b' || lpad(g::text, 7, '0'), 'TG', 'NIU', lpad(g::text, 12, '0'), 'Bench', 'Person ' || g,
       'bench person ' || g, CASE WHEN g % 2 = 0 THEN 'F' ELSE 'M' END, DATE '1950-01-01' + (g % 20000), 'day', now()
FROM generate_series(1, :people) g;

INSERT INTO coverages (id, beneficiary, product, organization, layer, member_number, own_number, relationship,
                       principal_coverage, start_date, end_date, status, paid_through, version, created_at, updated_at)
SELECT 'c' || lpad(g::text, 7, '0'), 'b' || lpad(g::text, 7, '0'), :'comp_product', 'bench-mut', 'complementary',
       'M' || lpad(g::text, 7, '0'), true, 'principal', NULL, DATE '2025-01-01', NULL, 'active', DATE '2026-12-31', 1,
       now(), now()
FROM generate_series(1, :people) g;

INSERT INTO coverages (id, beneficiary, product, organization, layer, member_number, own_number, relationship,
                       principal_coverage, start_date, end_date, status, paid_through, version, created_at, updated_at)
SELECT 'd' || lpad(g::text, 7, '0'), 'b' || lpad(g::text, 7, '0'), :'base_product', 'bench-inam', 'base',
       'I' || lpad(g::text, 7, '0'), true, 'principal', NULL, DATE '2024-01-01', NULL, 'active', NULL, 1, now(), now()
FROM generate_series(2, :people, 2) g;

-- Statistics for the seeded tables only. The tables a run writes to (claims, usage, keys, audit)
-- stay "never analyzed", so the planner assumes they may hold rows and probes their indexes,
-- which is what autovacuum's analyze establishes within a minute on a production server.
-- Analyzed while empty, they would be planned as empty: with autovacuum off (as on the CI
-- machines), a connection's cached generic plan would then scan a usage table growing by
-- thousands of rows a second, and the figures would measure that instead of the service.
ANALYZE beneficiaries, coverages, products, product_versions, organizations;
-- The seed's million rows are in the write-ahead log: without a checkpoint here, PostgreSQL
-- writes them out during the first runs, and every check, which waits for its audit event's
-- flush, waits behind those writes too (a p99 of 17 ms at concurrency 1, against 1 ms for
-- `/health/ready`, which flushes nothing). A server in service checkpoints all the time; a
-- checkpoint of a seed's bulk is the bench's own doing.
CHECKPOINT;
