//! A bulk job's report as CSV, one line per row error or possible duplicate: `passerelle import`
//! writes it next to the file, and `GET /v1/registrations/batches/{id}/errors` answers it to
//! `Accept: text/csv`, so that a clerk gets the same file either way.

use passerelle_domain::batch::{RowDuplicate, RowError};
use passerelle_domain::ports::BatchCounts;

use crate::import::csv_field;
use crate::problem::Lang;

/// The first line, after a UTF-8 byte order mark: without it, spreadsheet software reads the
/// file as Latin-1 and garbles the French messages' accents.
pub fn header(separator: &str) -> String {
    format!(
        "\u{FEFF}{}\n",
        ["row", "household", "field", "code", "message"].join(separator)
    )
}

/// A row error's line, its message in `lang`.
pub fn error_line(e: &RowError, lang: Lang, separator: &str) -> String {
    let cells = [
        e.row.to_string(),
        csv_field(&e.household),
        csv_field(&e.field),
        csv_field(&e.code),
        csv_field(lang.pick(&e.message_en, &e.message_fr)),
    ];
    format!("{}\n", cells.join(separator))
}

/// A possible duplicate's line, of the code `possible_duplicate`: the person was created, and
/// someone should look.
pub fn duplicate_line(d: &RowDuplicate, lang: Lang, separator: &str) -> String {
    let matches = d.matches.join(" ");
    let message = match lang {
        Lang::En => format!(
            "created as {}, who looks like {} (same names, sex and birth date): check before merging",
            d.beneficiary, matches
        ),
        Lang::Fr => format!(
            "inscrit sous {}, qui ressemble à {} (mêmes noms, sexe et date de naissance) : à vérifier avant \
             toute fusion",
            d.beneficiary, matches
        ),
    };
    let cells = [
        d.row.to_string(),
        csv_field(&d.household),
        csv_field(&d.field),
        "possible_duplicate".to_owned(),
        csv_field(&message),
    ];
    format!("{}\n", cells.join(separator))
}

/// The last line of a job's report when the job found more errors or possible duplicates than
/// it keeps (`kept` of each): without it, a report cut at the limit would look whole. Its row
/// is empty, its code `report_truncated`.
pub fn not_kept_line(counts: &BatchCounts, kept: i64, lang: Lang, separator: &str) -> Option<String> {
    let (errors, duplicates) = (counts.errors_total, counts.possible_duplicates_total);
    if errors <= kept && duplicates <= kept {
        return None;
    }
    let message = match lang {
        Lang::En => format!(
            "the job found {errors} errors and {duplicates} possible duplicates; this report lists the first {kept} \
             of each: correct the file and post it again, or run passerelle import, whose report lists them all"
        ),
        Lang::Fr => format!(
            "la tâche a trouvé {errors} erreurs et {duplicates} doublons possibles ; ce rapport liste les {kept} \
             premiers de chaque : corrigez le fichier et envoyez-le de nouveau, ou utilisez passerelle import, dont \
             le rapport les liste tous"
        ),
    };
    let cells = [
        String::new(),
        String::new(),
        String::new(),
        "report_truncated".to_owned(),
        csv_field(&message),
    ];
    Some(format!("{}\n", cells.join(separator)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_cut_at_the_limit_says_so() {
        let mut counts = BatchCounts {
            errors_total: 100,
            possible_duplicates_total: 100,
            ..BatchCounts::default()
        };
        assert_eq!(not_kept_line(&counts, 100, Lang::En, ","), None, "all kept");
        counts.errors_total = 101;
        let line = not_kept_line(&counts, 100, Lang::En, ";").unwrap();
        assert!(line.starts_with(";;;report_truncated;"), "{line}");
        assert!(line.contains("found 101 errors and 100 possible duplicates"), "{line}");
        counts.errors_total = 3;
        counts.possible_duplicates_total = 250;
        let line = not_kept_line(&counts, 100, Lang::Fr, ",").unwrap();
        assert!(
            line.contains("250 doublons possibles") && line.ends_with("\"\n"),
            "{line}"
        );
    }
}
