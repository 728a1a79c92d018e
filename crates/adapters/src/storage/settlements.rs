// Settlement storage, shared by both databases through `include!` like `shared.rs`.

use passerelle_domain::ports::{SettlementError, SettlementFilter, SettlementStore};
use passerelle_domain::settlement::{batch_total, pay, Payment, Settlement, SettlementStatus, SettlementSummary};

#[derive(sqlx::FromRow)]
struct SettlementRow {
    id: String,
    mutuelle: String,
    payee: String,
    period_start: NaiveDate,
    period_end: NaiveDate,
    status: String,
    total_xof: i64,
    paid_xof: i64,
    created_at: chrono::DateTime<chrono::Utc>,
}

/// A settlement row with how many claims it holds, for lists.
#[derive(sqlx::FromRow)]
struct SettlementSummaryRow {
    #[sqlx(flatten)]
    settlement: SettlementRow,
    claim_count: i64,
}

impl TryFrom<SettlementSummaryRow> for SettlementSummary {
    type Error = StoreError;

    fn try_from(summary: SettlementSummaryRow) -> Result<Self, StoreError> {
        let row = summary.settlement;
        Ok(SettlementSummary {
            status: SettlementStatus::parse(&row.status).ok_or_else(|| corrupt("settlement status"))?,
            claim_count: u64::try_from(summary.claim_count).map_err(|_| corrupt("settlement claim count"))?,
            id: row.id,
            mutuelle: row.mutuelle,
            payee: row.payee,
            period_start: row.period_start,
            period_end: row.period_end,
            total_xof: Xof(row.total_xof),
            paid_xof: Xof(row.paid_xof),
            created_at: row.created_at,
        })
    }
}

/// How a read that must see one state of a batch (its row, claims and payments) begins: a
/// PostgreSQL snapshot for the whole transaction (READ COMMITTED would take one per statement);
/// a SQLite read transaction keeps the snapshot of its first read until it ends.
fn begin_snapshot() -> &'static str {
    if <Db as sqlx::Database>::NAME == "PostgreSQL" {
        "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"
    } else {
        "BEGIN"
    }
}

#[derive(sqlx::FromRow)]
struct PaymentRow {
    id: String,
    amount_xof: i64,
    paid_at: NaiveDate,
    reference: String,
    created_at: chrono::DateTime<chrono::Utc>,
}

async fn load_settlement<'e, E>(exec: E, id: &str, lock: bool) -> Result<Option<SettlementRow>, StoreError>
where
    E: sqlx::Executor<'e, Database = Db>,
{
    let suffix = if lock { FOR_UPDATE } else { "" };
    sqlx::query_as(&format!(
        "SELECT id, mutuelle, payee, period_start, period_end, status, total_xof, paid_xof, created_at \
         FROM settlements WHERE id = $1{suffix}"
    ))
    .bind(id)
    .fetch_optional(exec)
    .await
    .map_err(db_err)
}

/// A settlement with its claims and payments, read on `conn`: a write's own transaction reads
/// what it is about to commit.
async fn assemble_on(
    conn: &mut <Db as sqlx::Database>::Connection,
    row: SettlementRow,
) -> Result<Settlement, StoreError> {
    let claims: Vec<(String,)> = sqlx::query_as("SELECT id FROM claims WHERE settlement = $1 ORDER BY id")
        .bind(&row.id)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
    let payments: Vec<PaymentRow> = sqlx::query_as(
        "SELECT id, amount_xof, paid_at, reference, created_at FROM settlement_payments \
             WHERE settlement = $1 ORDER BY created_at, id",
    )
    .bind(&row.id)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(Settlement {
        id: row.id,
        mutuelle: row.mutuelle,
        payee: row.payee,
        period_start: row.period_start,
        period_end: row.period_end,
        status: SettlementStatus::parse(&row.status).ok_or_else(|| corrupt("settlement status"))?,
        claims: claims.into_iter().map(|(id,)| id).collect(),
        total_xof: Xof(row.total_xof),
        paid_xof: Xof(row.paid_xof),
        payments: payments
            .into_iter()
            .map(|p| Payment {
                id: p.id,
                amount_xof: Xof(p.amount_xof),
                paid_at: p.paid_at,
                reference: p.reference,
                created_at: p.created_at,
            })
            .collect(),
        created_at: row.created_at,
    })
}

