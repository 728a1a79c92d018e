//! This replica's share of the bulk jobs: a dispatcher that claims queued jobs one at a time
//! (woken by uploads, and polling for jobs queued through other replicas), and a sweeper that
//! fails jobs whose worker died, at start-up and periodically.
//!
//! A job is claimed with a compare-and-set in storage, so among replicas sharing a database and a
//! spool folder exactly one processes it. A crash leaves its job `running` with an old heartbeat;
//! the sweeper fails it as `interrupted`, and posting the same file again completes the rest:
//! households already registered are skipped, none is registered twice.

use std::time::Duration;

use passerelle_domain::ports::BatchFailure;

use super::spool;
use super::worker::{self, Ended, Silent};
use crate::state::AppState;

/// How often queued jobs are looked for without a wake-up (jobs queued through another replica).
const POLL_EVERY: Duration = Duration::from_secs(2);
/// Queued jobs read per look.
const QUEUED_PER_LOOK: u32 = 16;

pub fn start(state: &AppState) {
    let worker = format!("worker-{}", uuid::Uuid::now_v7().simple());
    tokio::spawn(dispatch(state.clone(), worker));
    tokio::spawn(sweep_forever(state.clone()));
}

/// Fails the running jobs without progress for `batch_stale_after`, and removes their files.
pub async fn sweep(state: &AppState) {
    let now = state.clock.now();
    let Ok(stale) = chrono::Duration::from_std(state.config.batch_stale_after) else {
        return;
    };
    match state
        .store
        .fail_stale_batches(now - stale, &BatchFailure::interrupted(), now)
        .await
    {
        Ok(jobs) => {
            for job in jobs {
                tracing::warn!(job = %job.id, "bulk registration job interrupted: its worker stopped");
                spool::discard(&state.config.batch_spool_dir, &job.spool_path);
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot sweep bulk registration jobs"),
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
        while run_next(&state, &worker).await {}
        tokio::select! {
            () = state.batch_queued.notified() => {}
            () = tokio::time::sleep(POLL_EVERY) => {}
        }
    }
}

/// Claims and runs the oldest queued job it can; false when there was none.
async fn run_next(state: &AppState, worker: &str) -> bool {
    let queued = match state.store.queued_batches(QUEUED_PER_LOOK).await {
        Ok(jobs) => jobs,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list queued bulk registration jobs");
            return false;
        }
    };
    for job in queued {
        match state.store.claim_batch(&job.id, worker, state.clock.now()).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim a bulk registration job");
                return false;
            }
        }
        tracing::info!(job = %job.id, "bulk registration job started");
        let ended = worker::process(state, &job, worker, &mut Silent).await;
        match &ended {
            Ended::Finished(status) => {
                tracing::info!(job = %job.id, status = status.as_str(), "bulk registration job ended");
                spool::discard(&state.config.batch_spool_dir, &job.spool_path);
            }
            Ended::Lost => tracing::warn!(job = %job.id, "bulk registration job taken from this worker"),
            Ended::StoreDown(e) => tracing::error!(job = %job.id, error = %e, "bulk registration job stopped"),
        }
        return true;
    }
    false
}
