// Claim storage, shared by both databases through `include!` like `shared.rs`. On the locking
// path a claim's complementary usage row is locked (PostgreSQL: the upsert's row lock; SQLite:
// its single writer) before the claim is priced, so concurrent claims of one person can never
// pass the annual ceiling. PostgreSQL first tries `claims_postgres.rs`, which writes the same
// rows in one statement by compare-and-set and falls back here when the usage moved.

use passerelle_domain::claim::{Claim, ClaimStatus};
use passerelle_domain::ports::{ChangeFn, ClaimError, ClaimFilter, ClaimRefusal, ClaimStore, PriceFn, UsageKey};

/// The roles in which an organisation takes part in a claim, each a column with an index of
/// `(column, status, id)` (migration 29).
const CLAIM_PARTIES: [&str; 4] = ["provider", "submitter", "base_payer", "routed_to"];

/// At most this many claims changed since a `since` make it recent: its page is read from the
/// index of `updated_at` (every such claim, then sorted by id: about 10 ms at this bound on
/// SQLite). Past it, a page is read in id order as without `since`, each claim's `updated_at`
/// checked, which costs the claims walked before a page is full: for a `since` far in the past
/// (most claims changed since), about a page. Counting stops at the bound, so the choice itself
/// reads at most this many entries of the index.
const RECENT_CLAIMS: i64 = 10_000;

/// The stored bodies a page of claims holds at most, together: a page ends before the claim that
/// would pass it (never before its first), and the next one starts there. A claim may hold 1000
/// lines (about 600 KB); 500 of them made a 335 MB answer, and two such pages at once took a
/// gigabyte each and every runtime worker for half a minute.
pub(crate) const PAGE_BYTES: usize = 2 * 1024 * 1024;

/// The statement of a page of claims, with only the filters asked for written, each read from
/// an index in id order, so that a page costs its own rows, not the claims before them:
/// - a recent `since` (`by_update`): the claims changed since, by the index of `updated_at`
///   (a poll's are few), sorted by id;
/// - a party: a branch per role and state, each an ordered range of its index that stops at a
///   page, merged (a claim in several roles once);
/// - a state alone: the index of `(status, id)`.
///
/// An older `since` is a filter of the last two forms. A state is written as a literal (one of
/// six), so that each plan knows it.
fn list_claims_query<'a>(
    filter: &'a ClaimFilter,
    page: &'a PageRequest,
    by_update: bool,
) -> sqlx::QueryBuilder<'a, Db> {
    let limit = i64::from(page.limit) + 1;
    let status_is = |status: ClaimStatus| format!(" AND status = '{}'", status.as_str());
    if let Some(external_id) = &filter.external_id {
        return by_external_id_query(filter, external_id, page, limit);
    }
    if let (party, Some(since)) = (&filter.party, filter.since) {
        if by_update {
            return changed_claims_query(party.as_deref(), since, filter.status, page, limit);
        }
    }
    let mut query = sqlx::QueryBuilder::<Db>::new("SELECT body FROM claims");
    match (&filter.party, filter.since) {
        (Some(party), since) => {
            let statuses = filter.status.map_or(ClaimStatus::ALL.to_vec(), |s| vec![s]);
            query.push(" WHERE id IN (");
            let mut branch = 0;
            for role in CLAIM_PARTIES {
                for status in &statuses {
                    if branch > 0 {
                        query.push(" UNION ");
                    }
                    branch += 1;
                    query
                        .push(format!("SELECT id FROM (SELECT id FROM claims WHERE {role} = "))
                        .push_bind(party)
                        .push(status_is(*status));
                    if let Some(since) = since {
                        query.push(" AND updated_at >= ").push_bind(since);
                    }
                    if let Some(after) = &page.after {
                        query.push(" AND id > ").push_bind(after);
                    }
                    query
                        .push(" ORDER BY id LIMIT ")
                        .push_bind(limit)
                        .push(format!(") AS b{branch}"));
                }
            }
            query.push(")");
        }
        (None, since) => {
            query.push(" WHERE TRUE");
            if let Some(status) = filter.status {
                query.push(status_is(status));
            }
            if let Some(since) = since {
                query.push(" AND updated_at >= ").push_bind(since);
            }
            if let Some(after) = &page.after {
                query.push(" AND id > ").push_bind(after);
            }
        }
    }
    query.push(" ORDER BY id LIMIT ").push_bind(limit);
    query
}

