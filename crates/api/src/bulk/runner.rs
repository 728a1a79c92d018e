//! This replica's share of the bulk jobs: a dispatcher that claims queued jobs one at a time
//! (woken by uploads, and polling), and a sweeper that resumes or fails jobs whose worker died,
//! at start-up and periodically.
//!
//! A replica takes only the jobs whose uploads it can read in its spool folder: with a folder of
//! its own (a pod's `emptyDir`), the jobs of the uploads it received; with a folder the replicas
//! share, any. A job is claimed with a compare-and-set in storage, so exactly one replica
//! processes it. While a job waits, the replicas that can read its upload mark it as seen every
//! [`POLL_EVERY`]; a queued job that no replica has seen for the stale delay lost its upload with
//! its replica, and the sweeper fails it as `interrupted`. A running job without progress for
//! that long lost its worker: a replica that holds its upload puts it back in the queue, and it
//! resumes after the rows already processed; one still stale after twice the delay (its upload
//! gone with its replica) is failed as `interrupted` by any replica. Posting the same file again
//! completes a failed job: households already registered are skipped, none is registered twice.
//!
//! A replica that stops gracefully (SIGTERM: a rollout, a scale-down) does not leave its job to
//! the sweeper: it stops claiming, and the worker hands its job back to the queue at the next
//! group boundary, its progress stored; whoever claims it next (this replica restarted with the
//! same folder, or any replica sharing it) resumes after the rows already processed.

use std::path::Path;
use std::time::Duration;

use passerelle_domain::ports::{BatchEnd, BatchFailure, BatchJob, BatchStatus, BatchUpdate};

use super::spool;
use super::worker::{self, Ended, Silent};
use crate::state::AppState;

/// How often queued jobs are looked for without a wake-up, and marked as seen.
const POLL_EVERY: Duration = Duration::from_secs(2);

/// Whether this replica still takes jobs, and whether it is running one.
#[derive(Default)]
pub struct Control {
    stopping: std::sync::atomic::AtomicBool,
    /// Held by the dispatcher while it runs a job.
    busy: tokio::sync::Mutex<()>,
    /// What the uploads being received may still write to the spool folder.
    pub receiving: super::spool::Reservations,
    /// Whose turn it is among the organisations with jobs here.
    turns: std::sync::Mutex<Turns>,
}

/// Organisations take turns: the dispatcher claims first the job of the organisation whose job
/// started longest ago (never, first), and a job that has run `batch_turn` while another
/// organisation's job waits here goes back to the queue at its next group boundary. Without
/// turns, four 50,000-row uploads of one mutuelle made another's job of 10 rows wait 67 s.
#[derive(Default)]
struct Turns {
    /// The organisations with a job queued here, as last listed.
    waiting: std::collections::HashSet<String>,
    /// The organisations whose jobs were posted here lately, and when: a listing begun before a
    /// job was committed does not hold it, and must not hide it until the next.
    posted: std::collections::HashMap<String, std::time::Instant>,
    /// When each organisation's job last started, counted in starts.
    started: std::collections::HashMap<String, u64>,
    starts: u64,
}

impl Control {
    pub fn stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Takes no new job, and has the running one handed back at its next group boundary.
    pub fn stop(&self) {
        self.stopping.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Takes jobs again (tests: a replica that stopped and came back).
    pub fn resume(&self) {
        self.stopping.store(false, std::sync::atomic::Ordering::Release);
    }

    fn turns(&self) -> std::sync::MutexGuard<'_, Turns> {
        self.turns.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A job of `organization` was posted here and waits.
    pub fn queued(&self, organization: &str) {
        let now = std::time::Instant::now();
        self.turns().posted.insert(organization.to_owned(), now);
    }

    /// Whether a job of another organisation than `organization` waits here.
    pub fn another_waits(&self, organization: &str) -> bool {
        let turns = self.turns();
        turns
            .waiting
            .iter()
            .chain(turns.posted.keys())
            .any(|o| o != organization)
    }

    /// Notes the jobs queued here, and orders them by turn: the organisations whose jobs started
    /// longest ago first, each one's jobs oldest first.
    fn take_turns(&self, jobs: &mut [BatchJob]) {
        let mut turns = self.turns();
        turns.waiting = jobs.iter().map(|j| j.organization.clone()).collect();
        // A posted job is in every listing begun after it was committed, within one poll.
        turns.posted.retain(|_, at| at.elapsed() < 2 * POLL_EVERY);
        let last = |j: &BatchJob| turns.started.get(&j.organization).copied().unwrap_or(0);
        jobs.sort_by(|a, b| (last(a), a.created_at, &a.id).cmp(&(last(b), b.created_at, &b.id)));
    }

    /// A job of `organization` starts here.
    fn started(&self, organization: &str) {
        let mut turns = self.turns();
        turns.starts += 1;
        let now = turns.starts;
        turns.started.insert(organization.to_owned(), now);
        // Its posted job is the one starting, or in the listing that chose it.
        turns.posted.remove(organization);
    }

    /// Returns once no job runs here, or after `limit`: false when a job still ran.
    pub async fn idle(&self, limit: Duration) -> bool {
        tokio::time::timeout(limit, self.busy.lock()).await.is_ok()
    }
}

pub fn start(state: &AppState) {
    let worker = format!("worker-{}", uuid::Uuid::now_v7().simple());
    tokio::spawn(dispatch(state.clone(), worker));
    tokio::spawn(keep_seen(state.clone()));
    tokio::spawn(sweep_forever(state.clone()));
}

/// The uploads in the spool folder, named as their jobs name them.
async fn local_uploads(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
        return found;
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "upload") {
            found.push(path.to_string_lossy().into_owned());
        }
    }
    found
}

