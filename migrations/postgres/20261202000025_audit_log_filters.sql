-- The audit log's filters read what they ask for instead of the whole log. `GET
-- /v1/audit-events` walks the log newest first and stops at a page; a filter that few events
-- match (a rare action, a `since` after which little happened, as polling asks every minute)
-- walked every event before this: about 0.7 s per 5,000,000 events, and the log grows by one
-- event per eligibility check.
--
-- `since`: an index of `at`, whose appends land on its last page as events arrive in about the
-- order of `at`. A B-tree rather than a BRIN index: BRIN reads every page range autovacuum has
-- not yet summarised (the whole log after a bulk load, 1 s per 2,000,000 events), and the
-- planner estimates a `since` beyond its statistics from a B-tree's actual last value.
--
-- `action`, alone and with `organization` (a mutuelle's own events by action): every action but
-- the two an eligibility check writes, which are most of the log and which a page finds among
-- the newest events anyway; the checks' appends do not maintain them. The service adds their
-- predicate to a query for another action, so that the planner can use them.
--
-- Built inside the migration's transaction, each index holds appends (every write, every
-- check) while it reads the log: about 2 to 10 s per 5,000,000 events each. On a large log, build
-- them beforehand without holding anything (deploy/README.md, migration 25); this migration
-- then finds them. One left invalid by a failed concurrent build is named, not taken as built.
DO $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE c.relname IN ('audit_events_at', 'audit_events_action', 'audit_events_organization_action')
          AND NOT i.indisvalid
    ) THEN
        RAISE EXCEPTION 'an index of audit_events left invalid by a failed CREATE INDEX CONCURRENTLY: drop it (DROP INDEX CONCURRENTLY and its name) and build it again, or let this migration build it (deploy/README.md, migration 25)';
    END IF;
END
$$;

CREATE INDEX IF NOT EXISTS audit_events_at ON audit_events (at);
CREATE INDEX IF NOT EXISTS audit_events_action ON audit_events (action, seq) WHERE action NOT IN ('eligibility.eligible', 'eligibility.not_eligible');
CREATE INDEX IF NOT EXISTS audit_events_organization_action ON audit_events (organization, action, seq) WHERE action NOT IN ('eligibility.eligible', 'eligibility.not_eligible');
