//! How far the dates of the business may reach. Coverage starts and ends, contributions, product
//! versions and settlement periods lie between 1900 and a few years ahead; a date beyond is a
//! typing mistake, and an unchecked one does harm (a contribution "paid through 9999-12-31"
//! would keep a coverage paid up for ever).

use chrono::{Months, NaiveDate};

use crate::error::FieldError;

/// What a spreadsheet made of a date the file's reader could not take, said in English and
/// French, without the value (a birth date is personal data): a French-locale `DD/MM/YYYY`, a
/// date's serial number (`46023`), or a date with a time (`1965-03-02 00:00:00`).
pub fn spreadsheet_hint(raw: &str) -> Option<(&'static str, &'static str)> {
    let raw = raw.trim();
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    // A day written with a time after it (`15/03/1980 00:00`, a French export's date and time)
    // is judged by its day.
    let day = raw.split_once(' ').map_or(raw, |(day, _)| day);
    let parts: Vec<&str> = day.split(['/', '.', '-']).collect();
    if parts.len() == 3 && parts.iter().all(|p| digits(p)) && parts[0].len() <= 2 && parts[1].len() <= 2 {
        // The month is whichever of the first two cannot be a day's number past 12.
        let number = |p: &str| p.parse::<u32>().unwrap_or(0);
        if number(parts[1]) > 12 && number(parts[0]) <= 12 {
            return Some((
                "it is written month/day/year (MM/DD/YYYY, a spreadsheet in English): write YYYY-MM-DD, and format the spreadsheet's column as Text",
                "elle est écrite mois/jour/année (MM/JJ/AAAA, un tableur en anglais) : écrivez AAAA-MM-JJ, et mettez la colonne du tableur au format Texte",
            ));
        }
        return Some((
            "it is written day/month/year (DD/MM/YYYY): write YYYY-MM-DD, and format the spreadsheet's column as Text",
            "elle est écrite jour/mois/année (JJ/MM/AAAA) : écrivez AAAA-MM-JJ, et mettez la colonne du tableur au format Texte",
        ));
    }
    // A year a number cell wrote with decimals (`1980.0`, `1980,0`).
    if let Some((year, decimals)) = raw.split_once(['.', ',']) {
        if year.len() == 4 && digits(year) && digits(decimals) && decimals.bytes().all(|b| b == b'0') {
            return Some((
                "it is a year a spreadsheet wrote as a number with decimals: format the column as Text and write YYYY, or YYYY-MM-DD",
                "c'est une année qu'un tableur a écrite comme un nombre à décimales : mettez la colonne au format Texte et écrivez AAAA, ou AAAA-MM-JJ",
            ));
        }
    }
    if raw.len() == 5 && digits(raw) {
        return Some((
            "it is a spreadsheet's date number: format the column as Text and write YYYY-MM-DD",
            "c'est une date qu'un tableur a écrite sous forme de nombre : mettez la colonne au format Texte et écrivez AAAA-MM-JJ",
        ));
    }
    if raw.len() > 10 && raw.is_char_boundary(10) && parse(&raw[..10]).is_some() {
        return Some((
            "it carries a time of day: write the date alone, YYYY-MM-DD",
            "elle porte une heure : écrivez la date seule, AAAA-MM-JJ",
        ));
    }
    None
}

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
            format!("doit être comprise entre le 1900-01-01 et le {latest}"),
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
    fn what_a_spreadsheet_made_of_a_date_is_named() {
        for (raw, says) in [
            ("02/03/1965", "DD/MM/YYYY"),
            ("2/3/65", "DD/MM/YYYY"),
            ("02.03.1965", "DD/MM/YYYY"),
            ("46023", "date number"),
            ("1965-03-02 00:00:00", "time of day"),
            ("15/03/1980 00:00", "DD/MM/YYYY"),
            ("15-03-1980", "DD/MM/YYYY"),
            ("3/15/1980", "MM/DD/YYYY"),
            ("1980.0", "number with decimals"),
            ("1980,0", "number with decimals"),
        ] {
            let hint = spreadsheet_hint(raw).map(|(en, _)| en).unwrap_or_default();
            assert!(hint.contains(says), "{raw}: {hint}");
        }
        for raw in ["1965", "2026-6-1", "hier", "1965-03-02", "123456", "1965-03-0é"] {
            assert_eq!(spreadsheet_hint(raw), None, "{raw}");
        }
    }

    /// Twelve can be a month either side, so `03/12/1980` is the French locale's 3 December
    /// (day/month/year), not an English one's month/day/year.
    #[test]
    fn a_twelve_second_is_read_as_the_month_of_a_french_date() {
        for raw in ["03/12/1980", "12/12/1980"] {
            let hint = spreadsheet_hint(raw).map(|(en, _)| en).unwrap_or_default();
            assert!(hint.contains("DD/MM/YYYY"), "{raw}: {hint}");
        }
    }

    /// A hint is given only when what the spreadsheet made can be told: a cell with letters
    /// where a date's numbers go, or a number that is no year with zero decimals, gets none.
    #[test]
    fn no_hint_for_what_no_spreadsheet_makes_of_a_date() {
        for raw in ["12/ab/1980", "02/03/", "19a0.0", "1980.5", "198.0", "19800.0"] {
            assert_eq!(spreadsheet_hint(raw), None, "{raw}");
        }
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
