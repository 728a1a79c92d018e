// The storage implementation shared by both databases. It is compiled once per backend with
// `include!` from `postgres.rs` and `sqlite.rs`, which define `Db` (the sqlx database), `This`
// (the store, with `write` and `read` pools) and `LOCK_HEAD` (how to lock the audit chain's head).
// Keeping one text for both is what keeps the two backends from drifting apart; the SQL is the
// common dialect of PostgreSQL 15 and SQLite 3.35+ (`$n` parameters, `ON CONFLICT`, `RETURNING`).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{Datelike, NaiveDate};
use passerelle_domain::audit::{AuditEvent, NewAuditEvent};
use passerelle_domain::eligibility::BirthDatePrecision;
use passerelle_domain::error::StoreError;
use passerelle_domain::organization::Organization;
use passerelle_domain::pagination::{Page, PageRequest};
use passerelle_domain::ports::{
    AuditFilter, AuditStore, HealthStore, IdempotencyKey, IdempotencyStore, OrganizationFilter, OrganizationStore,
    ProductStore, WriteContext, Written,
};
use passerelle_domain::product::ProductVersion;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::errors::{commit_err, corrupt, db_err, head_err};
use super::rows::{AuditRow, HeadRow, IdempotencyRow, OrgRow, QueuedRow};

type Tx = sqlx::Transaction<'static, Db>;

impl This {
    async fn begin_write(&self) -> Result<Tx, StoreError> {
        begin_detached(&self.write, Some(BEGIN_WRITE)).await
    }
}

/// Begins a transaction in a task of its own, so that the begin always completes. sqlx's
/// `begin` is not cancel-safe: a caller dropped while its `BEGIN` was in flight (a client
/// hanging up, the request timeout, the chainer's deadline) gave the connection back to the
/// pool inside a transaction nobody owned, after which every SQLite write failed until a
/// restart and a PostgreSQL connection answered every statement with an error. A transaction
/// begun for a caller that is gone is dropped like any other, which rolls it back.
async fn begin_detached(pool: &sqlx::Pool<Db>, statement: Option<&'static str>) -> Result<Tx, StoreError> {
    let pool = pool.clone();
    tokio::spawn(async move {
        match statement {
            Some(statement) => pool.begin_with(statement).await,
            None => pool.begin().await,
        }
    })
    .await
    .map_err(|e| StoreError::Internal(format!("a transaction's begin stopped: {e}")))?
    .map_err(db_err)
}

/// Claims the request's `Idempotency-Key` inside the write's transaction. Returns the first
/// response when the key was already used with the same request. A concurrent request with the
/// same key waits on the key's row until the first one commits, then replays it.
async fn claim_idempotency<T: DeserializeOwned>(tx: &mut Tx, ctx: &WriteContext) -> Result<Option<T>, StoreError> {
    let Some(idem) = &ctx.idempotency else {
        return Ok(None);
    };
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (organization, key, fingerprint, canonical_fingerprint, response, created_at) \
         VALUES ($1, $2, $3, $5, NULL, $4) ON CONFLICT (organization, key) DO NOTHING",
    )
    .bind(&ctx.organization)
    .bind(&idem.key)
    .bind(&idem.fingerprint)
    .bind(ctx.at)
    .bind(&idem.canonical)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?
    .rows_affected();
    if inserted == 1 {
        return Ok(None);
    }
    let row: IdempotencyRow = sqlx::query_as(
        "SELECT fingerprint, canonical_fingerprint, response FROM idempotency_keys WHERE organization = $1 AND key = $2",
    )
    .bind(&ctx.organization)
    .bind(&idem.key)
    .fetch_one(&mut **tx)
    .await
    .map_err(db_err)?;
    if !idem.same_request(&row.fingerprint, row.canonical_fingerprint.as_deref()) {
        return Err(StoreError::IdempotencyMismatch);
    }
    match row.response {
        Some(body) => serde_json::from_str(&body)
            .map(Some)
            .map_err(|_| corrupt("idempotent response")),
        None => Err(StoreError::Conflict {
            constraint: "idempotency_in_progress".into(),
        }),
    }
}

