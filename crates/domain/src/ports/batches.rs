//! Storage of bulk registration jobs (API.md §5 Registrations, Bulk).
//!
//! A job is created `queued` with the uploaded file spooled to disk, claimed by one worker with a
//! compare-and-set (`queued` → `running`), and finished `completed` or `failed`. The worker
//! writes its progress as it goes; a job whose progress stops (its process died) is failed by a
//! sweeper, and posting the same file again completes it because households already registered
//! are skipped.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{NewHousehold, WriteContext, Written};
use crate::batch::{RowDuplicate, RowError};
use crate::error::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchFormat {
    Csv,
    Ndjson,
}

impl BatchFormat {
    pub const ALL: [BatchFormat; 2] = [BatchFormat::Csv, BatchFormat::Ndjson];

    pub fn as_str(self) -> &'static str {
        match self {
            BatchFormat::Csv => "csv",
            BatchFormat::Ndjson => "ndjson",
        }
    }

    pub fn parse(s: &str) -> Option<BatchFormat> {
        match s {
            "csv" => Some(BatchFormat::Csv),
            "ndjson" => Some(BatchFormat::Ndjson),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchStatus {
    Queued,
    Running,
    /// Every row was read, whatever failed in it.
    Completed,
    /// The job itself stopped; what was committed is kept.
    Failed,
}

impl BatchStatus {
    pub const ALL: [BatchStatus; 4] = [
        BatchStatus::Queued,
        BatchStatus::Running,
        BatchStatus::Completed,
        BatchStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BatchStatus::Queued => "queued",
            BatchStatus::Running => "running",
            BatchStatus::Completed => "completed",
            BatchStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<BatchStatus> {
        match s {
            "queued" => Some(BatchStatus::Queued),
            "running" => Some(BatchStatus::Running),
            "completed" => Some(BatchStatus::Completed),
            "failed" => Some(BatchStatus::Failed),
            _ => None,
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, BatchStatus::Completed | BatchStatus::Failed)
    }
}

/// What a job has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchCounts {
    pub rows_processed: i64,
    pub households_created: i64,
    pub households_skipped: i64,
    /// Every row of each failed household.
    pub rows_failed: i64,
    /// Row errors found, including those past what is stored.
    pub errors_total: i64,
    /// People created without a national id who look like people already known, including
    /// those past what is stored. (Absent from jobs stored before it was counted.)
    #[serde(default)]
    pub possible_duplicates_total: i64,
}

/// Why a job stopped, in both languages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchFailure {
    pub code: String,
    pub en: String,
    pub fr: String,
}

impl BatchFailure {
    pub fn new(code: &str, en: impl Into<String>, fr: impl Into<String>) -> Self {
        BatchFailure {
            code: code.to_owned(),
            en: en.into(),
            fr: fr.into(),
        }
    }

    /// The process working on the job stopped (a crash, a restart) and no progress came since.
    pub fn interrupted() -> Self {
        BatchFailure::new(
            "interrupted",
            "processing stopped before the end of the file (the server restarted?); what was registered is kept: \
             post the same file again with a new Idempotency-Key, households already registered are skipped",
            "le traitement s'est arrêté avant la fin du fichier (le serveur a redémarré ?) ; ce qui a été inscrit est \
             conservé : renvoyez le même fichier avec une nouvelle Idempotency-Key, les ménages déjà inscrits seront \
             ignorés",
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchJob {
    pub id: String,
    /// The mutuelle whose job it is.
    pub organization: String,
    /// Who posted it (the token's `sub`).
    pub subject: String,
    /// The upload's product: every household's for CSV, the default for JSON lines.
    pub product: Option<String>,
    pub format: BatchFormat,
    pub status: BatchStatus,
    /// Known once every row is read.
    pub rows_total: Option<i64>,
    pub counts: BatchCounts,
    pub failure: Option<BatchFailure>,
    /// The uploaded file, until the job ends.
    pub spool_path: String,
    /// A CSV file's separator, `,` or `;`, which its report keeps by default.
    #[serde(default)]
    pub csv_separator: Option<char>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// A job to create, its file already spooled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBatch {
    pub id: String,
    pub product: Option<String>,
    pub format: BatchFormat,
    pub spool_path: String,
    /// A CSV file's separator, as its header gives it.
    pub csv_separator: Option<char>,
    /// Created already claimed by this worker, `running`: `passerelle import` processes its own
    /// file, which no other worker may take (nor delete).
    pub worker: Option<String>,
}

/// A worker's report: the counts so far (absolute, not increments), the row errors found since
/// the last report, and, to end the job, its final status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchUpdate {
    pub counts: BatchCounts,
    pub new_errors: Vec<RowError>,
    /// Possible duplicates found since the last report.
    pub new_duplicates: Vec<RowDuplicate>,
    /// Audit events of the rows since the last report that wrote nothing (a household refused
    /// for a national id registered to someone else): recorded with the report, before the
    /// job's own end.
    pub events: Vec<crate::audit::NewAuditEvent>,
    pub finish: Option<BatchEnd>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchEnd {
    pub status: BatchStatus,
    pub rows_total: Option<i64>,
    pub failure: Option<BatchFailure>,
}

/// Row errors, and possible duplicates, kept per job; past this only `errors_total` (or
/// `possible_duplicates_total`) grows. Every error of a real file fits (a file of 100,000 bad
/// rows is the wrong file, and its first errors say why), while a hostile one cannot make the
/// database hold several errors for each of its millions of short rows. `passerelle import`
/// writes every error to its CSV.
pub const MAX_STORED_BATCH_ERRORS: i64 = 100_000;

/// Where a stored row error (or possible duplicate) sits in its job's report: its row, then the
/// order in which the job found it. The key of a page of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ReportKey {
    pub row: u64,
    pub seq: i64,
}

impl ReportKey {
    /// `<row>.<seq>`, the text a cursor carries.
    pub fn encode(self) -> String {
        format!("{}.{}", self.row, self.seq)
    }

    /// The key `encode` wrote; `None` for any other text.
    pub fn decode(key: &str) -> Option<ReportKey> {
        let (row, seq) = key.split_once('.')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(row) || !digits(seq) {
            return None;
        }
        Some(ReportKey {
            row: row.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

/// A member a bulk job created without a national id, and the people already known (or created
/// earlier in the same job) who look the same: names without accents or case, sex, birth date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookAlike {
    /// The member's place in its household: 0 the principal, then the dependants in order.
    pub member: usize,
    /// The person created.
    pub beneficiary: String,
    /// Who they look like, by id, at most 20.
    pub matches: Vec<String>,
}

/// What registering one household of a group did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registered {
    /// With the members who look like someone already known (API.md: reported, never merged).
    Created(Vec<LookAlike>),
    /// Its principal's member number was already held by the same person, for the same product:
    /// nothing was written. `unregistered` lists the members of the file (0 the principal) whom
    /// that household does not hold, so that they are reported rather than silently dropped;
    /// `coverage` is the household's principal coverage, to which they can be added unless the
    /// household is `terminated`.
    Skipped {
        coverage: String,
        terminated: bool,
        unregistered: Vec<usize>,
    },
}

/// How one household of a group fared in `register_batch_group`.
pub type HouseholdOutcome = Result<Registered, StoreError>;

#[async_trait]
pub trait BatchStore: Send + Sync {
    /// Creates the job `queued` and its audit event; with an idempotency key, a replay answers
    /// the job as it was created.
    async fn create_batch(&self, ctx: &WriteContext, batch: &NewBatch) -> Result<Written<BatchJob>, StoreError>;

    /// Deletes the per-row errors and possible duplicates of up to `limit` jobs that ended
    /// (`completed` or `failed`) before `before`; the jobs stay, with their counts. Returns how
    /// many jobs' reports it deleted.
    async fn forget_batch_reports(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, StoreError>;

    async fn get_batch(&self, id: &str) -> Result<Option<BatchJob>, StoreError>;

    /// A page of jobs in creation order: `organization`'s (everyone's for `None`), only those
    /// in `status` when it is given.
    async fn list_batches(
        &self,
        organization: Option<&str>,
        status: Option<BatchStatus>,
        page: &crate::pagination::PageRequest,
    ) -> Result<crate::pagination::Page<BatchJob>, StoreError>;

    /// The stored row errors of a job, by row (then in the order found), those after `after`,
    /// at most `limit`, each with its key.
    async fn batch_errors(
        &self,
        id: &str,
        after: Option<ReportKey>,
        limit: u32,
    ) -> Result<Vec<(ReportKey, RowError)>, StoreError>;

    /// The stored possible duplicates of a job, in the same order as `batch_errors`.
    async fn batch_duplicates(
        &self,
        id: &str,
        after: Option<ReportKey>,
        limit: u32,
    ) -> Result<Vec<(ReportKey, RowDuplicate)>, StoreError>;

    /// The queued jobs whose files are among `spool_paths` (the uploads this replica can read),
    /// oldest first, each marked as seen at `at`. A queued job that no replica has seen for the
    /// stale delay has lost its file (the replica that took the upload is gone), and
    /// `fail_stale_batches` fails it.
    async fn queued_batches(&self, spool_paths: &[String], at: DateTime<Utc>) -> Result<Vec<BatchJob>, StoreError>;

    /// Which of `spool_paths` belong to jobs still `queued` or `running`: the others are leftovers
    /// of jobs that ended (or were failed) elsewhere.
    async fn live_uploads(&self, spool_paths: &[String]) -> Result<Vec<String>, StoreError>;

    /// Compare-and-set `queued` → `running` under the `worker` token: of several replicas trying,
    /// exactly one gets true.
    async fn claim_batch(&self, id: &str, worker: &str, at: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Hands a `running` job held by `worker` back to the queue (`running` → `queued`, no
    /// worker, seen at `at`), its progress kept: a replica stopping gracefully does this at a
    /// group boundary, and whoever claims it next resumes after the rows already processed.
    /// False when the job was no longer this worker's.
    async fn release_batch(&self, id: &str, worker: &str, at: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Records progress (and ends the job when `finish` is set), only while `worker` still holds
    /// it: false when the job was taken from it (failed or resumed as stale), and the worker
    /// must stop.
    async fn update_batch(&self, id: &str, worker: &str, update: &BatchUpdate) -> Result<bool, StoreError>;

    /// Hands back to the queue (`running` → `queued`, no worker, seen at `at`, progress kept)
    /// the `running` jobs with no progress since `stale_before` whose files are among
    /// `spool_paths`: their worker died (a process killed), but the upload survived where this
    /// replica reads it, so the job resumes after its rows already processed rather than fail.
    /// Returns their ids.
    async fn resume_stale_batches(
        &self,
        spool_paths: &[String],
        stale_before: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError>;

    /// Fails the `queued` jobs no replica has seen since `stale_before` (`queued_batches`), and
    /// the `running` ones with no progress since `running_before` (earlier: a replica holding the
    /// upload resumes such a job first, `resume_stale_batches`), and returns them.
    async fn fail_stale_batches(
        &self,
        stale_before: DateTime<Utc>,
        running_before: DateTime<Utc>,
        failure: &BatchFailure,
        at: DateTime<Utc>,
    ) -> Result<Vec<BatchJob>, StoreError>;

    /// Registers households as `RegistryStore::register_household` does, each all or nothing,
    /// but many in one transaction: a household's own failure (its member number taken, say) is
    /// its outcome and the others go on; `Err` means none was written. A member created without
    /// a national id is compared with the people stored and those created before it in the
    /// group, and look-alikes are reported with its household's outcome.
    ///
    /// The job's progress is written in the same transaction, as `update_batch` writes it, from
    /// the update `progress` makes of the outcomes: the group and the counts, errors and possible
    /// duplicates that account for it are written together or not at all, so a crash between the
    /// two cannot leave households that no job counted. `Ok(None)` when job `id` is no longer
    /// `worker`'s: nothing is written. Otherwise the outcomes and the update written.
    async fn register_batch_group(
        &self,
        ctx: &WriteContext,
        households: &[NewHousehold],
        skip_existing: bool,
        id: &str,
        worker: &str,
        progress: &(dyn for<'o> Fn(&'o [HouseholdOutcome]) -> BatchUpdate + Sync),
    ) -> Result<Option<(Vec<HouseholdOutcome>, BatchUpdate)>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::{BatchCounts, BatchFormat, BatchJob, BatchStatus, ReportKey};

    /// A job's first answer is stored for idempotent replays: one stored by an earlier release,
    /// without the separator, still replays.
    #[test]
    fn a_job_stored_before_it_had_a_separator_still_reads() {
        let job = BatchJob {
            id: "b1".into(),
            organization: "mut-a".into(),
            subject: "clerk".into(),
            product: Some("p1".into()),
            format: BatchFormat::Csv,
            status: BatchStatus::Queued,
            rows_total: None,
            counts: BatchCounts::default(),
            failure: None,
            spool_path: "/tmp/b1.upload".into(),
            csv_separator: Some(';'),
            created_at: chrono::DateTime::UNIX_EPOCH,
            finished_at: None,
        };
        let mut stored = serde_json::to_value(&job).unwrap();
        assert_eq!(serde_json::from_value::<BatchJob>(stored.clone()).unwrap(), job);
        stored.as_object_mut().unwrap().remove("csv_separator");
        let earlier: BatchJob = serde_json::from_value(stored).unwrap();
        assert_eq!(earlier.csv_separator, None);
    }

    #[test]
    fn a_report_key_reads_back_only_as_written() {
        let key = ReportKey {
            row: 1_048_577,
            seq: 99_999,
        };
        assert_eq!(ReportKey::decode(&key.encode()), Some(key));
        for forged in [
            "",
            ".",
            "12",
            "12.",
            ".3",
            "1.2.3",
            "+1.2",
            "1.-2",
            "a.1",
            "1 .2",
            "99999999999999999999.1",
        ] {
            assert_eq!(ReportKey::decode(forged), None, "{forged:?}");
        }
        assert!(
            ReportKey { row: 2, seq: 9 } < ReportKey { row: 3, seq: 1 },
            "by row first"
        );
    }
}
