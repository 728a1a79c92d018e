-- The same 1,000,000 people for SQLite; the products' ids are substituted by the script.
PRAGMA journal_mode = WAL;
PRAGMA synchronous = OFF;
BEGIN;
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < __PEOPLE__)
INSERT INTO beneficiaries (id, nid_country, nid_type, nid_value, family_name, given_names, match_key, sex,
                           birth_date, birth_date_precision, created_at)
SELECT 'b' || printf('%07d', n), 'TG', 'NIU', printf('%012d', n), 'Bench', 'Person ' || n, 'bench person ' || n,
       CASE WHEN n % 2 = 0 THEN 'F' ELSE 'M' END, date('1950-01-01', '+' || (n % 20000) || ' days'), 'day',
       '2026-01-01T00:00:00+00:00'
FROM g;
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < __PEOPLE__)
INSERT INTO coverages (id, beneficiary, product, organization, layer, member_number, own_number, relationship,
                       principal_coverage, start_date, end_date, status, paid_through, version, created_at, updated_at)
SELECT 'c' || printf('%07d', n), 'b' || printf('%07d', n), '__COMP__', 'bench-mut', 'complementary',
       'M' || printf('%07d', n), 1, 'principal', NULL, '2025-01-01', NULL, 'active', '2026-12-31', 1,
       '2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00'
FROM g;
WITH RECURSIVE g(n) AS (SELECT 2 UNION ALL SELECT n + 2 FROM g WHERE n + 2 <= __PEOPLE__)
INSERT INTO coverages (id, beneficiary, product, organization, layer, member_number, own_number, relationship,
                       principal_coverage, start_date, end_date, status, paid_through, version, created_at, updated_at)
SELECT 'd' || printf('%07d', n), 'b' || printf('%07d', n), '__BASE__', 'bench-inam', 'base',
       'I' || printf('%07d', n), 1, 'principal', NULL, '2024-01-01', NULL, 'active', NULL, 1,
       '2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00'
FROM g;
COMMIT;
ANALYZE;
