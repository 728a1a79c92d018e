-- An audit event's `seq` counts from 1. A row below it (a forged `seq` 0, say) was listed by
-- GET /v1/audit-events while verification, walking from 1, never saw it; the walk now starts
-- below any `seq`, and the schema refuses such rows from here on, inserted or updated.
--
-- NOT VALID: rows already stored are not checked here, so that a log holding such a row does
-- not stop the upgrade; `passerelle audit verify` (or GET /v1/audit-events/verify) names it,
-- and it is kept as the evidence it is. The constraint is added without scanning the table.
ALTER TABLE audit_events ADD CONSTRAINT audit_events_seq_positive CHECK (seq > 0) NOT VALID;
