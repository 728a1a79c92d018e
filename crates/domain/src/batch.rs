//! Bulk registration files (API.md §5 "Bulk"): CSV, one row per person, and NDJSON, one
//! registration per line, read as a stream of households. Each household comes out as a draft
//! to validate against its product, or as a failure naming every row and field at fault; the
//! file is never held whole. A CSV file is read twice: once through for the households whose rows
//! are not together (each of their runs fails, so none is half-registered), then household by
//! household.

use std::collections::hash_map::{Entry, RandomState};
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::io::{self, BufRead, Read, Seek, SeekFrom};

use chrono::NaiveDate;
use csv::ByteRecord;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::beneficiary::{
    compact_shape_error, split_compact, BeneficiaryDraft, LocalityDraft, NationalIdDraft, NationalIdRules,
};
use crate::error::FieldError;
use crate::product::ProductVersion;
use crate::registration::{DependantDraft, RegistrationDraft, ValidRegistration, MAX_DEPENDANTS};

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
/// One NDJSON line longer than this fails that line, as a single registration body over the
/// request limit would.
pub const MAX_NDJSON_LINE_BYTES: usize = 1 << 20;

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
                errors
            },
            unchecked: None,
        }
    }

    /// Fails the household for storage's verdict on its `member`th member (0 the principal):
    /// `e.field` is `/member_number` (their own number; the principal's is the household's) or
    /// empty (the person as a whole, `already_covered`). CSV: on that member's row, at that
    /// column or none; NDJSON: at that member's pointer.
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

impl HouseholdFailure {
    pub fn new(household: String, first_row: u64, rows: u64, errors: Vec<RowError>) -> Self {
        HouseholdFailure {
            household,
            first_row,
            rows,
            errors,
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
        self
    }
}

/// A registration file's lines, numbered from 1 as a spreadsheet shows them. No valid cell holds
/// a line break (control characters are refused), so each line is one record: a quote left open
/// ends with its line instead of swallowing the rows after it, and a row's number is its line's.
struct Lines<R> {
    reader: io::BufReader<R>,
    /// The number of the line in `buf`.
    line: u64,
    /// Bytes consumed so far: where the next line starts.
    offset: u64,
    buf: Vec<u8>,
}

impl<R: Read> Lines<R> {
    fn new(reader: R) -> Self {
        Lines {
            reader: io::BufReader::with_capacity(256 * 1024, reader),
            line: 0,
            offset: 0,
            buf: Vec::new(),
        }
    }

    /// The next line into `buf`, without its `\n` nor a `\r` before it; `Some(false)` when it
    /// is the end of a file that does not end with a line end. A line longer than
    /// `MAX_CSV_RECORD_BYTES` is not a person: the file is refused whole.
    fn next_line(&mut self) -> io::Result<Option<bool>> {
        self.buf.clear();
        let terminated = loop {
            let available = match self.reader.fill_buf() {
                Ok(a) => a,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                // A file cut after a `\r` still ended its line (old spreadsheets end lines so).
                break self.buf.last() == Some(&b'\r');
            }
            let (chunk, used, end) = match available.iter().position(|b| *b == b'\n') {
                Some(i) => (&available[..i], i + 1, true),
                None => (available, available.len(), false),
            };
            if (self.buf.len() + chunk.len()) as u64 > MAX_CSV_RECORD_BYTES {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "line {} is longer than {MAX_CSV_RECORD_BYTES} bytes: not a registration file",
                        self.line + 1
                    ),
                ));
            }
            self.buf.extend_from_slice(chunk);
            self.reader.consume(used);
            self.offset += used as u64;
            if end {
                break true;
            }
        };
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        self.line += 1;
        Ok(Some(terminated))
    }
}

impl<R: Read + Seek> Lines<R> {
    /// Back to `offset`, the start of line `line + 1`.
    fn rewind(&mut self, offset: u64, line: u64) -> io::Result<()> {
        self.reader.seek(SeekFrom::Start(offset))?;
        self.offset = offset;
        self.line = line;
        Ok(())
    }
}

/// Splits one line into `record` with RFC 4180 quoting, as the `csv` crate reads a record: a
/// field that starts with `"` runs to the next lone `"` (`""` is a quote) and what follows it up
/// to the comma is kept; a `"` further in an unquoted field is kept as it is. True when the line
/// ends inside a quoted field.
fn split_fields(line: &[u8], record: &mut ByteRecord) -> bool {
    record.clear();
    let mut field = Vec::new();
    let mut i = 0;
    loop {
        field.clear();
        let mut quoted = line.get(i) == Some(&b'"');
        if quoted {
            i += 1;
        }
        while let Some(&b) = line.get(i) {
            match (quoted, b) {
                (true, b'"') if line.get(i + 1) == Some(&b'"') => {
                    field.push(b'"');
                    i += 1;
                }
                (true, b'"') => quoted = false,
                (false, b',') => break,
                _ => field.push(b),
            }
            i += 1;
        }
        record.push_field(&field);
        if quoted {
            return true;
        }
        if i >= line.len() {
            return false;
        }
        i += 1;
    }
}

/// Cells and household keys are trimmed alike, of Unicode white space (a spreadsheet's
/// non-breaking space too): `H1` and `H1\u{A0}` are one household, as their cells read the same.
fn trim_cell(raw: &[u8]) -> &[u8] {
    match std::str::from_utf8(raw) {
        Ok(text) => text.trim().as_bytes(),
        Err(_) => raw.trim_ascii(),
    }
}

struct Record {
    fields: ByteRecord,
    line: u64,
    /// The last line of a file that does not end with a line end.
    unterminated: bool,
    /// The line ends inside a quoted cell.
    open_quote: bool,
}

/// A CSV row once split: its household key and, when it reads, its cells by column.
struct CsvRow {
    line: u64,
    cells: Option<[Option<String>; 14]>,
    errors: Vec<RowError>,
}

/// Where a household met in more than one run of rows is met again.
#[derive(Debug, Clone, Copy)]
enum Split {
    /// Its first run; the second starts at this row.
    First { again: u64 },
    /// A later run; the first started at this row.
    Later { first: u64 },
}

/// The household keys that appear in more than one run of rows, found by reading the file once
/// before registering anything, so that every run of such a household fails and none of it is
/// registered (API.md: a household is committed whole or not at all). Keys are kept as 64-bit
/// hashes, keyed at random for each file: 8 bytes per distinct household during that first
/// read, then only the split ones. Two keys of one file sharing a hash (about one chance in 10^8
/// for a million households) would fail both households as split: reported, never half-written.
struct SplitKeys {
    hasher: RandomState,
    /// Split keys, with the first row of their second run.
    again: HashMap<u64, u64>,
    /// Split keys whose first run the second read has met, with its first row.
    first: HashMap<u64, u64>,
}

impl SplitKeys {
    /// Whether the run of `key` starting at `row` belongs to a split household, and where else
    /// it is; called once per run, in file order.
    fn run(&mut self, key: &[u8], row: u64) -> Option<Split> {
        if key.is_empty() {
            // Rows without a household fail already (`required`).
            return None;
        }
        let hash = self.hasher.hash_one(key);
        let again = *self.again.get(&hash)?;
        match self.first.entry(hash) {
            Entry::Occupied(first) => Some(Split::Later { first: *first.get() }),
            Entry::Vacant(slot) => {
                slot.insert(row);
                Some(Split::First { again })
            }
        }
    }
}

struct Group {
    key: Vec<u8>,
    household: String,
    first_row: u64,
    rows: u64,
    /// Set when this household's rows are not all together.
    split: Option<Split>,
    members: Vec<CsvRow>,
    /// Rows past `MAX_HOUSEHOLD_ROWS` were met (and reported once).
    overflow: bool,
    errors: Vec<RowError>,
}

/// A CSV registration file, household by household. The file is read twice: once for the
/// households whose rows are not together (all their rows fail), then household by household;
/// hence `Seek` (a file on disk, or `io::Cursor`). Iterate with `by_ref()` to read `rows_read()`
/// and `take_error()` along the way.
pub struct CsvHouseholds<R: Read> {
    lines: Lines<R>,
    header: Header,
    /// Where the first row after the header starts.
    data_start: u64,
    /// `None` until the first read is done, at the first call of `next`.
    split: Option<SplitKeys>,
    fields: ByteRecord,
    current: Option<Group>,
    rows_read: u64,
    error: Option<io::Error>,
    done: bool,
}