/// ` AND (provider = $ OR submitter = $ OR …)`: the claims `party` takes part in, in any role.
fn push_party<'a>(query: &mut sqlx::QueryBuilder<'a, Db>, party: &'a str) {
    query.push(" AND (");
    for (n, role) in CLAIM_PARTIES.iter().enumerate() {
        if n > 0 {
            query.push(" OR ");
        }
        query.push(format!("{role} = ")).push_bind(party);
    }
    query.push(")");
}

/// The claims of one `external_id`, at most one per provider: read from the unique index of
/// `(provider, external_id)`, once per provider (`provider IN` the providers), since a caller
/// other than the provider does not name it. The other filters apply to those few claims.
fn by_external_id_query<'a>(
    filter: &'a ClaimFilter,
    external_id: &'a str,
    page: &'a PageRequest,
    limit: i64,
) -> sqlx::QueryBuilder<'a, Db> {
    let mut query = sqlx::QueryBuilder::<Db>::new(format!(
        "SELECT body FROM claims{CLAIMS_BY_EXTERNAL_ID} WHERE provider IN (SELECT id FROM organizations WHERE kind = 'provider') \
         AND external_id = "
    ));
    query.push_bind(external_id);
    if let Some(party) = &filter.party {
        push_party(&mut query, party);
    }
    if let Some(status) = filter.status {
        query.push(format!(" AND status = '{}'", status.as_str()));
    }
    if let Some(since) = filter.since {
        query.push(" AND updated_at >= ").push_bind(since);
    }
    if let Some(after) = &page.after {
        query.push(" AND id > ").push_bind(after);
    }
    query.push(" ORDER BY id LIMIT ").push_bind(limit);
    query
}

/// A page of the claims changed since `since`, few enough to be read whole (`RECENT_CLAIMS`):
/// their ids first, from the index of `updated_at`, then ordered, then the page's bodies.
/// Materialised, so that PostgreSQL's planner cannot choose to walk the primary key from the
/// oldest claim instead, filtering every claim by its `updated_at` (0.5 s with 400,000 claims,
/// the changed ones all at the end; 20 ms this way).
fn changed_claims_query<'a>(
    party: Option<&'a str>,
    since: chrono::DateTime<chrono::Utc>,
    status: Option<ClaimStatus>,
    page: &'a PageRequest,
    limit: i64,
) -> sqlx::QueryBuilder<'a, Db> {
    let mut query = sqlx::QueryBuilder::<Db>::new(format!(
        "WITH changed AS MATERIALIZED (SELECT id FROM claims{CLAIMS_BY_UPDATE} WHERE updated_at >= "
    ));
    query.push_bind(since);
    if let Some(party) = party {
        push_party(&mut query, party);
    }
    if let Some(status) = status {
        query.push(format!(" AND status = '{}'", status.as_str()));
    }
    if let Some(after) = &page.after {
        query.push(" AND id > ").push_bind(after);
    }
    query
        .push(") SELECT body FROM claims WHERE id IN (SELECT id FROM changed ORDER BY id LIMIT ")
        .push_bind(limit)
        .push(") ORDER BY id");
    query
}

