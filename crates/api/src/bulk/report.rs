//! A bulk job's report as CSV, one line per row error or possible duplicate: `passerelle import`
//! writes it next to the file, and `GET /v1/registrations/batches/{id}/errors` answers it to
//! `Accept: text/csv` (`report_body`, streamed from storage, by row), so that a clerk gets the
//! same lines either way.

use std::collections::VecDeque;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use passerelle_domain::batch::{RowDuplicate, RowError};
use passerelle_domain::error::StoreError;
use passerelle_domain::ports::{BatchCounts, BatchJob, ReportKey, Store, MAX_STORED_BATCH_ERRORS};

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
            "fiche créée sous {}, qui ressemble à {} (mêmes noms, sexe et date de naissance) : à vérifier avant \
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

/// The last line of a job's report when it lists fewer errors or possible duplicates than the
/// job found (`counts`, read before the report): past the 100,000 of each a job keeps, or for a
/// job that an earlier release, which kept 1,000, worked on. Without it such a report would look
/// whole. Its row is empty, its code `report_truncated`. A running job's report may list more
/// than the counts read before it: that is no gap.
pub fn not_kept_line(counts: &BatchCounts, listed: (i64, i64), lang: Lang, separator: &str) -> Option<String> {
    let (errors, duplicates) = (counts.errors_total, counts.possible_duplicates_total);
    let (listed_errors, listed_duplicates) = listed;
    if errors <= listed_errors && duplicates <= listed_duplicates {
        return None;
    }
    let message = match lang {
        Lang::En => format!(
            "the job found {errors} errors and {duplicates} possible duplicates; this report lists {listed_errors} \
             and {listed_duplicates} of them (a job keeps the first {MAX_STORED_BATCH_ERRORS} of each): correct the \
             file and post it again, or run passerelle import, whose report lists them all"
        ),
        Lang::Fr => format!(
            "erreurs trouvées par la tâche : {errors}, doublons possibles : {duplicates} ; ce rapport en liste \
             respectivement {listed_errors} et {listed_duplicates} (une tâche ne conserve que les {MAX_STORED_BATCH_ERRORS} \
             premières erreurs et les {MAX_STORED_BATCH_ERRORS} premiers doublons) : corrigez le fichier et envoyez-le de nouveau, ou utilisez passerelle import, dont le rapport les liste tous"
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

/// Items read from storage per step of a CSV report.
const REPORT_STEP: u32 = 1000;

/// One of a report's two sorted lists, read a page at a time.
struct ReportSource<T> {
    buffered: VecDeque<(ReportKey, T)>,
    after: Option<ReportKey>,
    exhausted: bool,
}

impl<T> ReportSource<T> {
    fn new() -> Self {
        ReportSource {
            buffered: VecDeque::new(),
            after: None,
            exhausted: false,
        }
    }

    fn needs_page(&self) -> bool {
        self.buffered.is_empty() && !self.exhausted
    }

    fn take_page(&mut self, page: Vec<(ReportKey, T)>) {
        self.exhausted = page.len() < REPORT_STEP as usize;
        if let Some((key, _)) = page.last() {
            self.after = Some(*key);
        }
        self.buffered.extend(page);
    }

    /// The row of the next item; `None` when none is left, and also when the next page is yet
    /// to be read, which `ready` tells apart.
    fn next_row(&self) -> Option<u64> {
        self.buffered.front().map(|(key, _)| key.row)
    }

    fn ready(&self) -> bool {
        !self.needs_page()
    }
}

struct ReportStream {
    store: Arc<dyn Store>,
    id: String,
    lang: Lang,
    separator: &'static str,
    header_sent: bool,
    /// The job's counts when the report was asked for, to tell whether it lists them all.
    counts: BatchCounts,
    /// Errors and possible duplicates written so far.
    listed: (i64, i64),
    errors: ReportSource<RowError>,
    duplicates: ReportSource<RowDuplicate>,
}

impl ReportStream {
    /// The next piece of the body: lines merged by row (an error before a possible duplicate of
    /// the same row) until either list needs its next page; `None` at the end.
    async fn next_chunk(&mut self) -> Result<Option<String>, StoreError> {
        let mut chunk = String::new();
        if !self.header_sent {
            self.header_sent = true;
            chunk.push_str(&header(self.separator));
        }
        loop {
            if self.errors.needs_page() {
                let page = self
                    .store
                    .batch_errors(&self.id, self.errors.after, REPORT_STEP)
                    .await?;
                self.errors.take_page(page);
            }
            if self.duplicates.needs_page() {
                let page = self
                    .store
                    .batch_duplicates(&self.id, self.duplicates.after, REPORT_STEP)
                    .await?;
                self.duplicates.take_page(page);
            }
            // Both lists are ready: each holds its next item or has none left.
            while self.errors.ready() && self.duplicates.ready() {
                let error_first = match (self.errors.next_row(), self.duplicates.next_row()) {
                    (None, None) => {
                        if let Some(last) = not_kept_line(&self.counts, self.listed, self.lang, self.separator) {
                            chunk.push_str(&last);
                        }
                        // Once only: the next call finds the lists ended and the chunk empty.
                        self.counts = BatchCounts::default();
                        return Ok((!chunk.is_empty()).then_some(chunk));
                    }
                    (Some(e), Some(d)) => e <= d,
                    (e, _) => e.is_some(),
                };
                if error_first {
                    if let Some((_, e)) = self.errors.buffered.pop_front() {
                        chunk.push_str(&error_line(&e, self.lang, self.separator));
                        self.listed.0 += 1;
                    }
                } else if let Some((_, d)) = self.duplicates.buffered.pop_front() {
                    chunk.push_str(&duplicate_line(&d, self.lang, self.separator));
                    self.listed.1 += 1;
                }
            }
            if !chunk.is_empty() {
                return Ok(Some(chunk));
            }
        }
    }
}

/// A job's whole report as CSV, read from storage a page at a time as the body is sent, so that
/// 100,000 errors are never held at once. Should storage fail part-way, the body stops without
/// its end (the client sees a broken transfer, never a short report that looks whole); and a
/// report that lists fewer than the job found ends with a line that says so.
pub fn report_body(store: Arc<dyn Store>, job: &BatchJob, lang: Lang, separator: &'static str) -> Body {
    let state = ReportStream {
        store,
        id: job.id.clone(),
        lang,
        separator,
        header_sent: false,
        counts: job.counts,
        listed: (0, 0),
        errors: ReportSource::new(),
        duplicates: ReportSource::new(),
    };
    let chunks = futures::stream::try_unfold(state, |mut s| async move {
        match s.next_chunk().await {
            Ok(Some(chunk)) => Ok(Some((Bytes::from(chunk), s))),
            Ok(None) => Ok(None),
            Err(e) => {
                tracing::warn!(error = %e, "a bulk job's CSV report stopped part-way");
                Err(std::io::Error::other(e.to_string()))
            }
        }
    });
    Body::from_stream(chunks)
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
        assert_eq!(not_kept_line(&counts, (100, 100), Lang::En, ","), None, "all listed");
        assert_eq!(
            not_kept_line(&counts, (120, 100), Lang::En, ","),
            None,
            "found since: no gap"
        );
        counts.errors_total = 101;
        let line = not_kept_line(&counts, (100, 100), Lang::En, ";").unwrap();
        assert!(line.starts_with(";;;report_truncated;"), "{line}");
        assert!(line.contains("found 101 errors and 100 possible duplicates"), "{line}");
        assert!(line.contains("lists 100 and 100 of them"), "{line}");
        counts.errors_total = 3;
        counts.possible_duplicates_total = 250;
        let line = not_kept_line(&counts, (3, 100), Lang::Fr, ",").unwrap();
        assert!(
            line.contains("doublons possibles : 250") && line.ends_with("\"\n"),
            "{line}"
        );
    }
}