/// The header's columns: for each of `CSV_COLUMNS`, its position in the file.
struct Header {
    positions: [usize; 14],
    width: usize,
}

impl Header {
    fn cell<'a>(&self, record: &'a ByteRecord, column: usize) -> Option<&'a [u8]> {
        record.get(self.positions[column])
    }

    /// The row's household key; a row too short to reach its household column stays with the
    /// household being read (`current`).
    fn key(&self, record: &Record, current: Option<&[u8]>) -> Vec<u8> {
        match self.cell(&record.fields, HOUSEHOLD) {
            Some(raw) => trim_cell(raw).to_vec(),
            None => current.unwrap_or_default().to_vec(),
        }
    }

    /// The column of the `position`th field of a row, if the header names one.
    fn column_at(&self, position: usize) -> Option<&'static str> {
        self.positions
            .iter()
            .position(|p| *p == position)
            .map(|column| CSV_COLUMNS[column])
    }
}

/// Checks a CSV file's header only (the upload route, `passerelle import` before it starts): each
/// missing, unknown or repeated column is one error at `/header/<column>`.
pub fn check_csv_header<R: Read>(reader: R) -> Result<(), Vec<FieldError>> {
    read_header(&mut Lines::new(reader)).map(|_| ())
}

fn header_error(column: &str, code: &str, en: impl Into<String>, fr: impl Into<String>) -> FieldError {
    let escaped = column.replace('~', "~0").replace('/', "~1");
    FieldError::new(format!("/header/{escaped}"), code, en, fr)
}

fn invalid_encoding_en() -> &'static str {
    "this line is not valid UTF-8: save the file as \"CSV UTF-8\""
}

fn invalid_encoding_fr() -> &'static str {
    "cette ligne n'est pas en UTF-8 valide : enregistrez le fichier au format « CSV UTF-8 »"
}

