//! Processes one claimed job: a blocking thread parses the file into households and feeds a
//! bounded channel; this task validates each household against its product and registers them in
//! groups (one transaction per group, one savepoint per household), writing the progress and the
//! row errors in each group's transaction, and at least every second.

use std::collections::HashMap;
use std::io::{self, BufReader};
use std::time::{Duration, Instant};

use passerelle_adapters::Backend;
use passerelle_domain::batch::{
    split_member_conflict, CsvHouseholds, HouseholdFailure, HouseholdItem, HouseholdRows, LineTooLong,
    NdjsonHouseholds, NotUtf8, RowDuplicate, RowError,
};
use passerelle_domain::beneficiary::parse_date;
use passerelle_domain::error::{FieldError, StoreError};
use passerelle_domain::organization::{OrgId, OrgKind};
use passerelle_domain::ports::{
    BatchCounts, BatchEnd, BatchFailure, BatchFormat, BatchJob, BatchStatus, BatchUpdate, HouseholdOutcome,
    NewHousehold, Registered, WriteContext,
};
use passerelle_domain::product::{select_version_or_first, ProductVersion};
use passerelle_domain::registration::RegistrationDraft;
use tokio::sync::mpsc;

use crate::extract::Caller;
use crate::routes::registrations::{household_of, validate_registration};
use crate::state::AppState;

/// Households registered in one transaction: enough that round trips and commits stop
/// dominating; fewer on SQLite, whose single writer connection other requests wait for.
pub fn group_households(backend: Backend) -> usize {
    match backend {
        Backend::Postgres => 1000,
        Backend::Sqlite => 200,
    }
}
/// Progress is written at least this often, which is also the job's heartbeat.
pub const REPORT_EVERY: Duration = Duration::from_secs(1);
/// Households parsed ahead of the registering task.
const CHANNEL_HOUSEHOLDS: usize = 512;

/// Row errors held before they are reported, whatever the time: a file that is wrong on every row
/// is read faster than a second's errors fit in memory (a million rows of eight errors held
/// half a gigabyte).
const ERRORS_BEFORE_A_REPORT: usize = 5_000;

/// Follows a job as it goes: `passerelle import` draws its progress bar and writes every error
/// to its CSV file; the server's runner needs nothing.
pub trait Observer: Send {
    fn progress(&mut self, _counts: &BatchCounts) {}
    /// Every row error, in row order within each report (the job stores only the first ones).
    fn errors(&mut self, _errors: &[RowError]) {}
    /// Every possible duplicate, in row order within each report (likewise).
    fn duplicates(&mut self, _found: &[RowDuplicate]) {}
}

pub struct Silent;

impl Observer for Silent {}

/// How processing ended for this worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The job reached `completed` or `failed` and says so in storage.
    Finished(BatchStatus),
    /// The job was taken from this worker (failed as stale): it stopped without writing more.
    Lost,
    /// The replica is stopping: the job went back to the queue at a group boundary, its progress
    /// stored, for the next claim to resume.
    Released,
    /// The job ran its turn while another organisation's job waited: it went back to the queue
    /// at a group boundary, its progress stored, and resumes at its next turn.
    TurnOver,
    /// The connection was lost while a group committed: the group and its progress may be
    /// stored or not, and the counts this worker holds may be behind. It writes nothing more; the
    /// runner hands the job back to the queue, to resume from the progress that was stored.
    Interrupted(String),
    /// Storage could not be written; the job stays `running` until the sweeper fails it.
    StoreDown(String),
}

/// The pauses before each new try of a write that failed without writing anything (the
/// connection lost, a failover, a pool exhausted for a moment, a serialization failure): about
/// eight seconds in all, well within the stale delay, before the job is failed.
const RETRY_PAUSES: [Duration; 5] = [
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
];

/// Whether a failed write wrote nothing and may be tried again as it was.
fn retryable(e: &StoreError) -> bool {
    matches!(e, StoreError::Unavailable(_) | StoreError::Contention(_))
}

