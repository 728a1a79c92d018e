// Storage of bulk registration jobs, shared by both databases through `include!` like `shared.rs`.

include!("bulk_registry.rs");

use chrono::{DateTime, Utc};
use passerelle_domain::batch::{RowDuplicate, RowError};
use passerelle_domain::ports::{
    BatchCounts, BatchEnd, BatchFailure, BatchFormat, BatchJob, BatchStatus, BatchStore, BatchUpdate, HouseholdOutcome,
    NewBatch, ReportKey, MAX_STORED_BATCH_ERRORS,
};

const BATCH_COLUMNS: &str = "id, organization, subject, product, format, status, spool_path, rows_total, \
     rows_processed, households_created, households_skipped, rows_failed, errors_total, possible_duplicates_total, \
     failure_code, failure_en, failure_fr, created_at, finished_at, csv_separator";

#[derive(sqlx::FromRow)]
struct BatchRow {
    id: String,
    organization: String,
    subject: String,
    product: Option<String>,
    format: String,
    status: String,
    spool_path: String,
    rows_total: Option<i64>,
    rows_processed: i64,
    households_created: i64,
    households_skipped: i64,
    rows_failed: i64,
    errors_total: i64,
    possible_duplicates_total: i64,
    failure_code: Option<String>,
    failure_en: Option<String>,
    failure_fr: Option<String>,
    created_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    csv_separator: Option<String>,
}

impl TryFrom<BatchRow> for BatchJob {
    type Error = StoreError;

