//! How far a coverage is paid: the end of the run of paid days without a gap.
//!
//! A member who paid January to March and then December has not paid April to November: a
//! payment for a later period does not pay the months before it. So `paid_through` follows the
//! contributions only as far as they join up. A period that starts more than a day after the
//! run leaves a gap: it is recorded, and counts once the days between are paid.

use chrono::{Days, NaiveDate};

/// The last day of the run that starts at `from` (the coverage's `paid_through` so far, or the
/// one given at registration) and goes on through every period that starts at most one day
/// after it. Without `from`, nothing was paid before the first period: the run starts with the
/// period that starts first. Never before `from`; `None` only without `from` and periods.
pub fn paid_through(from: Option<NaiveDate>, periods: &[(NaiveDate, NaiveDate)]) -> Option<NaiveDate> {
    let mut sorted = periods.to_vec();
    sorted.sort_unstable();
    let mut end = from;
    for (start, finish) in sorted {
        match end {
            None => end = Some(finish),
            // `checked_add_days` fails only at the end of the calendar, where nothing follows.
            Some(last) if last.checked_add_days(Days::new(1)).is_none_or(|next| start <= next) => {
                end = Some(last.max(finish));
            }
            Some(_) => break,
        }
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn p(a: &str, b: &str) -> (NaiveDate, NaiveDate) {
        (d(a), d(b))
    }

    #[test]
    fn a_later_payment_does_not_pay_the_months_before_it() {
        let march = Some(d("2026-03-31"));
        let december = [p("2026-12-01", "2026-12-31")];
        assert_eq!(paid_through(march, &december), march);
        // Once April to November are paid, in any order, December counts too.
        let all = [
            p("2026-12-01", "2026-12-31"),
            p("2026-08-01", "2026-11-30"),
            p("2026-04-01", "2026-07-31"),
        ];
        assert_eq!(paid_through(march, &all), Some(d("2026-12-31")));
    }

    #[test]
    fn periods_join_on_the_next_day_and_may_overlap() {
        let from = Some(d("2026-01-31"));
        assert_eq!(
            paid_through(from, &[p("2026-02-01", "2026-02-28")]),
            Some(d("2026-02-28"))
        );
        assert_eq!(paid_through(from, &[p("2026-02-02", "2026-02-28")]), from);
        assert_eq!(
            paid_through(from, &[p("2026-01-15", "2026-03-31")]),
            Some(d("2026-03-31"))
        );
        // A period wholly before the run changes nothing.
        assert_eq!(paid_through(from, &[p("2025-01-01", "2025-12-31")]), from);
    }

    #[test]
    fn without_a_start_the_first_period_starts_the_run() {
        assert_eq!(paid_through(None, &[]), None);
        let periods = [p("2026-05-01", "2026-05-31"), p("2026-03-01", "2026-03-31")];
        assert_eq!(paid_through(None, &periods), Some(d("2026-03-31")));
        assert_eq!(paid_through(Some(d("2026-02-28")), &periods), Some(d("2026-03-31")));
    }

    fn day() -> impl Strategy<Value = NaiveDate> {
        (0u64..400).prop_map(|n| d("2026-01-01").checked_add_days(Days::new(n)).unwrap())
    }

    fn period() -> impl Strategy<Value = (NaiveDate, NaiveDate)> {
        (day(), 0u64..60).prop_map(|(start, len)| (start, start.checked_add_days(Days::new(len)).unwrap()))
    }

    proptest! {
        /// Every day from the run's start to its end is paid, by `from` or by a period; the day
        /// after it is not (or nothing extends past it).
        #[test]
        fn the_run_has_no_gap(from in proptest::option::of(day()), periods in proptest::collection::vec(period(), 0..8)) {
            let Some(end) = paid_through(from, &periods) else {
                prop_assert!(from.is_none() && periods.is_empty());
                return Ok(());
            };
            let start = from.unwrap_or_else(|| periods.iter().map(|p| p.0).min().unwrap());
            let paid = |day: NaiveDate| from.is_some_and(|f| day <= f) || periods.iter().any(|(a, b)| *a <= day && day <= *b);
            let mut day = start;
            while day <= end {
                prop_assert!(paid(day), "{day} unpaid inside the run ending {end}");
                day = day.checked_add_days(Days::new(1)).unwrap();
            }
            prop_assert!(from.is_none_or(|f| end >= f));
            // A period that starts the day after the end would have extended it.
            prop_assert!(!periods.iter().any(|(a, b)| *a <= day && *b >= day));
        }

        /// From a registered start, a payment never shortens the run; and the run is the same
        /// whatever order payments are recorded in. (Without one, a first payment recorded
        /// after others, for an earlier period with a gap after it, starts the run earlier.)
        #[test]
        fn paying_more_never_pays_less(from in day(), periods in proptest::collection::vec(period(), 0..8), extra in period()) {
            let from = Some(from);
            let before = paid_through(from, &periods);
            let mut more = periods.clone();
            more.push(extra);
            let after = paid_through(from, &more);
            prop_assert!(after >= before);
            more.reverse();
            prop_assert_eq!(paid_through(None, &more), paid_through(None, &{
                let mut again = more.clone();
                again.reverse();
                again
            }));
            prop_assert_eq!(paid_through(from, &more), after);
        }
    }
}
