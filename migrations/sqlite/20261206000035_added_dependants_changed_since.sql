-- Migration 33 cleared the end date a dependant added to a household had copied from its
-- principal when the row never changed after it was added (version 1) or when the date still
-- equalled the principal's. It missed the rows that changed since in another way, a suspension
-- and a reactivation say (the version moves), of a household extended since (the dates differ):
-- such a dependant stayed `ENDED` at the old date while its household went on. This clears the
-- end date of a live dependant whose end date no `PATCH` of its own ever set: no
-- `coverage.updated` event names it, chained or still queued (a `PATCH` of `end_date` without a
-- change of status writes one, and so does a merge, whose rows are left as they are). A
-- `PATCH` that changed a dependant's status and its end date at once writes only the status's
-- event: such a date, rare, is cleared too, and the dependant ends with its household
-- (deploy/README.md, migration 35, gives the query that lists them before the upgrade).
-- Terminated rows keep theirs.
UPDATE coverages SET end_date = NULL, version = version + 1
WHERE principal_coverage IS NOT NULL AND end_date IS NOT NULL AND status <> 'terminated'
  AND NOT EXISTS (SELECT 1 FROM audit_events e
                  WHERE e.resource_type = 'coverage' AND e.resource_id = coverages.id AND e.action = 'coverage.updated')
  AND NOT EXISTS (SELECT 1 FROM audit_queue q
                  WHERE q.resource_type = 'coverage' AND q.resource_id = coverages.id AND q.action = 'coverage.updated');
