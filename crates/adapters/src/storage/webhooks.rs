// Webhook storage and the outbox, shared by both databases through `include!` like `shared.rs`.

use passerelle_domain::ports::{AttemptOutcome, RedeliveredMany, Redelivery, WebhookStore};
use passerelle_domain::webhook::{Attempt, Delivery, DueDelivery, Subscription, DELIVERY_STATUSES};

/// What a delivery carries besides its envelope: the change's author (`None` where the
/// subscriber may not know it), time and resource, and the W3C `traceparent` its sends carry
/// on (`traceparent`, only when the change's request gave one and the author is named: it is not
/// part of the envelope).
fn outbox_payload(ctx: &WriteContext, author: Option<&str>, resource: &str, data: &serde_json::Value) -> String {
    let mut payload = serde_json::json!({
        "organization": author, "created_at": ctx.at, "resource": resource, "data": data
    });
    // Withheld with the author: the author's trace id, shared by its other requests whose events
    // name it, would tell the receiver who made the change.
    if let (Some(traceparent), Some(_)) = (&ctx.trace_parent, author) {
        payload["traceparent"] = traceparent.as_str().into();
    }
    payload.to_string()
}

/// Who may read the resource of an event, besides operators and auditors.
#[derive(Debug, Clone, Copy)]
enum Audience<'a> {
    /// These organisations.
    Orgs([Option<&'a str>; 4]),
    /// The organisations holding a live coverage of this person (`LIVE_COVERAGE`), as they
    /// stand in the transaction: one whose coverage ended no longer follows the person.
    Covering(&'a str),
}

/// Writes one delivery per live subscription that asked for `event_type` and whose organisation
/// may read the resource (one of `audience`, or an operator or auditor), in the caller's
/// transaction: the outbox commits with the change or not at all.
async fn enqueue(
    tx: &mut Tx,
    ctx: &WriteContext,
    event_type: &str,
    audience: [Option<&str>; 4],
    resource: &str,
    data: &serde_json::Value,
) -> Result<(), StoreError> {
    enqueue_to(tx, ctx, event_type, Audience::Orgs(audience), resource, data).await
}

async fn enqueue_to(
    tx: &mut Tx,
    ctx: &WriteContext,
    event_type: &str,
    audience: Audience<'_>,
    resource: &str,
    data: &serde_json::Value,
) -> Result<(), StoreError> {
    let insert = |payload: &str, audience: &str| {
        format!(
            "INSERT INTO webhook_deliveries (id, subscription, event_id, event_type, payload, status, attempts, \
             next_attempt_at, created_at) \
             SELECT $1 || ':' || s.id, s.id, $1, $2, {payload}, 'pending', 0, $4, $4 \
             FROM webhook_subscriptions s JOIN organizations o ON o.id = s.organization \
             WHERE s.deleted_at IS NULL AND o.deactivated_at IS NULL AND s.events LIKE $5 \
             AND (o.kind IN ('operator', 'auditor') OR {audience})"
        )
    };
    let event_id = uuid::Uuid::now_v7().to_string();
    let payload = outbox_payload(ctx, Some(&ctx.organization), resource, data);
    let (sql, orgs) = match audience {
        Audience::Orgs(orgs) => (insert("$3", "s.organization IN ($6, $7, $8, $9)"), orgs),
        // Another organisation that covers the person is not told which one corrected them:
        // that would tell it who else covers the person. The author, operators and auditors are.
        Audience::Covering(person) => (
            insert(
                "CASE WHEN o.kind IN ('operator', 'auditor') OR s.organization = $7 THEN $3 ELSE $8 END",
                &format!(
                    "s.organization IN (SELECT organization FROM coverages WHERE beneficiary = $6 AND {LIVE_COVERAGE})"
                ),
            ),
            [Some(person), None, None, None],
        ),
    };
    let mut query = sqlx::query(&sql)
        .bind(&event_id)
        .bind(event_type)
        .bind(payload)
        .bind(ctx.at)
        .bind(format!("% {event_type} %"))
        .bind(orgs[0]);
    query = match audience {
        Audience::Orgs(_) => query.bind(orgs[1]).bind(orgs[2]).bind(orgs[3]),
        Audience::Covering(_) => query
            .bind(&ctx.organization)
            .bind(outbox_payload(ctx, None, resource, data)),
    };
    query.execute(&mut **tx).await.map_err(db_err)?;
    Ok(())
}

/// [`enqueue`] for many resources of one event type at once, each with its own audience: one
/// statement per chunk rather than one per resource (a settlement paid in full announces every
/// claim it holds). Each resource's event has its own id, as one enqueued alone would.
async fn enqueue_many(
    tx: &mut Tx,
    ctx: &WriteContext,
    event_type: &str,
    resource: &str,
    items: &[([Option<&str>; 4], serde_json::Value)],
) -> Result<(), StoreError> {
    // Six values a row, far below either database's limit of bound values.
    for chunk in items.chunks(500) {
        let mut insert = sqlx::QueryBuilder::<Db>::new("WITH v (event_id, payload, o1, o2, o3, o4) AS (");
        insert.push_values(chunk, |mut row, (audience, data)| {
            row.push_bind(uuid::Uuid::now_v7().to_string())
                .push_bind(outbox_payload(ctx, Some(&ctx.organization), resource, data))
                .push_bind(audience[0].map(str::to_owned))
                .push_bind(audience[1].map(str::to_owned))
                .push_bind(audience[2].map(str::to_owned))
                .push_bind(audience[3].map(str::to_owned));
        });
        push_outbox_rows(
            &mut insert,
            ctx,
            event_type,
            "s.organization IN (v.o1, v.o2, v.o3, v.o4)",
        );
        insert.build().execute(&mut **tx).await.map_err(db_err)?;
    }
    Ok(())
}

/// The rest of a statement that began `WITH v (event_id, …, payload, …) AS (VALUES …`: one
/// delivery of `event_type` per row of `v` and live subscription asking for it whose organisation
/// is an operator, an auditor, or meets `audience` (a condition on `s` and `v`).
fn push_outbox_rows(insert: &mut sqlx::QueryBuilder<'_, Db>, ctx: &WriteContext, event_type: &str, audience: &str) {
    insert
        .push(
            ") INSERT INTO webhook_deliveries (id, subscription, event_id, event_type, payload, status, attempts, \
             next_attempt_at, created_at) \
             SELECT v.event_id || ':' || s.id, s.id, v.event_id, ",
        )
        .push_bind(event_type.to_owned())
        .push(", v.payload, 'pending', 0, ")
        .push_bind(ctx.at)
        .push(", ")
        .push_bind(ctx.at)
        .push(
            " FROM v CROSS JOIN webhook_subscriptions s JOIN organizations o ON o.id = s.organization \
             WHERE s.deleted_at IS NULL AND o.deactivated_at IS NULL AND s.events LIKE ",
        )
        .push_bind(format!("% {event_type} %"))
        .push(format!(" AND (o.kind IN ('operator', 'auditor') OR {audience})"));
}

/// Deletes these deliveries with their attempts (which reference them, so go first): the count
/// of deliveries this transaction deleted (another replica may have deleted some already). The
/// deliveries are locked first, in id order: a pending one may be having an attempt recorded
/// (`record_attempt`), which would otherwise commit an attempt between the two deletions and
/// fail the second on its foreign key; locked, that recording waits, then finds no delivery.
async fn delete_deliveries(tx: &mut Tx, ids: &[String]) -> Result<u64, StoreError> {
    let mut lock = sqlx::QueryBuilder::<Db>::new("SELECT id FROM webhook_deliveries WHERE id IN (");
    let mut list = lock.separated(", ");
    for id in ids {
        list.push_bind(id);
    }
    lock.push(format!(") ORDER BY id{FOR_UPDATE}"));
    lock.build().fetch_all(&mut **tx).await.map_err(db_err)?;
    let mut deleted = 0;
    for table in ["webhook_attempts WHERE delivery", "webhook_deliveries WHERE id"] {
        let mut delete = sqlx::QueryBuilder::<Db>::new(format!("DELETE FROM {table} IN ("));
        let mut list = delete.separated(", ");
        for id in ids {
            list.push_bind(id);
        }
        delete.push(")");
        deleted = delete.build().execute(&mut **tx).await.map_err(db_err)?.rows_affected();
    }
    Ok(deleted)
}

#[derive(sqlx::FromRow)]
struct SubscriptionRow {
    id: String,
    organization: String,
    url: String,
    events: String,
    secret: String,
    created_at: chrono::DateTime<chrono::Utc>,
}

impl From<SubscriptionRow> for Subscription {
    fn from(r: SubscriptionRow) -> Self {
        Subscription {
            id: r.id,
            organization: r.organization,
            url: r.url,
            events: r.events.split_whitespace().map(str::to_owned).collect(),
            secret: r.secret,
            created_at: r.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: String,
    subscription: String,
    event_id: String,
    event_type: String,
    status: String,
    next_attempt_at: chrono::DateTime<chrono::Utc>,
    created_at: chrono::DateTime<chrono::Utc>,
    delivered_at: Option<chrono::DateTime<chrono::Utc>>,
    redelivered_at: Option<chrono::DateTime<chrono::Utc>>,
}

const DELIVERY_COLUMNS: &str =
    "id, subscription, event_id, event_type, status, next_attempt_at, created_at, delivered_at, redelivered_at";

#[derive(sqlx::FromRow)]
struct AttemptRow {
    delivery: String,
    attempt: i64,
    at: chrono::DateTime<chrono::Utc>,
    status_code: Option<i64>,
    error: Option<String>,
    duration_ms: i64,
}

#[derive(sqlx::FromRow)]
struct DueRow {
    id: String,
    url: String,
    secret: String,
    event_id: String,
    event_type: String,
    payload: String,
    attempts: i64,
    attempt_base: i64,
}

const SUBSCRIPTION_COLUMNS: &str = "id, organization, url, events, secret, created_at";
/// The lease's candidates: for each subscription of `rooms`, its first `most` due deliveries
/// from the index of its pending deliveries, numbered (`slot`) and cut at its room (`$3`: now).
/// `most` is written into the text, not bound: the planner then knows each subscription gives
/// a handful of rows. With a bound or a per-row `LIMIT`, PostgreSQL guessed 10 % of a
/// subscription's pending deliveries, and past `jit_above_cost` compiled the statement at every
/// lease (58 ms of 118 at 1,000 subscriptions and 52,800 pending).
fn due_of_rooms(most: u32) -> String {
    let first = format!(
        "SELECT x.id FROM webhook_deliveries x WHERE x.subscription = r.id \
         AND x.status = 'pending' AND x.next_attempt_at <= $3 AND (x.locked_until IS NULL OR x.locked_until < $3) \
         ORDER BY x.next_attempt_at, x.id LIMIT {most}"
    );
    format!(
        "SELECT c.id, c.next_attempt_at, c.slot FROM \
         (SELECT d.id, d.next_attempt_at, r.room, \
           ROW_NUMBER() OVER (PARTITION BY r.id ORDER BY d.next_attempt_at, d.id) AS slot \
          FROM {}) c WHERE c.slot <= c.room",
        ROOMS_FIRST_DUE.replace("{first}", &first)
    )
}

/// The subscriptions with pending deliveries, `pending(id)`, each found by one descent of the
/// index of pending deliveries by subscription (a skip scan; ordered as that index is, so that
/// PostgreSQL does not take the index of all deliveries by subscription instead and walk their
/// delivered history, 3 ms a subscription after a drain): the lease and the orphan sweep then
/// cost nothing for the many subscriptions that have none. Reading every live subscription
/// instead cost 12 ms a lease at 2,000 of them on PostgreSQL (34 ms at 5,000), and 33 ms on
/// SQLite at 52,800 pending.
fn pending_subscriptions() -> String {
    format!(
        "WITH RECURSIVE pending(id) AS \
         (SELECT (SELECT subscription FROM webhook_deliveries{PENDING_BY_SUBSCRIPTION} WHERE status = 'pending' \
           ORDER BY subscription, next_attempt_at LIMIT 1) \
          UNION ALL SELECT (SELECT d.subscription FROM webhook_deliveries d{PENDING_BY_SUBSCRIPTION} \
            WHERE d.status = 'pending' AND d.subscription > p.id ORDER BY d.subscription, d.next_attempt_at LIMIT 1) \
          FROM pending p WHERE p.id IS NOT NULL)"
    )
}

/// The redelivery of a subscription's failed deliveries, to be narrowed by id: each becomes
/// pending, due at once, its tries so far kept and numbered on but no longer counted
/// (`attempt_base`). Only while the subscription is live and the caller's: a deletion that
/// commits meanwhile fails it again, unsent (`fail_orphaned_deliveries`). Its lease is left as
/// it is: a delivery failed by a deactivation while a send was under way keeps that send's
/// lease, so that the send's answer is recorded and no second send starts before it ends.
fn redelivery<'q>(ctx: &'q WriteContext, subscription: &'q str) -> sqlx::QueryBuilder<'q, Db> {
    let mut update = sqlx::QueryBuilder::<Db>::new(
        "UPDATE webhook_deliveries SET status = 'pending', attempt_base = attempts, next_attempt_at = ",
    );
    update
        .push_bind(ctx.at)
        .push(", redelivered_at = ")
        .push_bind(ctx.at)
        .push(" WHERE status = 'failed' AND subscription = ")
        .push_bind(subscription)
        .push(
            " AND EXISTS (SELECT 1 FROM webhook_subscriptions s WHERE s.id = webhook_deliveries.subscription \
             AND s.deleted_at IS NULL AND s.organization = ",
        )
        .push_bind(&ctx.organization)
        .push(")");
    update
}

/// The deliveries of `rows` with their attempts, read in one statement, not one per delivery.
async fn with_attempts<'e, E>(executor: E, rows: Vec<DeliveryRow>) -> Result<Vec<Delivery>, StoreError>
where
    E: sqlx::Executor<'e, Database = Db>,
{
    let mut attempts: HashMap<String, Vec<Attempt>> = HashMap::new();
    if !rows.is_empty() {
        let mut query = sqlx::QueryBuilder::<Db>::new(
            "SELECT delivery, attempt, at, status_code, error, duration_ms FROM webhook_attempts WHERE delivery IN (",
        );
        let mut ids = query.separated(", ");
        for r in &rows {
            ids.push_bind(&r.id);
        }
        query.push(") ORDER BY delivery, attempt");
        let found: Vec<AttemptRow> = query.build_query_as().fetch_all(executor).await.map_err(db_err)?;
        for a in found {
            attempts.entry(a.delivery).or_default().push(Attempt {
                attempt: u32::try_from(a.attempt).unwrap_or(0),
                at: a.at,
                status_code: a.status_code.and_then(|c| u16::try_from(c).ok()),
                error: a.error,
                duration_ms: u64::try_from(a.duration_ms).unwrap_or(0),
            });
        }
    }
    Ok(rows
        .into_iter()
        .map(|r| Delivery {
            next_attempt_at: (r.status == "pending").then_some(r.next_attempt_at),
            attempts: attempts.remove(&r.id).unwrap_or_default(),
            id: r.id,
            subscription: r.subscription,
            event_id: r.event_id,
            event_type: r.event_type,
            status: r.status,
            created_at: r.created_at,
            delivered_at: r.delivered_at,
            redelivered_at: r.redelivered_at,
        })
        .collect())
}

#[async_trait]
impl WebhookStore for This {
    async fn create_subscription(&self, ctx: &WriteContext, sub: &Subscription) -> Result<Subscription, StoreError> {
        let mut tx = self.begin_write().await?;
        if let Some(replayed) = claim_idempotency::<Subscription>(&mut tx, ctx).await? {
            return Ok(replayed);
        }
        // Counted under the organisation's row, so that two creations at once take turns rather
        // than each count the other's as absent (SQLite's single writer makes them take turns).
        sqlx::query(&format!(
            "SELECT id FROM organizations WHERE id = $1{FOR_NO_KEY_UPDATE}"
        ))
        .bind(&sub.organization)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let live: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM webhook_subscriptions WHERE organization = $1 AND deleted_at IS NULL",
        )
        .bind(&sub.organization)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        if live >= passerelle_domain::webhook::MAX_SUBSCRIPTIONS {
            return Err(StoreError::Conflict {
                constraint: passerelle_domain::webhook::TOO_MANY_SUBSCRIPTIONS.into(),
            });
        }
        sqlx::query(
            "INSERT INTO webhook_subscriptions (id, organization, url, events, secret, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&sub.id)
        .bind(&sub.organization)
        .bind(&sub.url)
        .bind(format!(" {} ", sub.events.join(" ")))
        .bind(&sub.secret)
        .bind(sub.created_at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        queue_events(&mut tx, &[ctx.audit("webhook.created", "webhook", &sub.id)]).await?;
        // The key keeps the answer without its secret: the secret stays with the subscription
        // alone, and goes with its deletion; a replay reads it from the live subscription.
        let kept = Subscription {
            secret: String::new(),
            ..sub.clone()
        };
        store_idempotent_response(&mut tx, ctx, &kept).await?;
        self.commit(tx).await?;
        Ok(sub.clone())
    }

    async fn list_subscriptions(
        &self,
        organization: &str,
        page: &PageRequest,
    ) -> Result<Page<Subscription>, StoreError> {
        let rows: Vec<SubscriptionRow> = sqlx::query_as(&format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions WHERE organization = $1 AND deleted_at IS NULL \
             AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3"
        ))
        .bind(organization)
        .bind(&page.after)
        .bind(i64::from(page.limit) + 1)
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        let subs: Vec<Subscription> = rows.into_iter().map(Subscription::from).collect();
        Ok(Page::from_overfetch(subs, page.limit, |s| s.id.clone()))
    }

    async fn get_subscription(&self, id: &str) -> Result<Option<Subscription>, StoreError> {
        let row: Option<SubscriptionRow> = sqlx::query_as(&format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions WHERE id = $1 AND deleted_at IS NULL"
        ))
        .bind(id)
        .fetch_optional(&self.read)
        .await
        .map_err(db_err)?;
        Ok(row.map(Subscription::from))
    }

    async fn delete_subscription(&self, ctx: &WriteContext, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let changed = sqlx::query(
            "UPDATE webhook_subscriptions SET deleted_at = $3, secret = '' \
             WHERE id = $1 AND organization = $2 AND deleted_at IS NULL",
        )
        .bind(id)
        .bind(&ctx.organization)
        .bind(ctx.at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
        if changed == 0 {
            return Ok(false);
        }
        // Nothing more goes to a deleted subscription, so nothing needs its secret any more (a
        // send in flight already holds it).
        sqlx::query("UPDATE webhook_deliveries SET status = 'failed' WHERE subscription = $1 AND status = 'pending'")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        queue_events(&mut tx, &[ctx.audit("webhook.deleted", "webhook", id)]).await?;
        self.commit(tx).await?;
        Ok(true)
    }

    async fn list_deliveries(
        &self,
        subscription: &str,
        status: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<Delivery>, StoreError> {
        // Only the filters given are written: `$2 IS NULL OR id < $2` walked the subscription's
        // newer deliveries on SQLite before each later page. Failed deliveries, few among the
        // delivered, have an index of their own (migration 32), as pending ones do (30).
        // The status is written as a literal, which SQLite needs to use a partial index; a
        // status no delivery can have matches none.
        let status = match status {
            None => None,
            Some(given) => match DELIVERY_STATUSES.iter().find(|s| **s == given) {
                Some(known) => Some(*known),
                None => {
                    return Ok(Page::from_overfetch(Vec::new(), page.limit, |d: &Delivery| {
                        d.id.clone()
                    }))
                }
            },
        };
        let index = match status {
            Some("failed") => FAILED_BY_SUBSCRIPTION,
            // A backlog is rarely long, a history often is.
            Some("pending") => PENDING_BY_SUBSCRIPTION,
            _ => ALL_BY_SUBSCRIPTION,
        };
        let mut query = sqlx::QueryBuilder::<Db>::new(format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries{index} WHERE subscription = "
        ));
        query.push_bind(subscription);
        if let Some(status) = status {
            query.push(format!(" AND status = '{status}'"));
        }
        if let Some(after) = &page.after {
            query.push(" AND id < ").push_bind(after);
        }
        query
            .push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(page.limit) + 1);
        let rows: Vec<DeliveryRow> = query.build_query_as().fetch_all(&self.read).await.map_err(db_err)?;
        let deliveries = with_attempts(&self.read, rows).await?;
        Ok(Page::from_overfetch(deliveries, page.limit, |d| d.id.clone()))
    }

    async fn redeliver(
        &self,
        ctx: &WriteContext,
        subscription: &str,
        delivery: &str,
    ) -> Result<Redelivery, StoreError> {
        let mut tx = self.begin_write().await?;
        // Only a failed delivery of a live subscription of the caller's: a deletion that
        // commits meanwhile fails it again (`fail_orphaned_deliveries`), unsent.
        let mut update = redelivery(ctx, subscription);
        update.push(" AND id = ").push_bind(delivery);
        let changed = update.build().execute(&mut *tx).await.map_err(db_err)?.rows_affected();
        if changed == 1 {
            queue_events(&mut tx, &[ctx.audit("webhook.redelivered", "webhook", subscription)]).await?;
        }
        let row: Option<DeliveryRow> = sqlx::query_as(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1 AND subscription = $2"
        ))
        .bind(delivery)
        .bind(subscription)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let outcome = match row {
            // Still failed, yet not made pending: its subscription was deleted meanwhile.
            Some(row) if changed == 0 && row.status == "failed" => Redelivery::NotFound,
            Some(row) if changed == 0 => Redelivery::NotFailed(row.status),
            Some(row) => {
                let mut found = with_attempts(&mut *tx, vec![row]).await?;
                found.pop().map_or(Redelivery::NotFound, Redelivery::Redelivered)
            }
            None => Redelivery::NotFound,
        };
        self.commit(tx).await?;
        Ok(outcome)
    }

    async fn redeliver_failed(
        &self,
        ctx: &WriteContext,
        subscription: &str,
        since: Option<chrono::DateTime<chrono::Utc>>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<RedeliveredMany, StoreError> {
        let mut tx = self.begin_write().await?;
        // The oldest first, by id (an event id is a UUIDv7, so in the order they were raised),
        // one more than the limit read to tell whether any are left.
        let mut query = sqlx::QueryBuilder::<Db>::new(format!(
            "SELECT id FROM webhook_deliveries{FAILED_BY_SUBSCRIPTION} WHERE subscription = "
        ));
        query.push_bind(subscription).push(" AND status = 'failed'");
        if let Some(since) = since {
            query.push(" AND created_at >= ").push_bind(since);
        }
        // A request continues after the last delivery the previous one took, so that one that
        // fails again at once (its stored event unreadable, its receiver still down) is not
        // taken again by the next, and a pass ends.
        if let Some(after) = after {
            query.push(" AND id > ").push_bind(after);
        }
        query.push(" ORDER BY id LIMIT ").push_bind(i64::from(limit) + 1);
        let mut ids: Vec<String> = query.build_query_scalar().fetch_all(&mut *tx).await.map_err(db_err)?;
        let more = ids.len() > limit as usize;
        ids.truncate(limit as usize);
        let next = more.then(|| ids.last().cloned()).flatten();
        let mut redelivered = 0;
        if !ids.is_empty() {
            // At most `limit` (1,000) ids, well within either database's parameter limit.
            let mut update = redelivery(ctx, subscription);
            let mut list = update.push(" AND id IN (").separated(", ");
            for id in &ids {
                list.push_bind(id);
            }
            update.push(")");
            redelivered = update.build().execute(&mut *tx).await.map_err(db_err)?.rows_affected();
        }
        if redelivered > 0 {
            queue_events(&mut tx, &[ctx.audit("webhook.redelivered", "webhook", subscription)]).await?;
        }
        self.commit(tx).await?;
        Ok(RedeliveredMany { redelivered, next })
    }

    async fn lease_deliveries(
        &self,
        owner: &str,
        now: chrono::DateTime<chrono::Utc>,
        lease_until: chrono::DateTime<chrono::Utc>,
        limit: u32,
        per_subscription: u32,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let mut tx = self.begin_write().await?;
        // `rooms`: the sends each live subscription with pending deliveries may still start,
        // over every worker's. It may hold `per_subscription` under a live lease, or one while it
        // is failing (its last attempt failed, `record_attempt`), so that receivers that hang
        // hold one slot each, not a few, and the slots stay free for the others. Each subscription
        // with room gives its oldest due deliveries up to its room, read from the index of its
        // pending deliveries (`due_of_rooms`), numbered; the lease takes every
        // subscription's first before anyone's second, and so on, oldest first within a round, up
        // to `limit`: a subscription whose events are newer is not held back by older backlogs
        // of others that fill the slots. So a lease reads a few rows per subscription with room,
        // never the backlog. Two replicas leasing at the same moment may each count the other's
        // leases as free, so the cap can be passed briefly, never the one-lessee-per-delivery
        // rule: the last filter, which PostgreSQL checks again on the locked row's newest version
        // (another replica may have leased, tried and rescheduled it meanwhile), keeps that, and
        // keeps a retry from going before its time.
        let statement = format!(
            "{pending}, \
             rooms AS (SELECT s.id, CASE WHEN s.failing THEN 1 ELSE $5 END - COALESCE(b.n, 0) AS room \
               FROM pending p JOIN webhook_subscriptions s ON s.id = p.id \
               JOIN organizations o ON o.id = s.organization LEFT JOIN \
               (SELECT subscription, count(*) AS n FROM webhook_deliveries{LIVE_LEASES} \
                WHERE status = 'pending' AND locked_until >= $3 GROUP BY subscription) b ON b.subscription = s.id \
               WHERE s.deleted_at IS NULL AND o.deactivated_at IS NULL \
               AND COALESCE(b.n, 0) < CASE WHEN s.failing THEN 1 ELSE $5 END) \
             UPDATE webhook_deliveries SET locked_until = $1, lock_owner = $2 WHERE id IN \
             (SELECT id FROM webhook_deliveries WHERE {UNINDEXED}status = 'pending' AND next_attempt_at <= $3 \
              AND (locked_until IS NULL OR locked_until < $3) AND id IN \
              (SELECT c.id FROM ({due}) c ORDER BY c.slot, c.next_attempt_at LIMIT $4){SKIP_LOCKED})",
            pending = pending_subscriptions(),
            due = due_of_rooms(per_subscription),
        );
        sqlx::query(&statement)
            .bind(lease_until)
            .bind(owner)
            .bind(now)
            .bind(i64::from(limit))
            .bind(i64::from(per_subscription))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        // Read again, after the lease, in a statement of its own (on PostgreSQL, a newer view):
        // a deletion or deactivation that committed meanwhile keeps its deliveries here, leased
        // and unsent, for `fail_orphaned_deliveries` to fail. What is read past this
        // point was in flight when the change committed. A deleted subscription's secret is
        // empty: nothing is ever signed with it.
        let rows: Vec<DueRow> = sqlx::query_as(&format!(
            "SELECT d.id, s.url, s.secret, d.event_id, d.event_type, d.payload, d.attempts, d.attempt_base \
             FROM webhook_deliveries d{LIVE_LEASES} JOIN webhook_subscriptions s ON s.id = d.subscription \
             JOIN organizations o ON o.id = s.organization \
             WHERE d.lock_owner = $1 AND d.locked_until = $2 AND d.status = 'pending' \
             AND s.deleted_at IS NULL AND o.deactivated_at IS NULL ORDER BY d.next_attempt_at"
        ))
        .bind(owner)
        .bind(lease_until)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(rows
            .into_iter()
            .map(|r| DueDelivery {
                id: r.id,
                url: r.url,
                secret: r.secret,
                event_id: r.event_id,
                event_type: r.event_type,
                payload: r.payload,
                attempts: u32::try_from(r.attempts).unwrap_or(0),
                attempt_base: u32::try_from(r.attempt_base).unwrap_or(0),
            })
            .collect())
    }

    async fn forget_deliveries(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        // Found before the write, which on SQLite holds the only writer. Delivered ones through
        // the index of (status, next_attempt_at): a delivered row's next_attempt_at is the
        // instant it was delivered (`record_attempt`).
        let mut ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM webhook_deliveries WHERE status = 'delivered' AND next_attempt_at < $1 \
             AND delivered_at < $1 LIMIT $2",
        )
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        if ids.len() < limit as usize {
            let dead: Vec<String> = sqlx::query_scalar(
                "SELECT id FROM webhook_subscriptions WHERE deleted_at IS NOT NULL AND deleted_at < $1 ORDER BY id",
            )
            .bind(before)
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
            for subscription in dead {
                let room = limit as usize - ids.len();
                if room == 0 {
                    break;
                }
                let theirs: Vec<String> = sqlx::query_scalar(
                    // The delivered ones are found above already.
                    "SELECT id FROM webhook_deliveries WHERE subscription = $1 AND created_at < $2 \
                     AND NOT (status = 'delivered' AND next_attempt_at < $2 AND delivered_at < $2) LIMIT $3",
                )
                .bind(&subscription)
                .bind(before)
                .bind(room as i64)
                .fetch_all(&self.read)
                .await
                .map_err(db_err)?;
                ids.extend(theirs);
            }
        }
        if ids.is_empty() {
            return Ok(0);
        }
        // Neither kind changes again (a delivered one is never sent again, a deleted
        // subscription stays deleted); another replica may have forgotten some meanwhile: the
        // count is of the rows this one deleted.
        let mut tx = self.begin_write().await?;
        let deleted = delete_deliveries(&mut tx, &ids).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(deleted)
    }

    async fn fail_orphaned_deliveries(&self) -> Result<u64, StoreError> {
        // On PostgreSQL each of the two changes read what it read when it began, so a delivery
        // can commit after the deletion or deactivation failed the pending ones. A reactivation
        // fails what is left of its organisation's too (`set_organization_active`). The dead
        // subscriptions with pending deliveries come first, from the skip scan (usually none);
        // then each one's from the index. One statement over `subscription IN (dead ones)` was
        // planned as a scan of every pending delivery, or of the whole table once there were
        // any (95–128 ms).
        let dead: Vec<String> = sqlx::query_scalar(&format!(
            "{} SELECT s.id FROM pending p JOIN webhook_subscriptions s ON s.id = p.id \
             JOIN organizations o ON o.id = s.organization \
             WHERE s.deleted_at IS NOT NULL OR o.deactivated_at IS NOT NULL",
            pending_subscriptions()
        ))
        .fetch_all(&self.write)
        .await
        .map_err(db_err)?;
        if dead.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin_write().await?;
        let mut failed = 0;
        for subscription in &dead {
            // Dead again when it runs: an organisation reactivated since the read above queues
            // new deliveries, which are not orphans.
            failed += sqlx::query(&format!(
                "UPDATE webhook_deliveries{PENDING_BY_SUBSCRIPTION} SET status = 'failed' \
                 WHERE subscription = $1 AND status = 'pending' AND EXISTS \
                 (SELECT 1 FROM webhook_subscriptions s JOIN organizations o ON o.id = s.organization \
                  WHERE s.id = $1 AND (s.deleted_at IS NOT NULL OR o.deactivated_at IS NOT NULL))"
            ))
            .bind(subscription)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        }
        tx.commit().await.map_err(db_err)?;
        Ok(failed)
    }

    async fn record_attempt(&self, delivery: &str, owner: &str, outcome: &AttemptOutcome) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let a = &outcome.attempt;
        let (status, next) = match (outcome.delivered, outcome.retry_at) {
            (true, _) => ("delivered", a.at),
            (false, Some(at)) => ("pending", at),
            (false, None) => ("failed", a.at),
        };
        // Only the lease holder records: a worker whose lease expired mid-send lost the delivery.
        // A delivery its subscription's deletion failed meanwhile stays failed (nothing more goes
        // to a deleted subscription), unless this very attempt delivered it.
        let changed = sqlx::query(
            "UPDATE webhook_deliveries SET \
             status = CASE WHEN status = 'pending' OR $3 = 'delivered' THEN $3 ELSE status END, attempts = $4, next_attempt_at = $5, locked_until = NULL, \
             lock_owner = NULL, delivered_at = CASE WHEN $3 = 'delivered' THEN $6 ELSE delivered_at END \
             WHERE id = $1 AND lock_owner = $2",
        )
        .bind(delivery)
        .bind(owner)
        .bind(status)
        .bind(i64::from(a.attempt))
        .bind(next)
        .bind(a.at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
        if changed == 1 {
            if outcome.sent {
                // The receiver's state as this attempt left it: the lease sends one at a time to a
                // failing one, and up to the cap again once it answers.
                sqlx::query(
                    "UPDATE webhook_subscriptions SET failing = $2 WHERE failing <> $2 \
                     AND id = (SELECT subscription FROM webhook_deliveries WHERE id = $1)",
                )
                .bind(delivery)
                .bind(!outcome.delivered)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            }
            sqlx::query(
                "INSERT INTO webhook_attempts (delivery, attempt, at, status_code, error, duration_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            )
            .bind(delivery)
            .bind(i64::from(a.attempt))
            .bind(a.at)
            .bind(a.status_code.map(i64::from))
            .bind(&a.error)
            .bind(i64::try_from(a.duration_ms).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }

    async fn pending_deliveries(&self) -> Result<i64, StoreError> {
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'")
            .fetch_one(&self.read)
            .await
            .map_err(db_err)?;
        Ok(n)
    }
}
