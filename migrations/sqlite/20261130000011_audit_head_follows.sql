-- The chain's head follows every event appended to it, so that appending is one statement:
-- the chainer's cycle for eligibility checks inserts their events only while the head is the
-- one it last wrote, and this trigger moves the head row by row. SQLite has no data-modifying
-- common table expressions, which PostgreSQL uses for the same statement (see the PostgreSQL
-- migration of the same name). The condition keeps the head at the highest sequence number
-- whatever order a multi-row insert takes.
CREATE TRIGGER audit_head_follows AFTER INSERT ON audit_events
BEGIN
    UPDATE audit_head SET seq = NEW.seq, digest = NEW.digest WHERE id = 1 AND seq < NEW.seq;
END;