async fn store_idempotent_response<T: Serialize>(tx: &mut Tx, ctx: &WriteContext, value: &T) -> Result<(), StoreError> {
    let Some(idem) = &ctx.idempotency else {
        return Ok(());
    };
    let body = serde_json::to_string(value).map_err(|e| StoreError::Internal(e.to_string()))?;
    sqlx::query("UPDATE idempotency_keys SET response = $3 WHERE organization = $1 AND key = $2")
        .bind(&ctx.organization)
        .bind(&idem.key)
        .bind(body)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// Queues a change's audit events in its own transaction; `This::commit` then has them chained.
/// No lock is taken: concurrent changes never wait on one another for their audit.
async fn queue_events(tx: &mut Tx, events: &[NewAuditEvent]) -> Result<(), StoreError> {
    for chunk in events.chunks(500) {
        let mut insert = sqlx::QueryBuilder::<Db>::new(
            "INSERT INTO audit_queue (at, organization, subject, action, resource_type, resource_id, request_id) ",
        );
        insert.push_values(chunk, |mut row, e| {
            row.push_bind(e.at)
                .push_bind(e.organization.clone())
                .push_bind(e.subject.clone())
                .push_bind(e.action.clone())
                .push_bind(e.resource_type.clone())
                .push_bind(e.resource_id.clone())
                .push_bind(e.request_id.clone());
        });
        insert.build().execute(&mut **tx).await.map_err(db_err)?;
    }
    Ok(())
}

/// Appends events to the chain under the head's row lock. Called last in its transaction, so
/// the lock is held only for these few statements and the commit: by bulk imports, whose
/// thousands of events would gain nothing from a detour through the queue. The events of changes
/// committed before, still in the queue, are chained first, as the chainer would have: a bulk
/// job's first group could otherwise come before the job's own `registration_batch.created`.
/// The transaction must have queued nothing itself.
async fn chain_events(tx: &mut Tx, events: &[NewAuditEvent]) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    // Once the head is locked, the queue's committed rows are visible and no chainer takes them.
    let head: HeadRow = sqlx::query_as(LOCK_HEAD).fetch_one(&mut **tx).await.map_err(head_err)?;
    let mut queued: Vec<QueuedRow> = sqlx::query_as(
        "DELETE FROM audit_queue RETURNING id, at, organization, subject, action, resource_type, resource_id, request_id",
    )
    .fetch_all(&mut **tx)
    .await
    .map_err(db_err)?;
    queued.sort_by_key(|r| r.id);
    let mut all: Vec<NewAuditEvent> = queued.into_iter().map(NewAuditEvent::from).collect();
    all.extend_from_slice(events);
    chain_after(tx, head, &all).await.map(|_| ())
}

/// The events chained after `head`, and the head they leave.
fn chain_in_memory(head: HeadRow, events: &[NewAuditEvent]) -> (Vec<AuditEvent>, HeadRow) {
    let (mut seq, mut digest) = (head.seq, head.digest);
    let mut chained = Vec::with_capacity(events.len());
    for event in events {
        let e = event.clone().chain(Some((seq, &digest)));
        seq = e.seq;
        digest = e.digest.clone();
        chained.push(e);
    }
    (chained, HeadRow { seq, digest })
}

/// Appends events after `head`, which the transaction has locked; returns the new head.
async fn chain_after(tx: &mut Tx, head: HeadRow, events: &[NewAuditEvent]) -> Result<HeadRow, StoreError> {
    let (chained, head) = chain_in_memory(head, events);
    insert_chained(tx, &chained).await?;
    // Also where SQLite's trigger (migration 11) has moved the head already: the same values,
    // and a head that stays right if the trigger is missing (`serve --no-migrate` on an older
    // file).
    sqlx::query("UPDATE audit_head SET seq = $1, digest = $2 WHERE id = 1")
        .bind(head.seq)
        .bind(&head.digest)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    Ok(head)
}

