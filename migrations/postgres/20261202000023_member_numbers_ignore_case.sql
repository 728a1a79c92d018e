-- A member number is one number whatever the case it is typed in: `LOM-0001` and `lom-0001`
-- are the same household of a mutuelle, so a front desk typing either reaches the same person
-- and a second household cannot take the other spelling. Member numbers are ASCII letters,
-- digits, `-`, `/` and `.`, so `lower` folds them alike on both databases.
--
-- A database holding two numbers of one organisation that differ only in case cannot take the
-- new index: this says so, by count, before the index would fail on the first pair.
-- deploy/README.md ("Member numbers ignore case") gives the query that lists them and how to
-- renumber one of each pair.
DO $$
DECLARE
    pairs BIGINT;
BEGIN
    SELECT count(*) INTO pairs FROM (
        SELECT 1 FROM coverages WHERE own_number
        GROUP BY organization, lower(member_number) HAVING count(*) > 1
    ) AS clashes;
    IF pairs > 0 THEN
        RAISE EXCEPTION 'member numbers that differ only in case: % in this database; renumber one of each before upgrading (deploy/README.md, "Member numbers ignore case")', pairs;
    END IF;
END
$$;

-- A new index beside the old one, which stays until a later release: the previous binary looks
-- numbers up as written, through the old index, so a rolling upgrade keeps its lookups fast
-- (without it, each would scan the coverages). Building beside it also takes no lock that
-- holds reads: dropping the old index in this transaction would lock the table, reads
-- included, until the new one was built. The new index implies the old one's uniqueness.
CREATE UNIQUE INDEX coverages_member_number_folded ON coverages (organization, lower(member_number)) WHERE own_number;

-- The planner does not use the statistics of a partial index's expression, so without these it
-- would take `lower(member_number) = $1` to match thousands of rows, and the eligibility
-- statement's generic plan (it is prepared) would hash-join every beneficiary instead of probing
-- the index: a check by member number took 350 ms on 1,000,000 people instead of 0.1 ms.
-- Expression statistics (PostgreSQL 14+) tell it each folded number is one row; ANALYZE fills
-- them now rather than at autovacuum's next pass. It samples the table, in seconds.
CREATE STATISTICS IF NOT EXISTS coverages_member_number_folded_stats ON (lower(member_number)) FROM coverages;
ANALYZE coverages;