enum Parsed {
    Household(Box<HouseholdItem>),
    End {
        rows_read: u64,
        failure: Option<BatchFailure>,
    },
}

/// Why one try at a write ended without its update.
enum Stop {
    /// Processing ends so.
    Ended(Ended),
    /// Storage refused or failed the write; nothing of it was written.
    Failed(StoreError),
    /// The job's organisation was deactivated on another replica.
    Deactivated,
}

/// The two parsers, for the reading thread.
trait Households: Iterator<Item = HouseholdItem> {
    fn rows(&self) -> u64;
    fn error(&mut self) -> Option<io::Error>;
}

impl<R: io::Read + io::Seek> Households for CsvHouseholds<R> {
    fn rows(&self) -> u64 {
        self.rows_read()
    }

    fn error(&mut self) -> Option<io::Error> {
        self.take_error()
    }
}

impl<R: io::BufRead> Households for NdjsonHouseholds<R> {
    fn rows(&self) -> u64 {
        self.rows_read()
    }

    fn error(&mut self) -> Option<io::Error> {
        self.take_error()
    }
}

fn feed(mut households: impl Households, tx: &mpsc::Sender<Parsed>) {
    for item in households.by_ref() {
        if tx.blocking_send(Parsed::Household(Box::new(item))).is_err() {
            return;
        }
    }
    let end = Parsed::End {
        rows_read: households.rows(),
        failure: households.error().map(|e| {
            let inner = e.get_ref();
            if let Some(not_utf8) = inner.and_then(|i| i.downcast_ref::<NotUtf8>()) {
                not_utf8.failure()
            } else if let Some(too_long) = inner.and_then(|i| i.downcast_ref::<LineTooLong>()) {
                too_long.failure()
            } else {
                // The disk failed under the upload: its own words are English, and say no more
                // than its kind.
                tracing::warn!(error = %e, "a bulk upload could not be read");
                unreadable(
                    &format!("the upload could not be read from disk: {}", e.kind()),
                    "le fichier déposé n'a pas pu être lu sur le disque",
                )
            }
        }),
    };
    let _ = tx.blocking_send(end);
}

/// The reading thread: a file that cannot be opened or whose header went wrong ends at once. A
/// CSV file is read twice (its households split in several runs fail whole): it is on disk.
fn read_file(path: String, format: BatchFormat, product: Option<String>, tx: mpsc::Sender<Parsed>) {
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) => {
            let _ = tx.blocking_send(Parsed::End {
                rows_read: 0,
                failure: Some(unreadable(
                    &format!("the uploaded file cannot be opened: {}", e.kind()),
                    "le fichier déposé ne peut pas être ouvert",
                )),
            });
            return;
        }
    };
    match format {
        BatchFormat::Csv => match CsvHouseholds::new(file) {
            Ok(households) => feed(households, &tx),
            Err(errors) => {
                let codes: Vec<String> = errors.iter().map(|e| format!("{} {}", e.field, e.code)).collect();
                let codes = codes.join(", ");
                let _ = tx.blocking_send(Parsed::End {
                    rows_read: 0,
                    failure: Some(unreadable(
                        &format!("the header cannot be read: {codes}"),
                        &format!("l'en-tête ne peut pas être lu : {codes}"),
                    )),
                });
            }
        },
        BatchFormat::Ndjson => feed(
            NdjsonHouseholds::new(BufReader::with_capacity(256 * 1024, file), product),
            &tx,
        ),
    }
}

struct Job<'a> {
    state: &'a AppState,
    job: &'a BatchJob,
    worker: &'a str,
    caller: Caller,
    /// The caller's products by id (`None`: not theirs, or no such product), read once.
    products: HashMap<String, Option<Vec<ProductVersion>>>,
    counts: BatchCounts,
    /// Households validated and waiting for their group's transaction, with their rows.
    group: Vec<NewHousehold>,
    group_rows: Vec<HouseholdRows>,
    /// Row errors of the households decided since the last report.
    errors: Vec<RowError>,
    last_report: Instant,
    /// When this turn's first household was taken (`runner.rs`, turns).
    turn_since: Option<Instant>,
}

