//! Splitting a CSV line into cells, RFC 4180 quoting, as the `csv` crate reads a record, and
//! noting what a spreadsheet never writes (a stray quote, a cell left open).

use ::csv::ByteRecord;

/// Splits one line into `record` at `delimiter` with RFC 4180 quoting, as the `csv` crate reads
/// a record: a field that starts with `"` runs to the next lone `"` (`""` is a quote) and what
/// follows it up to the delimiter is kept; a `"` further in an unquoted field is kept as it is.
/// True when the line ends inside a quoted field.
pub(super) fn split_fields(line: &[u8], record: &mut ByteRecord, delimiter: u8) -> bool {
    split_fields_checked(line, record, delimiter).open
}

pub(super) struct SplitLine {
    /// The line ends inside a quoted field.
    pub(super) open: bool,
    /// The first field holding a quote that neither opens nor closes it (`Ba"`, `"Ba"x`),
    /// which no spreadsheet writes: most likely the end of a cell whose first line was read as
    /// a row of its own.
    pub(super) stray_quote: Option<usize>,
    /// Every quoted field holding a line break ends, as a spreadsheet writes it, with its quote
    /// right before a delimiter or the end of the row.
    pub(super) broken_cells_close_cleanly: bool,
}

fn split_fields_checked(line: &[u8], record: &mut ByteRecord, delimiter: u8) -> SplitLine {
    let mut split = ResumableSplit::default();
    record.clear();
    split.more(line, record, delimiter)
}

/// A split that goes on where it stopped: a line that ends inside a quoted cell is read on
/// with the lines after it, each scanned once. Splitting the joined lines again from their
/// first byte for each line added cost each line with a forgotten quote the square of the
/// lines read ahead (fuzzing: 2 MiB of `x","y` lines, 9.5 s).
pub(super) struct ResumableSplit {
    /// Where the next byte to read is in the line.
    next: usize,
    /// The field being read, its buffer kept from field to field.
    field: Vec<u8>,
    /// The line so far ended inside `field`, a quoted field pushed to the record unfinished.
    open: bool,
    clean: bool,
    stray_quote: Option<usize>,
}

impl Default for ResumableSplit {
    fn default() -> Self {
        ResumableSplit {
            next: 0,
            field: Vec::new(),
            open: false,
            clean: true,
            stray_quote: None,
        }
    }
}

impl ResumableSplit {
    /// Splits `line[self.next..]` on into `record`, which holds what the split read before:
    /// `line` is the line split before with more appended. Once a split ended inside a quoted
    /// field, no byte it read depends on what follows (a quote at the very end would have
    /// closed it), so going on gives what splitting the whole line anew gives.
    pub(super) fn more(&mut self, line: &[u8], record: &mut ByteRecord, delimiter: u8) -> SplitLine {
        let mut i = self.next;
        let mut resumed = std::mem::take(&mut self.open);
        if resumed {
            record.truncate(record.len() - 1);
        }
        loop {
            let position = record.len();
            let mut quoted = resumed;
            if !resumed {
                self.field.clear();
                quoted = line.get(i) == Some(&b'"');
                if quoted {
                    i += 1;
                }
            }
            resumed = false;
            while let Some(&b) = line.get(i) {
                match (quoted, b) {
                    (true, b'"') if line.get(i + 1) == Some(&b'"') => {
                        self.field.push(b'"');
                        i += 1;
                    }
                    (true, b'"') => {
                        quoted = false;
                        let closes = line.get(i + 1).is_none_or(|next| *next == delimiter);
                        if !closes {
                            self.stray_quote.get_or_insert(position);
                            if self.field.contains(&b'\n') {
                                self.clean = false;
                            }
                        }
                    }
                    (false, b) if b == delimiter => break,
                    (false, b'"') => {
                        self.stray_quote.get_or_insert(position);
                        self.field.push(b'"');
                    }
                    _ => self.field.push(b),
                }
                i += 1;
            }
            record.push_field(&self.field);
            if quoted {
                self.next = i;
                self.open = true;
                return self.outcome(true);
            }
            if i >= line.len() {
                self.next = i;
                return self.outcome(false);
            }
            i += 1;
        }
    }

    fn outcome(&self, open: bool) -> SplitLine {
        SplitLine {
            open,
            stray_quote: self.stray_quote,
            broken_cells_close_cleanly: self.clean,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn fields(record: &ByteRecord) -> Vec<Vec<u8>> {
        record.iter().map(<[u8]>::to_vec).collect()
    }

    proptest! {
        /// Going on with each line joined to a line left open splits as splitting the joined
        /// lines anew does: every cell, whether it is still open, the first stray quote and
        /// whether broken cells close cleanly.
        #[test]
        fn going_on_splits_as_splitting_anew(
            lines in proptest::collection::vec("[a,;\"]{0,8}", 1..8),
            semicolon in any::<bool>(),
        ) {
            let delimiter = if semicolon { b';' } else { b',' };
            let mut joined = lines[0].as_bytes().to_vec();
            let mut record = ByteRecord::new();
            let mut split = ResumableSplit::default();
            let mut went_on = split.more(&joined, &mut record, delimiter);
            for line in &lines[1..] {
                if !went_on.open {
                    break;
                }
                joined.push(b'\n');
                joined.extend_from_slice(line.as_bytes());
                went_on = split.more(&joined, &mut record, delimiter);
                let mut anew = ByteRecord::new();
                let fresh = split_fields_checked(&joined, &mut anew, delimiter);
                prop_assert_eq!(fields(&record), fields(&anew));
                prop_assert_eq!(went_on.open, fresh.open);
                prop_assert_eq!(went_on.stray_quote, fresh.stray_quote);
                prop_assert_eq!(went_on.broken_cells_close_cleanly, fresh.broken_cells_close_cleanly);
            }
        }
    }
}