/// Locks (creating it at 0 if needed) the usage row and returns what it holds, in one statement:
/// the no-op update of an existing row takes its row lock on PostgreSQL. The row is the
/// person's for the coverage's product and the plan year (API.md §6.3): a person's earlier
/// coverages of the product count towards the same ceiling.
async fn lock_usage(tx: &mut Tx, key: &UsageKey) -> Result<Xof, StoreError> {
    // The coverage is held (`FOR_KEY_SHARE`) until the transaction ends, so that `set_usage`
    // finds the same person's row: a merge moving the coverage to another person waits.
    let (used,): (i64,) = sqlx::query_as(&format!(
        "INSERT INTO ceiling_usage (beneficiary, product, plan_year, used_xof) \
         SELECT beneficiary, product, $2, 0 FROM coverages WHERE id = $1{FOR_KEY_SHARE} \
         ON CONFLICT (beneficiary, product, plan_year) DO UPDATE SET used_xof = ceiling_usage.used_xof \
         RETURNING used_xof"
    ))
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

/// [`announce_claim`] for many claims at once, in chunks.
async fn announce_claims(
    tx: &mut Tx,
    ctx: &WriteContext,
    event_type: &str,
    claims: &[Claim],
) -> Result<(), StoreError> {
    let items = claims
        .iter()
        .map(|c| {
            serde_json::to_value(c)
                .map(|data| (claim_audience(c), data))
                .map_err(|e| StoreError::Internal(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    enqueue_many(tx, ctx, event_type, "claim", &items).await
}

/// Stores claims changed together (a settlement's), their bodies as given, in chunks: one
/// statement per chunk rather than one per claim, the rows a settlement holds its lock on
/// meanwhile being thousands.
async fn store_claims(tx: &mut Tx, claims: &[Claim]) -> Result<(), StoreError> {
    for chunk in claims.chunks(500) {
        let mut update =
            sqlx::QueryBuilder::<Db>::new("WITH v (id, settlement, status, version, body, updated_at) AS (");
        let mut failed = None;
        update.push_values(chunk, |mut row, c| {
            let body = claim_json(c).unwrap_or_else(|e| {
                failed = Some(e);
                String::new()
            });
            row.push_bind(c.id.clone())
                .push_bind(c.settlement.clone())
                .push_bind(c.status.as_str())
                .push_bind(i64::from(c.version))
                .push_bind(body)
                .push_bind(c.updated_at);
        });
        if let Some(e) = failed {
            return Err(e);
        }
        update.push(
            ") UPDATE claims SET settlement = v.settlement, status = v.status, version = v.version, body = v.body, \
             updated_at = v.updated_at FROM v WHERE claims.id = v.id",
        );
        update.build().execute(&mut **tx).await.map_err(db_err)?;
    }
    Ok(())
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
            set_usage(&mut tx, key, Xof(used.value().saturating_add(counted(&claim).value()))).await?;
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
        let by_update = match filter.since {
            // One external id names a claim or a few: no need to choose how to read them.
            Some(_) if filter.external_id.is_some() => false,
            Some(since) => {
                let (changed,): (i64,) = sqlx::query_as(&format!(
                    "SELECT count(*) FROM (SELECT 1 FROM claims{CLAIMS_BY_UPDATE} WHERE updated_at >= $1 LIMIT $2) AS recent"
                ))
                .bind(since)
                .bind(RECENT_CLAIMS + 1)
                .fetch_one(&self.read)
                .await
                .map_err(db_err)?;
                changed <= RECENT_CLAIMS
            }
            None => false,
        };
        let mut query = list_claims_query(filter, page, by_update);
        // A `since` is planned for its value, and so is an `external_id` (kept, the statement went
        // generic after five runs on a connection, and PostgreSQL's generic plan walked the
        // primary key: 0.14-0.24 s at 1,300,000 claims); the other forms have one good plan
        // whatever their values.
        let mut rows = query
            .build_query_as::<BodyRow>()
            .persistent(filter.since.is_none() && filter.external_id.is_none())
            .fetch(&self.read);
        // Read as they come, so that a page of large claims stops at `PAGE_BYTES` without the
        // rest ever being held.
        let mut claims = Vec::new();
        let mut bytes = 0;
        while let Some(row) = futures::TryStreamExt::try_next(&mut rows).await.map_err(db_err)? {
            let overfetched = claims.len() == page.limit as usize;
            if !overfetched && !claims.is_empty() && bytes + row.body.len() > PAGE_BYTES {
                let next_key = claims.last().map(|c: &Claim| c.id.clone());
                return Ok(Page {
                    items: claims,
                    next_key,
                });
            }
            bytes += row.body.len();
            claims.push(claim_from(&row.body)?);
            if overfetched {
                break;
            }
        }
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
            set_usage(
                &mut tx,
                key,
                Xof(used_by_others.value().saturating_add(counted(&next).value())),
            )
            .await?;
        }
        announce_claim(&mut tx, ctx, action, &next).await?;
        queue_events(&mut tx, &[ctx.audit(action, "claim", &next.id)]).await?;
        self.commit(tx).await?;
        Ok(next)
    }
}
