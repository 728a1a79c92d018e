-- An audit event's `seq` counts from 1. A row below it (a forged `seq` 0, say) was listed by
-- GET /v1/audit-events while verification, walking from 1, never saw it; the walk now starts
-- below any `seq`, and the schema refuses such rows from here on, inserted or updated.
--
-- PostgreSQL's migration of the same name adds CHECK (seq > 0). SQLite cannot add a CHECK to
-- an existing table with ALTER TABLE (only by copying the table into a new one), so two
-- triggers refuse the same rows instead. Rows already stored are not checked here, as on
-- PostgreSQL: `passerelle audit verify` names such a row, and it is kept as evidence.
CREATE TRIGGER audit_events_seq_positive_insert BEFORE INSERT ON audit_events
WHEN NEW.seq <= 0
BEGIN
    SELECT RAISE(ABORT, 'audit_events.seq must be positive');
END;

CREATE TRIGGER audit_events_seq_positive_update BEFORE UPDATE OF seq ON audit_events
WHEN NEW.seq <= 0
BEGIN
    SELECT RAISE(ABORT, 'audit_events.seq must be positive');
END;