/// Runs a job already claimed by `worker` to its end.
pub async fn process(state: &AppState, job: &BatchJob, worker: &str, observer: &mut dyn Observer) -> Ended {
    let request_id = format!("batch-{}", job.id);
    let Some(org) = OrgId::parse(&job.organization) else {
        return Ended::StoreDown("the job's organisation id is not valid".into());
    };
    let caller = Caller {
        org,
        kind: OrgKind::Mutuelle,
        subject: job.subject.clone(),
        scopes: Vec::new(),
        request_id,
        trace_parent: None,
    };
    let (tx, mut rx) = mpsc::channel(CHANNEL_HOUSEHOLDS);
    let (path, format, product) = (job.spool_path.clone(), job.format, job.product.clone());
    tokio::task::spawn_blocking(move || read_file(path, format, product, tx));
    let mut run = Job {
        state,
        job,
        worker,
        caller,
        products: HashMap::new(),
        // A job handed back (by a stopping replica, or by a sweeper after its worker died)
        // resumes: its counts go on, and the rows it already processed (registered, skipped or
        // failed, and reported) are read past.
        counts: job.counts,
        group: Vec::new(),
        group_rows: Vec::new(),
        errors: Vec::new(),
        last_report: Instant::now(),
        turn_since: None,
    };
    let mut read_past = u64::try_from(job.counts.rows_processed).unwrap_or(0);
    loop {
        let wait = REPORT_EVERY.saturating_sub(run.last_report.elapsed());
        let next = match tokio::time::timeout(wait, rx.recv()).await {
            Ok(next) => next,
            Err(_) => {
                // Nothing parsed for a second (a slow disk, a huge household, a large CSV file's
                // first reading): report anyway, it is the job's heartbeat; and a replica that
                // is stopping hands the job back here too, everything read being written.
                if let Some(ended) = run.flush(observer, None).await {
                    return ended;
                }
                if run.handing_back() {
                    return run.release().await;
                }
                continue;
            }
        };
        let ended = match next {
            Some(Parsed::Household(item)) if read_past > 0 => {
                let rows = match item.as_ref() {
                    Ok(rows) => rows.rows,
                    Err(failure) => failure.rows,
                };
                read_past = read_past.saturating_sub(rows);
                None
            }
            Some(Parsed::Household(item)) => {
                // The turn counts from the first household written, not from reading past those
                // written in earlier turns: a turn always moves the job on.
                run.turn_since.get_or_insert_with(Instant::now);
                run.take(*item).await;
                let due = run.group.len() >= group_households(state.backend)
                    || run.errors.len() >= ERRORS_BEFORE_A_REPORT
                    || run.last_report.elapsed() >= REPORT_EVERY;
                if due {
                    match run.flush(observer, None).await {
                        // Everything read so far is written: a clean point to hand the job back.
                        None if run.handing_back() => Some(run.release().await),
                        other => other,
                    }
                } else {
                    None
                }
            }
            Some(Parsed::End { rows_read, failure }) => {
                let end = match failure {
                    None => BatchEnd {
                        status: BatchStatus::Completed,
                        rows_total: Some(i64::try_from(rows_read).unwrap_or(i64::MAX)),
                        failure: None,
                    },
                    Some(failure) => BatchEnd {
                        status: BatchStatus::Failed,
                        rows_total: None,
                        failure: Some(failure),
                    },
                };
                Some(run.flush(observer, Some(end)).await.unwrap_or(Ended::Lost))
            }
            None => {
                let end = BatchEnd {
                    status: BatchStatus::Failed,
                    rows_total: None,
                    failure: Some(unreadable(
                        "the reader stopped unexpectedly",
                        "la lecture s'est arrêtée de façon inattendue",
                    )),
                };
                Some(run.flush(observer, Some(end)).await.unwrap_or(Ended::Lost))
            }
        };
        if let Some(ended) = ended {
            return ended;
        }
    }
}

