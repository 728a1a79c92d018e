-- A dependant added to a household (`POST /v1/coverages/{id}/dependants`) took its principal's
-- end date as its own, where a dependant registered with the household has none: eligibility
-- already ends a dependant with its principal, so the copy only showed once the household was
-- extended (a `PATCH` of the principal's end date), when the added dependant alone stayed
-- `ENDED` and refused contributions for the new months. The binary now writes none, and this
-- mends the rows written before. A live dependant's end date comes from that copy when the row
-- never changed after it was added (version 1: registered dependants have none, and a `PATCH`
-- moves the version) or when it still equals the principal's, which eligibility applies anyway.
-- Terminated rows keep theirs (a termination writes it). The version moves with the answer's
-- content for the ETag's sake.
UPDATE coverages SET end_date = NULL, version = version + 1
WHERE principal_coverage IS NOT NULL AND end_date IS NOT NULL AND status <> 'terminated'
  AND (version = 1
       OR end_date = (SELECT p.end_date FROM coverages p WHERE p.id = coverages.principal_coverage));
