//! The NDJSON reader: one registration body per line.

use std::io::{self, BufRead};

use serde_json::Value;

use super::*;

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
                // JSON is UTF-8 (RFC 8259): the program that wrote the file must write it so.
                return Some(
                    self.failure(
                        "invalid_encoding",
                        "this line is not valid UTF-8, which JSON must be: write the file in UTF-8".to_owned(),
                        "cette ligne n'est pas en UTF-8 valide, alors que le JSON doit l'être : écrivez le fichier en UTF-8"
                            .to_owned(),
                    ),
                );
            };
            // As a `/v1` body: a member named twice in one object is refused, not read one way.
            let value: Value = match crate::json_members::parse(text.as_bytes()) {
                Ok(v) => v,
                Err(e) if e.to_string().starts_with(crate::json_members::DUPLICATE_MEMBER) => {
                    return Some(self.failure(
                        "malformed_json",
                        format!("this line names one member twice in an object (column {})", e.column()),
                        format!(
                            "cette ligne contient deux fois la même clé dans un objet (colonne {})",
                            e.column()
                        ),
                    ))
                }
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
            let errors = super::bounded(read_errors.iter().map(|e| rows.row_error(e)).collect(), &household);
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
