-- An organisation's events of one resource type (`GET /v1/audit-events?resource_type=coverage`:
-- a provider's, or a mutuelle's own, whose reads always carry their organisation) read from an
-- index instead of walking every event of the log newest first: 0.5 to 0.7 s a page with
-- 2,700,000 events when the type is rare among the organisation's, as a type other than the
-- checks' is. Partial like the action indexes of migration 25, on the same predicate, which the
-- service adds to such a query: the checks' events, most of the log, do not maintain it, and
-- their type (`beneficiary`) is read without it.
--
-- Built inside the migration's transaction, it holds appends while it reads the log (about 6 s
-- per 2,700,000 events here). On a large log, build it beforehand without holding anything
-- (deploy/README.md, migration 34); this migration then finds it. One left invalid by a failed
-- concurrent build is named, not taken as built.
DO $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE c.relname = 'audit_events_organization_type' AND NOT i.indisvalid
    ) THEN
        RAISE EXCEPTION 'an index of audit_events left invalid by a failed CREATE INDEX CONCURRENTLY: drop it (DROP INDEX CONCURRENTLY audit_events_organization_type) and build it again, or let this migration build it (deploy/README.md, migration 34)';
    END IF;
END
$$;

CREATE INDEX IF NOT EXISTS audit_events_organization_type ON audit_events (organization, resource_type, seq) WHERE action NOT IN ('eligibility.eligible', 'eligibility.not_eligible');
