-- The complementary share counted against each coverage's annual ceiling, per plan year. Claims
-- keep it exact in the same transaction as the claim (every claim not rejected or cancelled), so
-- an eligibility check reads one row instead of summing claims.
CREATE TABLE complementary_usage (
    coverage  TEXT NOT NULL REFERENCES coverages (id),
    plan_year INTEGER NOT NULL,
    used_xof  INTEGER NOT NULL CHECK (used_xof >= 0),
    PRIMARY KEY (coverage, plan_year)
) STRICT;
