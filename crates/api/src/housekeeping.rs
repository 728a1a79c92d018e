//! What the service does on its own: forget `Idempotency-Key`s, delivered webhook deliveries
//! and ended bulk jobs' row reports past their retention, and learn which organisations another
//! replica deactivated.
//!
//! A key keeps the first response to replay it, and a registration's response holds names,
//! national ids and phone numbers: kept for ever, it would be a copy of the register outside
//! every retention rule. API.md §3 promises at least 24 hours; `PASSERELLE_IDEMPOTENCY_RETENTION_HOURS`
//! sets how long (48 by default). Every replica runs this: the deletes are idempotent.

use std::time::Duration;

use crate::state::AppState;

/// How often expired keys are looked for; the first look is at start.
const EVERY: Duration = Duration::from_secs(3600);

/// How often the deactivated organisations are read again: how long another replica may still
/// let one in after a deactivation (the replica that made it refuses at once).
pub const DEACTIVATED_EVERY: Duration = Duration::from_secs(5);

pub fn start(state: AppState) -> tokio::task::JoinHandle<()> {
    let deactivations = state.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(DEACTIVATED_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if let Err(e) = read_deactivated(&deactivations).await {
                tracing::warn!(error = %e, "the deactivated organisations could not be read");
            }
        }
    });
    tokio::spawn(async move {
        let mut every = tokio::time::interval(EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            forget_expired(&state).await;
        }
    })
}

/// Reads which organisations are deactivated now.
pub async fn read_deactivated(state: &AppState) -> Result<(), passerelle_domain::error::StoreError> {
    let generation = state.deactivated.generation();
    let orgs = state.store.deactivated_organizations().await?;
    state.deactivated.replace(orgs, generation);
    Ok(())
}

/// Forgets the keys, deliveries and row reports older than their retention; a failure is
/// logged and tried again next time.
pub async fn forget_expired(state: &AppState) {
    forget_keys(state).await;
    let now = state.clock.now();
    if let Some(before) = cutoff(now, state.config.webhook_delivery_retention) {
        let store = &state.store;
        let forgotten = in_rounds(|| store.forget_deliveries(before, ROUND)).await;
        report(forgotten, "delivered webhook deliveries forgotten");
    }
    if let Some(before) = cutoff(now, state.config.batch_report_retention) {
        let store = &state.store;
        let forgotten = in_rounds(|| store.forget_batch_reports(before, ROUND)).await;
        report(forgotten, "row reports of ended bulk jobs forgotten");
    }
}

/// Rows (deliveries, jobs' reports) forgotten per transaction: a history of millions is
/// forgotten in short writes, beside the service's own.
const ROUND: u32 = 1000;

fn cutoff(now: chrono::DateTime<chrono::Utc>, retention: Option<Duration>) -> Option<chrono::DateTime<chrono::Utc>> {
    now.checked_sub_signed(chrono::Duration::from_std(retention?).ok()?)
}

/// Calls `round` until it forgets fewer than a whole round; the total.
async fn in_rounds<F, Fut>(mut round: F) -> Result<u64, passerelle_domain::error::StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<u64, passerelle_domain::error::StoreError>>,
{
    let mut total = 0;
    loop {
        let n = round().await?;
        total += n;
        if n < u64::from(ROUND) {
            return Ok(total);
        }
    }
}

fn report(forgotten: Result<u64, passerelle_domain::error::StoreError>, what: &'static str) {
    match forgotten {
        Ok(0) => {}
        Ok(n) => tracing::info!(forgotten = n, "{what}"),
        Err(e) => tracing::warn!(error = %e, "{what}: failed, tried again in an hour"),
    }
}

async fn forget_keys(state: &AppState) {
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
