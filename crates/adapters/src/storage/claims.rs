// Claim storage, shared by both databases through `include!` like `shared.rs`. On the locking
// path a claim's complementary usage row is locked (PostgreSQL: the upsert's row lock; SQLite:
// its single writer) before the claim is priced, so concurrent claims of one person can never
// pass the annual ceiling. PostgreSQL first tries `claims_postgres.rs`, which writes the same
// rows in one statement by compare-and-set and falls back here when the usage moved.

use passerelle_domain::claim::{Claim, ClaimStatus};
use passerelle_domain::ports::{ChangeFn, ClaimError, ClaimFilter, ClaimRefusal, ClaimStore, PriceFn, UsageKey};

/// Locks (creating it at 0 if needed) the usage row and returns what it holds, in one statement:
/// the no-op update of an existing row takes its row lock on PostgreSQL. The row is the
/// person's for the coverage's product and the plan year (API.md §6.3): a person's earlier
/// coverages of the product count towards the same ceiling.
async fn lock_usage(tx: &mut Tx, key: &UsageKey) -> Result<Xof, StoreError> {
    let (used,): (i64,) = sqlx::query_as(
        "INSERT INTO ceiling_usage (beneficiary, product, plan_year, used_xof) \
         SELECT beneficiary, product, $2, 0 FROM coverages WHERE id = $1 \
         ON CONFLICT (beneficiary, product, plan_year) DO UPDATE SET used_xof = ceiling_usage.used_xof \
         RETURNING used_xof",
    )
    .bind(&key.coverage)
    .bind(key.plan_year)
    .fetch_one(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(Xof(used))
}

async fn set_usage(tx: &mut Tx, key: &UsageKey, used: Xof) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE ceiling_usage SET used_xof = $3 WHERE plan_year = $2 \
         AND beneficiary = (SELECT beneficiary FROM coverages WHERE id = $1) \
         AND product = (SELECT product FROM coverages WHERE id = $1)",
    )
    .bind(&key.coverage)
    .bind(key.plan_year)
    .bind(used.value().max(0))
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// What a claim counts against its ceiling in its current state.
fn counted(claim: &Claim) -> Xof {
    if claim.status.counts_against_ceiling() {
        claim.totals.complementary_xof
    } else {
        Xof::ZERO
    }
}

fn usage_of(claim: &Claim) -> Option<UsageKey> {
    claim.complementary_coverage.as_ref().map(|coverage| UsageKey {
        coverage: coverage.clone(),
        plan_year: claim.service_date.year(),
    })
}

fn claim_from(body: &str) -> Result<Claim, StoreError> {
    serde_json::from_str(body).map_err(|_| corrupt("claim"))
}

fn claim_json(claim: &Claim) -> Result<String, StoreError> {
    serde_json::to_string(claim).map_err(|e| StoreError::Internal(e.to_string()))
}

/// Announces a claim event to every subscribed party, in the change's transaction.
async fn announce_claim(tx: &mut Tx, ctx: &WriteContext, event_type: &str, claim: &Claim) -> Result<(), StoreError> {
    let data = serde_json::to_value(claim).map_err(|e| StoreError::Internal(e.to_string()))?;
    enqueue(tx, ctx, event_type, claim_audience(claim), "claim", &data).await
}

/// The parties told of a claim's changes (besides operators and auditors).
fn claim_audience(claim: &Claim) -> [Option<&str>; 4] {
    [
        Some(claim.provider.as_str()),
        Some(claim.submitter.as_str()),
        claim.base_payer.as_deref(),
        claim.routed_to.as_deref(),
    ]
}

