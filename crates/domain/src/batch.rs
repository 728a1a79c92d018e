//! Bulk registration files (API.md §5 "Bulk"): CSV, one row per person, and NDJSON, one
//! registration per line, read as a stream of households. Each household comes out as a draft
//! to validate against its product, or as a failure naming every row and field at fault; the
//! file is never held whole. A CSV file is read twice: once through for the households whose rows
//! are not together (each of their runs fails, so none is half-registered), then household by
//! household.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::beneficiary::NationalIdRules;
use crate::error::FieldError;
use crate::product::ProductVersion;
use crate::registration::{RegistrationDraft, ValidRegistration, MAX_DEPENDANTS};

/// The columns of a registration CSV file, in the order API.md lists them; a file may order them
/// as it likes.
pub const CSV_COLUMNS: [&str; 14] = [
    "household",
    "relationship",
    "member_number",
    "family_name",
    "given_names",
    "sex",
    "birth_date",
    "national_id",
    "phone",
    "region",
    "district",
    "commune",
    "start_date",
    "paid_through",
];

const HOUSEHOLD: usize = 0;
const RELATIONSHIP: usize = 1;
const MEMBER_NUMBER: usize = 2;
const FAMILY_NAME: usize = 3;
const GIVEN_NAMES: usize = 4;
const SEX: usize = 5;
const BIRTH_DATE: usize = 6;
const NATIONAL_ID: usize = 7;
const PHONE: usize = 8;
const REGION: usize = 9;
const DISTRICT: usize = 10;
const COMMUNE: usize = 11;
const START_DATE: usize = 12;
const PAID_THROUGH: usize = 13;

/// Rows read for one household: the principal and at most `MAX_DEPENDANTS` dependants. Rows past
/// that are counted and reported, not kept.
pub const MAX_HOUSEHOLD_ROWS: usize = 1 + MAX_DEPENDANTS;
/// One CSV line (one person) longer than this stops the job: it is not a person, and the file
/// is likely no registration file at all.
pub const MAX_CSV_RECORD_BYTES: u64 = 1 << 20;
/// Line breaks one quoted CSV cell may hold and still be read as part of its row (a cell typed
/// over several lines with Alt+Enter); a quote still open after them was forgotten.
pub const MAX_CELL_LINE_BREAKS: usize = 50;
/// One NDJSON line longer than this fails that line, as a single registration body over the
/// request limit would.
pub const MAX_NDJSON_LINE_BYTES: usize = 1 << 20;

/// Most row errors one household reports; a last one (`too_many_errors`) says how many more.
pub const MAX_ERRORS_PER_HOUSEHOLD: usize = 100;

/// One problem in a bulk file: `row` as a spreadsheet shows it (header = 1) or the JSON line
/// number; `field` the CSV column name (empty for the whole row) or a JSON Pointer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowError {
    pub row: u64,
    pub household: String,
    pub field: String,
    pub code: String,
    pub message_en: String,
    pub message_fr: String,
}

/// A person a bulk job created who looks like people already known: where in the file, who was
/// created, and whom they look like. `field` is the member's family name column (CSV) or its
/// JSON Pointer (`/principal`, `/dependants/0`…), as errors name a whole person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowDuplicate {
    pub row: u64,
    pub household: String,
    pub field: String,
    pub beneficiary: String,
    pub matches: Vec<String>,
}

impl RowError {
    fn new(row: u64, household: &str, field: &str, code: &str, en: impl Into<String>, fr: impl Into<String>) -> Self {
        RowError {
            row,
            household: household.to_owned(),
            field: field.to_owned(),
            code: code.to_owned(),
            message_en: en.into(),
            message_fr: fr.into(),
        }
    }

    fn from_field_error(row: u64, household: &str, field: String, e: &FieldError) -> Self {
        RowError {
            row,
            household: household.to_owned(),
            field,
            code: e.code.clone(),
            message_en: e.en.clone(),
            message_fr: e.fr.clone(),
        }
    }
}

/// Storage's verdicts on a household of a bulk group name the member at fault, so that the error
/// lands on that member's row: the `StoreError::Conflict` constraint is `<code>@<member>`, the
/// member 0 the principal, then the dependants in order.
pub fn member_conflict(code: &str, member: usize) -> String {
    format!("{code}@{member}")
}