/// The chainer's side of this backend: moves queued events into the chain.
struct QueueChain {
    pool: sqlx::Pool<Db>,
    /// The head as this chainer last saw it: what its next compare-and-set expects.
    head: std::sync::Mutex<Option<HeadRow>>,
}

impl QueueChain {
    fn new(pool: sqlx::Pool<Db>) -> QueueChain {
        QueueChain {
            pool,
            head: std::sync::Mutex::new(None),
        }
    }

    fn remember(&self, head: HeadRow) {
        if let Ok(mut h) = self.head.lock() {
            *h = Some(head);
        }
    }
}

#[async_trait]
impl crate::audit_chain::ChainWriter for QueueChain {
    async fn chain(&self, direct: &[NewAuditEvent], drain: bool) -> Result<usize, StoreError> {
        // First without a transaction, against the head this chainer last wrote (see
        // `chain_by_compare_and_set`); when another writer moved it, under the head lock.
        let expected = self.head.lock().ok().and_then(|mut h| h.take());
        if let Some(expected) = expected {
            if let Some((taken, head)) = chain_by_compare_and_set(&self.pool, expected, direct, drain).await? {
                self.remember(head);
                return Ok(taken);
            }
        }
        let mut tx = begin_detached(&self.pool, None).await?;
        // The head lock comes first: once it is held, the queue's committed rows are visible to
        // the next statement and no other chainer can take them.
        let head: HeadRow = sqlx::query_as(LOCK_HEAD).fetch_one(&mut *tx).await.map_err(head_err)?;
        let mut queued: Vec<QueuedRow> = if drain {
            sqlx::query_as(
                "DELETE FROM audit_queue WHERE id IN (SELECT id FROM audit_queue ORDER BY id LIMIT $1) \
                 RETURNING id, at, organization, subject, action, resource_type, resource_id, request_id",
            )
            .bind(crate::audit_chain::QUEUE_BATCH)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?
        } else {
            Vec::new()
        };
        let taken = queued.len();
        if taken == 0 && direct.is_empty() {
            self.remember(head);
            return Ok(0);
        }
        // RETURNING has no order; the chain keeps the order the changes queued them in.
        queued.sort_by_key(|r| r.id);
        let mut events: Vec<NewAuditEvent> = queued.into_iter().map(NewAuditEvent::from).collect();
        events.extend_from_slice(direct);
        let head = chain_after(&mut tx, head, &events).await?;
        tx.commit().await.map_err(db_err)?;
        self.remember(head);
        Ok(taken)
    }

    async fn has_queued(&self) -> Result<bool, StoreError> {
        let found: Option<(i64,)> = sqlx::query_as("SELECT id FROM audit_queue LIMIT 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(found.is_some())
    }

    async fn tidy(&self) -> Result<(), StoreError> {
        if let Some(statement) = TIDY_QUEUE {
            sqlx::raw_sql(statement).execute(&self.pool).await.map_err(db_err)?;
        }
        Ok(())
    }
}

impl This {
    /// Commits a change whose audit events were queued, and asks the chainer to chain them.
    /// The caller does not wait for that: its events are durable in the queue from this commit
    /// on, and every read of the audit log first chains what was committed before it
    /// (`AuditStore` below), so no reader can miss them. A chaining failure after the commit
    /// is not the change's failure: the next cycle chains them.
    async fn commit(&self, tx: Tx) -> Result<(), StoreError> {
        tx.commit().await.map_err(commit_err)?;
        self.chain.nudge();
        Ok(())
    }
}

#[async_trait]
impl HealthStore for This {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.read).await.map_err(db_err)?;
        Ok(())
    }

    fn read_replica_up(&self) -> Option<bool> {
        self.replica.as_ref().map(|r| r.is_up())
    }
}

