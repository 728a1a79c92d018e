//! A bulk job's report as CSV, one line per row error or possible duplicate: `passerelle import`
//! writes it next to the file, and `GET /v1/registrations/batches/{id}/errors` answers it to
//! `Accept: text/csv`, so that a clerk gets the same file either way.

use passerelle_domain::batch::{RowDuplicate, RowError};

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