/// The code and member of a constraint written by [`member_conflict`]; a plain constraint names
/// no member.
pub fn split_member_conflict(constraint: &str) -> (&str, Option<usize>) {
    match constraint.rsplit_once('@') {
        Some((code, member)) => match member.parse() {
            Ok(member) => (code, Some(member)),
            Err(_) => (constraint, None),
        },
        None => (constraint, None),
    }
}

/// How a household's errors name their field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldNaming {
    /// CSV: the column name, on the row of the member at fault.
    Columns,
    /// NDJSON: the JSON Pointer, on the household's line.
    Pointers,
}

/// One household read whole and well formed, its rules not yet checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HouseholdRows {
    /// The CSV `household` value, or the NDJSON body's `member_number`.
    pub household: String,
    pub first_row: u64,
    /// Rows (CSV) or lines (NDJSON) it spans; every one of them fails when the household does.
    pub rows: u64,
    /// For CSV, `product` is `None`: the upload's product applies. For NDJSON, the line's own
    /// product, or the upload's.
    pub draft: RegistrationDraft,
    /// The row of each member: the principal, then the dependants in draft order.
    pub member_rows: Vec<u64>,
    pub naming: FieldNaming,
}

/// A household that cannot be registered, with every problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HouseholdFailure {
    pub household: String,
    pub first_row: u64,
    pub rows: u64,
    pub errors: Vec<RowError>,
    /// What could be read of a failed household (its principal row at least), with its rules
    /// not yet checked: `complete` adds their problems to `errors`.
    pub unchecked: Option<Box<HouseholdRows>>,
}

pub type HouseholdItem = Result<HouseholdRows, HouseholdFailure>;

impl HouseholdRows {
    /// The registration rules and the product's household rules, with the shipped national id
    /// rules; a failure names each row and column (or pointer) at fault.
    pub fn validate(self, product: &ProductVersion, today: NaiveDate) -> Result<ValidRegistration, HouseholdFailure> {
        self.validate_with(&NationalIdRules::SHIPPED, product, today)
    }

    pub fn validate_with(
        self,
        rules: &NationalIdRules,
        product: &ProductVersion,
        today: NaiveDate,
    ) -> Result<ValidRegistration, HouseholdFailure> {
        let mut rows = self;
        let draft = std::mem::take(&mut rows.draft);
        draft
            .validate_with(rules, product, today)
            .map_err(|errors| rows.failure(&errors))
    }

    /// Fails the household with errors at pointers into its registration, such as
    /// `member_number_taken` at `/member_number`.
    pub fn failure(&self, errors: &[FieldError]) -> HouseholdFailure {
        HouseholdFailure {
            household: self.household.clone(),
            first_row: self.first_row,
            rows: self.rows,
            errors: {
                let mut errors: Vec<RowError> = errors.iter().map(|e| self.row_error(e)).collect();
                errors.sort_by_key(|e| e.row);
                bounded(errors, &self.household)
            },
            unchecked: None,
        }
    }

    /// Fails the household for storage's verdict on its `member`th member (0 the principal):
    /// `e.field` is `/member_number` (their own number; the principal's is the household's) or
    /// empty (the person as a whole, `already_covered`, `identity_mismatch`). CSV: on that
    /// member's row, at that column or none; NDJSON: at that member's pointer.
    pub fn member_failure(&self, member: usize, e: &FieldError) -> HouseholdFailure {
        let principal_row = self.member_rows.first().copied().unwrap_or(self.first_row);
        let (row, field) = match self.naming {
            FieldNaming::Columns => (
                self.member_rows.get(member).copied().unwrap_or(principal_row),
                e.field.trim_start_matches('/').to_owned(),
            ),
            FieldNaming::Pointers => {
                let pointer = match (member, e.field.as_str()) {
                    (0, "/member_number") => "/member_number".to_owned(),
                    (0, rest) => format!("/principal{rest}"),
                    (n, rest) => format!("/dependants/{}{rest}", n - 1),
                };
                (principal_row, pointer)
            }
        };
        HouseholdFailure::new(
            self.household.clone(),
            self.first_row,
            self.rows,
            vec![RowError::from_field_error(row, &self.household, field, e)],
        )
    }

