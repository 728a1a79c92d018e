//! The CSV reader: one row per person, households of consecutive rows, read twice (first for
//! the households split in several runs).

use std::collections::hash_map::{Entry, RandomState};
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::io::{self, BufRead, Read, Seek, SeekFrom};

use ::csv::ByteRecord;

use super::csv_split::{split_fields, ResumableSplit, SplitLine};
use super::*;
use crate::beneficiary::{compact_cell_error, split_compact, BeneficiaryDraft, LocalityDraft, NationalIdDraft, Sex};
use crate::coverage::Relationship;
use crate::registration::DependantDraft;

/// A registration file's lines, numbered from 1 as a spreadsheet numbers its rows: a row whose
/// quoted cell holds line breaks (Alt+Enter) spans several lines but counts as one, so that every
/// later row keeps the number the clerk sees (`CsvHouseholds::join_quoted_lines`).
struct Lines<R> {
    reader: io::BufReader<R>,
    /// The number of the row in `buf`.
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

    /// The next line into `buf`, without its line end; `Some(false)` when it
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
                break false;
            }
            // `\n`, `\r\n` or a lone `\r` (a Macintosh "CSV" from a spreadsheet) ends a line.
            let (chunk, used, end) = match available.iter().position(|b| matches!(b, b'\n' | b'\r')) {
                Some(i) => (&available[..i], i + 1, Some(available[i])),
                None => (available, available.len(), None),
            };
            if (self.buf.len() + chunk.len()) as u64 > MAX_CSV_RECORD_BYTES {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    super::LineTooLong { line: self.line + 1 },
                ));
            }
            self.buf.extend_from_slice(chunk);
            self.reader.consume(used);
            self.offset += used as u64;
            match end {
                Some(b'\r') => {
                    // The `\n` of a `\r\n`, perhaps in the next read.
                    let next = loop {
                        match self.reader.fill_buf() {
                            Ok(next) => break next.first().copied(),
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                            Err(e) => return Err(e),
                        }
                    };
                    if next == Some(b'\n') {
                        self.reader.consume(1);
                        self.offset += 1;
                    }
                    break true;
                }
                Some(_) => break true,
                None => {}
            }
        };
        self.line += 1;
        Ok(Some(terminated))
    }
}

