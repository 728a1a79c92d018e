-- A contribution recorded by mistake (the wrong household, the wrong amount) can be cancelled;
-- it stays listed, with the instant it was cancelled, and no longer counts towards
-- paid_through.
ALTER TABLE contributions ADD COLUMN cancelled_at TIMESTAMPTZ;

-- After a cancellation paid_through is worked out again: the latest period_end of the
-- contributions still standing, or the paid_through given at registration when later. This
-- column keeps the latter.
ALTER TABLE coverages ADD COLUMN registered_paid_through DATE;

-- Rows written before this release: paid_through is the registration's own when no
-- contribution reaches it. Where one does, the registration's value is unknown (at most
-- paid_through) and stays empty: cancelling that contribution brings paid_through back to the
-- other contributions alone. A replica of the previous release registering during a rolling
-- update leaves the column empty too; run this statement again once the rollout is over (it
-- changes nothing twice).
UPDATE coverages SET registered_paid_through = paid_through
WHERE registered_paid_through IS NULL AND paid_through IS NOT NULL
  AND NOT EXISTS (
      SELECT 1 FROM contributions c
      WHERE c.coverage = coverages.id AND c.period_end >= coverages.paid_through
  );
