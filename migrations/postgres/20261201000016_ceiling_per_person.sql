-- The annual ceiling is the person's, per product and plan year (API.md §6.3), not a coverage's.
-- A household terminated and registered again holds the product under a new coverage; counted
-- per coverage, the claims paid under the old one were forgotten and the person was paid the
-- ceiling twice in one year. Usage moves to one row per person, product and plan year, and the
-- rows of a person's several coverages of one product are added up.
-- A binary older than this migration cannot run on the migrated database (it reads the old
-- table): see deploy/README.md, "Upgrading".
-- Claims of replicas still running the previous binary write the old table until they stop:
-- taken first, the lock waits for those in flight and holds off the next ones until the old
-- table is gone, so no increment is left out of the sums.
LOCK TABLE complementary_usage IN ACCESS EXCLUSIVE MODE;
CREATE TABLE ceiling_usage (
    beneficiary TEXT NOT NULL REFERENCES beneficiaries (id),
    product     TEXT NOT NULL REFERENCES products (id),
    plan_year   INTEGER NOT NULL,
    used_xof    BIGINT NOT NULL CHECK (used_xof >= 0),
    PRIMARY KEY (beneficiary, product, plan_year)
);
INSERT INTO ceiling_usage (beneficiary, product, plan_year, used_xof)
SELECT c.beneficiary, c.product, u.plan_year, SUM(u.used_xof)
FROM complementary_usage u JOIN coverages c ON c.id = u.coverage
GROUP BY c.beneficiary, c.product, u.plan_year;
DROP TABLE complementary_usage;