/// `unreadable_file`, the reason in each language.
fn unreadable(en: &str, fr: &str) -> BatchFailure {
    BatchFailure::new(
        "unreadable_file",
        format!("the file could not be read to its end ({en}); what was registered before is kept"),
        format!("le fichier n'a pas pu être lu jusqu'au bout ({fr}) ; ce qui a été inscrit avant est conservé"),
    )
}

fn rows_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn count_failure(counts: &mut BatchCounts, errors: &mut Vec<RowError>, failure: HouseholdFailure) {
    counts.rows_processed += rows_of(failure.rows);
    counts.rows_failed += rows_of(failure.rows);
    counts.errors_total += failure.errors.len() as i64;
    errors.extend(failure.errors);
}

/// The progress to write: the counts, and the errors and possible duplicates found since the
/// last report, each in row order.
fn progress_update(
    counts: BatchCounts,
    errors: &[RowError],
    duplicates: &[RowDuplicate],
    finish: Option<BatchEnd>,
    at: chrono::DateTime<chrono::Utc>,
) -> BatchUpdate {
    let mut new_errors = errors.to_vec();
    new_errors.sort_by_key(|e| e.row);
    let mut new_duplicates = duplicates.to_vec();
    new_duplicates.sort_by_key(|d| d.row);
    BatchUpdate {
        counts,
        new_errors,
        new_duplicates,
        events: Vec::new(),
        finish,
        at,
    }
}

/// What a registered group adds to the job: `counts` moved on by its households' outcomes, and
/// the row errors and possible duplicates they bring.
fn account(
    mut counts: BatchCounts,
    group_rows: &[HouseholdRows],
    outcomes: &[HouseholdOutcome],
) -> (BatchCounts, Vec<RowError>, Vec<RowDuplicate>) {
    let mut errors = Vec::new();
    let mut duplicates = Vec::new();
    for (rows, outcome) in group_rows.iter().zip(outcomes) {
        match outcome {
            Ok(Registered::Created(alikes)) => {
                counts.rows_processed += rows_of(rows.rows);
                counts.households_created += 1;
                counts.possible_duplicates_total += alikes.len() as i64;
                duplicates.extend(
                    alikes
                        .iter()
                        .map(|a| rows.row_duplicate(a.member, &a.beneficiary, &a.matches)),
                );
            }
            Ok(Registered::Skipped {
                coverage,
                terminated,
                unregistered,
            }) => {
                counts.rows_processed += rows_of(rows.rows);
                counts.households_skipped += 1;
                let error = not_in_household(coverage, *terminated);
                let skipped: Vec<RowError> = unregistered
                    .iter()
                    .flat_map(|&member| rows.member_failure(member, &error).errors)
                    .collect();
                // A JSON line holds every member: it fails once.
                let mut failed: Vec<u64> = skipped.iter().map(|e| e.row).collect();
                failed.sort_unstable();
                failed.dedup();
                counts.rows_failed += failed.len() as i64;
                counts.errors_total += skipped.len() as i64;
                errors.extend(skipped);
            }
            Err(e) => {
                let failure = match storage_verdict(e) {
                    (Some(member), verdict) => rows.member_failure(member, &verdict),
                    (None, verdict) => rows.failure(&[verdict]),
                };
                count_failure(&mut counts, &mut errors, failure);
            }
        }
    }
    (counts, errors, duplicates)
}

/// Whether storage refused a household because a national id in it is someone else's.
fn refused_identity(e: &StoreError) -> bool {
    matches!(e, StoreError::Conflict { constraint } if split_member_conflict(constraint).0 == "identity_mismatch")
}

