-- An operator may deactivate an organisation (its requests refused, no new webhook events),
-- and reactivate it; NULL is active. A new nullable column: no rewrite, no lock beyond the
-- moment of the ALTER, and a binary of the previous release ignores it.
ALTER TABLE organizations ADD COLUMN deactivated_at TIMESTAMPTZ;