impl<R: Read + Seek> Lines<R> {
    /// Back to `offset`, the start of line `line + 1`: within the read buffer when it still
    /// holds it, since a seek empties the buffer and every line with a forgotten quote (each
    /// read ahead, then back) would read 256 KiB again (fuzzing: 2 MiB of such lines, 4.5 s).
    fn rewind(&mut self, offset: u64, line: u64) -> io::Result<()> {
        match i64::try_from(offset).ok().zip(i64::try_from(self.offset).ok()) {
            Some((to, from)) => self.reader.seek_relative(to - from)?,
            None => {
                self.reader.seek(SeekFrom::Start(offset))?;
            }
        }
        self.offset = offset;
        self.line = line;
        Ok(())
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
    /// The field holding a stray quote (`SplitLine::stray_quote`).
    stray_quote: Option<usize>,
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
    /// Positions of columns without a name: a spreadsheet exports the empty columns its sheet
    /// once used beyond the table (`…,paid_through,,`). Their cells must be empty.
    unnamed: Vec<usize>,
    /// `,`, or `;` for a file whose header is split by semicolons alone: what a spreadsheet in a
    /// French locale writes as "CSV", the decimal comma taking the comma's place.
    delimiter: u8,
}

impl Header {
    fn cell<'a>(&self, record: &'a ByteRecord, column: usize) -> Option<&'a [u8]> {
        record.get(self.positions[column])
    }

    /// The row's household key; a row too short to reach its household column stays with the
    /// household being read (`current`). An accented key is read composed (NFC): a file pasted
    /// together from two programs wrote `Ménage-É1` composed on one row and decomposed on the
    /// next, and split the household.
    fn key(&self, record: &Record, current: Option<&[u8]>) -> Vec<u8> {
        match self.cell(&record.fields, HOUSEHOLD) {
            Some(raw) => {
                let raw = trim_cell(raw);
                match std::str::from_utf8(raw) {
                    Ok(text) if !text.is_ascii() => unicode_normalization::UnicodeNormalization::nfc(text)
                        .collect::<String>()
                        .into_bytes(),
                    _ => raw.to_vec(),
                }
            }
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
/// missing, unknown or repeated column is one error at `/header/<column>`. Gives the file's
/// separator, `,` or `;`, in which `passerelle import` writes its error report so that the same
/// spreadsheet opens both.
pub fn check_csv_header<R: Read>(reader: R) -> Result<u8, Vec<FieldError>> {
    read_header(&mut Lines::new(reader)).map(|h| h.delimiter)
}

/// Most unnamed columns holding a value that a row's `unnamed_column` error names.
const UNNAMED_COLUMNS_NAMED: usize = 5;

/// The `unnamed_column` error of a row whose cells at `filled` (positions, in order) hold a value
/// under no name in the header, or `None` when there are none.
fn unnamed_columns_error(filled: &[usize], line: u64, household: &str) -> Option<RowError> {
    let letters: Vec<String> = filled
        .iter()
        .take(UNNAMED_COLUMNS_NAMED)
        .map(|&p| column_letter(p))
        .collect();
    let (en_more, fr_more) = match filled.len().saturating_sub(UNNAMED_COLUMNS_NAMED) {
        0 => (String::new(), String::new()),
        more => (format!(" and {more} more"), format!(" et {more} autres")),
    };
    let list = letters.join(", ");
    match filled.len() {
        0 => None,
        1 => Some(RowError::new(
            line,
            household,
            "",
            "unnamed_column",
            format!("column {list} holds a value but has no name in the header: name it, or move the value to its column"),
            format!("la colonne {list} contient une valeur mais n'a pas de nom dans l'en-tête : nommez-la, ou déplacez la valeur dans sa colonne"),
        )),
        _ => Some(RowError::new(
            line,
            household,
            "",
            "unnamed_column",
            format!("columns {list}{en_more} hold values but have no name in the header: name them, or move the values to their columns"),
            format!("les colonnes {list}{fr_more} contiennent des valeurs mais n'ont pas de nom dans l'en-tête : nommez-les, ou déplacez les valeurs dans leurs colonnes"),
        )),
    }
}

/// A column's letter as a spreadsheet shows it: 0 is `A`, 25 `Z`, 26 `AA`.
pub(super) fn column_letter(position: usize) -> String {
    let mut letters = Vec::new();
    let mut n = position + 1;
    while n > 0 {
        n -= 1;
        letters.push(b'A' + (n % 26) as u8);
        n /= 26;
    }
    letters.reverse();
    String::from_utf8(letters).unwrap_or_default()
}

/// Most unknown header columns named; the others are one `too_many_errors` at `/header`.
const MAX_UNKNOWN_COLUMNS_NAMED: usize = 20;

fn header_error(column: &str, code: &str, en: impl Into<String>, fr: impl Into<String>) -> FieldError {
    let escaped = column.replace('~', "~0").replace('/', "~1");
    FieldError::new(format!("/header/{escaped}"), code, en, fr)
}

fn read_header<R: Read>(lines: &mut Lines<R>) -> Result<Header, Vec<FieldError>> {
    let mut header = ByteRecord::new();
    let mut delimiter = b',';
    let mut empty_file = false;
    match lines.next_line() {
        Ok(Some(_)) => {
            // A byte order mark is skipped before the line is split, so that a quoted first
            // column name reads as quoted.
            let line = lines.buf.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&lines.buf);
            if split_fields(line, &mut header, delimiter) {
                return Err(vec![FieldError::new(
                    "/header",
                    "unclosed_quote",
                    "a quote opened in the header is not closed on its line: a column name holds a line break (Alt+Enter), or a quote is forgotten",
                    "un guillemet ouvert dans l'en-tête n'est pas refermé sur sa ligne : un nom de colonne contient un saut de ligne (Alt+Entrée), ou un guillemet est oublié",
                )]);
            }
            if header.len() == 1 {
                let mut by_semicolon = ByteRecord::new();
                split_fields(line, &mut by_semicolon, b';');
                if by_semicolon.len() > 1 {
                    (header, delimiter) = (by_semicolon, b';');
                }
            }
        }
        Ok(None) => empty_file = true,
        Err(e) if e.get_ref().is_some_and(|i| i.is::<super::LineTooLong>()) => {
            return Err(vec![FieldError::new(
                "/header",
                "line_too_long",
                format!("the first line is longer than {MAX_CSV_RECORD_BYTES} bytes, which no registration file's header is"),
                format!("la première ligne dépasse {MAX_CSV_RECORD_BYTES} octets, ce qu'aucun en-tête de fichier d'inscription ne fait"),
            )])
        }
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
    // A first line naming no column at all is not a header with typos but no header: a file
    // saved without its header row, or one of another kind. One error for the line; naming each
    // cell as an unknown column would repeat a person's name, national id and phone number.
    // An empty file, or a blank first line, is no header either: not fourteen missing columns.
    let known = |name: &String| CSV_COLUMNS.iter().any(|c| c.eq_ignore_ascii_case(name));
    if !names.iter().any(known) {
        let json = names.first().is_some_and(|n| n.starts_with('{'));
        // Excel's separator hint (`sep=;`), which some exports put before the header.
        let excel_hint = names
            .first()
            .is_some_and(|n| n.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("sep=")));
        let blank = names.iter().all(String::is_empty);
        // A spreadsheet's "Text (tab-separated)" export: the header whole in one cell.
        let tabs = names.iter().any(|n| {
            n.split('\t')
                .filter(|cell| CSV_COLUMNS.iter().any(|c| c.eq_ignore_ascii_case(cell.trim())))
                .count()
                > 1
        });
        let columns = CSV_COLUMNS.join(",");
        return Err(vec![if empty_file {
            FieldError::new(
                "/header",
                "no_header",
                format!("the file is empty: it must begin with the header, {columns}"),
                format!("le fichier est vide : il doit commencer par l'en-tête, {columns}"),
            )
        } else if blank {
            FieldError::new(
                "/header",
                "no_header",
                format!("the first line is blank: it must be the header, {columns}"),
                format!("la première ligne est vide : ce doit être l'en-tête, {columns}"),
            )
        } else if excel_hint {
            FieldError::new(
                "/header",
                "no_header",
                format!("the first line is a spreadsheet's separator hint (sep=…), not the header: remove that line (the separator is recognised without it); the header is {columns}"),
                format!("la première ligne est l'indication de séparateur d'un tableur (sep=…), pas l'en-tête : retirez cette ligne (le séparateur est reconnu sans elle) ; l'en-tête est {columns}"),
            )
        } else if tabs {
            FieldError::new(
                "/header",
                "no_header",
                format!("the columns are separated by tabs: save the file as CSV (commas or semicolons), whose header is {columns}"),
                format!("les colonnes sont séparées par des tabulations : enregistrez le fichier au format CSV (virgules ou points-virgules), dont l'en-tête est {columns}"),
            )
        } else if json {
            FieldError::new(
                "/header",
                "no_header",
                "the first line is a JSON object, not a CSV header: send a JSON lines file as application/x-ndjson",
                "la première ligne est un objet JSON, pas un en-tête CSV : envoyez un fichier JSON lines en application/x-ndjson",
            )
        } else {
            FieldError::new(
                "/header",
                "no_header",
                format!("the first line names none of the columns: it must be the header, {columns}"),
                format!("la première ligne ne nomme aucune des colonnes : ce doit être l'en-tête, {columns}"),
            )
        }]);
    }
    let mut errors = Vec::new();
    let mut positions = [usize::MAX; 14];
    let mut unnamed = Vec::new();
    // Unknown names, each once; the first `MAX_UNKNOWN_COLUMNS_NAMED` are named, the others
    // counted: a 1 MiB header of 200,000 made-up names is a few errors, not 170 MB of them.
    let mut unknown = std::collections::HashSet::new();
    let mut unknown_not_named = 0;
    for (position, name) in names.iter().enumerate() {
        if name.is_empty() {
            unnamed.push(position);
            continue;
        }
        match CSV_COLUMNS.iter().position(|c| c.eq_ignore_ascii_case(name)) {
            Some(column) if positions[column] != usize::MAX => errors.push(header_error(
                CSV_COLUMNS[column],
                "duplicate_column",
                "this column appears more than once in the header",
                "cette colonne figure plusieurs fois dans l'en-tête",
            )),
            Some(column) => positions[column] = position,
            None if !unknown.insert(name.as_str()) => {}
            None if unknown.len() > MAX_UNKNOWN_COLUMNS_NAMED => unknown_not_named += 1,
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
    // A column named three times, or an unknown one twice, is still one error.
    let mut seen = std::collections::HashSet::new();
    errors.retain(|e| seen.insert(e.field.clone()));
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
    if unknown_not_named > 0 {
        errors.push(FieldError::too_many("/header", unknown_not_named, false));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Header {
        positions,
        width: header.len(),
        unnamed,
        delimiter,
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
            let Some(mut terminated) = self.lines.next_line()? else {
                return Ok(None);
            };
            let mut splitting = ResumableSplit::default();
            self.fields.clear();
            let mut split = splitting.more(&self.lines.buf, &mut self.fields, self.header.delimiter);
            if split.open && terminated {
                if let Some((last_terminated, joined)) = self.join_quoted_lines(splitting)? {
                    (split, terminated) = (joined, last_terminated);
                }
            }
            if !split.open && self.fields.iter().all(|f| trim_cell(f).is_empty()) {
                continue;
            }
            return Ok(Some(Record {
                fields: self.fields.clone(),
                line: self.lines.line,
                unterminated: !terminated,
                open_quote: split.open,
                stray_quote: split.stray_quote,
            }));
        }
    }

    /// A line that ends inside a quoted cell, read on with the lines after it as a spreadsheet
    /// reads a cell holding line breaks (Alt+Enter): taken as one row when the quote closes
    /// within `MAX_CELL_LINE_BREAKS` more lines, right before a separator or the row's end (as
    /// a spreadsheet writes it), and its cells with line breaks hold fewer separators than a
    /// row. `buf` and `fields` then hold it: its cell fails as `line_break_in_cell` (or the row
    /// as `wrong_field_count`), at the row number a spreadsheet shows, and the rows after it
    /// keep theirs. Otherwise a quote was forgotten: the line stands alone (`unclosed_quote`)
    /// and the next one is read as a row. A forgotten quote is closed by the quote that opens a
    /// later quoted cell, which its text follows; taking it for a cell would lose the rows it
    /// swallowed, named nowhere. The rest of a cell refused so ends in a stray quote
    /// (`stray_quote`), never registered. `split` is the first line's, gone on from with each
    /// line read ahead. Gives whether the row's last line ended with a line
    /// end, and how the row split.
    fn join_quoted_lines(&mut self, mut split: ResumableSplit) -> io::Result<Option<(bool, SplitLine)>> {
        let (offset, line) = (self.lines.offset, self.lines.line);
        let first = std::mem::take(&mut self.lines.buf);
        let mut joined = first.clone();
        let mut outcome = None;
        for _ in 0..MAX_CELL_LINE_BREAKS {
            let Some(terminated) = self.lines.next_line()? else {
                break;
            };
            if (joined.len() + 1 + self.lines.buf.len()) as u64 > MAX_CSV_RECORD_BYTES {
                break;
            }
            joined.push(b'\n');
            joined.extend_from_slice(&self.lines.buf);
            let line_split = split.more(&joined, &mut self.fields, self.header.delimiter);
            if !line_split.open {
                if line_split.broken_cells_close_cleanly && self.broken_cells_hold_text_only() {
                    outcome = Some((terminated, line_split));
                }
                break;
            }
        }
        match outcome {
            Some(_) => {
                self.lines.buf = joined;
                self.lines.line = line;
            }
            None => {
                self.lines.rewind(offset, line)?;
                split_fields(&first, &mut self.fields, self.header.delimiter);
                self.lines.buf = first;
            }
        }
        Ok(outcome)
    }

    /// Whether the cells of `fields` that hold a line break hold fewer separators in all than a
    /// row: a forgotten quote that swallowed a whole line brings that line's separators. (A
    /// swallow that stops within a line ends on the quote that opens a later quoted cell, which
    /// text follows: `broken_cells_close_cleanly`.)
    fn broken_cells_hold_text_only(&self) -> bool {
        let delimiter = self.header.delimiter;
        let separators: usize = self
            .fields
            .iter()
            .filter(|cell| cell.contains(&b'\n'))
            .map(|cell| cell.iter().filter(|b| **b == delimiter).count())
            .sum();
        separators + 1 < self.header.width
    }

    /// The first read: which household keys come back after another household's rows. Then
    /// back to the first row.
    fn find_split_keys(&mut self) -> io::Result<SplitKeys> {
        let hasher = RandomState::new();
        let mut seen = HashSet::new();
        let mut again = HashMap::new();
        let mut current: Option<Vec<u8>> = None;
        while let Some(record) = self.next_record()? {
            if std::str::from_utf8(&self.lines.buf).is_err() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    super::NotUtf8 { line: record.line },
                ));
            }
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
                "a quote opened in this cell is not closed (a quote forgotten?): the row stops at the end of its line, and the next line is read as a row of its own",
                "un guillemet ouvert dans cette cellule n'est pas refermé (un guillemet oublié ?) : la cellule s'arrête à la fin de la ligne du fichier, et la ligne suivante du fichier est lue comme une nouvelle ligne",
            ))
        } else if n != width {
            Some(RowError::new(
                line,
                household,
                "",
                "wrong_field_count",
                format!("this row has {n} fields; the header has {width}"),
                format!("cette ligne n'a pas le même nombre de champs que l'en-tête ({n} au lieu de {width})"),
            ))
        } else {
            record.stray_quote.map(|position| RowError::new(
                line,
                household,
                self.header.column_at(position).unwrap_or_default(),
                "stray_quote",
                "this cell holds a quote that neither opens nor closes it, which a spreadsheet never writes: most likely the end of a cell typed over several lines whose first line was read as a row of its own, or a quote typed by hand; nothing of this row is registered",
                "cette cellule contient un guillemet qui ne l'ouvre ni ne la ferme, ce qu'un tableur n'écrit jamais : sans doute la fin d'une cellule écrite sur plusieurs lignes du fichier, dont le début a été lu comme une ligne distincte, ou un guillemet saisi à la main ; rien de cette ligne n'est inscrit",
            ))
        };
        if let Some(e) = shape_error {
            return CsvRow {
                line,
                cells: None,
                errors: vec![e],
            };
        }
        let mut errors = Vec::new();
        // One error a row, naming the first few columns: a header of half a million empty names
        // must not make half a million errors of each row.
        let filled: Vec<usize> = self
            .header
            .unnamed
            .iter()
            .copied()
            .filter(|&position| fields.get(position).is_some_and(|raw| !trim_cell(raw).is_empty()))
            .collect();
        if let Some(error) = unnamed_columns_error(&filled, line, household) {
            errors.push(error);
        }
        let mut cells: [Option<String>; 14] = Default::default();
        for (column, cell) in cells.iter_mut().enumerate() {
            let raw = self.header.cell(fields, column).unwrap_or_default();
            match std::str::from_utf8(raw) {
                Ok(text) if crate::nul::contains_nul(text) => {
                    let e = crate::nul::nul_error(CSV_COLUMNS[column]);
                    errors.push(RowError::new(line, household, &e.field, &e.code, e.en, e.fr));
                }
                Ok(text) if text.contains(['\n', '\r']) => errors.push(RowError::new(
                    line,
                    household,
                    CSV_COLUMNS[column],
                    "line_break_in_cell",
                    "this cell holds a line break (Alt+Enter in a spreadsheet): a cell of a registration file is one line; remove the line break",
                    "cette cellule contient un saut de ligne (Alt+Entrée dans un tableur) : une cellule d'un fichier d'inscription tient sur une ligne ; retirez le saut de ligne",
                )),
                Ok(text) => {
                    let text = canonical_case(column, text.trim());
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

/// A relationship or sex written in another case than the codes (`Principal`, `f`: a
/// spreadsheet's AutoCorrect capitalises a cell's first letter) reads as the code; any other
/// value is left for validation to refuse.
fn canonical_case(column: usize, text: &str) -> &str {
    let codes: &[&'static str] = match column {
        RELATIONSHIP => &Relationship::ALL.map(Relationship::as_str),
        SEX => &Sex::ALL.map(Sex::as_str),
        _ => return text,
    };
    codes
        .iter()
        .find(|code| code.eq_ignore_ascii_case(text))
        .copied()
        .unwrap_or(text)
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
            "chaque ligne doit indiquer son ménage",
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
                let relationship = cells[RELATIONSHIP].as_deref().unwrap_or_default();
                // A value of its own (`Chef de ménage`) is named as unknown, not as a household
                // whose principal's row is missing.
                let known =
                    relationship.is_empty() || crate::coverage::Relationship::parse_dependant(relationship).is_some();
                errors.push(if known {
                    RowError::new(
                        first.line,
                        &household,
                        CSV_COLUMNS[RELATIONSHIP],
                        "principal_first",
                        "a household starts with its principal's row (relationship principal)",
                        "un ménage commence par la ligne de son adhérent principal (relationship principal)",
                    )
                } else {
                    RowError::new(
                        first.line,
                        &household,
                        CSV_COLUMNS[RELATIONSHIP],
                        "unknown_value",
                        "must be principal, spouse, child, parent or other; a household starts with its principal's row",
                        "doit être principal, spouse, child, parent ou other ; un ménage commence par la ligne de son adhérent principal",
                    )
                });
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
                    format!("{name} vaut pour tout le ménage et se lit sur la ligne de l'adhérent principal : laissez cette cellule vide ici ou reprenez la valeur de l'adhérent principal"),
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
            errors: super::bounded(errors, &household),
            household,
            first_row: group.first_row,
            rows: group.rows,
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
            let e = compact_cell_error(&compact, "");
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