#[async_trait]
impl IdempotencyStore for This {
    async fn replay(&self, organization: &str, key: &IdempotencyKey) -> Result<Option<String>, StoreError> {
        // The primary: a key claimed a moment ago may not have reached a replica.
        let row: Option<IdempotencyRow> = sqlx::query_as(
            "SELECT fingerprint, canonical_fingerprint, response FROM idempotency_keys \
             WHERE organization = $1 AND key = $2",
        )
        .bind(organization)
        .bind(&key.key)
        .fetch_optional(&self.write)
        .await
        .map_err(db_err)?;
        match row {
            Some(row) if !key.same_request(&row.fingerprint, row.canonical_fingerprint.as_deref()) => {
                Err(StoreError::IdempotencyMismatch)
            }
            Some(row) => Ok(row.response),
            None => Ok(None),
        }
    }

    async fn idempotency_key_used(&self, organization: &str, key: &str) -> Result<bool, StoreError> {
        // The primary, as for `replay`.
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM idempotency_keys WHERE organization = $1 AND key = $2")
            .bind(organization)
            .bind(key)
            .fetch_one(&self.write)
            .await
            .map_err(db_err)?;
        Ok(n > 0)
    }

    async fn forget_idempotency_keys(&self, before: chrono::DateTime<chrono::Utc>) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let forgotten = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(before)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        tx.commit().await.map_err(db_err)?;
        Ok(forgotten)
    }
}

/// Inserts the organisation unless its id exists; true when it was inserted.
async fn insert_organization(tx: &mut Tx, org: &Organization) -> Result<bool, StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO organizations (id, kind, country, name, registration_number, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
    )
    .bind(org.id.as_str())
    .bind(org.kind.as_str())
    .bind(org.country.as_str())
    .bind(&org.name)
    .bind(&org.registration_number)
    .bind(org.created_at)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?
    .rows_affected();
    Ok(inserted == 1)
}

const ORG_COLUMNS: &str = "id, kind, country, name, registration_number, created_at, deactivated_at";

#[async_trait]
impl OrganizationStore for This {
    async fn create_organization(
        &self,
        ctx: &WriteContext,
        org: &Organization,
    ) -> Result<Written<Organization>, StoreError> {
        let mut tx = self.begin_write().await?;
        if let Some(first) = claim_idempotency::<Organization>(&mut tx, ctx).await? {
            return Ok(Written {
                value: first,
                replayed: true,
            });
        }
        let inserted = insert_organization(&mut tx, org).await?;
        if !inserted {
            return Err(StoreError::Conflict {
                constraint: "organization_exists".into(),
            });
        }
        queue_events(
            &mut tx,
            &[ctx.audit("organization.created", "organization", org.id.as_str())],
        )
        .await?;
        store_idempotent_response(&mut tx, ctx, org).await?;
        self.commit(tx).await?;
        Ok(Written {
            value: org.clone(),
            replayed: false,
        })
    }