    fn try_from(r: BatchRow) -> Result<Self, StoreError> {
        let failure = match (r.failure_code, r.failure_en, r.failure_fr) {
            (Some(code), Some(en), Some(fr)) => Some(BatchFailure { code, en, fr }),
            _ => None,
        };
        Ok(BatchJob {
            id: r.id,
            organization: r.organization,
            subject: r.subject,
            product: r.product,
            format: BatchFormat::parse(&r.format).ok_or_else(|| corrupt("batch format"))?,
            status: BatchStatus::parse(&r.status).ok_or_else(|| corrupt("batch status"))?,
            rows_total: r.rows_total,
            counts: BatchCounts {
                rows_processed: r.rows_processed,
                households_created: r.households_created,
                households_skipped: r.households_skipped,
                rows_failed: r.rows_failed,
                errors_total: r.errors_total,
                possible_duplicates_total: r.possible_duplicates_total,
            },
            failure,
            spool_path: r.spool_path,
            csv_separator: r.csv_separator.and_then(|s| s.chars().next()),
            created_at: r.created_at,
            finished_at: r.finished_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct BatchErrorRow {
    line: i64,
    seq: i64,
    household: String,
    field: String,
    code: String,
    message_en: String,
    message_fr: String,
}

/// The request id of everything a job writes, so its audit events can be found together.
fn batch_request_id(id: &str) -> String {
    format!("batch-{id}")
}

async fn fetch_batch(tx: &mut Tx, id: &str) -> Result<Option<BatchJob>, StoreError> {
    let row: Option<BatchRow> = sqlx::query_as(&format!(
        "SELECT {BATCH_COLUMNS} FROM registration_batches WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_err)?;
    row.map(BatchJob::try_from).transpose()
}

/// Rows of a multi-row `INSERT` of errors or duplicates: 8 values each, well under SQLite's
/// 32,766 bound variables.
const REPORT_INSERT_CHUNK: usize = 500;

/// Stores errors past those already kept, up to `MAX_STORED_BATCH_ERRORS`.
async fn insert_batch_errors(tx: &mut Tx, id: &str, stored_before: i64, errors: &[RowError]) -> Result<(), StoreError> {
    let room = usize::try_from(MAX_STORED_BATCH_ERRORS - stored_before).unwrap_or(0);
    let kept = &errors[..errors.len().min(room)];
    for (c, chunk) in kept.chunks(REPORT_INSERT_CHUNK).enumerate() {
        let first = stored_before + (c * REPORT_INSERT_CHUNK) as i64 + 1;
        let mut q = sqlx::QueryBuilder::<Db>::new(
            "INSERT INTO registration_batch_errors (batch, seq, line, household, field, code, message_en, message_fr) ",
        );
        q.push_values(chunk.iter().enumerate(), |mut row, (i, e)| {
            row.push_bind(id)
                .push_bind(first + i as i64)
                .push_bind(i64::try_from(e.row).unwrap_or(i64::MAX))
                .push_bind(&e.household)
                .push_bind(&e.field)
                .push_bind(&e.code)
                .push_bind(&e.message_en)
                .push_bind(&e.message_fr);
        });
        q.build().persistent(false).execute(&mut **tx).await.map_err(db_err)?;
    }
    Ok(())
}

#[derive(sqlx::FromRow)]
struct BatchDuplicateRow {
    line: i64,
    seq: i64,
    household: String,
    field: String,
    beneficiary: String,
    matches: String,
}

/// Stores possible duplicates past those already kept, up to `MAX_STORED_BATCH_ERRORS`.
async fn insert_batch_duplicates(
    tx: &mut Tx,
    id: &str,
    stored_before: i64,
    found: &[RowDuplicate],
) -> Result<(), StoreError> {
    let room = usize::try_from(MAX_STORED_BATCH_ERRORS - stored_before).unwrap_or(0);
    let kept = &found[..found.len().min(room)];
    for (c, chunk) in kept.chunks(REPORT_INSERT_CHUNK).enumerate() {
        let first = stored_before + (c * REPORT_INSERT_CHUNK) as i64 + 1;
        let mut q = sqlx::QueryBuilder::<Db>::new(
            "INSERT INTO registration_batch_duplicates (batch, seq, line, household, field, beneficiary, matches) ",
        );
        q.push_values(chunk.iter().enumerate(), |mut row, (i, d)| {
            row.push_bind(id)
                .push_bind(first + i as i64)
                .push_bind(i64::try_from(d.row).unwrap_or(i64::MAX))
                .push_bind(&d.household)
                .push_bind(&d.field)
                .push_bind(&d.beneficiary)
                .push_bind(d.matches.join(","));
        });
        q.build().persistent(false).execute(&mut **tx).await.map_err(db_err)?;
    }
    Ok(())
}

/// `WHERE` of a page of a job's errors or duplicates, by row then `seq` (the `_by_row` indexes
/// of migration 26): from the start, or past a page's key, compared as a row value so that both
/// databases seek to it rather than read the pages before.
fn report_page_filter(after: Option<ReportKey>) -> &'static str {
    match after {
        None => "WHERE batch = $1 ORDER BY line, seq LIMIT $2",
        Some(_) => "WHERE batch = $1 AND (line, seq) > ($3, $4) ORDER BY line, seq LIMIT $2",
    }
}

fn report_key(line: i64, seq: i64) -> ReportKey {
    ReportKey {
        row: u64::try_from(line).unwrap_or_default(),
        seq,
    }
}

fn end_event(job: &BatchJob, status: BatchStatus, subject: &str, at: DateTime<Utc>) -> NewAuditEvent {
    NewAuditEvent {
        at,
        organization: job.organization.clone(),
        subject: subject.to_owned(),
        action: format!("registration_batch.{}", status.as_str()),
        resource_type: "registration_batch".into(),
        resource_id: job.id.clone(),
        request_id: batch_request_id(&job.id),
    }
}

/// Records a job's progress (and its end, when `update.finish` is set) in `tx`, while `worker`
/// still holds it: `None`, and nothing written, when the job was taken from it. The row is
/// changed only under the same condition, so a sweeper that failed the job meanwhile (its
/// statement waited for this one's lock, or this one for its) is never overwritten. The audit
/// events to record with it, in order: the update's, then the job's end; the caller queues or
/// chains them.
async fn write_progress(
    tx: &mut Tx,
    id: &str,
    worker: &str,
    update: &BatchUpdate,
) -> Result<Option<Vec<NewAuditEvent>>, StoreError> {
    // Errors stored so far, read under the claim: only the holder writes them.
    // `seq` runs from 1 without gaps: the last one, read from the key's end, is the count.
    let stored: Option<(i64, i64)> = sqlx::query_as(
        "SELECT (SELECT COALESCE(max(seq), 0) FROM registration_batch_errors WHERE batch = $1), \
         (SELECT COALESCE(max(seq), 0) FROM registration_batch_duplicates WHERE batch = $1) \
         FROM registration_batches WHERE id = $1 AND status = 'running' AND worker = $2",
    )
    .bind(id)
    .bind(worker)
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_err)?;
    let Some((stored, stored_duplicates)) = stored else {
        return Ok(None);
    };
    insert_batch_errors(tx, id, stored, &update.new_errors).await?;
    insert_batch_duplicates(tx, id, stored_duplicates, &update.new_duplicates).await?;
    let c = &update.counts;
    let end: Option<&BatchEnd> = update.finish.as_ref();
    let status = end.map_or(BatchStatus::Running, |e| e.status);
    let failure = end.and_then(|e| e.failure.as_ref());
    let changed = sqlx::query(
        "UPDATE registration_batches SET rows_processed = $2, households_created = $3, households_skipped = $4, \
         rows_failed = $5, errors_total = $6, heartbeat_at = $7, status = $8, \
         rows_total = COALESCE($9, rows_total), failure_code = $10, failure_en = $11, failure_fr = $12, \
         finished_at = $13, possible_duplicates_total = $14 WHERE id = $1 AND status = 'running' AND worker = $15",
    )
    .bind(id)
    .bind(c.rows_processed)
    .bind(c.households_created)
    .bind(c.households_skipped)
    .bind(c.rows_failed)
    .bind(c.errors_total)
    .bind(update.at)
    .bind(status.as_str())
    .bind(end.and_then(|e| e.rows_total))
    .bind(failure.map(|f| f.code.as_str()))
    .bind(failure.map(|f| f.en.as_str()))
    .bind(failure.map(|f| f.fr.as_str()))
    .bind(end.map(|_| update.at))
    .bind(c.possible_duplicates_total)
    .bind(worker)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    if changed.rows_affected() == 0 {
        return Ok(None);
    }
    let mut events = update.events.clone();
    if end.is_some() {
        let job = fetch_batch(tx, id).await?.ok_or(StoreError::NotFound)?;
        let subject = job.subject.clone();
        events.push(end_event(&job, status, &subject, update.at));
    }
    Ok(Some(events))
}

/// `'a', 'b', …` for a `spool_path IN (…)` list of one chunk of paths.
fn push_paths<'a>(q: &mut sqlx::QueryBuilder<'a, Db>, chunk: &'a [String]) {
    let mut list = q.separated(", ");
    for path in chunk {
        list.push_bind(path.as_str());
    }
}

#[async_trait]
impl BatchStore for This {
    async fn forget_batch_reports(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        let ended: Vec<String> = sqlx::query_scalar(
            "SELECT b.id FROM registration_batches b WHERE b.status IN ('completed', 'failed') \
             AND COALESCE(b.finished_at, b.created_at) < $1 \
             AND (EXISTS (SELECT 1 FROM registration_batch_errors e WHERE e.batch = b.id) \
                  OR EXISTS (SELECT 1 FROM registration_batch_duplicates d WHERE d.batch = b.id)) \
             ORDER BY b.id LIMIT $2",
        )
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.write)
        .await
        .map_err(db_err)?;
        // A job's report at a time: up to 100,000 rows of each, a moment of the writer's.
        for batch in &ended {
            let mut tx = self.begin_write().await?;
            for table in ["registration_batch_errors", "registration_batch_duplicates"] {
                sqlx::query(&format!("DELETE FROM {table} WHERE batch = $1"))
                    .bind(batch)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            }
            tx.commit().await.map_err(db_err)?;
        }
        Ok(ended.len() as u64)
    }

    async fn create_batch(&self, ctx: &WriteContext, batch: &NewBatch) -> Result<Written<BatchJob>, StoreError> {
        let mut tx = self.begin_write().await?;
        if let Some(first) = claim_idempotency::<BatchJob>(&mut tx, ctx).await? {
            return Ok(Written {
                value: first,
                replayed: true,
            });
        }
        let job = BatchJob {
            id: batch.id.clone(),
            organization: ctx.organization.clone(),
            subject: ctx.subject.clone(),
            product: batch.product.clone(),
            format: batch.format,
            status: if batch.worker.is_some() {
                BatchStatus::Running
            } else {
                BatchStatus::Queued
            },
            rows_total: None,
            counts: BatchCounts::default(),
            failure: None,
            spool_path: batch.spool_path.clone(),
            csv_separator: batch.csv_separator,
            created_at: ctx.at,
            finished_at: None,
        };
        sqlx::query(
            "INSERT INTO registration_batches (id, organization, subject, product, format, status, spool_path, \
             worker, created_at, started_at, heartbeat_at, csv_separator) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11)",
        )
        .bind(&job.id)
        .bind(&job.organization)
        .bind(&job.subject)
        .bind(&job.product)
        .bind(job.format.as_str())
        .bind(job.status.as_str())
        .bind(&job.spool_path)
        .bind(&batch.worker)
        .bind(job.created_at)
        .bind(batch.worker.as_ref().map(|_| job.created_at))
        .bind(job.csv_separator.map(String::from))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        queue_events(
            &mut tx,
            &[ctx.audit("registration_batch.created", "registration_batch", &job.id)],
        )
        .await?;
        store_idempotent_response(&mut tx, ctx, &job).await?;
        self.commit(tx).await?;
        Ok(Written {
            value: job,
            replayed: false,
        })
    }

    async fn get_batch(&self, id: &str) -> Result<Option<BatchJob>, StoreError> {
        let row: Option<BatchRow> = sqlx::query_as(&format!(
            "SELECT {BATCH_COLUMNS} FROM registration_batches WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.read)
        .await
        .map_err(db_err)?;
        row.map(BatchJob::try_from).transpose()
    }

    async fn list_batches(
        &self,
        organization: Option<&str>,
        status: Option<BatchStatus>,
        page: &PageRequest,
    ) -> Result<Page<BatchJob>, StoreError> {
        let rows: Vec<BatchRow> = sqlx::query_as(&format!(
            "SELECT {BATCH_COLUMNS} FROM registration_batches WHERE ($1 IS NULL OR organization = $1) \
             AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR id > $3) ORDER BY id LIMIT $4"
        ))
        .bind(organization)
        .bind(status.map(BatchStatus::as_str))
        .bind(&page.after)
        .bind(i64::from(page.limit) + 1)
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        let jobs = rows
            .into_iter()
            .map(BatchJob::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(jobs, page.limit, |j| j.id.clone()))
    }

    async fn batch_errors(
        &self,
        id: &str,
        after: Option<ReportKey>,
        limit: u32,
    ) -> Result<Vec<(ReportKey, RowError)>, StoreError> {
        let sql = format!(
            "SELECT line, seq, household, field, code, message_en, message_fr FROM registration_batch_errors {}",
            report_page_filter(after)
        );
        let mut q = sqlx::query_as::<_, BatchErrorRow>(&sql).bind(id).bind(i64::from(limit));
        if let Some(k) = after {
            q = q.bind(i64::try_from(k.row).unwrap_or(i64::MAX)).bind(k.seq);
        }
        let rows = q.fetch_all(&self.read).await.map_err(db_err)?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let key = report_key(r.line, r.seq);
                let error = RowError {
                    row: key.row,
                    household: r.household,
                    field: r.field,
                    code: r.code,
                    message_en: r.message_en,
                    message_fr: r.message_fr,
                };
                (key, error)
            })
            .collect())
    }

    async fn batch_duplicates(
        &self,
        id: &str,
        after: Option<ReportKey>,
        limit: u32,
    ) -> Result<Vec<(ReportKey, RowDuplicate)>, StoreError> {
        let sql = format!(
            "SELECT line, seq, household, field, beneficiary, matches FROM registration_batch_duplicates {}",
            report_page_filter(after)
        );
        let mut q = sqlx::query_as::<_, BatchDuplicateRow>(&sql)
            .bind(id)
            .bind(i64::from(limit));
        if let Some(k) = after {
            q = q.bind(i64::try_from(k.row).unwrap_or(i64::MAX)).bind(k.seq);
        }
        let rows = q.fetch_all(&self.read).await.map_err(db_err)?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let key = report_key(r.line, r.seq);
                let duplicate = RowDuplicate {
                    row: key.row,
                    household: r.household,
                    field: r.field,
                    beneficiary: r.beneficiary,
                    matches: r
                        .matches
                        .split(',')
                        .filter(|m| !m.is_empty())
                        .map(str::to_owned)
                        .collect(),
                };
                (key, duplicate)
            })
            .collect())
    }

    async fn queued_batches(&self, spool_paths: &[String], at: DateTime<Utc>) -> Result<Vec<BatchJob>, StoreError> {
        if spool_paths.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write().await?;
        let mut jobs = Vec::new();
        for chunk in spool_paths.chunks(IN_CHUNK) {
            let mut seen = sqlx::QueryBuilder::<Db>::new("UPDATE registration_batches SET heartbeat_at = ");
            seen.push_bind(at).push(" WHERE status = 'queued' AND spool_path IN (");
            push_paths(&mut seen, chunk);
            seen.push(format!(") RETURNING {BATCH_COLUMNS}"));
            let rows: Vec<BatchRow> = seen.build_query_as().fetch_all(&mut *tx).await.map_err(db_err)?;
            for row in rows {
                jobs.push(BatchJob::try_from(row)?);
            }
        }
        tx.commit().await.map_err(db_err)?;
        jobs.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(jobs)
    }

    async fn live_uploads(&self, spool_paths: &[String]) -> Result<Vec<String>, StoreError> {
        let mut live = Vec::new();
        for chunk in spool_paths.chunks(IN_CHUNK) {
            let mut q = sqlx::QueryBuilder::<Db>::new(
                "SELECT spool_path FROM registration_batches WHERE status IN ('queued', 'running') AND spool_path IN (",
            );
            push_paths(&mut q, chunk);
            q.push(")");
            let rows: Vec<(String,)> = q.build_query_as().fetch_all(&self.read).await.map_err(db_err)?;
            live.extend(rows.into_iter().map(|(p,)| p));
        }
        Ok(live)
    }

    async fn claim_batch(&self, id: &str, worker: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let claimed = sqlx::query(
            "UPDATE registration_batches SET status = 'running', worker = $2, started_at = $3, heartbeat_at = $3 \
             WHERE id = $1 AND status = 'queued'",
        )
        .bind(id)
        .bind(worker)
        .bind(at)
        .execute(&self.write)
        .await
        .map_err(db_err)?
        .rows_affected();
        Ok(claimed == 1)
    }

    async fn release_batch(&self, id: &str, worker: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let released = sqlx::query(
            "UPDATE registration_batches SET status = 'queued', worker = NULL, heartbeat_at = $3 \
             WHERE id = $1 AND status = 'running' AND worker = $2",
        )
        .bind(id)
        .bind(worker)
        .bind(at)
        .execute(&self.write)
        .await
        .map_err(db_err)?
        .rows_affected();
        Ok(released == 1)
    }

    async fn update_batch(&self, id: &str, worker: &str, update: &BatchUpdate) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let Some(events) = write_progress(&mut tx, id, worker, update).await? else {
            return Ok(false);
        };
        queue_events(&mut tx, &events).await?;
        self.commit(tx).await?;
        Ok(true)
    }

    async fn resume_stale_batches(
        &self,
        spool_paths: &[String],
        stale_before: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let mut resumed = Vec::new();
        for chunk in spool_paths.chunks(IN_CHUNK) {
            let mut q = sqlx::QueryBuilder::<Db>::new(
                "UPDATE registration_batches SET status = 'queued', worker = NULL, heartbeat_at = ",
            );
            q.push_bind(at)
                .push(" WHERE status = 'running' AND heartbeat_at < ")
                .push_bind(stale_before)
                .push(" AND spool_path IN (");
            push_paths(&mut q, chunk);
            q.push(") RETURNING id");
            let rows: Vec<(String,)> = q.build_query_as().fetch_all(&self.write).await.map_err(db_err)?;
            resumed.extend(rows.into_iter().map(|(id,)| id));
        }
        Ok(resumed)
    }

    async fn fail_stale_batches(
        &self,
        stale_before: DateTime<Utc>,
        running_before: DateTime<Utc>,
        failure: &BatchFailure,
        at: DateTime<Utc>,
    ) -> Result<Vec<BatchJob>, StoreError> {
        let mut tx = self.begin_write().await?;
        let ids: Vec<(String,)> = sqlx::query_as(
            "UPDATE registration_batches SET status = 'failed', worker = NULL, failure_code = $2, failure_en = $3, \
             failure_fr = $4, finished_at = $5 WHERE (status = 'running' AND heartbeat_at < $6) \
             OR (status = 'queued' AND COALESCE(heartbeat_at, created_at) < $1) RETURNING id",
        )
        .bind(stale_before)
        .bind(&failure.code)
        .bind(&failure.en)
        .bind(&failure.fr)
        .bind(at)
        .bind(running_before)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        let mut jobs = Vec::with_capacity(ids.len());
        for (id,) in &ids {
            if let Some(job) = fetch_batch(&mut tx, id).await? {
                jobs.push(job);
            }
        }
        let events: Vec<NewAuditEvent> = jobs
            .iter()
            .map(|job| end_event(job, BatchStatus::Failed, "passerelle", at))
            .collect();
        queue_events(&mut tx, &events).await?;
        self.commit(tx).await?;
        Ok(jobs)
    }

    async fn register_batch_group(
        &self,
        ctx: &WriteContext,
        households: &[NewHousehold],
        skip_existing: bool,
        id: &str,
        worker: &str,
        progress: &(dyn for<'o> Fn(&'o [HouseholdOutcome]) -> BatchUpdate + Sync),
    ) -> Result<Option<(Vec<HouseholdOutcome>, BatchUpdate)>, StoreError> {
        let mut tx = self.begin_write().await?;
        // A deactivation that committed on another replica, which learns of it only at its next
        // refresh, stops the job here; one in progress waits for this group, or this group for
        // it (the row lock), so no group is written in the name of a deactivated organisation.
        let deactivated: Option<(bool,)> = sqlx::query_as(&format!(
            "SELECT deactivated_at IS NOT NULL FROM organizations WHERE id = $1{FOR_SHARE}"
        ))
        .bind(&ctx.organization)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        if matches!(deactivated, Some((true,))) {
            return Err(StoreError::Conflict {
                constraint: "organization_deactivated".into(),
            });
        }
        let (outcomes, events) = register_group(&mut tx, ctx, households, skip_existing).await?;
        let update = progress(&outcomes);
        // Dropping the transaction rolls the group back with the progress.
        let Some(progress_events) = write_progress(&mut tx, id, worker, &update).await? else {
            return Ok(None);
        };
        // Last: the chain's head stays locked until the commit, and every audited write waits.
        // The group's events, then its refusals and the job's end.
        let mut events = events;
        events.extend(progress_events);
        chain_events(&mut tx, &events).await?;
        self.commit(tx).await?;
        Ok(Some((outcomes, update)))
    }
}
