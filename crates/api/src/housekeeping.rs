//! What the service forgets on its own: `Idempotency-Key`s past their retention.
//!
//! A key keeps the first response to replay it, and a registration's response holds names,
//! national ids and phone numbers: kept for ever, it would be a copy of the register outside
//! every retention rule. API.md §3 promises at least 24 hours; `PASSERELLE_IDEMPOTENCY_RETENTION_HOURS`
//! sets how long (48 by default). Every replica runs this: the deletes are idempotent.

use std::time::Duration;

use crate::state::AppState;

/// How often expired keys are looked for; the first look is at start.
const EVERY: Duration = Duration::from_secs(3600);

pub fn start(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            forget_expired(&state).await;
        }
    })
}

/// Forgets the keys older than the retention; a failure is logged and tried again next time.
pub async fn forget_expired(state: &AppState) {
    let retention = chrono::Duration::from_std(state.config.idempotency_retention).unwrap_or(chrono::Duration::MAX);
    let Some(before) = state.clock.now().checked_sub_signed(retention) else {
        return;
    };
    match state.store.forget_idempotency_keys(before).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(forgotten = n, "expired idempotency keys forgotten"),
        Err(e) => tracing::warn!(error = %e, "expired idempotency keys could not be forgotten"),
    }
}