impl Job<'_> {
    /// The version of the product in force on the draft's start date (or its first), when the
    /// product is the job organisation's own.
    async fn product_for(&mut self, draft: &RegistrationDraft) -> Result<Option<ProductVersion>, StoreError> {
        let Some(id) = draft.product.clone().or_else(|| self.job.product.clone()) else {
            return Ok(None);
        };
        if !self.products.contains_key(&id) {
            let versions = self.state.store.product_versions(&id).await?;
            let own = versions
                .first()
                .is_some_and(|first| first.organization == self.job.organization && first.layer.is_mutuelle_layer());
            self.products.insert(id.clone(), own.then_some(versions));
        }
        let Some(Some(versions)) = self.products.get(&id) else {
            return Ok(None);
        };
        let start = draft.start_date.as_deref().and_then(parse_date);
        let chosen = match start {
            Some(d) => select_version_or_first(versions, d),
            None => versions.last(),
        };
        Ok(chosen.cloned())
    }

    fn fail(&mut self, failure: HouseholdFailure) {
        count_failure(&mut self.counts, &mut self.errors, failure);
    }

    /// Validates one household and queues it for the next group, or records why it fails.
    async fn take(&mut self, item: HouseholdItem) {
        let today = self.state.clock.today();
        match item {
            Ok(mut rows) => {
                let mut draft = std::mem::take(&mut rows.draft);
                // A product is read once per job: a connection lost then would otherwise fail
                // every household of that product.
                let mut pauses = RETRY_PAUSES.iter();
                let product = loop {
                    match self.product_for(&draft).await {
                        Ok(p) => break p,
                        Err(e) => {
                            tracing::warn!(error = %e, job = %self.job.id, "cannot read a product");
                            match pauses.next() {
                                Some(pause) if retryable(&e) => tokio::time::sleep(*pause).await,
                                _ => break None,
                            }
                        }
                    }
                };
                // A product of the caller's is passed in (no read per household); any other is
                // left in the draft for the shared validation to report.
                if product.is_some() {
                    draft.product = None;
                } else if draft.product.is_none() {
                    draft.product.clone_from(&self.job.product);
                }
                match validate_registration(self.state, &self.caller, draft, Vec::new(), product.as_ref()).await {
                    Ok(Ok((valid, product))) => {
                        self.group.push(household_of(valid, product));
                        self.group_rows.push(rows);
                    }
                    Ok(Err(errors)) => self.fail(rows.failure(&errors)),
                    Err(e) => {
                        tracing::warn!(error = %e, job = %self.job.id, "cannot validate a household");
                        self.fail(rows.failure(&[internal_error()]));
                    }
                }
            }
            Err(failure) => {
                let product = match failure.unchecked.as_ref() {
                    Some(rows) => self.product_for(&rows.draft).await.unwrap_or_default(),
                    None => None,
                };
                let failure = failure.complete(&self.state.national_ids, product.as_ref(), today);
                self.fail(failure);
            }
        }
    }

    /// Registers the group and writes the progress and the new errors (and the end, when given)
    /// in the same transaction. `Some` when processing must stop.
    async fn flush(&mut self, observer: &mut dyn Observer, end: Option<BatchEnd>) -> Option<Ended> {
        let group = std::mem::take(&mut self.group);
        let group_rows = std::mem::take(&mut self.group_rows);
        if !group.is_empty() && self.state.deactivated.contains(&self.job.organization) {
            return Some(self.stop_deactivated(observer).await);
        }
        // A write that failed whole is tried again as it was: a connection reset or a failover
        // would otherwise fail the job, or leave it to the sweeper, for a blip.
        let mut pauses = RETRY_PAUSES.iter();
        let update = loop {
            match self.write(&group, &group_rows, end.clone()).await {
                Ok(update) => break update,
                Err(Stop::Ended(ended)) => return Some(ended),
                Err(Stop::Failed(e)) if retryable(&e) => {
                    let Some(pause) = pauses.next() else {
                        return Some(self.stop_on_store_error(e, observer).await);
                    };
                    tracing::warn!(error = %e, job = %self.job.id, "a bulk registration group could not be written; trying again");
                    tokio::time::sleep(*pause).await;
                }
                Err(Stop::Failed(e)) => return Some(self.stop_on_store_error(e, observer).await),
                Err(Stop::Deactivated) => return Some(self.stop_deactivated(observer).await),
            }
        };
        self.counts = update.counts;
        self.errors.clear();
        observer.errors(&update.new_errors);
        observer.duplicates(&update.new_duplicates);
        observer.progress(&self.counts);
        self.last_report = Instant::now();
        end.map(|e| Ended::Finished(e.status))
    }

    /// One try at writing the group (or, without one, the progress) in one transaction.
    async fn write(
        &self,
        group: &[NewHousehold],
        group_rows: &[HouseholdRows],
        end: Option<BatchEnd>,
    ) -> Result<BatchUpdate, Stop> {
        let at = self.state.clock.now();
        if group.is_empty() {
            let update = progress_update(self.counts, &self.errors, &[], end, at);
            return match self.state.store.update_batch(&self.job.id, self.worker, &update).await {
                Ok(true) => Ok(update),
                Ok(false) => Err(Stop::Ended(Ended::Lost)),
                Err(e @ StoreError::Indeterminate(_)) => Err(Stop::Ended(Ended::Interrupted(e.to_string()))),
                Err(e) if retryable(&e) => Err(Stop::Failed(e)),
                Err(e) => Err(Stop::Ended(Ended::StoreDown(e.to_string()))),
            };
        }
        let ctx = WriteContext {
            organization: self.job.organization.clone(),
            subject: self.job.subject.clone(),
            request_id: self.caller.request_id.clone(),
            trace_parent: None,
            at,
            idempotency: None,
        };
        // The rows refused before the group (by validation) are reported with it.
        let (counts, errors) = (self.counts, &self.errors);
        // A household refused because a national id is someone else's leaves a trace, as a
        // single registration does: a file of guesses at sex and birth year is seen. The
        // trace is written with the group, before the job's end.
        let progress = |outcomes: &[HouseholdOutcome]| {
            let (counts, new_errors, duplicates) = account(counts, group_rows, outcomes);
            let errors: Vec<RowError> = errors.iter().cloned().chain(new_errors).collect();
            let mut update = progress_update(counts, &errors, &duplicates, end.clone(), at);
            update.events = outcomes
                .iter()
                .filter(|o| matches!(o, Err(e) if refused_identity(e)))
                .map(|_| crate::routes::registrations::identity_refusal(&ctx))
                .collect();
            update
        };
        let written = self
            .state
            .store
            .register_batch_group(&ctx, group, true, &self.job.id, self.worker, &progress)
            .await;
        match written {
            Ok(Some((_, update))) => Ok(update),
            Ok(None) => Err(Stop::Ended(Ended::Lost)),
            // The group and its progress may be stored: the counts this worker holds may be
            // behind them, so it writes nothing more; the job resumes from what was committed.
            Err(e @ StoreError::Indeterminate(_)) => Err(Stop::Ended(Ended::Interrupted(e.to_string()))),
            Err(StoreError::Conflict { constraint }) if constraint == "organization_deactivated" => {
                Err(Stop::Deactivated)
            }
            Err(e) => Err(Stop::Failed(e)),
        }
    }

    /// Whether the job goes back to the queue at this group boundary: the replica is stopping,
    /// or the job ran its turn while another organisation's job waits.
    fn handing_back(&self) -> bool {
        self.state.bulk.stopping()
            || (self
                .turn_since
                .is_some_and(|t| t.elapsed() >= self.state.config.batch_turn)
                && self.state.bulk.another_waits(&self.job.organization))
    }

    /// Hands the job back to the queue; called right after a flush, when nothing read is
    /// unwritten.
    async fn release(&mut self) -> Ended {
        match self
            .state
            .store
            .release_batch(&self.job.id, self.worker, self.state.clock.now())
            .await
        {
            Ok(true) if self.state.bulk.stopping() => Ended::Released,
            Ok(true) => Ended::TurnOver,
            Ok(false) => Ended::Lost,
            Err(e) => Ended::StoreDown(e.to_string()),
        }
    }

    /// The database went away mid-group: nothing of that group was written. The job is failed
    /// if storage still answers, else left to the sweeper.
    async fn stop_on_store_error(&mut self, e: StoreError, observer: &mut dyn Observer) -> Ended {
        tracing::error!(error = %e, job = %self.job.id, "bulk registration stopped: storage failed");
        let failure = BatchFailure::new(
            "storage_unavailable",
            "the database could not be written; what was registered before is kept: post the same file \
             again with a new Idempotency-Key, households already registered are skipped",
            "l'écriture dans la base de données a échoué ; ce qui a été inscrit avant est conservé : renvoyez \
             le même fichier avec une nouvelle Idempotency-Key, les ménages déjà inscrits seront ignorés",
        );
        self.stop(failure, e.to_string(), observer).await
    }

    /// The job's organisation was deactivated while it ran: nothing more is registered in its
    /// name (the group in flight is not written).
    async fn stop_deactivated(&mut self, observer: &mut dyn Observer) -> Ended {
        tracing::info!(job = %self.job.id, "bulk registration stopped: its organisation was deactivated");
        let failure = BatchFailure::new(
            "organization_deactivated",
            "the organisation was deactivated while the job ran; what was registered before is kept",
            "l'organisation a été désactivée pendant le traitement ; ce qui a été inscrit avant est conservé",
        );
        self.stop(failure, "organisation deactivated".into(), observer).await
    }

    /// Ends the job `failed` with `failure`, keeping what was registered and reported.
    async fn stop(&mut self, failure: BatchFailure, why: String, observer: &mut dyn Observer) -> Ended {
        let update = BatchUpdate {
            counts: self.counts,
            new_errors: std::mem::take(&mut self.errors),
            new_duplicates: Vec::new(),
            events: Vec::new(),
            finish: Some(BatchEnd {
                status: BatchStatus::Failed,
                rows_total: None,
                failure: Some(failure),
            }),
            at: self.state.clock.now(),
        };
        match self.state.store.update_batch(&self.job.id, self.worker, &update).await {
            Ok(true) => {
                // The rows refused since the last report are in the job's report: in the
                // import's file too.
                observer.errors(&update.new_errors);
                observer.progress(&self.counts);
                Ended::Finished(BatchStatus::Failed)
            }
            Ok(false) => Ended::Lost,
            Err(_) => Ended::StoreDown(why),
        }
    }
}

