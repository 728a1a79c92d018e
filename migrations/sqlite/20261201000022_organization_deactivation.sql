-- An operator may deactivate an organisation (its requests refused, no new webhook events),
-- and reactivate it; NULL is active. A binary of the previous release ignores the column.
ALTER TABLE organizations ADD COLUMN deactivated_at TEXT;
