-- A terminated coverage now covers the services up to its end date, which terminating sets to
-- that day (or keeps when earlier): a provider's claim for an earlier service, sent late, is
-- paid. Before this release a termination could keep a later end date given with it, and every
-- service was refused. Such rows are brought back to the day they were terminated: their last
-- change, since a terminated coverage never changes again. One terminated before it started
-- keeps no end date, and never pays.
UPDATE coverages SET end_date = CASE
        WHEN CAST(updated_at AT TIME ZONE 'UTC' AS DATE) < start_date THEN NULL
        WHEN end_date IS NOT NULL AND end_date <= CAST(updated_at AT TIME ZONE 'UTC' AS DATE) THEN end_date
        ELSE CAST(updated_at AT TIME ZONE 'UTC' AS DATE)
    END
WHERE status = 'terminated';