/// A member of a skipped household whom the registered household does not hold: without this
/// error they would be dropped in silence. Who they are is the file's to say, not the message's.
fn not_in_household(coverage: &str, terminated: bool) -> FieldError {
    if terminated {
        return FieldError::new(
            "",
            "household_terminated",
            "this household is already registered, and terminated, without this person, who was not added",
            "ce ménage est déjà inscrit et sa couverture est résiliée ; cette personne n'en fait pas partie et n'a pas été ajoutée",
        );
    }
    FieldError::new(
        "",
        "not_in_household",
        format!(
            "this household is already registered, without this person, who was not added: add them with \
             POST /v1/coverages/{coverage}/dependants; if they are a member already registered whose names \
             the file spells otherwise, correct the names with PATCH /v1/beneficiaries/{{id}} instead, or \
             they would be registered twice"
        ),
        format!(
            "ce ménage est déjà inscrit, sans cette personne, qui n'a pas été ajoutée : ajoutez-la avec \
             POST /v1/coverages/{coverage}/dependants ; si c'est un membre déjà inscrit dont le fichier orthographie \
             autrement les noms, corrigez plutôt ses noms avec PATCH /v1/beneficiaries/{{id}}, sans quoi il \
             serait inscrit deux fois"
        ),
    )
}