    /// Where the `member`th member (0 the principal) of a created household lies in the file,
    /// with the people they look like.
    pub fn row_duplicate(&self, member: usize, beneficiary: &str, matches: &[String]) -> RowDuplicate {
        let pointer = match member {
            0 => "/principal".to_owned(),
            n => format!("/dependants/{}", n - 1),
        };
        let (row, field) = self.locate(&pointer);
        RowDuplicate {
            row,
            household: self.household.clone(),
            field,
            beneficiary: beneficiary.to_owned(),
            matches: matches.to_vec(),
        }
    }

    /// Where a registration error lies in the file.
    pub fn row_error(&self, e: &FieldError) -> RowError {
        let (row, field) = self.locate(&e.field);
        RowError::from_field_error(row, &self.household, field, e)
    }

    fn locate(&self, pointer: &str) -> (u64, String) {
        let principal_row = self.member_rows.first().copied().unwrap_or(self.first_row);
        if self.naming == FieldNaming::Pointers {
            return (principal_row, pointer.to_owned());
        }
        if pointer.is_empty() {
            // The whole household (`concurrent_change`, `internal_error`): no column is at fault.
            return (principal_row, String::new());
        }
        let mut segments = pointer.split('/').skip(1);
        let (member, rest): (usize, Vec<&str>) = match segments.next() {
            Some("principal") => (0, segments.collect()),
            Some("dependants") => match segments.next().and_then(|i| i.parse::<usize>().ok()) {
                Some(i) => (i + 1, segments.collect()),
                None => return (principal_row, CSV_COLUMNS[HOUSEHOLD].to_owned()),
            },
            Some(top @ ("member_number" | "start_date" | "paid_through")) => return (principal_row, top.to_owned()),
            Some("product") => return (principal_row, "product".to_owned()),
            _ => return (principal_row, CSV_COLUMNS[HOUSEHOLD].to_owned()),
        };
        let row = self.member_rows.get(member).copied().unwrap_or(principal_row);
        let column = match rest.as_slice() {
            // The whole person (listed twice): their names say who.
            [] => CSV_COLUMNS[FAMILY_NAME],
            ["national_id", ..] => CSV_COLUMNS[NATIONAL_ID],
            ["birth_date_precision"] => CSV_COLUMNS[BIRTH_DATE],
            ["locality"] => CSV_COLUMNS[REGION],
            ["locality", part, ..] => part,
            [name, ..] => name,
        };
        (row, column.to_owned())
    }
}

/// A household's first [`MAX_ERRORS_PER_HOUSEHOLD`] errors (in the order given) and one more,
/// `too_many_errors` on the last row listed, saying how many are not: a household of a hundred
/// dependants with made-up members reports what to fix first, and a file of such lines is never
/// all held in memory.
pub fn bounded(mut errors: Vec<RowError>, household: &str) -> Vec<RowError> {
    if errors.len() > MAX_ERRORS_PER_HOUSEHOLD + 1 {
        let more = errors.len() - MAX_ERRORS_PER_HOUSEHOLD;
        errors.truncate(MAX_ERRORS_PER_HOUSEHOLD);
        let row = errors.last().map_or(0, |e| e.row);
        errors.push(RowError::from_field_error(
            row,
            household,
            String::new(),
            &FieldError::too_many("", more, false),
        ));
    }
    errors
}

impl HouseholdFailure {
    pub fn new(household: String, first_row: u64, rows: u64, errors: Vec<RowError>) -> Self {
        HouseholdFailure {
            errors: bounded(errors, &household),
            household,
            first_row,
            rows,
            unchecked: None,
        }
    }