    async fn ensure_organization(&self, ctx: &WriteContext, org: &Organization) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let inserted = insert_organization(&mut tx, org).await?;
        if inserted {
            queue_events(
                &mut tx,
                &[ctx.audit("organization.created", "organization", org.id.as_str())],
            )
            .await?;
        }
        self.commit(tx).await?;
        Ok(inserted)
    }

    async fn get_organization(&self, id: &str) -> Result<Option<Organization>, StoreError> {
        let row: Option<OrgRow> = sqlx::query_as(&format!("SELECT {ORG_COLUMNS} FROM organizations WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.map(Organization::try_from).transpose()
    }

    async fn set_organization_active(
        &self,
        ctx: &WriteContext,
        id: &str,
        active: bool,
    ) -> Result<Option<Organization>, StoreError> {
        let mut tx = self.begin_write().await?;
        let statement = if active {
            "UPDATE organizations SET deactivated_at = NULL WHERE id = $1 AND deactivated_at IS NOT NULL"
        } else {
            "UPDATE organizations SET deactivated_at = $2 WHERE id = $1 AND deactivated_at IS NULL"
        };
        let changed = sqlx::query(statement)
            .bind(id)
            .bind(ctx.at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        let row: Option<OrgRow> = sqlx::query_as(&format!("SELECT {ORG_COLUMNS} FROM organizations WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        let Some(row) = row else { return Ok(None) };
        if changed == 0 {
            return Err(StoreError::Conflict {
                constraint: if active {
                    "already_active"
                } else {
                    "already_deactivated"
                }
                .into(),
            });
        }
        // What was queued for it is not sent either: deactivation may answer a leak, and a
        // subscription its holder made would go on receiving. A reactivation fails what is
        // still pending too: nothing is queued while it is deactivated, so such a delivery was
        // written while the deactivation committed and is of the time in between.
        sqlx::query(
            "UPDATE webhook_deliveries SET status = 'failed' WHERE status = 'pending' \
             AND subscription IN (SELECT id FROM webhook_subscriptions WHERE organization = $1)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let action = if active {
            "organization.reactivated"
        } else {
            "organization.deactivated"
        };
        queue_events(&mut tx, &[ctx.audit(action, "organization", id)]).await?;
        self.commit(tx).await?;
        Organization::try_from(row).map(Some)
    }

    async fn deactivated_organizations(&self) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar("SELECT id FROM organizations WHERE deactivated_at IS NOT NULL")
            .fetch_all(&self.read)
            .await
            .map_err(db_err)
    }

    async fn list_organizations(
        &self,
        filter: &OrganizationFilter,
        page: &PageRequest,
    ) -> Result<Page<Organization>, StoreError> {
        let rows: Vec<OrgRow> = sqlx::query_as(&format!(
            "SELECT {ORG_COLUMNS} FROM organizations \
             WHERE ($1 IS NULL OR kind = $1) AND ($2 IS NULL OR country = $2) AND ($3 IS NULL OR id > $3) \
             ORDER BY id LIMIT $4"
        ))
        .bind(filter.kind.map(|k| k.as_str()))
        .bind(&filter.country)
        .bind(&page.after)
        .bind(i64::from(page.limit) + 1)
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        let orgs = rows
            .into_iter()
            .map(Organization::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(orgs, page.limit, |o| o.id.as_str().to_owned()))
    }
}

/// Every read of `audit_events` takes `at` as stored (`AuditAt`, read by `read_audit_at`): a row
/// whose `at` storage could not have written is read all the same, marked, for verification to
/// name it and the API to refuse serving what it cannot.
const AUDIT_COLUMNS: &str =
    "seq, at, organization, subject, action, resource_type, resource_id, request_id, digest, prev_digest";

#[async_trait]
impl AuditStore for This {
    async fn append_audit(&self, events: &[NewAuditEvent]) -> Result<(), StoreError> {
        self.chain.append(events.to_vec()).await
    }

    async fn list_audit_events(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> Result<Page<AuditEvent>, StoreError> {
        let after = match &page.after {
            Some(key) => Some(key.parse::<i64>().map_err(|_| StoreError::InvalidCursor)?),
            None => None,
        };
        self.chain.flush().await?;
        // Only the filters asked for are written, and the statement is planned for its values
        // (not kept prepared): a `$1 IS NULL OR organization = $1` form reads the whole log on
        // SQLite, whose planner cannot drop the term, and on PostgreSQL whenever a generic plan
        // is chosen. Each filter then has an index to read (migration 25).
        let access = match filter.since {
            Some(since) => {
                let narrowed = filter.organization.is_some()
                    || filter.resource_type.is_some()
                    || filter.resource_id.is_some()
                    || filter.action.is_some();
                self.audit_since_access(since, after, page.limit, narrowed).await?
            }
            None => super::SinceAccess::default(),
        };
        let mut query = sqlx::QueryBuilder::<Db>::new(format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_events{} WHERE TRUE",
            access.index
        ));
        if let Some(first) = access.from_seq {
            query.push(" AND seq >= ").push_bind(first);
        }
        // A resource's few events are read by the resource index. Its organisation (always
        // there for a mutuelle's own reads) and its action are then compared as expressions,
        // which no index serves: SQLite, without statistics, would otherwise walk every event
        // of that organisation or action instead (0.2 s a page with 460,000 events).
        let by_resource = filter.resource_id.is_some();
        let column = |name: &str| {
            if by_resource {
                format!(" AND {name} || '' = ")
            } else {
                format!(" AND {name} = ")
            }
        };
        if let Some(organization) = &filter.organization {
            query.push(column("organization")).push_bind(organization);
        }
        match (&filter.resource_type, &filter.resource_id) {
            (Some(resource_type), _) => {
                query.push(" AND resource_type = ").push_bind(resource_type);
            }
            // Without its type, an id is looked up under each type the log holds, found by
            // walking the resource index (one probe per type) rather than reading every event.
            (None, Some(_)) => {
                query.push(
                    " AND resource_type IN (WITH RECURSIVE types(t) AS (SELECT min(resource_type) FROM audit_events \
                     UNION ALL SELECT (SELECT min(resource_type) FROM audit_events WHERE resource_type > types.t) \
                     FROM types WHERE types.t IS NOT NULL) SELECT t FROM types WHERE t IS NOT NULL)",
                );
            }
            (None, None) => {}
        }
        if let Some(resource_id) = &filter.resource_id {
            query.push(" AND resource_id = ").push_bind(resource_id);
        }
        // The partial indexes' own predicate, which both planners must find in the query to use
        // them: true of every action but the checks', and of every event of a type other than
        // theirs (the indexes of an organisation's events by action, migration 25, or by type,
        // migration 34).
        let other_action = filter
            .action
            .as_deref()
            .is_some_and(|a| !passerelle_domain::audit::CHECK_ACTIONS.contains(&a));
        let other_type = filter.organization.is_some()
            && filter
                .resource_type
                .as_deref()
                .is_some_and(|t| t != passerelle_domain::audit::CHECK_RESOURCE_TYPE);
        if let Some(action) = &filter.action {
            query.push(column("action")).push_bind(action);
        }
        if !by_resource && (other_action || other_type) {
            query.push(" AND ").push(super::AUDIT_ACTION_INDEX_PREDICATE);
        }
        if let Some(since) = filter.since {
            query.push(" AND at >= ").push_bind(since);
        }
        if let Some(after) = after {
            query.push(" AND seq < ").push_bind(after);
        }
        query
            .push(" ORDER BY seq DESC LIMIT ")
            .push_bind(i64::from(page.limit) + 1);
        let rows: Vec<AuditRow<AuditAt>> = query
            .build_query_as()
            .persistent(false)
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        let events: Vec<AuditEvent> = rows.into_iter().map(|r| r.into_event(read_audit_at)).collect();
        Ok(Page::from_overfetch(events, page.limit, |e| e.seq.to_string()))
    }

    async fn get_audit_event(&self, seq: i64) -> Result<Option<AuditEvent>, StoreError> {
        self.chain.flush().await?;
        let row: Option<AuditRow<AuditAt>> =
            sqlx::query_as(&format!("SELECT {AUDIT_COLUMNS} FROM audit_events WHERE seq = $1"))
                .bind(seq)
                .fetch_optional(&self.read)
                .await
                .map_err(db_err)?;
        Ok(row.map(|r| r.into_event(read_audit_at)))
    }

    async fn flush_audit(&self) -> Result<(), StoreError> {
        self.chain.flush().await
    }

    async fn audit_head(&self) -> Result<(i64, String), StoreError> {
        let head: HeadRow = sqlx::query_as("SELECT seq, digest FROM audit_head WHERE id = 1")
            .fetch_one(&self.read)
            .await
            .map_err(head_err)?;
        Ok((head.seq, head.digest))
    }

    async fn audit_events_from(&self, from: i64, limit: u32) -> Result<Vec<AuditEvent>, StoreError> {
        let rows: Vec<AuditRow<AuditAt>> = sqlx::query_as(&format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_events WHERE seq >= $1 ORDER BY seq LIMIT $2"
        ))
        .bind(from)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        Ok(rows.into_iter().map(|r| r.into_event(read_audit_at)).collect())
    }
}

#[derive(sqlx::FromRow)]
struct BodyRow {
    body: String,
}

fn product_from(row: BodyRow) -> Result<ProductVersion, StoreError> {
    serde_json::from_str(&row.body).map_err(|_| corrupt("product version"))
}

async fn insert_product_version(tx: &mut Tx, ctx: &WriteContext, v: &ProductVersion) -> Result<(), StoreError> {
    let body = serde_json::to_string(v).map_err(|e| StoreError::Internal(e.to_string()))?;
    sqlx::query(
        "INSERT INTO product_versions (product_id, version, effective_from, body, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&v.product_id)
    .bind(i64::from(v.version))
    .bind(v.effective_from)
    .bind(body)
    .bind(ctx.at)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(())
}

#[async_trait]
impl ProductStore for This {
    async fn create_product(
        &self,
        ctx: &WriteContext,
        first: &ProductVersion,
    ) -> Result<Written<ProductVersion>, StoreError> {
        let mut tx = self.begin_write().await?;
        if let Some(replayed) = claim_idempotency::<ProductVersion>(&mut tx, ctx).await? {
            return Ok(Written {
                value: replayed,
                replayed: true,
            });
        }
        sqlx::query(
            "INSERT INTO products (id, organization, layer, current_version, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&first.product_id)
        .bind(&first.organization)
        .bind(first.layer.as_str())
        .bind(i64::from(first.version))
        .bind(ctx.at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        insert_product_version(&mut tx, ctx, first).await?;
        queue_events(&mut tx, &[ctx.audit("product.created", "product", &first.product_id)]).await?;
        store_idempotent_response(&mut tx, ctx, first).await?;
        self.commit(tx).await?;
        Ok(Written {
            value: first.clone(),
            replayed: false,
        })
    }

    async fn add_product_version(&self, ctx: &WriteContext, next: &ProductVersion) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        // Compare-and-set on the version number: two concurrent updates cannot both win.
        let updated = sqlx::query("UPDATE products SET current_version = $2 WHERE id = $1 AND current_version = $3")
            .bind(&next.product_id)
            .bind(i64::from(next.version))
            .bind(i64::from(next.version) - 1)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        if updated == 0 {
            return Err(StoreError::StaleVersion);
        }
        insert_product_version(&mut tx, ctx, next).await?;
        queue_events(&mut tx, &[ctx.audit("product.versioned", "product", &next.product_id)]).await?;
        self.commit(tx).await
    }

    async fn product_versions(&self, id: &str) -> Result<Vec<ProductVersion>, StoreError> {
        let rows: Vec<BodyRow> =
            sqlx::query_as("SELECT body FROM product_versions WHERE product_id = $1 ORDER BY version")
                .bind(id)
                .fetch_all(&self.read)
                .await
                .map_err(db_err)?;
        rows.into_iter().map(product_from).collect()
    }

    async fn list_products(
        &self,
        organization: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<ProductVersion>, StoreError> {
        let rows: Vec<BodyRow> = sqlx::query_as(
            "SELECT v.body FROM products p \
             JOIN product_versions v ON v.product_id = p.id AND v.version = p.current_version \
             WHERE ($1 IS NULL OR p.organization = $1) AND ($2 IS NULL OR p.id > $2) \
             ORDER BY p.id LIMIT $3",
        )
        .bind(organization)
        .bind(&page.after)
        .bind(i64::from(page.limit) + 1)
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        let versions = rows.into_iter().map(product_from).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(versions, page.limit, |v| v.product_id.clone()))
    }
}