#[async_trait]
impl ClaimStore for This {
    async fn submit_claim(
        &self,
        ctx: &WriteContext,
        usage: Option<&UsageKey>,
        seen: Xof,
        price: &PriceFn<'_>,
    ) -> Result<Written<Claim>, ClaimError> {
        if let Some(written) = self.submit_optimistically(ctx, usage, seen, price).await? {
            return Ok(written);
        }
        // The usage moved, the key or the external id is taken: the locking path decides.
        let mut tx = self.begin_write().await?;
        // The usage row before the key, in the order the one-statement path takes them: that
        // path holds the row while it inserts the key, so a retry of the same key taking the key
        // first here and then waiting for the row deadlocked with it (PostgreSQL then cancels
        // one of the two after a second, and the caller got a 503).
        let used = match usage {
            Some(key) => lock_usage(&mut tx, key).await?,
            None => Xof::ZERO,
        };
        if let Some(replayed) = claim_idempotency::<Claim>(&mut tx, ctx).await? {
            return Ok(Written {
                value: replayed,
                replayed: true,
            });
        }
        let claim = price(used).map_err(ClaimError::Refused)?;
        let inserted = sqlx::query(
            "INSERT INTO claims (id, provider, submitter, external_id, beneficiary, service_date, status, base_payer, \
             routed_to, settlement, version, body, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, $10, $11, $12, $12) \
             ON CONFLICT (provider, external_id) DO NOTHING",
        )
        .bind(&claim.id)
        .bind(&claim.provider)
        .bind(&claim.submitter)
        .bind(&claim.external_id)
        .bind(&claim.beneficiary)
        .bind(claim.service_date)
        .bind(claim.status.as_str())
        .bind(&claim.base_payer)
        .bind(&claim.routed_to)
        .bind(i64::from(claim.version))
        .bind(claim_json(&claim)?)
        .bind(ctx.at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
        if inserted == 0 {
            return Err(StoreError::Conflict {
                constraint: "external_id_taken".into(),
            }
            .into());
        }
        if let Some(key) = usage {
            set_usage(&mut tx, key, Xof(used.value() + counted(&claim).value())).await?;
        }
        announce_claim(&mut tx, ctx, "claim.submitted", &claim).await?;
        queue_events(&mut tx, &[ctx.audit("claim.submitted", "claim", &claim.id)]).await?;
        store_idempotent_response(&mut tx, ctx, &claim).await?;
        self.commit(tx).await?;
        Ok(Written {
            value: claim,
            replayed: false,
        })
    }

    async fn get_claim(&self, id: &str) -> Result<Option<Claim>, StoreError> {
        let row: Option<BodyRow> = sqlx::query_as("SELECT body FROM claims WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.map(|r| claim_from(&r.body)).transpose()
    }

    async fn list_claims(&self, filter: &ClaimFilter, page: &PageRequest) -> Result<Page<Claim>, StoreError> {
        let rows: Vec<BodyRow> = sqlx::query_as(
            "SELECT body FROM claims WHERE ($1 IS NULL OR provider = $1 OR submitter = $1 OR base_payer = $1 \
             OR routed_to = $1) AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR updated_at >= $3) \
             AND ($4 IS NULL OR id > $4) ORDER BY id LIMIT $5",
        )
        .bind(&filter.party)
        .bind(filter.status.map(ClaimStatus::as_str))
        .bind(filter.since)
        .bind(&page.after)
        .bind(i64::from(page.limit) + 1)
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        let claims = rows
            .iter()
            .map(|r| claim_from(&r.body))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(claims, page.limit, |c| c.id.clone()))
    }

    async fn change_claim(
        &self,
        ctx: &WriteContext,
        id: &str,
        action: &str,
        change: &ChangeFn<'_>,
    ) -> Result<Claim, ClaimError> {
        let mut tx = self.begin_write().await?;
        let row: Option<BodyRow> = sqlx::query_as(&format!("SELECT body FROM claims WHERE id = $1{FOR_UPDATE}"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        let current = claim_from(&row.ok_or(StoreError::NotFound)?.body)?;
        let key = usage_of(&current);
        let used_by_others = match &key {
            Some(key) => Xof(lock_usage(&mut tx, key).await?.value() - counted(&current).value()),
            None => Xof::ZERO,
        };
        let mut next = change(&current, used_by_others).map_err(ClaimError::Refused)?;
        next.version = current.version + 1;
        next.updated_at = ctx.at;
        if usage_of(&next) != key {
            return Err(ClaimError::Refused(ClaimRefusal::Invalid(Vec::new())));
        }
        sqlx::query(
            "UPDATE claims SET status = $2, settlement = $3, version = $4, body = $5, updated_at = $6 WHERE id = $1",
        )
        .bind(&next.id)
        .bind(next.status.as_str())
        .bind(&next.settlement)
        .bind(i64::from(next.version))
        .bind(claim_json(&next)?)
        .bind(ctx.at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if let Some(key) = &key {
            set_usage(&mut tx, key, Xof(used_by_others.value() + counted(&next).value())).await?;
        }
        announce_claim(&mut tx, ctx, action, &next).await?;
        queue_events(&mut tx, &[ctx.audit(action, "claim", &next.id)]).await?;
        self.commit(tx).await?;
        Ok(next)
    }
}
