//! `passerelle import FILE --org ID --product ID`: a bulk registration run locally against the
//! configured database, by the same worker as uploads, with a progress bar. Every row error goes
//! to `FILE.errors.csv` (row,household,field,code,message); the job is recorded like an upload's.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use passerelle_domain::batch::{check_csv_header, RowDuplicate, RowError};
use passerelle_domain::organization::{OrgId, OrgKind};
use passerelle_domain::ports::{BatchCounts, BatchFormat, BatchJob, BatchStatus, NewBatch, WriteContext};

use crate::bulk::report;
use crate::bulk::worker::{self, Ended, Observer};
use crate::config::Config;
use crate::extract::Caller;
use crate::problem::Lang;
use crate::routes::registrations::own_product;

pub struct ImportArgs {
    pub file: PathBuf,
    pub org: String,
    pub product: Option<String>,
    pub format: Option<BatchFormat>,
    pub lang: Lang,
}

/// How a message about the command line begins: such a stop exits with 2, as the argument
/// parser's do (README, Commands), where a job that failed exits with 1.
pub const COMMAND_LINE_ERROR: &str = "command line error: ";

fn usage(message: impl std::fmt::Display) -> String {
    format!("{COMMAND_LINE_ERROR}{message}")
}

/// Runs the import; `Err` (a non-zero exit) when it could not start or the job failed. A job
/// that read every row is a success, whatever failed in it: the errors file says what.
pub async fn run(config: Config, args: ImportArgs) -> Result<(), String> {
    let file = std::fs::canonicalize(&args.file).map_err(|e| usage(format!("{}: {e}", args.file.display())))?;
    if !file.is_file() {
        return Err(usage(format!("{}: not a file", args.file.display())));
    }
    let format = match args.format {
        Some(f) => f,
        None => {
            format_from_name(&file).ok_or_else(|| usage("--format: say csv or ndjson (the file name does not tell)"))?
        }
    };
    let db = crate::app::connect(&config).await?;
    crate::app::require_schema(&db).await?;
    let state = crate::app::state(config, &db).await?;
    // An import killed earlier left its job `running`; no server may be running to fail it (the
    // import is often all there is), so the next import does, as a server's sweeper would.
    crate::bulk::runner::sweep(&state).await;
    let org = OrgId::parse(&args.org).ok_or_else(|| usage("--org: not an organisation id"))?;
    let found = state
        .store
        .get_organization(org.as_str())
        .await
        .map_err(|e| e.to_string())?;
    if found.as_ref().map(|o| o.kind) != Some(OrgKind::Mutuelle) {
        return Err(usage(format!("--org {org}: no such mutuelle")));
    }
    if found.is_some_and(|o| o.deactivated_at.is_some()) {
        return Err(usage(format!("--org {org}: this mutuelle is deactivated")));
    }
    let worker = format!("import-{}", uuid::Uuid::now_v7().simple());
    let caller = Caller {
        org,
        kind: OrgKind::Mutuelle,
        subject: "passerelle-import".into(),
        scopes: Vec::new(),
        request_id: worker.clone(),
        trace_parent: None,
    };
    let product = match (&args.product, format) {
        (None, BatchFormat::Csv) => return Err(usage("--product is required for a CSV file")),
        (None, BatchFormat::Ndjson) => None,
        (Some(id), _) => match own_product(&state, &caller, id, None)
            .await
            .map_err(|e| e.to_string())?
        {
            Some(p) if p.layer.is_mutuelle_layer() => Some(p.product_id),
            _ => {
                return Err(usage(format!(
                    "--product {id}: not a complementary or primary product of {}",
                    caller.org
                )))
            }
        },
    };
    // The report is written with the file's separator: a spreadsheet in a French locale that
    // saved the file with semicolons shows a comma-separated report as a single column.
    let separator = match format {
        BatchFormat::Csv => check_header(&file, args.lang)?,
        BatchFormat::Ndjson => ",",
    };
    // Everything that can fail is done before the job is created `running`: a job created and
    // then abandoned would stay `running` until a sweeper failed it.
    let errors_path = errors_path_of(&file);
    let mut observer = Progress::new(&file, format, &errors_path, args.lang, separator)?;
    let ctx = WriteContext {
        organization: caller.org.to_string(),
        subject: caller.subject.clone(),
        request_id: worker.clone(),
        trace_parent: None,
        at: state.clock.now(),
        idempotency: None,
    };
    let batch = NewBatch {
        id: uuid::Uuid::now_v7().to_string(),
        product,
        format,
        spool_path: file.to_string_lossy().into_owned(),
        csv_separator: (format == BatchFormat::Csv).then(|| if separator == ";" { ';' } else { ',' }),
        worker: Some(worker.clone()),
    };
    let job = match state.store.create_batch(&ctx, &batch).await {
        Ok(written) => written.value,
        Err(e) => {
            drop(observer);
            let _ = std::fs::remove_file(&errors_path);
            return Err(e.to_string());
        }
    };
    // Said first, so that an import killed later has named its job (its report is the job's).
    crate::stdout::say(&format!("job {} started", job.id));
    let ended = worker::process(&state, &job, &worker, &mut observer).await;
    observer.finish()?;
    let job = state
        .store
        .get_batch(&job.id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the job disappeared")?;
    print_summary(&job, &errors_path, args.lang);
    // The job's last events (its end) are durable in the queue, not yet chained, and no server
    // may run to chain them: chain them now, so that the log is whole when the import returns.
    // A failure leaves them queued for the next process's chainer, as after a crash.
    if let Err(e) = state.store.flush_audit().await {
        eprintln!("the audit log will list this import's last events once a server runs: {e}");
    }
    db.close().await;
    match ended {
        Ended::Finished(BatchStatus::Completed) => Ok(()),
        Ended::Finished(_) => Err("the import failed: see above".into()),
        Ended::Lost => Err("the job was taken from this import (stale, failed by a server)".into()),
        Ended::Released | Ended::TurnOver => Err("the import stopped before the end of the file".into()),
        Ended::Interrupted(e) => Err(format!(
            "the database connection was lost while writing ({e}): import the same file again, households \
             already registered are skipped"
        )),
        Ended::StoreDown(e) => Err(format!("the database could not be written: {e}")),
    }
}

fn format_from_name(file: &Path) -> Option<BatchFormat> {
    match file.extension()?.to_str()?.to_ascii_lowercase().as_str() {
        "csv" => Some(BatchFormat::Csv),
        "ndjson" | "jsonl" => Some(BatchFormat::Ndjson),
        _ => None,
    }
}

/// `FILE.errors.csv` beside the file.
pub fn errors_path_of(file: &Path) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(".errors.csv");
    file.with_file_name(name)
}