fn read_header<R: Read>(lines: &mut Lines<R>) -> Result<Header, Vec<FieldError>> {
    let mut header = ByteRecord::new();
    match lines.next_line() {
        Ok(Some(_)) => {
            // A byte order mark is skipped before the line is split, so that a quoted first
            // column name reads as quoted.
            let line = lines.buf.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&lines.buf);
            split_fields(line, &mut header);
        }
        Ok(None) => {}
        Err(e) => {
            return Err(vec![FieldError::new(
                "/header",
                "unreadable",
                format!("the file could not be read: {e}"),
                "le fichier n'a pas pu être lu",
            )])
        }
    }
    let mut names = Vec::with_capacity(header.len());
    for raw in header.iter() {
        match std::str::from_utf8(raw) {
            Ok(name) => names.push(name.trim().to_owned()),
            Err(_) => {
                return Err(vec![FieldError::new(
                    "/header",
                    "invalid_encoding",
                    "the header is not valid UTF-8: save the file as \"CSV UTF-8\"",
                    "l'en-tête n'est pas en UTF-8 valide : enregistrez le fichier au format « CSV UTF-8 »",
                )])
            }
        }
    }
    let mut errors = Vec::new();
    let mut positions = [usize::MAX; 14];
    for (position, name) in names.iter().enumerate() {
        match CSV_COLUMNS.iter().position(|c| c.eq_ignore_ascii_case(name)) {
            Some(column) if positions[column] != usize::MAX => errors.push(header_error(
                CSV_COLUMNS[column],
                "duplicate_column",
                "this column appears more than once in the header",
                "cette colonne figure plusieurs fois dans l'en-tête",
            )),
            Some(column) => positions[column] = position,
            None => errors.push(header_error(
                name,
                "unknown_column",
                format!(
                    "not a column of a registration file; the columns are {}",
                    CSV_COLUMNS.join(",")
                ),
                format!(
                    "n'est pas une colonne d'un fichier d'inscription ; les colonnes sont {}",
                    CSV_COLUMNS.join(",")
                ),
            )),
        }
    }
    for (column, position) in CSV_COLUMNS.iter().zip(positions) {
        if position == usize::MAX {
            errors.push(header_error(
                column,
                "missing_column",
                "the header lacks this column",
                "cette colonne manque dans l'en-tête",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Header {
        positions,
        width: header.len(),
    })
}

impl<R: Read + Seek> CsvHouseholds<R> {
    /// Reads and checks the header: each missing, unknown or repeated column is one error at
    /// `/header/<column>`.
    pub fn new(reader: R) -> Result<Self, Vec<FieldError>> {
        let mut lines = Lines::new(reader);
        let header = read_header(&mut lines)?;
        Ok(CsvHouseholds {
            data_start: lines.offset,
            lines,
            header,
            split: None,
            fields: ByteRecord::new(),
            current: None,
            rows_read: 0,
            error: None,
            done: false,
        })
    }

    /// Data rows read so far (blank rows aside); the total is known only at the end.
    pub fn rows_read(&self) -> u64 {
        self.rows_read
    }

    /// The I/O error that ended the iteration early, if one did: the job failed, and the
    /// household being read when it happened was not returned.
    pub fn take_error(&mut self) -> Option<io::Error> {
        self.error.take()
    }

    /// The next row; rows whose every cell is blank (spreadsheets leave them) are skipped.
    fn next_record(&mut self) -> io::Result<Option<Record>> {
        loop {
            let Some(terminated) = self.lines.next_line()? else {
                return Ok(None);
            };
            let open_quote = split_fields(&self.lines.buf, &mut self.fields);
            if !open_quote && self.fields.iter().all(|f| trim_cell(f).is_empty()) {
                continue;
            }
            return Ok(Some(Record {
                fields: self.fields.clone(),
                line: self.lines.line,
                unterminated: !terminated,
                open_quote,
            }));
        }
    }

    /// The first read: which household keys come back after another household's rows. Then
    /// back to the first row.
    fn find_split_keys(&mut self) -> io::Result<SplitKeys> {
        let hasher = RandomState::new();
        let mut seen = HashSet::new();
        let mut again = HashMap::new();
        let mut current: Option<Vec<u8>> = None;
        while let Some(record) = self.next_record()? {
            let key = self.header.key(&record, current.as_deref());
            if current.as_deref() == Some(key.as_slice()) {
                continue;
            }
            let hash = hasher.hash_one(&key);
            if !key.is_empty() && !seen.insert(hash) {
                again.entry(hash).or_insert(record.line);
            }
            current = Some(key);
        }
        self.lines.rewind(self.data_start, 1)?;
        Ok(SplitKeys {
            hasher,
            again,
            first: HashMap::new(),
        })
    }

    fn parse_row(&self, record: &Record, household: &str) -> CsvRow {
        let fields = &record.fields;
        let line = record.line;
        let (n, width) = (fields.len(), self.header.width);
        // A last row with every field is read, even on an empty last cell: a dependant's row
        // ends on an empty `paid_through`, and many files lack a final line end.
        let cut = record.open_quote || n < width;
        let shape_error = if record.unterminated && cut {
            // Without its line end, a last row that stops short or inside a quoted cell was most
            // likely cut: its last cell may be missing or partial.
            let (en, fr) = if record.open_quote {
                (
                    "inside a quoted cell".to_owned(),
                    "au milieu d'une cellule entre guillemets".to_owned(),
                )
            } else {
                (
                    format!("with {n} of the {width} fields"),
                    format!("avec {n} des {width} champs"),
                )
            };
            Some(RowError::new(
                line,
                household,
                "",
                "truncated",
                format!("the last line stops {en} and without a line end: was the file cut? A file ends with a line end"),
                format!("la dernière ligne s'arrête {fr} et sans fin de ligne : le fichier a-t-il été coupé ? Un fichier se termine par une fin de ligne"),
            ))
        } else if record.open_quote {
            Some(RowError::new(
                line,
                household,
                self.header.column_at(n - 1).unwrap_or_default(),
                "unclosed_quote",
                "a quote opened in this cell is not closed on this line: a cell cannot hold a line break, so the row stops here and the next line is read as a row of its own",
                "un guillemet ouvert dans cette cellule n'est pas refermé sur cette ligne : une cellule ne peut pas contenir de saut de ligne, la ligne s'arrête donc ici et la suivante est lue comme une ligne à part",
            ))
        } else if n != width {
            Some(RowError::new(
                line,
                household,
                "",
                "wrong_field_count",
                format!("this row has {n} fields; the header has {width}"),
                format!("cette ligne a {n} champs ; l'en-tête en a {width}"),
            ))
        } else {
            None
        };
        if let Some(e) = shape_error {
            return CsvRow {
                line,
                cells: None,
                errors: vec![e],
            };
        }
        let mut errors = Vec::new();
        let mut cells: [Option<String>; 14] = Default::default();
        for (column, cell) in cells.iter_mut().enumerate() {
            let raw = self.header.cell(fields, column).unwrap_or_default();
            match std::str::from_utf8(raw) {
                Ok(text) if crate::nul::contains_nul(text) => {
                    let e = crate::nul::nul_error(CSV_COLUMNS[column]);
                    errors.push(RowError::new(line, household, &e.field, &e.code, e.en, e.fr));
                }
                Ok(text) => {
                    let text = text.trim();
                    if !text.is_empty() {
                        *cell = Some(text.to_owned());
                    }
                }
                Err(_) => errors.push(RowError::new(
                    line,
                    household,
                    CSV_COLUMNS[column],
                    "invalid_encoding",
                    invalid_encoding_en(),
                    invalid_encoding_fr(),
                )),
            }
        }
        CsvRow {
            line,
            cells: errors.is_empty().then_some(cells),
            errors,
        }
    }

    fn start_group(&mut self, key: Vec<u8>, first_row: u64) -> Group {
        let split = self.split.as_mut().and_then(|s| s.run(&key, first_row));
        Group {
            // A NUL in the key fails the row already (`parse_row`); the label, written with every
            // error of the household, must not carry it into the database.
            household: String::from_utf8_lossy(&key).replace('\0', "\u{FFFD}"),
            key,
            first_row,
            rows: 0,
            split,
            members: Vec::new(),
            overflow: false,
            errors: Vec::new(),
        }
    }
}

fn add_row(group: &mut Group, row: CsvRow) {
    group.rows += 1;
    if group.members.len() < MAX_HOUSEHOLD_ROWS {
        group.members.push(row);
    } else if !group.overflow {
        group.overflow = true;
        group.errors.push(RowError::new(
            row.line,
            &group.household,
            CSV_COLUMNS[HOUSEHOLD],
            "too_many_dependants",
            format!("a household has at most {MAX_DEPENDANTS} dependants; its rows from here on are not read"),
            format!("un ménage a au plus {MAX_DEPENDANTS} ayants droit ; ses lignes à partir d'ici ne sont pas lues"),
        ));
    }
}

fn beneficiary_from(cells: &mut [Option<String>; 14]) -> BeneficiaryDraft {
    let region = cells[REGION].take();
    let district = cells[DISTRICT].take();
    let commune = cells[COMMUNE].take();
    let locality = (region.is_some() || district.is_some() || commune.is_some()).then_some(LocalityDraft {
        region,
        district,
        commune,
    });
    BeneficiaryDraft {
        national_id: None,
        family_name: cells[FAMILY_NAME].take(),
        given_names: cells[GIVEN_NAMES].take(),
        sex: cells[SEX].take(),
        birth_date: cells[BIRTH_DATE].take(),
        birth_date_precision: None,
        phone: cells[PHONE].take(),
        locality,
    }
}

fn finish(group: Group) -> HouseholdItem {
    let household = group.household;
    let mut errors = group.errors;
    let mut rows_errors: Vec<RowError> = Vec::new();
    if group.key.is_empty() {
        errors.push(RowError::new(
            group.first_row,
            &household,
            CSV_COLUMNS[HOUSEHOLD],
            "required",
            "every row names its household",
            "chaque ligne indique son ménage",
        ));
    }
    // Every run of a split household fails, the first one too: registering it would leave the
    // household short of the rows met later, and posting the file again would skip it as
    // already registered, never completing it.
    match group.split {
        Some(Split::First { again }) => errors.push(RowError::new(
            group.first_row,
            &household,
            CSV_COLUMNS[HOUSEHOLD],
            "household_not_contiguous",
            format!("this household's rows must follow one another: it appears again at row {again}; none of its rows is registered"),
            format!("les lignes d'un ménage doivent se suivre : celui-ci figure à nouveau à la ligne {again} ; aucune de ses lignes n'est inscrite"),
        )),
        Some(Split::Later { first }) => errors.push(RowError::new(
            group.first_row,
            &household,
            CSV_COLUMNS[HOUSEHOLD],
            "household_not_contiguous",
            format!("this household's rows must follow one another: it already appeared at row {first}; none of its rows is registered"),
            format!("les lignes d'un ménage doivent se suivre : celui-ci figure déjà à la ligne {first} ; aucune de ses lignes n'est inscrite"),
        )),
        None => {}
    }

    let mut members = group.members.into_iter();
    let mut draft = RegistrationDraft::default();
    let mut member_rows = Vec::new();
    let mut has_principal = false;
    if let Some(mut first) = members.next() {
        rows_errors.append(&mut first.errors);
        if let Some(cells) = first.cells.as_mut() {
            if cells[RELATIONSHIP].as_deref() == Some("principal") {
                has_principal = true;
                draft.member_number = cells[MEMBER_NUMBER].take();
                draft.start_date = cells[START_DATE].take();
                draft.paid_through = cells[PAID_THROUGH].take();
                draft.principal = beneficiary_from(cells);
                draft.principal.national_id = split_national_id(cells, first.line, &household, &mut rows_errors);
                member_rows.push(first.line);
            } else if !matches!(group.split, Some(Split::Later { .. })) {
                errors.push(RowError::new(
                    first.line,
                    &household,
                    CSV_COLUMNS[RELATIONSHIP],
                    "principal_first",
                    "a household starts with its principal's row (relationship principal)",
                    "un ménage commence par la ligne de son principal (relationship principal)",
                ));
            }
        }
    }
    for mut member in members {
        rows_errors.append(&mut member.errors);
        let Some(cells) = member.cells.as_mut() else {
            continue;
        };
        for column in [START_DATE, PAID_THROUGH] {
            let household_value = if column == START_DATE {
                &draft.start_date
            } else {
                &draft.paid_through
            };
            if cells[column].is_some() && has_principal && cells[column] != *household_value {
                let name = CSV_COLUMNS[column];
                rows_errors.push(RowError::new(
                    member.line,
                    &household,
                    name,
                    "conflicts_with_principal",
                    format!("{name} is the household's, read from the principal's row: leave it empty here or repeat the principal's value"),
                    format!("{name} vaut pour tout le ménage et se lit sur la ligne du principal : laissez-la vide ici ou reprenez la valeur du principal"),
                ));
            }
        }
        let national_id = split_national_id(cells, member.line, &household, &mut rows_errors);
        let relationship = cells[RELATIONSHIP].take();
        let member_number = cells[MEMBER_NUMBER].take();
        let mut beneficiary = beneficiary_from(cells);
        beneficiary.national_id = national_id;
        draft.dependants.push(DependantDraft {
            relationship,
            member_number,
            beneficiary,
        });
        member_rows.push(member.line);
    }
    errors.append(&mut rows_errors);
    errors.sort_by_key(|e| e.row);

    let rows = HouseholdRows {
        household: household.clone(),
        first_row: group.first_row,
        rows: group.rows,
        draft,
        member_rows,
        naming: FieldNaming::Columns,
    };
    if errors.is_empty() && has_principal {
        Ok(rows)
    } else {
        Err(HouseholdFailure {
            household,
            first_row: group.first_row,
            rows: group.rows,
            errors,
            unchecked: has_principal.then(|| Box::new(rows)),
        })
    }
}

/// `CC:TYPE:VALUE` split into its parts, checked later with the rest of the person.
fn split_national_id(
    cells: &mut [Option<String>; 14],
    line: u64,
    household: &str,
    errors: &mut Vec<RowError>,
) -> Option<NationalIdDraft> {
    let compact = cells[NATIONAL_ID].take()?;
    match split_compact(&compact) {
        Some((country, id_type, value)) => Some(NationalIdDraft {
            country: Some(country.to_owned()),
            id_type: Some(id_type.to_owned()),
            value: Some(value.to_owned()),
        }),
        None => {
            let e = compact_shape_error("");
            errors.push(RowError::from_field_error(
                line,
                household,
                CSV_COLUMNS[NATIONAL_ID].to_owned(),
                &e,
            ));
            None
        }
    }
}

impl<R: Read + Seek> Iterator for CsvHouseholds<R> {
    type Item = HouseholdItem;

    fn next(&mut self) -> Option<HouseholdItem> {
        if self.split.is_none() && !self.done {
            match self.find_split_keys() {
                Ok(split) => self.split = Some(split),
                Err(e) => {
                    self.error = Some(e);
                    self.done = true;
                }
            }
        }
        while !self.done {
            let record = match self.next_record() {
                Ok(Some(record)) => record,
                Ok(None) => {
                    self.done = true;
                    break;
                }
                Err(e) => {
                    self.error = Some(e);
                    self.done = true;
                    self.current = None;
                    return None;
                }
            };
            self.rows_read += 1;
            let key = self
                .header
                .key(&record, self.current.as_ref().map(|g| g.key.as_slice()));
            let same = self.current.as_ref().is_some_and(|g| g.key == key);
            let finished = if same {
                None
            } else {
                let group = self.start_group(key, record.line);
                self.current.replace(group)
            };
            let household = self.current.as_ref().map(|g| g.household.clone()).unwrap_or_default();
            let row = self.parse_row(&record, &household);
            if let Some(group) = self.current.as_mut() {
                add_row(group, row);
            }
            if let Some(group) = finished {
                return Some(finish(group));
            }
        }
        self.current.take().map(finish)
    }
}

/// An NDJSON registration file: each non-blank line one registration body, `row` its line
/// number, `household` its `member_number`. Iterate with `by_ref()` to read `rows_read()` and
/// `take_error()` along the way.
pub struct NdjsonHouseholds<R: BufRead> {
    reader: R,
    default_product: Option<String>,
    line: u64,
    rows_read: u64,
    buf: Vec<u8>,
    error: Option<io::Error>,
    done: bool,
}

impl<R: BufRead> NdjsonHouseholds<R> {
    /// `default_product`: the upload's `product`, for lines that do not name theirs.
    pub fn new(reader: R, default_product: Option<String>) -> Self {
        NdjsonHouseholds {
            reader,
            default_product,
            line: 0,
            rows_read: 0,
            buf: Vec::new(),
            error: None,
            done: false,
        }
    }

    /// Registration lines read so far (blank lines aside).
    pub fn rows_read(&self) -> u64 {
        self.rows_read
    }

    pub fn take_error(&mut self) -> Option<io::Error> {
        self.error.take()
    }

    /// The next line into `buf` without its line end; `Some(true)` when it was longer than
    /// `MAX_NDJSON_LINE_BYTES` (then `buf` is empty and the rest of the line was skipped).
    fn read_line(&mut self) -> io::Result<Option<bool>> {
        self.buf.clear();
        let mut too_long = false;
        let mut any = false;
        loop {
            let available = match self.reader.fill_buf() {
                Ok(a) => a,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                return Ok(any.then_some(too_long));
            }
            any = true;
            let (chunk, used, end) = match available.iter().position(|b| *b == b'\n') {
                Some(i) => (&available[..i], i + 1, true),
                None => (available, available.len(), false),
            };
            if !too_long {
                if self.buf.len() + chunk.len() > MAX_NDJSON_LINE_BYTES {
                    too_long = true;
                    self.buf = Vec::new();
                } else {
                    self.buf.extend_from_slice(chunk);
                }
            }
            self.reader.consume(used);
            if end {
                return Ok(Some(too_long));
            }
        }
    }

    fn failure(&self, code: &str, en: String, fr: String) -> HouseholdItem {
        Err(HouseholdFailure::new(
            String::new(),
            self.line,
            1,
            vec![RowError::new(self.line, "", "", code, en, fr)],
        ))
    }
}

impl<R: BufRead> Iterator for NdjsonHouseholds<R> {
    type Item = HouseholdItem;

    fn next(&mut self) -> Option<HouseholdItem> {
        while !self.done {
            let too_long = match self.read_line() {
                Ok(Some(too_long)) => too_long,
                Ok(None) => {
                    self.done = true;
                    break;
                }
                Err(e) => {
                    self.error = Some(e);
                    self.done = true;
                    break;
                }
            };
            self.line += 1;
            if too_long {
                self.rows_read += 1;
                return Some(self.failure(
                    "line_too_long",
                    format!("this line is longer than {MAX_NDJSON_LINE_BYTES} bytes"),
                    format!("cette ligne dépasse {MAX_NDJSON_LINE_BYTES} octets"),
                ));
            }
            let mut bytes = self.buf.as_slice();
            if self.line == 1 {
                bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
            }
            if bytes.trim_ascii().is_empty() {
                continue;
            }
            self.rows_read += 1;
            let Ok(text) = std::str::from_utf8(bytes) else {
                return Some(self.failure(
                    "invalid_encoding",
                    invalid_encoding_en().to_owned(),
                    invalid_encoding_fr().to_owned(),
                ));
            };
            let value: Value = match serde_json::from_str(text) {
                Ok(v) => v,
                Err(e) => {
                    return Some(self.failure(
                        "malformed_json",
                        format!("this line is not valid JSON (column {})", e.column()),
                        format!("cette ligne n'est pas du JSON valide (colonne {})", e.column()),
                    ))
                }
            };
            if let Some(field) = crate::nul::first_nul(&value) {
                let e = crate::nul::nul_error(field);
                return Some(Err(HouseholdFailure::new(
                    String::new(),
                    self.line,
                    1,
                    vec![RowError::new(self.line, "", &e.field, &e.code, e.en, e.fr)],
                )));
            }
            let (mut draft, read_errors) = RegistrationDraft::from_json(&value, "");
            if draft.product.is_none() {
                draft.product.clone_from(&self.default_product);
            }
            let household = value
                .get("member_number")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let rows = HouseholdRows {
                household: household.clone(),
                first_row: self.line,
                rows: 1,
                member_rows: vec![self.line; 1 + draft.dependants.len()],
                draft,
                naming: FieldNaming::Pointers,
            };
            if read_errors.is_empty() {
                return Some(Ok(rows));
            }
            let errors = read_errors.iter().map(|e| rows.row_error(e)).collect();
            return Some(Err(HouseholdFailure {
                household,
                first_row: self.line,
                rows: 1,
                errors,
                unchecked: Some(Box::new(rows)),
            }));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::beneficiary::parse_date;
    use crate::coverage::Relationship;
    use crate::eligibility::BirthDatePrecision;
    use crate::product::Layer;

    fn today() -> NaiveDate {
        parse_date("2026-03-15").unwrap()
    }

    fn product(max_dependants: Option<u32>, child_max_age: Option<u32>) -> ProductVersion {
        ProductVersion {
            product_id: "prod-segou".into(),
            organization: "mut-segou".into(),
            layer: Layer::Primary,
            name: "Mutuelle de Ségou".into(),
            rules: vec![],
            annual_ceiling_xof: None,
            waiting_period_days: 0,
            grace_period_days: 0,
            excluded_categories: vec![],
            max_dependants,
            child_max_age,
            effective_from: parse_date("2024-01-01").unwrap(),
            version: 1,
        }
    }

    const HEADER: &str = "household,relationship,member_number,family_name,given_names,sex,birth_date,national_id,phone,region,district,commune,start_date,paid_through\n";

    /// The columns in another order, a byte order mark, CRLF line ends, quoted commas and
    /// doubled quotes, and a year-only birth.
    const GOOD: &str = "\u{FEFF}relationship,Household,family_name,given_names,sex,birth_date,national_id,phone,region,district,commune,member_number,start_date,paid_through\r\n\
principal,H1,Mensah,Kofi,M,1980-04-12,tg:niu:1234 5678 9012,+228 90 12 34 56,Maritime,Zio,Tsévié,TSV-0042,2026-01-01,2026-12-31\r\n\
spouse,H1,\"Mensah \"\"Mama\"\"\",\"Afi, Délali\",F,1984,,,,,,,,\r\n\
child,H1,Mensah,Yao,M,2015-09-30,,,,,,TSV-0042-2,2026-01-01,\r\n\
principal,H2,Traoré,\"Awa Mariam\",F,1975,ML:NINA:12345678901234K,,Ségou,Ségou,Pelengana,SGU-1,2026-02-01,\r\n\
child,H2,Traoré,Bakary,M,2012,,,,,,,,\r\n\
principal,H3,Ndiaye,Aïssatou,F,1990-07-07,,,,,,THS-7,2026-01-01,\r\n";

    fn csv(text: &[u8]) -> Vec<HouseholdItem> {
        CsvHouseholds::new(io::Cursor::new(text)).unwrap().collect()
    }

    fn codes(errors: &[RowError]) -> Vec<(u64, &str, &str)> {
        errors
            .iter()
            .map(|e| (e.row, e.field.as_str(), e.code.as_str()))
            .collect()
    }

    fn failure(item: &HouseholdItem) -> &HouseholdFailure {
        item.as_ref().err().unwrap()
    }

    #[test]
    fn households_are_read_from_any_column_order_with_rfc4180_quoting() {
        let mut reader = CsvHouseholds::new(io::Cursor::new(GOOD)).unwrap();
        let h1 = reader.next().unwrap().unwrap();
        assert_eq!(reader.rows_read(), 4, "the first row of H2 was read to end H1");
        let h2 = reader.next().unwrap().unwrap();
        let h3 = reader.next().unwrap().unwrap();
        assert!(reader.next().is_none());
        assert_eq!(reader.rows_read(), 6);
        assert!(reader.take_error().is_none());

        assert_eq!((h1.household.as_str(), h1.first_row, h1.rows), ("H1", 2, 3));
        assert_eq!(h1.member_rows, [2, 3, 4]);
        assert_eq!(h1.draft.product, None);
        assert_eq!(
            h1.draft.dependants[0].beneficiary.family_name.as_deref(),
            Some("Mensah \"Mama\"")
        );
        assert_eq!(
            h1.draft.dependants[0].beneficiary.given_names.as_deref(),
            Some("Afi, Délali")
        );
        let r = h1.validate(&product(None, Some(18)), today()).unwrap();
        assert_eq!(r.member_number.as_str(), "TSV-0042");
        assert_eq!(r.paid_through, parse_date("2026-12-31"));
        assert_eq!(r.principal.national_id.unwrap().to_compact(), "TG:NIU:123456789012");
        assert_eq!(r.principal.phone.as_deref(), Some("+22890123456"));
        assert_eq!(r.principal.locality.unwrap().commune, "Tsévié");
        assert_eq!(r.dependants[0].relationship, Relationship::Spouse);
        assert_eq!(
            r.dependants[0].beneficiary.birth_date_precision,
            BirthDatePrecision::Year
        );
        assert_eq!(r.dependants[0].member_number, None);
        assert_eq!(r.dependants[1].member_number.as_ref().unwrap().as_str(), "TSV-0042-2");

        assert_eq!((h2.first_row, h2.rows, h2.member_rows.clone()), (5, 2, vec![5, 6]));
        assert_eq!(h2.draft.principal.given_names.as_deref(), Some("Awa Mariam"));

        assert_eq!((h3.first_row, h3.rows), (7, 1));
        assert_eq!(
            h3.validate(&product(None, None), today())
                .unwrap()
                .principal
                .given_names,
            "Aïssatou"
        );
    }

    #[test]
    fn line_ends_do_not_change_rows() {
        let summary = |text: &str| -> Vec<(String, u64, u64, Vec<u64>)> {
            csv(text.as_bytes())
                .into_iter()
                .map(|item| {
                    let h = item.unwrap();
                    (h.household, h.first_row, h.rows, h.member_rows)
                })
                .collect()
        };
        let crlf = summary(GOOD);
        assert_eq!(summary(&GOOD.replace("\r\n", "\n")), crlf);
        assert_eq!(crlf[1], ("H2".to_owned(), 5, 2, vec![5, 6]));
        // A quoted last cell before CRLF reads without its `\r`.
        let file = format!(
            "{}H1,principal,TSV-1,Mensah,Kofi,M,1980,,,,,,2026-01-01,\"2026-06-30\"\r\n",
            HEADER.replace('\n', "\r\n")
        );
        let h = csv(file.as_bytes()).remove(0).unwrap();
        assert_eq!(h.draft.paid_through.as_deref(), Some("2026-06-30"));
    }

    #[test]
    fn header_problems_are_one_error_per_column() {
        let header = "household,relationship,member_number,family_name,given_names,sex,birth_date,national_id,phone,region,district,commune,start_date,start_date,paid_to\n";
        let errors = check_csv_header(header.as_bytes()).err().unwrap();
        let found: Vec<_> = errors.iter().map(|e| (e.field.as_str(), e.code.as_str())).collect();
        assert_eq!(
            found,
            [
                ("/header/start_date", "duplicate_column"),
                ("/header/paid_to", "unknown_column"),
                ("/header/paid_through", "missing_column"),
            ]
        );
        assert!(errors.iter().all(|e| !e.en.is_empty() && !e.fr.is_empty()));

        let errors = check_csv_header(&b""[..]).err().unwrap();
        assert_eq!(errors.len(), 14);
        assert!(errors.iter().all(|e| e.code == "missing_column"));
        assert_eq!(errors[0].field, "/header/household");

        let errors = check_csv_header(&b"household;relationship\n"[..]).err().unwrap();
        assert_eq!(errors[0].field, "/header/household;relationship");
        assert_eq!(errors[0].code, "unknown_column");

        let latin1 = [&b"household,relationship,r\xE9gion"[..], &HEADER.as_bytes()[22..]].concat();
        let errors = check_csv_header(latin1.as_slice()).err().unwrap();
        assert_eq!(
            (errors[0].field.as_str(), errors[0].code.as_str()),
            ("/header", "invalid_encoding")
        );
    }

    /// PostgreSQL's text cannot hold a NUL: a cell or a JSON line carrying one fails its own
    /// household, named, and never reaches a statement.
    #[test]
    fn a_nul_character_fails_its_household_only() {
        let mut file = HEADER.as_bytes().to_vec();
        file.extend_from_slice(b"H1,principal,SGU-1,Traore,Awa,F,1975,,,S\x00gou,,,2026-01-01,\n");
        file.extend_from_slice(b"H2,principal,SGU-2,Coulibaly,Moussa,M,1969,,,,,,2026-01-01,\n");
        file.extend_from_slice(b"H\x003,principal,SGU-3,Diarra,Sali,F,1971,,,,,,2026-01-01,\n");
        let items = csv(&file);
        assert_eq!(items.len(), 3);
        assert_eq!(codes(&failure(&items[0]).errors), [(2, "region", "invalid_character")]);
        assert!(items[1].is_ok());
        // In the household column too; and the household's label, written with each of its
        // errors, does not carry the NUL on.
        let third = failure(&items[2]);
        assert_eq!(codes(&third.errors), [(4, "household", "invalid_character")]);
        assert!(!third.household.contains('\0') && third.errors.iter().all(|e| !e.household.contains('\0')));

        let lines = "{\"member_number\": \"A\\u0000\", \"start_date\": \"2026-01-01\"}\n{\"member_number\": \"B\"}\n";
        let items: Vec<_> = NdjsonHouseholds::new(lines.as_bytes(), None).collect();
        assert_eq!(items.len(), 2);
        assert_eq!(
            codes(&failure(&items[0]).errors),
            [(1, "/member_number", "invalid_character")]
        );
        assert!(items[1]
            .as_ref()
            .map_or_else(|f| f.errors.iter().all(|e| e.code != "invalid_character"), |_| true));
    }

    #[test]
    fn a_latin1_line_fails_its_household_only() {
        let mut file = HEADER.as_bytes().to_vec();
        file.extend_from_slice(b"H1,principal,SGU-1,Traore,Awa,F,1975,,,,,,2026-01-01,\n");
        file.extend_from_slice(b"H1,child,,Traore,Bakary,M,2012,,,S\xE9gou,S\xE9gou,Pelengana,,\n");
        file.extend_from_slice(
            "H2,principal,SGU-2,Coulibaly,Moussa,M,1969,,,Ségou,Ségou,Pelengana,2026-01-01,\n".as_bytes(),
        );
        let items = csv(&file);
        assert_eq!(items.len(), 2);
        let f = failure(&items[0]);
        assert_eq!((f.household.as_str(), f.first_row, f.rows), ("H1", 2, 2));
        assert_eq!(
            codes(&f.errors),
            [(3, "region", "invalid_encoding"), (3, "district", "invalid_encoding")]
        );
        let h2 = items[1].as_ref().unwrap();
        assert_eq!(
            h2.draft.principal.locality.as_ref().unwrap().region.as_deref(),
            Some("Ségou")
        );
    }

    #[test]
    fn a_cut_last_line_is_truncated_and_other_short_rows_are_miscounted() {
        let body = "H1,principal,TSV-1,Mensah,Kofi,M,1980,,,,,,2026-01-01,\nH1,child,,Mensah,Yao,M,20";
        let items = csv(format!("{HEADER}{body}").as_bytes());
        assert_eq!(codes(&failure(&items[0]).errors), [(3, "", "truncated")]);
        assert_eq!(failure(&items[0]).rows, 2);

        // The same short row with its line end, or in the middle: the wrong field count.
        let items = csv(format!("{HEADER}{body}\n").as_bytes());
        assert_eq!(codes(&failure(&items[0]).errors), [(3, "", "wrong_field_count")]);
        let body = "H1,principal,TSV-1,Mensah,Kofi,M,1980,,,,,,2026-01-01\nH2,principal,TSV-2,Ba,Awa,F,1980,,,,,,2026-01-01,,extra\nH3,principal,TSV-3,Sow,Ali,M,1980,,,,,,2026-01-01,2026-12-31";
        let items = csv(format!("{HEADER}{body}").as_bytes());
        assert_eq!(codes(&failure(&items[0]).errors), [(2, "", "wrong_field_count")]);
        assert_eq!(codes(&failure(&items[1]).errors), [(3, "", "wrong_field_count")]);
        assert!(items[2].is_ok(), "a complete last line without a line end is fine");
        // Every field, the last one empty (a dependant's `paid_through`), and no line end: read.
        let body = "H3,principal,TSV-3,Sow,Ali,M,1980,,,,,,2026-01-01,";
        assert!(csv(format!("{HEADER}{body}").as_bytes())[0].is_ok());
        assert!(csv(format!("{HEADER}{body}\n").as_bytes())[0].is_ok());
        assert!(
            csv(format!("{HEADER}{body}\r").as_bytes())[0].is_ok(),
            "an old Mac line end"
        );
        // A last line too short to name its household stays with the one being read (GOOD's
        // household is its second column).
        let items = csv(format!("{GOOD}chi").as_bytes());
        assert_eq!(items.len(), 3);
        let h3 = failure(&items[2]);
        assert_eq!((h3.household.as_str(), h3.rows), ("H3", 2));
        assert_eq!(codes(&h3.errors), [(8, "", "truncated")]);
    }

    #[test]
    fn households_must_be_contiguous_and_start_with_the_principal() {
        let body = "\
H1,child,,Mensah,Yao,M,2015,,,,,,,
H2,principal,TSV-2,Ba,Awa,F,1980,,,,,,2026-01-01,
H3,principal,TSV-3,Sow,Ali,M,1980,,,,,,2026-01-01,
H2,child,,Ba,Fatou,F,2016,,,,,,,
H2,child,,Ba,Ousmane,M,2018,,,,,,,
";
        let items = csv(format!("{HEADER}{body}").as_bytes());
        assert_eq!(items.len(), 4);
        let first = failure(&items[0]);
        assert_eq!(codes(&first.errors), [(2, "relationship", "principal_first")]);
        assert!(first.unchecked.is_none());
        // H2 is met again after H3: its first run fails too, or H2 would be registered without
        // its children and, the file fixed and posted again, skipped as already registered.
        let h2 = failure(&items[1]);
        assert_eq!((h2.household.as_str(), h2.first_row, h2.rows), ("H2", 3, 1));
        assert_eq!(codes(&h2.errors), [(3, "household", "household_not_contiguous")]);
        assert!(
            h2.errors[0].message_en.contains("again at row 5"),
            "{}",
            h2.errors[0].message_en
        );
        assert!(h2.unchecked.is_some(), "its principal's row is still checked");
        assert!(items[2].is_ok());
        let again = failure(&items[3]);
        assert_eq!((again.household.as_str(), again.first_row, again.rows), ("H2", 5, 2));
        assert_eq!(codes(&again.errors), [(5, "household", "household_not_contiguous")]);
        assert!(again.errors[0].message_en.contains("already appeared at row 3"));
    }

    #[test]
    fn every_run_of_a_split_household_fails_with_its_own_row_errors() {
        // H1 in three runs, the last one with a bad row; H1 written with a trailing no-break
        // space is the same household (cells and keys are trimmed alike), so H1 is one run.
        let body = "\
H1,principal,TSV-1,Mensah,Kofi,M,1980,,,,,,2026-01-01,
H1\u{A0},child,,Mensah,Yao,M,2015,,,,,,,
H2,principal,TSV-2,Ba,Awa,F,1980,,,,,,2026-01-01,
H3,principal,TSV-3,Sow,Ali,M,1980,,,,,,2026-01-01,
H3,child,,Sow,Ina,X,2016,,,,,,,
H2,child,,Ba,Fatou,F,2016,,,,,,,
H3,child,,Sow,Ali,M,2018,,,,,,,
H4,principal,TSV-4,Diop,Modou,M,1975,,,,,,2026-01-01,
";
        let items = csv(format!("{HEADER}{body}").as_bytes());
        let summary: Vec<_> = items
            .iter()
            .map(|i| match i {
                Ok(h) => (h.household.clone(), h.first_row, h.rows, Vec::new()),
                Err(f) => (
                    f.household.clone(),
                    f.first_row,
                    f.rows,
                    codes(&f.errors)
                        .iter()
                        .map(|(r, f, c)| format!("{r} {f} {c}"))
                        .collect(),
                ),
            })
            .collect();
        let row = |h: &str, first: u64, rows: u64, errors: &[&str]| {
            (
                h.to_owned(),
                first,
                rows,
                errors.iter().map(|e| (*e).to_owned()).collect::<Vec<_>>(),
            )
        };
        assert_eq!(
            summary,
            [
                row("H1", 2, 2, &[]),
                row("H2", 4, 1, &["4 household household_not_contiguous"]),
                row("H3", 5, 2, &["5 household household_not_contiguous"]),
                row("H2", 7, 1, &["7 household household_not_contiguous"]),
                row("H3", 8, 1, &["8 household household_not_contiguous"]),
                row("H4", 9, 1, &[]),
            ]
        );
        // The rule errors of each run are reported with it once completed.
        let h3 = items[2]
            .clone()
            .unwrap_err()
            .complete(&NationalIdRules::SHIPPED, Some(&product(None, None)), today());
        assert_eq!(
            codes(&h3.errors),
            [
                (5, "household", "household_not_contiguous"),
                (6, "sex", "unknown_value")
            ]
        );
    }

    #[test]
    fn principal_row_values_hold_for_the_household() {
        let body = "\
H1,principal,TSV-1,Mensah,Kofi,M,1980,TG:NIU,,,,,2026-01-01,2026-06-30
H1,child,,Mensah,Yao,M,2015,,,,,,2026-01-01,2026-06-30
H1,child,,Mensah,Ama,F,2017,,,Maritime,,,2026-02-01,
";
        let items = csv(format!("{HEADER}{body}").as_bytes());
        let f = failure(&items[0]).clone();
        assert_eq!(
            codes(&f.errors),
            [
                (2, "national_id", "invalid_national_id"),
                (4, "start_date", "conflicts_with_principal")
            ]
        );
        // Completing the failure adds what the rules find, once per row and field.
        let f = f.complete(&NationalIdRules::SHIPPED, Some(&product(Some(1), None)), today());
        assert_eq!(
            codes(&f.errors),
            [
                (2, "national_id", "invalid_national_id"),
                (2, "household", "too_many_dependants"),
                (4, "start_date", "conflicts_with_principal"),
                (4, "district", "incomplete_locality"),
                (4, "commune", "incomplete_locality"),
            ]
        );
        assert!(f.unchecked.is_none());
    }

    #[test]
    fn rule_errors_point_at_the_member_row_and_column() {
        let body = "\
H1,principal,TSV-1,Mensah,Kofi,M,1980-04-12,,,,,,2026-01-01,
H1,child,TSV-1,Mensah,Yao,X,2010-01-01,,+228,,,,,
H1,child,,MENSAH,kofi,M,1980-04-12,TG:NIU:1,,,,,,
H1,cousin,,Mensah,Ama,F,2090,,,,,,,
";
        let items = csv(format!("{HEADER}{body}").as_bytes());
        let rows = items[0].clone().unwrap();
        let f = rows.validate(&product(None, Some(12)), today()).unwrap_err();
        assert_eq!(
            codes(&f.errors),
            [
                (3, "member_number", "duplicate"),
                (3, "sex", "unknown_value"),
                (3, "phone", "invalid_phone"),
                (4, "national_id", "invalid_national_id"),
                (5, "relationship", "unknown_value"),
                (5, "birth_date", "birth_date_in_future"),
            ]
        );
        let body = "\
H1,principal,TSV-1,Mensah,Kofi,M,1980-04-12,,,,,,2026-01-01,
H1,child,,Mensah,Yao,M,2010-01-01,,,,,,,
H1,other,,MENSAH,kofi,M,1980-04-12,,,,,,,
";
        let rows = csv(format!("{HEADER}{body}").as_bytes()).remove(0).unwrap();
        let f = rows.validate(&product(Some(1), Some(12)), today()).unwrap_err();
        assert_eq!(
            codes(&f.errors),
            [
                (2, "household", "too_many_dependants"),
                (3, "birth_date", "dependant_age_limit"),
                (4, "family_name", "duplicate_member"),
            ]
        );
        // Storage's own verdicts are placed the same way.
        let rows = csv(format!("{HEADER}{body}").as_bytes()).remove(0).unwrap();
        let taken = FieldError::new("/member_number", "member_number_taken", "taken", "pris");
        assert_eq!(
            codes(&rows.failure(&[taken]).errors),
            [(2, "member_number", "member_number_taken")]
        );
    }

    #[test]
    fn blank_rows_are_skipped_and_rows_are_counted() {
        let body = "\n,,,,,,,,,,,,,\nH1,principal,TSV-1,Mensah,Kofi,M,1980,,,,,,2026-01-01,\n\n  ,, ,,,,,,,,,,,\nH1,child,,Mensah,Yao,M,2015,,,,,,,\n";
        let file = format!("{HEADER}{body}");
        let mut reader = CsvHouseholds::new(io::Cursor::new(file)).unwrap();
        let h1 = reader.next().unwrap().unwrap();
        assert_eq!(h1.rows, 2);
        assert_eq!(h1.member_rows, [4, 7]);
        assert!(reader.next().is_none());
        assert_eq!(reader.rows_read(), 2);
    }

    #[test]
    fn an_oversized_household_is_bounded() {
        let mut file = String::from(HEADER);
        file.push_str("H1,principal,TSV-1,Mensah,Kofi,M,1980,,,,,,2026-01-01,\n");
        for i in 0..150 {
            file.push_str(&format!("H1,child,,Mensah,Enfant {i},M,2015,,,,,,,\n"));
        }
        file.push_str("H2,principal,TSV-2,Ba,Awa,F,1980,,,,,,2026-01-01,\n");
        let items = csv(file.as_bytes());
        let f = failure(&items[0]);
        assert_eq!(f.rows, 151);
        assert_eq!(codes(&f.errors), [(103, "household", "too_many_dependants")]);
        assert_eq!(f.unchecked.as_ref().unwrap().draft.dependants.len(), MAX_DEPENDANTS);
        assert!(items[1].is_ok());
    }

    /// Gives `limit` bytes in all (both reads of the file), then fails, as a broken disk would.
    struct Broken<'a> {
        data: &'a [u8],
        at: usize,
        limit: usize,
    }

    impl Read for Broken<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.limit == 0 {
                return Err(io::Error::new(io::ErrorKind::ConnectionReset, "gone"));
            }
            let n = buf.len().min(self.limit).min(self.data.len() - self.at);
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            self.limit -= n;
            Ok(n)
        }
    }

    impl Seek for Broken<'_> {
        fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
            let SeekFrom::Start(at) = to else {
                return Err(io::Error::other("only from the start"));
            };
            self.at = usize::try_from(at).map_err(io::Error::other)?.min(self.data.len());
            Ok(at)
        }
    }

    #[test]
    fn a_read_failure_stops_the_job_without_a_half_household() {
        let text = GOOD.replace("\r\n", "\n");
        let cut = text.find("principal,H3").unwrap() - 5;
        // Failing during the first read (split households): nothing is returned at all.
        let broken = Broken {
            data: text.as_bytes(),
            at: 0,
            limit: cut,
        };
        let mut reader = CsvHouseholds::new(broken).unwrap();
        assert_eq!(reader.by_ref().count(), 0);
        assert_eq!(reader.take_error().unwrap().kind(), io::ErrorKind::ConnectionReset);
        // During the second: what was read whole is returned, not the household being read.
        let header = text.find('\n').unwrap() + 1;
        let broken = Broken {
            data: text.as_bytes(),
            at: 0,
            limit: text.len() + cut - header,
        };
        let mut reader = CsvHouseholds::new(broken).unwrap();
        let items: Vec<_> = reader.by_ref().collect();
        assert_eq!(items.len(), 1, "H1 only: H2 was still being read");
        assert_eq!(reader.take_error().unwrap().kind(), io::ErrorKind::ConnectionReset);

        // A line longer than any person's stops the job before anything is registered.
        let mut file = format!("{GOOD}H4,principal,TSV-4,Mensah,Kofi,M,1980,,,,,,2026-01-01,\n");
        file.push_str(&"x".repeat(3 << 20));
        let mut reader = CsvHouseholds::new(io::Cursor::new(file)).unwrap();
        assert!(reader.next().is_none());
        let e = reader.take_error().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("line 9"), "{e}");
    }

    #[test]
    fn a_quote_left_open_fails_its_row_and_swallows_nothing() {
        // A quote never closed on H1's child: the rows after it are read as they are, each on its
        // own line's number.
        let body = "\
H1,principal,TSV-1,Mensah,Kofi,M,1980,,,,,,2026-01-01,
H1,child,,\"Mensah,Yao,M,2015,,,,,,,
H2,principal,TSV-2,Ba,Awa,F,1980,,,,,,2026-01-01,
H2,child,,Ba,\"Fatou, dite \"\"Fa\"\"\",F,2016,,,,,,,
H3,principal,TSV-3,Sow,Ali,M,1980,,,,,,2026-01-01,
";
        let mut reader = CsvHouseholds::new(io::Cursor::new(format!("{HEADER}{body}"))).unwrap();
        let items: Vec<_> = reader.by_ref().collect();
        assert_eq!(reader.rows_read(), 5);
        assert_eq!(items.len(), 3);
        let h1 = failure(&items[0]);
        assert_eq!((h1.household.as_str(), h1.first_row, h1.rows), ("H1", 2, 2));
        assert_eq!(codes(&h1.errors), [(3, "family_name", "unclosed_quote")]);
        let h2 = items[1].clone().unwrap();
        assert_eq!(h2.member_rows, [4, 5]);
        assert_eq!(
            h2.draft.dependants[0].beneficiary.given_names.as_deref(),
            Some("Fatou, dite \"Fa\"")
        );
        assert_eq!(items[2].as_ref().unwrap().first_row, 6);

        // A line break inside a quoted cell: the cell's first line fails its household, and the
        // next line is a row of its own, reported as such.
        let body = "H1,principal,TSV-1,Mensah,\"Kofi\nAfi\",M,1980,,,,,,2026-01-01,\nH2,principal,TSV-2,Ba,Awa,F,1980,,,,,,2026-01-01,\n";
        let items = csv(format!("{HEADER}{body}").as_bytes());
        assert_eq!(items.len(), 3);
        let h1 = failure(&items[0]);
        assert_eq!((h1.household.as_str(), h1.rows), ("H1", 1));
        assert_eq!(codes(&h1.errors), [(2, "given_names", "unclosed_quote")]);
        assert_eq!(codes(&failure(&items[1]).errors), [(3, "", "wrong_field_count")]);
        assert_eq!(items[2].as_ref().unwrap().first_row, 4);

        // At the end of a file without a line end, the quote was cut.
        let items = csv(format!("{HEADER}H1,principal,TSV-1,Mensah,\"Ko").as_bytes());
        assert_eq!(codes(&failure(&items[0]).errors), [(2, "", "truncated")]);
    }

    #[test]
    fn a_byte_order_mark_before_a_quoted_header_is_skipped() {
        let quoted: Vec<String> = CSV_COLUMNS.iter().map(|c| format!("\"{c}\"")).collect();
        let file = format!(
            "\u{FEFF}{}\r\nH1,principal,TSV-1,Mensah,Kofi,M,1980,,,,,,2026-01-01,\r\n",
            quoted.join(",")
        );
        assert_eq!(check_csv_header(file.as_bytes()), Ok(()));
        let h1 = csv(file.as_bytes()).remove(0).unwrap();
        assert_eq!((h1.household.as_str(), h1.first_row), ("H1", 2));
    }

    #[test]
    fn storage_verdicts_land_on_the_member_at_fault() {
        let body = "\
H1,principal,TSV-1,Mensah,Kofi,M,1980,,,,,,2026-01-01,
H1,spouse,,Mensah,Afi,F,1982,,,,,,,
H1,child,TSV-1-2,Mensah,Yao,M,2015,,,,,,,
";
        let rows = csv(format!("{HEADER}{body}").as_bytes()).remove(0).unwrap();
        let conflict = member_conflict("member_number_taken", 2);
        assert_eq!(split_member_conflict(&conflict), ("member_number_taken", Some(2)));
        assert_eq!(split_member_conflict("already_covered"), ("already_covered", None));
        let taken = FieldError::new("/member_number", "member_number_taken", "taken", "pris");
        let covered = FieldError::new("", "already_covered", "covered", "couvert");
        assert_eq!(
            codes(&rows.member_failure(2, &taken).errors),
            [(4, "member_number", "member_number_taken")]
        );
        assert_eq!(
            codes(&rows.member_failure(0, &taken).errors),
            [(2, "member_number", "member_number_taken")]
        );
        assert_eq!(
            codes(&rows.member_failure(1, &covered).errors),
            [(3, "", "already_covered")]
        );
        let f = rows.member_failure(1, &covered);
        assert_eq!((f.household.as_str(), f.first_row, f.rows), ("H1", 2, 3));
        // The whole household: no column.
        let contention = FieldError::new("", "concurrent_change", "again", "encore");
        assert_eq!(
            codes(&rows.failure(&[contention]).errors),
            [(2, "", "concurrent_change")]
        );

        let mut json = rows.clone();
        json.naming = FieldNaming::Pointers;
        json.member_rows = vec![7; 3];
        assert_eq!(
            codes(&json.member_failure(2, &taken).errors),
            [(7, "/dependants/1/member_number", "member_number_taken")]
        );
        assert_eq!(
            codes(&json.member_failure(0, &taken).errors),
            [(7, "/member_number", "member_number_taken")]
        );
        assert_eq!(
            codes(&json.member_failure(0, &covered).errors),
            [(7, "/principal", "already_covered")]
        );
    }

    const NDJSON: &str = r#"{"member_number": "SGU-1", "start_date": "2026-01-01", "principal": {"family_name": "Traoré", "given_names": "Awa", "sex": "F", "birth_date": "1975", "locality": {"region": "Ségou", "district": "Ségou", "commune": "Pelengana"}}, "dependants": [{"relationship": "child", "family_name": "Traoré", "given_names": "Bakary", "sex": "M", "birth_date": "2012-01-01", "birth_date_precision": "year"}]}

