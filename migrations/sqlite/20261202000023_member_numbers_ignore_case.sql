-- A member number is one number whatever the case it is typed in: `LOM-0001` and `lom-0001`
-- are the same household of a mutuelle, so a front desk typing either reaches the same person
-- and a second household cannot take the other spelling. Member numbers are ASCII letters,
-- digits, `-`, `/` and `.`, so `lower` folds them alike on both databases.
--
-- A database holding two numbers of one organisation that differ only in case cannot take the
-- new index. SQLite has no statement that raises an error of one's own outside a trigger, so
-- the count goes through a CHECK whose failure names it ("CHECK constraint failed:
-- member_numbers_that_differ_only_in_case = 0"), before the index would fail on the first
-- pair. deploy/README.md ("Member numbers ignore case") gives the query that lists them and
-- how to renumber one of each pair.
CREATE TEMP TABLE member_number_check (
    member_numbers_that_differ_only_in_case INTEGER
        CHECK (member_numbers_that_differ_only_in_case = 0)
);
INSERT INTO member_number_check
SELECT count(*) FROM (
    SELECT 1 FROM coverages WHERE own_number
    GROUP BY organization, lower(member_number) HAVING count(*) > 1
);
DROP TABLE member_number_check;

-- A new index beside the old one, which stays until a later release: the previous binary looks
-- numbers up as written, through the old index, so a rolling upgrade keeps its lookups fast
-- (without it, each would scan the organisation's coverages). The new index implies the old
-- one's uniqueness.
CREATE UNIQUE INDEX coverages_member_number_folded ON coverages (organization, lower(member_number)) WHERE own_number;