/// The file's separator, once its header is known good; the faults' messages in `lang`, as
/// the rows' are.
fn check_header(file: &Path, lang: Lang) -> Result<&'static str, String> {
    let reader = File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let separator = |delimiter| if delimiter == b';' { ";" } else { "," };
    check_csv_header(reader).map(separator).map_err(|errors| {
        let lines: Vec<String> = errors
            .iter()
            .map(|e| format!("  {} {}: {}", e.field, e.code, lang.pick(&e.en, &e.fr)))
            .collect();
        format!(
            "the header is not that of a registration file; nothing was imported:\n{}",
            lines.join("\n")
        )
    })
}

/// Lines in the file, for the progress bar's length (quoted line breaks make it an estimate).
fn count_rows(file: &Path, format: BatchFormat) -> u64 {
    let Ok(f) = File::open(file) else { return 0 };
    let mut reader = BufReader::with_capacity(1 << 20, f);
    let (mut lines, mut last) = (0u64, b'\n');
    while let Ok(buf) = reader.fill_buf() {
        if buf.is_empty() {
            break;
        }
        lines += buf.iter().filter(|b| **b == b'\n').count() as u64;
        last = buf[buf.len() - 1];
        let n = buf.len();
        reader.consume(n);
    }
    if last != b'\n' {
        lines += 1;
    }
    match format {
        BatchFormat::Csv => lines.saturating_sub(1),
        BatchFormat::Ndjson => lines,
    }
}

struct Progress {
    bar: ProgressBar,
    errors: BufWriter<File>,
    failed: Option<std::io::Error>,
    lang: Lang,
    /// `,` or `;`, as the imported file.
    separator: &'static str,
}

