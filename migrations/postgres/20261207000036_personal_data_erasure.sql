-- When the personal data of a person was erased under the deployment's retention period
-- (`passerelle erase-personal-data`): the row stays, with its id, sex and birth year, so that
-- the coverages, claims and audit events naming it still resolve; its names, national id,
-- phone and place are gone. A nullable column without a default: no rewrite, and a binary of the
-- previous release ignores it (it would show an erased person with empty names: upgrade every
-- replica before erasing).
ALTER TABLE beneficiaries ADD COLUMN erased_at TIMESTAMPTZ;