    /// Adds the rule problems of what could be read (with the product's household rules when it
    /// is known), except where a row and field already have an error, so that one report lists
    /// everything to fix.
    pub fn complete(mut self, rules: &NationalIdRules, product: Option<&ProductVersion>, today: NaiveDate) -> Self {
        let Some(mut rows) = self.unchecked.take() else {
            return self;
        };
        // Already more than a report lists: those listed are to be corrected first.
        if self.errors.iter().any(|e| e.code == "too_many_errors") {
            return self;
        }
        let draft = std::mem::take(&mut rows.draft);
        let found = match product {
            Some(product) => draft.validate_with(rules, product, today).err().unwrap_or_default(),
            None => draft.errors_without_product(rules, today),
        };
        let known = self.errors.len();
        for e in &found {
            let located = rows.row_error(e);
            let covered = self.errors[..known].iter().any(|r| {
                r.row == located.row
                    && (r.field.is_empty()
                        || r.field == located.field
                        || located
                            .field
                            .strip_prefix(r.field.as_str())
                            .is_some_and(|rest| rest.starts_with('/')))
            });
            if !covered {
                self.errors.push(located);
            }
        }
        self.errors.sort_by_key(|e| e.row);
        self.errors = bounded(std::mem::take(&mut self.errors), &self.household);
        self
    }
}

/// A CSV file with a line that is not UTF-8 is not a UTF-8 file, whatever its other lines
/// hold: a spreadsheet's Windows-1252 export writes `É` and a no-break space as `C9 A0`, which
/// is valid UTF-8 (`ɠ`), so reading such a file line by line registered a garbled name beside
/// the lines refused. The first read over the file finds it, and the job fails before anything
/// is registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotUtf8 {
    /// The first such line, as a spreadsheet numbers it (the header is 1).
    pub line: u64,
}

impl std::fmt::Display for NotUtf8 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {} is not valid UTF-8", self.line)
    }
}

impl std::error::Error for NotUtf8 {}

impl NotUtf8 {
    /// The job's failure, `invalid_encoding`.
    pub fn failure(&self) -> crate::ports::BatchFailure {
        crate::ports::BatchFailure::new(
            "invalid_encoding",
            format!(
                "the file is not UTF-8 (line {} is not): it was saved in another character set, such as a \
                 spreadsheet's \"CSV\" in Windows-1252; nothing was registered. Save it as \"CSV UTF-8\" \
                 (LibreOffice: character set \"Unicode (UTF-8)\") and post it again",
                self.line
            ),
            format!(
                "le fichier n'est pas en UTF-8 (la ligne {} ne l'est pas) : il a été enregistré dans un autre jeu de \
                 caractères, comme le « CSV » d'un tableur en Windows-1252 ; rien n'a été inscrit. Enregistrez-le au \
                 format « CSV UTF-8 » (LibreOffice : jeu de caractères « Unicode (UTF-8) ») et envoyez-le à nouveau",
                self.line
            ),
        )
    }
}

/// A CSV line longer than [`MAX_CSV_RECORD_BYTES`]: no person's row is, so the file is not a
/// registration file, and the first read over it stops the job before anything is registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineTooLong {
    /// The line, as a spreadsheet numbers it (the header is 1).
    pub line: u64,
}

impl std::fmt::Display for LineTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {} is longer than {MAX_CSV_RECORD_BYTES} bytes", self.line)
    }
}

impl std::error::Error for LineTooLong {}

impl LineTooLong {
    /// The job's failure, `unreadable_file`, in both languages.
    pub fn failure(&self) -> crate::ports::BatchFailure {
        crate::ports::BatchFailure::new(
            "unreadable_file",
            format!(
                "the file could not be read to its end: line {} is longer than {MAX_CSV_RECORD_BYTES} bytes, which no \
                 person's row is: this is not a registration file; nothing was registered",
                self.line
            ),
            format!(
                "le fichier n'a pas pu être lu jusqu'au bout : la ligne {} dépasse {MAX_CSV_RECORD_BYTES} octets, longueur \
                 qu'aucune ligne décrivant une personne n'atteint : ce n'est pas un fichier d'inscription ; rien n'a été inscrit",
                self.line
            ),
        )
    }
}

fn invalid_encoding_en() -> &'static str {
    "this line is not valid UTF-8: save the file as \"CSV UTF-8\""
}

fn invalid_encoding_fr() -> &'static str {
    "cette ligne n'est pas en UTF-8 valide : enregistrez le fichier au format « CSV UTF-8 »"
}

mod csv_reader;
mod csv_split;
mod ndjson_reader;
#[cfg(test)]
mod tests;

pub use csv_reader::{check_csv_header, CsvHouseholds};
pub use ndjson_reader::NdjsonHouseholds;
