-- When the personal data of a person was erased under the deployment's retention period
-- (`passerelle erase-personal-data`): the row stays, with its id, sex and birth year, so that
-- the coverages, claims and audit events naming it still resolve; its names, national id,
-- phone and place are gone. A binary of the previous release ignores the column.
ALTER TABLE beneficiaries ADD COLUMN erased_at TEXT;
