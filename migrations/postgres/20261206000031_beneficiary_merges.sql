-- A person registered twice (once by a mutuelle without a national id, once by a scheme with
-- one; or twice by one organisation) made one (`POST /v1/beneficiaries/{id}/merge`): the record
-- merged away keeps its row, so that the claims and events naming it still resolve, and points
-- at the person it was merged into. A nullable column without a default: no rewrite, and a
-- binary of the previous release ignores it.
ALTER TABLE beneficiaries ADD COLUMN merged_into TEXT REFERENCES beneficiaries (id);
-- The organisation that merged it: the record was its own, and it alone (with operators and
-- auditors) still reads it.
ALTER TABLE beneficiaries ADD COLUMN merged_by TEXT REFERENCES organizations (id);
-- The records merged into one that is merged away in turn are repointed by the merge, so that
-- a pointer is always one step: found here.
CREATE INDEX beneficiaries_merged_into ON beneficiaries (merged_into) WHERE merged_into IS NOT NULL;