{"member_number": "SGU-2", "start_date": "2026-01-01", "principal": {"family_name": "Coulibaly"
{"product": "prod-other", "member_number": "SGU-3", "start_date": 20260101, "principal": {"family_name": "Diarra", "given_names": "Oumar", "sex": "M", "birth_date": "1970", "nickname": "Ouma"}}
[1, 2]
{"member_number": "SGU-5", "start_date": "2026-01-01", "principal": {"family_name": "Keita", "given_names": "Sira", "sex": "F", "birth_date": "1988-03-03"}, "dependants": [{"relationship": "child", "family_name": "Keita", "given_names": "Adama", "sex": "M", "birth_date": "2001-05-05"}]}
"#;

    #[test]
    fn ndjson_lines_are_households() {
        let mut file = NDJSON.as_bytes().to_vec();
        file.extend_from_slice(b"{\"member_number\": \"S\xE9gou\"}\n");
        let mut reader = NdjsonHouseholds::new(file.as_slice(), Some("prod-segou".into()));
        let items: Vec<_> = reader.by_ref().collect();
        assert_eq!(reader.rows_read(), 6, "the blank line is not a row");
        assert_eq!(items.len(), 6);

        let good = items[0].clone().unwrap();
        assert_eq!((good.household.as_str(), good.first_row, good.rows), ("SGU-1", 1, 1));
        assert_eq!(good.draft.product.as_deref(), Some("prod-segou"));
        let r = good.validate(&product(None, None), today()).unwrap();
        assert_eq!(r.principal.family_name, "Traoré");
        assert_eq!(
            r.dependants[0].beneficiary.birth_date_precision,
            BirthDatePrecision::Year
        );

        let bad = failure(&items[1]);
        assert_eq!(codes(&bad.errors), [(3, "", "malformed_json")]);
        assert_eq!(bad.household, "");

        let typed = failure(&items[2]).clone();
        assert_eq!(typed.household, "SGU-3");
        assert_eq!(
            typed.unchecked.as_ref().unwrap().draft.product.as_deref(),
            Some("prod-other")
        );
        assert_eq!(
            codes(&typed.errors),
            [
                (4, "/start_date", "invalid_type"),
                (4, "/principal/nickname", "unknown_field")
            ]
        );
        let typed = typed.complete(&NationalIdRules::SHIPPED, None, today());
        assert_eq!(
            codes(&typed.errors),
            [
                (4, "/start_date", "invalid_type"),
                (4, "/principal/nickname", "unknown_field")
            ],
            "the missing start date is the mistyped one, not a second error"
        );

        assert_eq!(codes(&failure(&items[3]).errors), [(5, "", "invalid_type")]);

        let adult_child = items[4].clone().unwrap();
        assert_eq!(adult_child.first_row, 6);
        let f = adult_child.validate(&product(None, Some(21)), today()).unwrap_err();
        assert_eq!(
            codes(&f.errors),
            [(6, "/dependants/0/birth_date", "dependant_age_limit")]
        );
        assert_eq!(f.household, "SGU-5");

        assert_eq!(codes(&failure(&items[5]).errors), [(7, "", "invalid_encoding")]);
    }

    #[test]
    fn ndjson_lines_too_long_are_skipped_whole() {
        let mut file = format!("{{\"member_number\": \"{}\"}}\n", "9".repeat(MAX_NDJSON_LINE_BYTES));
        file.push_str("{\"member_number\": \"SGU-1\"}");
        let items: Vec<_> = NdjsonHouseholds::new(io::BufReader::with_capacity(1024, file.as_bytes()), None).collect();
        assert_eq!(items.len(), 2);
        assert_eq!(codes(&failure(&items[0]).errors), [(1, "", "line_too_long")]);
        let second = items[1].clone().unwrap();
        assert_eq!((second.household.as_str(), second.first_row), ("SGU-1", 2));
        let f = second.validate(&product(None, None), today()).unwrap_err();
        assert_eq!(
            codes(&f.errors),
            [(2, "/start_date", "required"), (2, "/principal", "required")]
        );
    }
}
