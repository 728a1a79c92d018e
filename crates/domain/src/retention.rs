//! Retention of personal data: a person whose coverages all ended long enough ago keeps a
//! record (its id, sex and birth year: the coverages, claims and audit events that name it still
//! resolve) but loses their names, national id, phone and place. Togo's, Mali's and Senegal's
//! data-protection laws class health-insurance data as sensitive and limit how long it is kept;
//! each deployment sets the period with its authority (IPDCP, APDP, CDP).

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// The audit action of an erasure, once per record, under one request id per run; also the
/// webhook event announcing it to the organisations that covered the person.
pub const ERASED_ACTION: &str = "beneficiary.erased";

/// Longest retention period the command takes: a century is no retention at all.
pub const MAX_RETENTION_DAYS: u32 = 36_600;

/// What an erasure did, or would do (`dry_run`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Erasure {
    /// People whose every coverage ended before the cut-off.
    pub people: u64,
    /// Records merged into such people (or into people erased earlier): duplicates of them,
    /// holding their own copy of the names.
    pub merged_records: u64,
    /// `beneficiary.changed` webhook deliveries forgotten because they held an erased person
    /// (as corrected), whatever their status: a failed one would otherwise be sent again, names
    /// and all, on its subscriber's request.
    pub webhook_deliveries: u64,
}

/// What a `beneficiary.erased` webhook event says of the record: its id, its version after the
/// erasure and when. Nothing else of the person is left to say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasedRecord {
    pub id: String,
    pub version: u32,
    pub erased_at: DateTime<Utc>,
}

/// The day before which a person's coverages must all have ended: given as such, or as a
/// retention period counted back from `today`. A day after `today` would erase people whose
/// coverage has not ended yet: refused, as is a period of no days.
pub fn cutoff(
    today: NaiveDate,
    ended_before: Option<NaiveDate>,
    retention_days: Option<u32>,
) -> Result<NaiveDate, String> {
    match (ended_before, retention_days) {
        (Some(day), None) if day <= today => Ok(day),
        (Some(day), None) => Err(format!(
            "--ended-before {day} is after today ({today}): only coverages that have already ended count"
        )),
        (None, Some(days)) if (1..=MAX_RETENTION_DAYS).contains(&days) => {
            Ok(today - chrono::Days::new(u64::from(days)))
        }
        (None, Some(days)) => Err(format!(
            "--retention-days {days}: give a number of days from 1 to {MAX_RETENTION_DAYS}"
        )),
        _ => Err("give exactly one of --ended-before YYYY-MM-DD and --retention-days N".into()),
    }
}

/// The birth date an erased record keeps: 1 January of its year, known to the year, as a birth
/// date given as a year alone is stored.
pub fn erased_birth_date(birth_date: NaiveDate) -> NaiveDate {
    NaiveDate::from_ymd_opt(birth_date.year(), 1, 1).unwrap_or(birth_date)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn the_cutoff_is_a_day_or_a_period_before_today_and_never_after() {
        let today = day("2026-12-07");
        assert_eq!(cutoff(today, Some(day("2020-01-01")), None), Ok(day("2020-01-01")));
        assert_eq!(cutoff(today, Some(today), None), Ok(today));
        assert!(cutoff(today, Some(day("2026-12-08")), None)
            .unwrap_err()
            .contains("after today"));
        assert_eq!(cutoff(today, None, Some(365)), Ok(day("2025-12-07")));
        assert_eq!(cutoff(today, None, Some(1)), Ok(day("2026-12-06")));
        assert!(cutoff(today, None, Some(0)).is_err());
        assert!(cutoff(today, None, Some(MAX_RETENTION_DAYS + 1)).is_err());
        assert!(cutoff(today, None, None).unwrap_err().contains("exactly one"));
        assert!(cutoff(today, Some(today), Some(3)).unwrap_err().contains("exactly one"));
    }

    /// A period out of range, given alone, is refused for its number of days, not as if both
    /// or neither option had been given.
    #[test]
    fn a_period_out_of_range_is_refused_for_its_days() {
        let today = day("2026-12-07");
        for days in [0, MAX_RETENTION_DAYS + 1] {
            let err = cutoff(today, None, Some(days)).unwrap_err();
            assert!(err.contains(&format!("--retention-days {days}")), "{err}");
            assert!(!err.contains("exactly one"), "{err}");
        }
    }

    #[test]
    fn an_erased_record_keeps_its_birth_year_alone() {
        assert_eq!(erased_birth_date(day("1984-03-12")), day("1984-01-01"));
        assert_eq!(erased_birth_date(day("2000-02-29")), day("2000-01-01"));
        assert_eq!(erased_birth_date(day("1975-01-01")), day("1975-01-01"));
    }
}