#[async_trait]
impl SettlementStore for This {
    async fn create_settlement(
        &self,
        ctx: &WriteContext,
        id: &str,
        payee: &str,
        period: (NaiveDate, NaiveDate),
    ) -> Result<Settlement, SettlementError> {
        let mut tx = self.begin_write().await?;
        if let Some(replayed) = claim_idempotency::<Settlement>(&mut tx, ctx).await? {
            return Ok(replayed);
        }
        // Locked rows that another batch took meanwhile no longer match `settlement IS NULL`
        // when PostgreSQL re-checks them after the wait, so no claim lands in two batches.
        let rows: Vec<BodyRow> = sqlx::query_as(&format!(
            "SELECT body FROM claims WHERE routed_to = $1 AND provider = $2 AND status = 'adjudicated' \
             AND settlement IS NULL AND service_date >= $3 AND service_date <= $4 ORDER BY id{FOR_UPDATE}"
        ))
        .bind(&ctx.organization)
        .bind(payee)
        .bind(period.0)
        .bind(period.1)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        let claims = rows
            .iter()
            .map(|r| claim_from(&r.body))
            .collect::<Result<Vec<_>, _>>()?;
        if claims.is_empty() {
            return Err(SettlementError::Empty);
        }
        let total = batch_total(claims.iter().map(|c| c.totals.complementary_xof))
            .ok_or(SettlementError::TooLarge)?
            .value();
        // Claims adjudicated with nothing owed (every line reduced to 0, or the base paid it all)
        // are settled by a batch like any other; a batch of only such claims has nothing to pay
        // and is paid at once, or they would stay unsettled for good.
        let status = if total == 0 {
            SettlementStatus::Paid
        } else {
            SettlementStatus::Open
        };
        sqlx::query(
            "INSERT INTO settlements (id, mutuelle, payee, period_start, period_end, status, total_xof, paid_xof, created_at) \
             VALUES ($1, $2, $3, $4, $5, $8, $6, 0, $7)",
        )
        .bind(id)
        .bind(&ctx.organization)
        .bind(payee)
        .bind(period.0)
        .bind(period.1)
        .bind(total)
        .bind(ctx.at)
        .bind(status.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let mut events = vec![ctx.audit("settlement.created", "settlement", id)];
        if status == SettlementStatus::Paid {
            // Paid in full at once, with nothing to pay: `settlement.paid` as after a last payment.
            events.push(ctx.audit("settlement.paid", "settlement", id));
        }
        let batched: Vec<Claim> = claims
            .iter()
            .map(|claim| {
                let mut next = claim.clone();
                next.settlement = Some(id.to_owned());
                if status == SettlementStatus::Paid {
                    next.status = ClaimStatus::Settled;
                }
                next.version += 1;
                next.updated_at = ctx.at;
                next
            })
            .collect();
        store_claims(&mut tx, &batched).await?;
        for next in &batched {
            events.push(ctx.audit("claim.batched", "claim", &next.id));
            if next.status == ClaimStatus::Settled {
                events.push(ctx.audit("claim.settled", "claim", &next.id));
            }
        }
        if status == SettlementStatus::Paid {
            announce_claims(&mut tx, ctx, "claim.settled", &batched).await?;
        }
        queue_events(&mut tx, &events).await?;
        let settlement = Settlement {
            id: id.to_owned(),
            mutuelle: ctx.organization.clone(),
            payee: payee.to_owned(),
            period_start: period.0,
            period_end: period.1,
            status,
            claims: claims.iter().map(|c| c.id.clone()).collect(),
            total_xof: Xof(total),
            paid_xof: Xof::ZERO,
            payments: Vec::new(),
            created_at: ctx.at,
        };
        store_idempotent_response(&mut tx, ctx, &settlement).await?;
        self.commit(tx).await?;
        Ok(settlement)
    }

    async fn get_settlement(&self, id: &str) -> Result<Option<Settlement>, StoreError> {
        // One snapshot for the row, its claims and its payments: read apart, a payment committed
        // in between would show a `paid_xof` that the payments listed do not add up to.
        let mut tx = begin_detached(&self.read, Some(begin_snapshot())).await?;
        let settlement = match load_settlement(&mut *tx, id, false).await? {
            Some(row) => Some(assemble_on(&mut tx, row).await?),
            None => None,
        };
        tx.commit().await.map_err(db_err)?;
        Ok(settlement)
    }

    async fn list_settlements(
        &self,
        filter: &SettlementFilter,
        page: &PageRequest,
    ) -> Result<Page<SettlementSummary>, StoreError> {
        // Ids are UUIDv7: in id order is in creation order, newest first here.
        let rows: Vec<SettlementSummaryRow> = sqlx::query_as(
            "SELECT s.id, s.mutuelle, s.payee, s.period_start, s.period_end, s.status, s.total_xof, s.paid_xof, \
             s.created_at, (SELECT count(*) FROM claims c WHERE c.settlement = s.id) AS claim_count \
             FROM settlements s WHERE ($1 IS NULL OR s.mutuelle = $1 OR s.payee = $1) \
             AND ($2 IS NULL OR s.payee = $2) AND ($3 IS NULL OR s.status = $3) AND ($4 IS NULL OR s.id < $4) \
             ORDER BY s.id DESC LIMIT $5",
        )
        .bind(&filter.party)
        .bind(&filter.payee)
        .bind(filter.status.map(SettlementStatus::as_str))
        .bind(&page.after)
        .bind(i64::from(page.limit) + 1)
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        let items = rows
            .into_iter()
            .map(SettlementSummary::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(items, page.limit, |s| s.id.clone()))
    }

    async fn settlement_claims(&self, id: &str) -> Result<Vec<Claim>, StoreError> {
        let mut rows = sqlx::query_as::<_, BodyRow>("SELECT body FROM claims WHERE settlement = $1 ORDER BY id")
            .bind(id)
            .fetch(&self.read);
        // One body at a time, its lines dropped: the whole batch's bodies were held at once.
        let mut claims = Vec::new();
        while let Some(row) = futures::TryStreamExt::try_next(&mut rows).await.map_err(db_err)? {
            let mut claim = claim_from(&row.body)?;
            claim.lines = Vec::new();
            claims.push(claim);
        }
        Ok(claims)
    }

    async fn add_payment(
        &self,
        ctx: &WriteContext,
        id: &str,
        payment: &Payment,
    ) -> Result<Settlement, SettlementError> {
        let mut tx = self.begin_write().await?;
        // A retried payment with its key is answered as the first was, and pays nothing more.
        if let Some(replayed) = claim_idempotency::<Settlement>(&mut tx, ctx).await? {
            return Ok(replayed);
        }
        let row = load_settlement(&mut *tx, id, true).await?.ok_or(StoreError::NotFound)?;
        // One transfer entered twice counts once, before its amount is judged: a transfer sent
        // again is a duplicate, not an overpayment. The settlement's row is locked above, so two
        // entries of one reference cannot both pass this check.
        let recorded: Vec<String> =
            sqlx::query_scalar("SELECT reference FROM settlement_payments WHERE settlement = $1")
                .bind(id)
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?;
        if recorded
            .iter()
            .any(|r| passerelle_domain::text::same_reference(r, &payment.reference))
        {
            return Err(StoreError::Conflict {
                constraint: "duplicate_payment_reference".into(),
            }
            .into());
        }
        let (paid, status) =
            pay(Xof(row.total_xof), Xof(row.paid_xof), payment.amount_xof).map_err(SettlementError::Refused)?;
        sqlx::query(
            "INSERT INTO settlement_payments (id, settlement, amount_xof, paid_at, reference, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&payment.id)
        .bind(id)
        .bind(payment.amount_xof.value())
        .bind(payment.paid_at)
        .bind(&payment.reference)
        .bind(payment.created_at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query("UPDATE settlements SET paid_xof = $2, status = $3 WHERE id = $1")
            .bind(id)
            .bind(paid.value())
            .bind(status.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        // Every instalment is recorded; the batch is `paid` once, with the one that completes it.
        let mut events = vec![ctx.audit("settlement.payment_recorded", "settlement", id)];
        if status == SettlementStatus::Paid {
            events.push(ctx.audit("settlement.paid", "settlement", id));
            let rows: Vec<BodyRow> = sqlx::query_as("SELECT body FROM claims WHERE settlement = $1 ORDER BY id")
                .bind(id)
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?;
            let settled = rows
                .iter()
                .map(|r| {
                    let mut claim = claim_from(&r.body)?;
                    claim.status = ClaimStatus::Settled;
                    claim.version += 1;
                    claim.updated_at = ctx.at;
                    Ok(claim)
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            store_claims(&mut tx, &settled).await?;
            announce_claims(&mut tx, ctx, "claim.settled", &settled).await?;
            events.extend(settled.iter().map(|c| ctx.audit("claim.settled", "claim", &c.id)));
        }
        queue_events(&mut tx, &events).await?;
        let row = load_settlement(&mut *tx, id, false)
            .await?
            .ok_or(StoreError::NotFound)?;
        let settlement = assemble_on(&mut tx, row).await?;
        store_idempotent_response(&mut tx, ctx, &settlement).await?;
        self.commit(tx).await?;
        Ok(settlement)
    }
}