/// Marks the queued jobs whose uploads this replica holds as seen, also while the dispatcher is
/// busy with a long job, so that the sweeper does not take them for lost.
async fn keep_seen(state: AppState) {
    loop {
        tokio::time::sleep(POLL_EVERY).await;
        let uploads = local_uploads(&state.config.batch_spool_dir).await;
        match state.store.queued_batches(&uploads, state.clock.now()).await {
            Ok(mut jobs) => state.bulk.take_turns(&mut jobs),
            Err(e) => tracing::warn!(error = %e, "cannot mark queued bulk registration jobs as seen"),
        }
    }
}

/// Resumes the running jobs without progress for `batch_stale_after` whose uploads this replica
/// holds; fails the running ones without progress for twice that and the queued ones no
/// replica has seen for that long, and removes their files.
pub async fn sweep(state: &AppState) {
    let now = state.clock.now();
    let Ok(stale) = chrono::Duration::from_std(state.config.batch_stale_after) else {
        return;
    };
    // The uploads this replica holds are seen first: after a restart longer than the stale
    // delay, the jobs still queued with an upload that survived must wait for the dispatcher,
    // not be failed for the time the service was down.
    let uploads = local_uploads(&state.config.batch_spool_dir).await;
    match state.store.queued_batches(&uploads, now).await {
        Ok(mut jobs) => state.bulk.take_turns(&mut jobs),
        Err(e) => {
            tracing::warn!(error = %e, "cannot mark queued bulk registration jobs as seen");
            return;
        }
    }
    // A job whose worker died with its upload still here (the process killed and restarted
    // with the same folder) goes back to the queue and resumes where its progress stops.
    match state.store.resume_stale_batches(&uploads, now - stale, now).await {
        Ok(jobs) => {
            for job in jobs {
                tracing::warn!(job = %job, "bulk registration job resumed: its worker is gone, its upload is here");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot resume bulk registration jobs"),
    }
    // Any replica fails a running job stale for twice the delay: the replica that holds its
    // upload, and would resume it, had a whole delay (and two of its sweeps) to do so first.
    match state
        .store
        .fail_stale_batches(now - stale, now - stale * 2, &BatchFailure::interrupted(), now)
        .await
    {
        Ok(jobs) => {
            for job in jobs {
                tracing::warn!(job = %job.id, "bulk registration job interrupted: its worker or its upload is gone");
                spool::discard(&state.config.batch_spool_dir, &job.spool_path);
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot sweep bulk registration jobs"),
    }
    // An upload may take `UPLOAD_TIMEOUT` to arrive, and its file is written in chunks.
    let older_than = state
        .config
        .batch_stale_after
        .max(crate::bulk::UPLOAD_TIMEOUT + Duration::from_secs(60));
    discard_leftovers(state, &uploads, older_than).await;
}

/// Removes the uploads of this spool folder that no queued or running job names and that nobody
/// wrote for `older_than`: the files of jobs another replica ended or failed (its sweeper cannot
/// reach this replica's folder). `older_than` is longer than an upload may take to arrive, and a
/// job is created as soon as its upload is whole.
async fn discard_leftovers(state: &AppState, uploads: &[String], older_than: Duration) {
    let mut old = Vec::new();
    for path in uploads {
        let modified = tokio::fs::metadata(path).await.and_then(|m| m.modified());
        if modified.is_ok_and(|at| at.elapsed().is_ok_and(|age| age > older_than)) {
            old.push(path.clone());
        }
    }
    if old.is_empty() {
        return;
    }
    let live = match state.store.live_uploads(&old).await {
        Ok(live) => live,
        Err(e) => {
            tracing::warn!(error = %e, "cannot check leftover bulk uploads");
            return;
        }
    };
    let mut removed = 0;
    for path in old.iter().filter(|p| !live.contains(p)) {
        spool::discard(&state.config.batch_spool_dir, path);
        removed += 1;
    }
    if removed > 0 {
        tracing::info!(removed, "removed bulk uploads left by jobs that ended elsewhere");
    }
}

async fn sweep_forever(state: AppState) {
    let every = (state.config.batch_stale_after / 2).clamp(Duration::from_millis(100), Duration::from_secs(30));
    loop {
        sweep(&state).await;
        tokio::time::sleep(every).await;
    }
}

async fn dispatch(state: AppState, worker: String) {
    loop {
        while !state.bulk.stopping() && run_next(&state, &worker).await {}
        tokio::select! {
            () = state.batch_queued.notified() => {}
            () = tokio::time::sleep(POLL_EVERY) => {}
        }
    }
}

/// Claims and runs the queued job whose turn it is among those whose uploads it can read; false
/// when there was none.
async fn run_next(state: &AppState, worker: &str) -> bool {
    let uploads = local_uploads(&state.config.batch_spool_dir).await;
    let queued = match state.store.queued_batches(&uploads, state.clock.now()).await {
        Ok(mut jobs) => {
            state.bulk.take_turns(&mut jobs);
            jobs
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot list queued bulk registration jobs");
            return false;
        }
    };
    for job in queued {
        let _busy = state.bulk.busy.lock().await;
        if state.bulk.stopping() {
            return false;
        }
        match state.store.claim_batch(&job.id, worker, state.clock.now()).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim a bulk registration job");
                return false;
            }
        }
        // Its progress as of the claim: another replica may have run it and handed it back since
        // the queue was listed, and a resumed job reads past the rows processed.
        let job = match state.store.get_batch(&job.id).await {
            Ok(Some(job)) => job,
            Ok(None) => return false,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read a claimed bulk registration job");
                return false;
            }
        };
        state.bulk.started(&job.organization);
        tracing::info!(job = %job.id, "bulk registration job started");
        // A panic would end this dispatcher, and no job of this replica would run again; the
        // sweeper would then resume the job, to meet the same fault on every replica in turn.
        // The job fails instead, as `internal_error`, with its progress kept.
        let mut silent = Silent;
        let run = std::panic::AssertUnwindSafe(worker::process(state, &job, worker, &mut silent));
        let Ok(ended) = futures::FutureExt::catch_unwind(run).await else {
            fail_after_panic(state, &job.id, worker).await;
            return true;
        };
        match &ended {
            Ended::Finished(status) => {
                tracing::info!(job = %job.id, status = status.as_str(), "bulk registration job ended");
                spool::discard(&state.config.batch_spool_dir, &job.spool_path);
            }
            Ended::Lost => tracing::warn!(job = %job.id, "bulk registration job taken from this worker"),
            Ended::Released => tracing::info!(
                job = %job.id,
                "bulk registration job handed back to the queue: this replica is stopping"
            ),
            Ended::TurnOver => tracing::debug!(
                job = %job.id,
                "bulk registration job back in the queue: another organisation's job waits"
            ),
            Ended::Interrupted(e) => {
                tracing::warn!(job = %job.id, error = %e, "bulk registration job interrupted: the database connection was lost");
                hand_back(state, &job.id, worker).await;
            }
            Ended::StoreDown(e) => tracing::error!(job = %job.id, error = %e, "bulk registration job stopped"),
        }
        return true;
    }
    false
}

/// Puts a job whose worker lost its connection mid-commit back in the queue, where the
/// dispatcher claims it again and resumes from the progress that was stored: only storage knows
/// whether the last group committed. While the database stays away, it tries for about half a
/// minute, then leaves the job to the sweeper.
async fn hand_back(state: &AppState, id: &str, worker: &str) {
    let mut pause = Duration::from_millis(250);
    for _ in 0..8 {
        match state.store.release_batch(id, worker, state.clock.now()).await {
            Ok(true) => {
                tracing::info!(job = %id, "bulk registration job handed back to the queue, to resume from its stored progress");
                return;
            }
            // It ended in that commit, or a sweeper took it.
            Ok(false) => return,
            Err(e) => tracing::warn!(job = %id, error = %e, "cannot hand a bulk registration job back yet"),
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(8));
    }
    tracing::warn!(job = %id, "bulk registration job left to the sweeper: the database stays unreachable");
}

/// Fails a job whose processing panicked, its progress as last stored (no row of the group in
/// flight was written: a group commits whole).
async fn fail_after_panic(state: &AppState, id: &str, worker: &str) {
    tracing::error!(job = %id, "bulk registration job stopped by an internal error");
    let counts = match state.store.get_batch(id).await {
        Ok(Some(job)) => job.counts,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(job = %id, error = %e, "cannot read a bulk registration job that stopped");
            return;
        }
    };
    let update = BatchUpdate {
        counts,
        new_errors: Vec::new(),
        new_duplicates: Vec::new(),
        events: Vec::new(),
        finish: Some(BatchEnd {
            status: BatchStatus::Failed,
            rows_total: None,
            failure: Some(BatchFailure::new(
                "internal_error",
                "processing stopped on an internal error; what was registered is kept: report it to the operator \
                 with the job's id",
                "le traitement s'est arrêté à cause d'une erreur interne ; ce qui a été inscrit est conservé : signalez-la \
                 à l'opérateur avec l'identifiant de la tâche",
            )),
        }),
        at: state.clock.now(),
    };
    if let Err(e) = state.store.update_batch(id, worker, &update).await {
        tracing::warn!(job = %id, error = %e, "cannot fail a bulk registration job that stopped");
    }
}
