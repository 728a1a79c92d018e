-- A JSON request's fingerprint by what it says (member order and spacing aside), beside the
-- fingerprint of its bytes: a retry serialised again matches on the first, and a key claimed
-- by a binary that knew only the second still matches as before. NULL for keys claimed by such
-- a binary, and for bodies that are not JSON.
ALTER TABLE idempotency_keys ADD COLUMN canonical_fingerprint TEXT;
