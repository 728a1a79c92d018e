//! How far the dates of the business may reach. Coverage starts and ends, contributions, product
//! versions and settlement periods lie between 1900 and a few years ahead; a date beyond is a
//! typing mistake, and an unchecked one does harm (a contribution "paid through 9999-12-31"
//! would keep a coverage paid up for ever).

use chrono::{Months, NaiveDate};

use crate::error::FieldError;

/// A strict `YYYY-MM-DD` calendar date, as API.md §3 writes dates. chrono's `%Y-%m-%d` also
/// takes `2026-6-1`, ` 2026-06-01` and `+2026-06-01`, which no client means to send.
pub fn parse(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape {
        return None;
    }
    let year = s[0..4].parse().ok()?;
    let month = s[5..7].parse().ok()?;
    let day = s[8..10].parse().ok()?;
    NaiveDate::from_ymd_opt(year, month, day)
}

/// The earliest date any of them may take.
pub fn earliest() -> NaiveDate {
    NaiveDate::from_ymd_opt(1900, 1, 1).unwrap_or(NaiveDate::MIN)
}

/// How far ahead of today they may reach: a contribution paid years ahead, a product version
/// announced early, never further.
pub const YEARS_AHEAD: u32 = 10;

pub fn latest(today: NaiveDate) -> NaiveDate {
    today.checked_add_months(Months::new(12 * YEARS_AHEAD)).unwrap_or(today)
}

/// `out_of_range` on `field` when `date` lies outside [`earliest`] ..= [`latest`].
pub fn check(date: NaiveDate, field: impl Into<String>, today: NaiveDate) -> Option<FieldError> {
    let latest = latest(today);
    (date < earliest() || date > latest).then(|| {
        FieldError::new(
            field,
            "out_of_range",
            format!("must be between 1900-01-01 and {latest}"),
            format!("doit être entre le 1900-01-01 et le {latest}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_reach_from_1900_to_ten_years_ahead() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert!(check(d("1900-01-01"), "/x", today).is_none());
        assert!(check(d("2036-11-30"), "/x", today).is_none());
        let late = check(d("2036-12-01"), "/x", today).unwrap();
        assert_eq!((late.field.as_str(), late.code.as_str()), ("/x", "out_of_range"));
        assert_eq!(late.en, "must be between 1900-01-01 and 2036-11-30");
        assert!(check(d("1899-12-31"), "/x", today).is_some());
        assert!(check(d("9999-12-31"), "/x", today).is_some());
    }

    #[test]
    fn dates_are_written_one_way() {
        assert_eq!(parse("2028-02-29"), NaiveDate::from_ymd_opt(2028, 2, 29));
        for loose in [
            "2026-6-1",
            " 2026-06-01",
            "2026-06-01 ",
            "+2026-06-01",
            "2026-02-30",
            "2026/06/01",
            "２０２６-06-01",
        ] {
            assert_eq!(parse(loose), None, "{loose}");
        }
    }
}
