-- The audit log's filters read what they ask for instead of the whole log (the PostgreSQL
-- migration of the same number says why): an index of `at`, whose appends land on its last page
-- as events arrive in about that order, and of `action`, alone and with `organization`. The
-- action indexes leave out the two actions an eligibility check writes, so the checks' appends
-- do not maintain them; the service adds their predicate to a query for another action, which
-- SQLite requires to use a partial index. Each index is built while the migration holds the
-- database's write lock.
CREATE INDEX IF NOT EXISTS audit_events_at ON audit_events (at);
CREATE INDEX IF NOT EXISTS audit_events_action ON audit_events (action, seq) WHERE action NOT IN ('eligibility.eligible', 'eligibility.not_eligible');
CREATE INDEX IF NOT EXISTS audit_events_organization_action ON audit_events (organization, action, seq) WHERE action NOT IN ('eligibility.eligible', 'eligibility.not_eligible');
