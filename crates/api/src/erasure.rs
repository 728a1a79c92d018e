//! `passerelle erase-personal-data`: the deployment's retention period, applied on demand (from
//! cron or a Kubernetes CronJob) rather than by the service on its own, so that no setting
//! mistyped at a start ever erases anyone.

use chrono::NaiveDate;
use passerelle_domain::ports::WriteContext;
use passerelle_domain::retention;
use serde::Serialize;

use crate::config::Config;
use crate::import::COMMAND_LINE_ERROR;

pub struct EraseArgs {
    pub ended_before: Option<NaiveDate>,
    pub retention_days: Option<u32>,
    pub dry_run: bool,
}

/// What the command prints, as JSON on standard output.
#[derive(Serialize)]
struct Outcome {
    ended_before: NaiveDate,
    dry_run: bool,
    people: u64,
    merged_records: u64,
    /// `beneficiary.changed` webhook deliveries forgotten (or, dry, to forget) for holding an
    /// erased person.
    webhook_deliveries: u64,
    /// The `request_id` of the run's `beneficiary.erased` audit events.
    request_id: String,
}

/// Runs the erasure and returns what to print.
pub async fn run(config: Config, args: EraseArgs) -> Result<String, String> {
    // In microseconds, as every instant the service writes (`SystemClock`): the webhook event's
    // `erased_at` is then the stored one.
    let now = passerelle_domain::clock::Clock::now(&passerelle_domain::clock::SystemClock);
    let before = retention::cutoff(now.date_naive(), args.ended_before, args.retention_days)
        .map_err(|e| format!("{COMMAND_LINE_ERROR}{e}"))?;
    let db = crate::app::connect_primary(&config).await?;
    // An older schema has no `erased_at`: said, with the command that adds it.
    crate::app::require_schema(&db).await?;
    let ctx = WriteContext {
        organization: config.operator_org.to_string(),
        subject: "passerelle erase-personal-data".into(),
        request_id: format!("erase-{}", uuid::Uuid::now_v7()),
        trace_parent: None,
        at: now,
        idempotency: None,
    };
    let erased = db
        .store
        .erase_personal_data(&ctx, before, args.dry_run)
        .await
        .map_err(|e| format!("the erasure stopped: {e} (the people erased before it stay erased; run it again)"))?;
    // Chained now, so that a verification right after finds them; otherwise the next cycle of
    // any replica chains them from the queue.
    if db.store.flush_audit().await.is_err() {
        eprintln!("warning: the erasures' audit events are queued, not yet chained; a running service chains them");
    }
    db.close().await;
    let outcome = Outcome {
        ended_before: before,
        dry_run: args.dry_run,
        people: erased.people,
        merged_records: erased.merged_records,
        webhook_deliveries: erased.webhook_deliveries,
        request_id: ctx.request_id,
    };
    serde_json::to_string_pretty(&outcome)
        .map(|json| format!("{json}\n"))
        .map_err(|e| e.to_string())
}