impl Progress {
    fn new(
        file: &Path,
        format: BatchFormat,
        errors_path: &Path,
        lang: Lang,
        separator: &'static str,
    ) -> Result<Progress, String> {
        let bar = ProgressBar::with_draw_target(Some(count_rows(file, format)), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} rows  {per_sec}  eta {eta}  {msg}")
                .map_err(|e| e.to_string())?,
        );
        let out = File::create(errors_path)
            .map_err(|e| format!("cannot create the errors file {}: {e}", errors_path.display()))?;
        let mut errors = BufWriter::new(out);
        write!(errors, "{}", report::header(separator)).map_err(|e| format!("{}: {e}", errors_path.display()))?;
        Ok(Progress {
            bar,
            errors,
            failed: None,
            lang,
            separator,
        })
    }

    fn finish(mut self) -> Result<(), String> {
        self.bar.finish_and_clear();
        if let Some(e) = self.failed.take() {
            return Err(format!("cannot write the errors file: {e}"));
        }
        self.errors
            .flush()
            .map_err(|e| format!("cannot write the errors file: {e}"))
    }
}

/// A text cell of a CSV file that people open in a spreadsheet: one the spreadsheet would run as
/// a formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage return) comes back after a
/// `'`, which spreadsheets show as text; any other as it is. For text only: a negative number
/// would stop being one.
pub fn neutralise_formula(s: &str) -> std::borrow::Cow<'_, str> {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        std::borrow::Cow::Owned(format!("'{s}"))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// RFC 4180: quoted when it holds a comma, a quote or a line break, and also a semicolon, which
/// a spreadsheet in a French locale takes for the separator (`X;=1+1` would give it a formula
/// cell); a formula neutralised (`neutralise_formula`: the household key comes from the
/// uploaded file).
pub(crate) fn csv_field(s: &str) -> String {
    let s = neutralise_formula(s).into_owned();
    if s.contains([',', '"', '\n', '\r', ';']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

impl Observer for Progress {
    fn progress(&mut self, counts: &BatchCounts) {
        // Called once per group, after its lines: an import killed later has them on disk.
        if let Err(err) = self.errors.flush() {
            self.failed.get_or_insert(err);
        }
        let done = u64::try_from(counts.rows_processed).unwrap_or_default();
        if done > self.bar.length().unwrap_or_default() {
            self.bar.set_length(done);
        }
        self.bar.set_position(done);
        self.bar.set_message(format!(
            "{} created, {} skipped, {} rows failed",
            counts.households_created, counts.households_skipped, counts.rows_failed
        ));
    }

    fn errors(&mut self, errors: &[RowError]) {
        for e in errors {
            let line = report::error_line(e, self.lang, self.separator);
            if let Err(err) = self.errors.write_all(line.as_bytes()) {
                self.failed.get_or_insert(err);
            }
        }
    }

    fn duplicates(&mut self, found: &[RowDuplicate]) {
        for d in found {
            let line = report::duplicate_line(d, self.lang, self.separator);
            if let Err(err) = self.errors.write_all(line.as_bytes()) {
                self.failed.get_or_insert(err);
            }
        }
    }
}

/// The summary on stdout; the job holds the same, so an early-closed reader loses nothing.
fn print_summary(job: &BatchJob, errors_path: &Path, lang: Lang) {
    use crate::stdout::say;
    let c = &job.counts;
    say(&format!("job {} {}", job.id, job.status.as_str()));
    // A job that did not complete did not read the whole file: it has processed rows only.
    let read = job.rows_total.map(|n| format!("{n} read, ")).unwrap_or_default();
    say(&format!(
        "rows: {read}{} processed, {} failed",
        c.rows_processed, c.rows_failed
    ));
    say(&format!(
        "households: {} created, {} skipped",
        c.households_created, c.households_skipped
    ));
    say(&format!("errors: {} (in {})", c.errors_total, errors_path.display()));
    if c.possible_duplicates_total > 0 {
        say(&format!(
            "possible duplicates: {} (in {}, code possible_duplicate)",
            c.possible_duplicates_total,
            errors_path.display()
        ));
    }
    if let Some(f) = &job.failure {
        say(&format!("failure: {} — {}", f.code, lang.pick(&f.en, &f.fr)));
    }
}