fn internal_error() -> FieldError {
    FieldError::new(
        "",
        "internal_error",
        "this household could not be registered because of an internal error; nothing of it was written",
        "ce ménage n'a pas pu être inscrit à cause d'une erreur interne ; rien n'en a été écrit",
    )
}

/// Storage's verdict on one household: with the member at fault when storage names one (see
/// `member_conflict`), the field relative to that member (`/member_number`, or empty for the
/// person); else for the household, the field a pointer into it (empty: the whole row).
fn storage_verdict(e: &StoreError) -> (Option<usize>, FieldError) {
    match e {
        StoreError::Conflict { constraint } => match split_member_conflict(constraint) {
            ("member_number_taken", member) => (
                Some(member.unwrap_or(0)),
                FieldError::new(
                    "/member_number",
                    "member_number_taken",
                    "this member number is already held in your mutuelle by a person this row does not match (another person, or this one with names corrected since)",
                    "ce numéro d'adhérent est déjà attribué dans votre mutuelle à une personne que cette ligne ne décrit pas (une autre, ou celle-ci dont les noms ont été corrigés depuis)",
                ),
            ),
                        ("registered_for_other_product", _) => (
                Some(0),
                FieldError::new(
                    "/member_number",
                    "registered_for_other_product",
                    "this household is already registered in your mutuelle under this member number, for another product; nothing was written",
                    "ce ménage est déjà inscrit dans votre mutuelle sous ce numéro d'adhérent, pour un autre produit ; rien n'a été écrit",
                ),
            ),
            ("dependant_age_limit", Some(member)) => (
                Some(member),
                passerelle_domain::eligibility::matched_child_too_old("/birth_date"),
            ),
            ("already_covered", Some(member)) => (
                Some(member),
                FieldError::new(
                    "",
                    "already_covered",
                    "this person already holds a coverage of this product",
                    "cette personne est déjà couverte par ce produit",
                ),
            ),
            // Nothing of the person stored under that national id: neither who they are nor
            // which of sex and birth differs.
            ("identity_mismatch", Some(member)) => (
                Some(member),
                FieldError::new(
                    "",
                    "identity_mismatch",
                    "this national id is already registered for a person of another sex or birth date: check this person's national id, sex and birth date",
                    "ce numéro d'identité nationale est déjà enregistré pour une personne d'un autre sexe ou d'une autre date de naissance : vérifiez le numéro d'identité nationale, le sexe et la date de naissance de cette personne",
                ),
            ),
            ("identity_mismatch", None) => (
                None,
                FieldError::new(
                    "",
                    "identity_mismatch",
                    "a national id of this household is already registered for a person of another sex or birth date",
                    "un numéro d'identité nationale de ce ménage est déjà enregistré pour une personne d'un autre sexe ou d'une autre date de naissance",
                ),
            ),
            ("already_covered", None) => (
                None,
                FieldError::new(
                    "",
                    "already_covered",
                    "a member of this household already holds a coverage of this product",
                    "un membre de ce ménage est déjà couvert par ce produit",
                ),
            ),
            _ => {
                tracing::warn!(error = %e, "a household of a bulk job could not be registered");
                (None, internal_error())
            }
        },
        StoreError::Contention(_) => (
            None,
            FieldError::new(
                "",
                "concurrent_change",
                "this household met concurrent writes twice and was not registered; nothing of it was written: upload the file again to complete it",
                "ce ménage a rencontré deux fois des modifications simultanées des mêmes données et n'a pas été inscrit ; rien n'en a été écrit : déposez le fichier à nouveau pour le compléter",
            ),
        ),
        other => {
            tracing::warn!(error = %other, "a household of a bulk job could not be registered");
            (None, internal_error())
        }
    }
}
