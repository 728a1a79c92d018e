-- A batch may total 0 XOF: claims adjudicated with nothing owed are settled by a batch like any
-- other, and a batch of only such claims is paid when it is created.
ALTER TABLE settlements DROP CONSTRAINT settlements_total_xof_check;
ALTER TABLE settlements ADD CONSTRAINT settlements_total_xof_check CHECK (total_xof >= 0);
