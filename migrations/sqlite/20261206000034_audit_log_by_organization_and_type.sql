-- An organisation's events of one resource type (`GET /v1/audit-events?resource_type=coverage`:
-- a provider's, or a mutuelle's own, whose reads always carry their organisation) read from an
-- index instead of every event of that organisation: 0.3 to 0.9 s a page with 2,700,000 events
-- when the type is rare among the organisation's. Partial like the action indexes of migration
-- 25, on the same predicate, which the service adds to such a query (SQLite requires it to use a
-- partial index): the checks' events, most of the log, do not maintain it, and their type
-- (`beneficiary`) is read without it. Built while the migration holds the write lock (about 4 s
-- per 2,700,000 events).
CREATE INDEX IF NOT EXISTS audit_events_organization_type ON audit_events (organization, resource_type, seq) WHERE action NOT IN ('eligibility.eligible', 'eligibility.not_eligible');
