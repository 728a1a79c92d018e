//! PostgreSQL storage: production. One pool serves reads and writes.

use sqlx::{PgPool, Postgres as Db};

use super::{DatabaseOptions, ProductCache};
use crate::audit_chain::Chainer;

pub struct PgStore {
    write: PgPool,
    read: PgPool,
    products: ProductCache,
    /// The one task of this process that appends to the audit chain.
    chain: Chainer,
    /// Batches concurrent eligibility facts reads (`eligibility.rs`).
    facts: FactsLoaders,
    /// Whether the read replica answers, when one is configured (`replica.rs`).
    replica: Option<crate::replica::ReplicaWatch>,
}

type This = PgStore;

/// Writers queue on the head row only from their append to their commit.
const LOCK_HEAD: &str = "SELECT seq, digest FROM audit_head WHERE id = 1 FOR UPDATE";

/// Every queued audit event is deleted within milliseconds, far faster than autovacuum's rounds
/// come: the chainer vacuums the queue itself so that draining it stays a scan of a few pages.
/// Without `TRUNCATE false` the vacuum would try for the table's exclusive lock to give back its
/// empty tail pages; under a steady stream of changes it spent about 250 ms per round retrying,
/// and each time it won, it held up every change's insert into the queue.
const TIDY_QUEUE: Option<&str> = Some("VACUUM (SKIP_LOCKED, TRUNCATE false) audit_queue");

/// The ids of a subquery `x`, comma-separated, as one value (`bulk_registry.rs`).
const ID_LIST: &str = "string_agg(x.id, ',')";

/// Write transactions lock what they touch, row by row.
const BEGIN_WRITE: &str = "BEGIN";

/// Row locks for read-modify-write transactions.
const FOR_UPDATE: &str = " FOR UPDATE";

/// A row read that a concurrent change of it must wait for, and that waits for one.
const FOR_SHARE: &str = " FOR SHARE";

/// A row lock that leaves foreign-key checks through (they take `FOR KEY SHARE`): a merge
/// holds its two people this way while claims naming them are inserted.
const FOR_NO_KEY_UPDATE: &str = " FOR NO KEY UPDATE";

/// The coverage a claim's ceiling usage is keyed through: a merge of its person (which locks the
/// coverage `FOR UPDATE` to move it) waits for the claim, or the claim for the merge and then
/// reads the person it moved to. Taken by every statement that finds a usage row from a
/// coverage; it blocks no other change of the coverage.
const FOR_KEY_SHARE: &str = " FOR KEY SHARE";

/// A page of claims changed since a recent instant (`claims.rs`): PostgreSQL, planning with the
/// instant's value and its statistics, reads the index of `updated_at` by itself.
const CLAIMS_BY_UPDATE: &str = "";

/// The claims of one `external_id` (`claims.rs`): planned for its value (an unnamed statement),
/// PostgreSQL reads the unique index of `(provider, external_id)` by itself.
const CLAIMS_BY_EXTERNAL_ID: &str = "";

/// Several replicas lease outbox rows without waiting on each other.
const SKIP_LOCKED: &str = " FOR UPDATE SKIP LOCKED";

/// The webhook lease's reads of the outbox by index (`webhooks.rs`): PostgreSQL's planner picks
/// them itself.
const PENDING_BY_SUBSCRIPTION: &str = "";
const LIVE_LEASES: &str = "";
/// A subscription's deliveries of one status (`webhooks.rs`): the failed ones from their own
/// index (migration 32), the pending ones from theirs (`PENDING_BY_SUBSCRIPTION`), the
/// delivered from the index of all its deliveries by id.
const FAILED_BY_SUBSCRIPTION: &str = "";
const ALL_BY_SUBSCRIPTION: &str = "";
const UNINDEXED: &str = "";

/// How the webhook lease joins each subscription of `rooms` to its first due deliveries
/// (`webhooks.rs`, `{first}` the ids of one subscription's, at most a handful).
const ROOMS_FIRST_DUE: &str = "rooms r CROSS JOIN LATERAL ({first}) l JOIN webhook_deliveries d ON d.id = l.id";

/// Chained events as arrays, `$1` to `$10`: one statement of one fixed text whatever their
/// number, so a chainer cycle never pays for parsing and planning a new one (a multi-row VALUES
/// would have a new text for every batch size).
const INSERT_CHAINED: &str = "INSERT INTO audit_events (seq, at, organization, subject, action, resource_type, \
     resource_id, request_id, digest, prev_digest) \
     SELECT * FROM UNNEST($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], \
     $7::text[], $8::text[], $9::text[], $10::text[])";

/// Binds `chained` as the ten arrays of [`INSERT_CHAINED`].
fn bind_chained<'q, O>(
    query: sqlx::query::QueryAs<'q, Db, O, sqlx::postgres::PgArguments>,
    chained: &[AuditEvent],
) -> sqlx::query::QueryAs<'q, Db, O, sqlx::postgres::PgArguments> {
    let text = |f: fn(&AuditEvent) -> &String| chained.iter().map(|e| f(e).clone()).collect::<Vec<_>>();
    query
        .bind(chained.iter().map(|e| e.seq).collect::<Vec<_>>())
        .bind(chained.iter().map(|e| e.at).collect::<Vec<_>>())
        .bind(text(|e| &e.organization))
        .bind(text(|e| &e.subject))
        .bind(text(|e| &e.action))
        .bind(text(|e| &e.resource_type))
        .bind(text(|e| &e.resource_id))
        .bind(text(|e| &e.request_id))
        .bind(text(|e| &e.digest))
        .bind(text(|e| &e.prev_digest))
}

/// Connections of a facts pool (`eligibility.rs`): the primary's serves two loaders (checks and
/// claims) without a replica, and a replica's keeps a second connection for its probe and for
/// the checks while one statement hangs on a link gone silent.
const FACTS_CONNECTIONS: usize = 2;

/// Facts statements running at once per loader on the primary. One: each statement takes every
/// check that asked while the previous one ran. A statement's fixed cost (starting the executor
/// of a plan with a dozen joins and subqueries, about 0.1 ms, against about 0.02 ms per person)
/// is then shared by more checks; two at once split them into smaller batches. In alternating
/// runs on 1,000,000 people the database's CPU per check fell by 5–15 %, at the same rate of
/// checks (SCALING.md §5).
const FACTS_IN_FLIGHT: usize = 1;

/// The facts loaders and the chainer yield to gather more checks before a statement
/// (`batch_loader::worth_a_yield`): a statement or a commit costs PostgreSQL far more than one
/// more key or event. Alternating runs at concurrency 16: 3.0 → 4.0 checks per facts statement,
/// 5.3 → 6.8 events per cycle, 10 % less PostgreSQL CPU per check (deploy/SCALING.md §5).
const YIELD_TO_GATHER: bool = true;

/// On a read replica, two: a statement stuck on a link gone silent holds its slot until TCP
/// gives up, and the other keeps serving once the probe sends checks back (SCALING.md §4).
const REPLICA_FACTS_IN_FLIGHT: usize = 2;

/// The keys of a facts batch (`eligibility.rs`) as arrays: one statement text whatever their
/// number, so it stays prepared.
const FACTS_KEYS: &str = "UNNEST($1::bigint[], $2::date[], $3::int[], $4::text[], $5::text[], $6::text[]) \
     AS k(n, day, plan_year, k1, k2, k3)";

fn bind_facts_keys<'q, O>(
    query: sqlx::query::QueryAs<'q, Db, O, sqlx::postgres::PgArguments>,
    keys: &[(i64, &FactsKey)],
) -> sqlx::query::QueryAs<'q, Db, O, sqlx::postgres::PgArguments> {
    // Each key's columns once: a member number's is folded, an allocation.
    let columns: Vec<[Option<Cow<'_, str>>; 3]> = keys.iter().map(|(_, (key, _))| KeyKind::columns(key)).collect();
    let column = |i: usize| {
        columns
            .iter()
            .map(|c| c[i].as_deref().map(str::to_owned))
            .collect::<Vec<Option<String>>>()
    };
    query
        .bind(keys.iter().map(|(n, _)| *n).collect::<Vec<i64>>())
        .bind(keys.iter().map(|(_, (_, day))| *day).collect::<Vec<NaiveDate>>())
        .bind(keys.iter().map(|(_, (_, day))| day.year()).collect::<Vec<i32>>())
        .bind(column(0))
        .bind(column(1))
        .bind(column(2))
}

/// `audit_events.at` as PostgreSQL stores it: `timestamptz`, which holds instants only.
type AuditAt = chrono::DateTime<chrono::Utc>;

/// A stored `at`, always an instant as written: no other spelling of it is stored.
fn read_audit_at(
    at: chrono::DateTime<chrono::Utc>,
) -> (
    chrono::DateTime<chrono::Utc>,
    Option<passerelle_domain::audit::RowDamage>,
) {
    (at, None)
}

async fn insert_chained(tx: &mut Tx, chained: &[AuditEvent]) -> Result<(), StoreError> {
    static INSERT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    // A count of the rows written: the binder is shared with `chain_by_compare_and_set`, which
    // reads a row back.
    let insert = INSERT.get_or_init(|| format!("WITH e AS ({INSERT_CHAINED} RETURNING 1) SELECT count(*) FROM e"));
    bind_chained(sqlx::query_as::<_, (i64,)>(insert), chained)
        .fetch_one(&mut **tx)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// A chainer cycle without a transaction: the events are chained in memory after `expected`
/// (the head this chainer last wrote), then one statement moves the head only if it still is
/// `expected`, deletes the queued rows it chained and inserts the chained events, atomically.
/// Two round trips for a cycle that drains the queue, one for eligibility events alone, instead
/// of six. `None`: another writer (another replica, a bulk import) moved the head, and nothing
/// was written.
async fn chain_by_compare_and_set(
    pool: &PgPool,
    expected: HeadRow,
    direct: &[NewAuditEvent],
    drain: bool,
) -> Result<Option<(usize, HeadRow)>, StoreError> {
    let queued: Vec<QueuedRow> = if drain {
        sqlx::query_as(
            "SELECT id, at, organization, subject, action, resource_type, resource_id, request_id \
             FROM audit_queue ORDER BY id LIMIT $1",
        )
        .bind(crate::audit_chain::QUEUE_BATCH)
        .fetch_all(pool)
        .await
        .map_err(db_err)?
    } else {
        Vec::new()
    };
    if queued.is_empty() && direct.is_empty() {
        return Ok(Some((0, expected)));
    }
    let taken: Vec<i64> = queued.iter().map(|r| r.id).collect();
    let mut events: Vec<NewAuditEvent> = queued.into_iter().map(NewAuditEvent::from).collect();
    events.extend_from_slice(direct);
    let (chained, head) = chain_in_memory(expected.clone(), &events);
    // The events are `$1`–`$10` as in `INSERT_CHAINED`; the head and the queue rows follow.
    static STATEMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let statement = STATEMENT.get_or_init(|| {
        format!(
            "WITH h AS (UPDATE audit_head SET seq = $11, digest = $12 WHERE id = 1 AND seq = $13 AND digest = $14 \
         RETURNING 1), \
         q AS (DELETE FROM audit_queue WHERE id = ANY($15) AND EXISTS (SELECT 1 FROM h)), \
         e AS ({INSERT_CHAINED} WHERE EXISTS (SELECT 1 FROM h)) \
         SELECT count(*) FROM h"
        )
    });
    let (moved,): (i64,) = bind_chained(sqlx::query_as(statement), &chained)
        .bind(head.seq)
        .bind(&head.digest)
        .bind(expected.seq)
        .bind(&expected.digest)
        .bind(&taken)
        .fetch_one(pool)
        .await
        .map_err(db_err)?;
    Ok((moved == 1).then_some((taken.len(), head)))
}

/// The connections of the facts loaders (`eligibility.rs`), one per statement in flight.
///
/// They plan the facts statements once. The key arrays' length is known only at bind, and since
/// a custom plan's estimate of a handful of rows beats the generic plan's ten, PostgreSQL would
/// otherwise plan the statement again at every execution: 29 % of all CPU samples under load.
/// The service's other statements keep the default, where a custom plan can prune their
/// optional filters.
fn facts_pool(options: &DatabaseOptions, url: &str, size: usize) -> Result<PgPool, StoreError> {
    let size = u32::try_from(size).unwrap_or(u32::MAX);
    super::pool_options::<Db>(options)
        .max_connections(size.min(options.max_connections.max(1)))
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::Executor::execute(conn, "SET plan_cache_mode = force_generic_plan").await?;
                Ok(())
            })
        })
        .connect_lazy(url)
        .map_err(db_err)
}

impl PgStore {
    /// A check's facts, read in one statement with the checks asking at the same moment.
    async fn eligibility_rows(&self, asked: FactsKey) -> Result<Vec<FactsRow>, StoreError> {
        self.facts.eligibility.load(asked).await
    }

    pub async fn connect(options: &DatabaseOptions) -> Result<Self, StoreError> {
        let pool = match super::pool_options::<Db>(options).connect(&options.url).await {
            Ok(pool) => pool,
            Err(sqlx::Error::PoolTimedOut) => return Err(why_unreachable(&options.url, options.acquire_timeout).await),
            Err(e) => return Err(db_err(e)),
        };
        let chain = if options.read_only {
            Chainer::read_only()
        } else {
            Chainer::start(Arc::new(QueueChain::new(pool.clone())), YIELD_TO_GATHER)
        };
        let facts_primary = facts_pool(options, &options.url, FACTS_CONNECTIONS)?;
        let (facts_eligibility, eligibility_in_flight) = match &options.read_url {
            Some(url) => (facts_pool(options, url, FACTS_CONNECTIONS)?, REPLICA_FACTS_IN_FLIGHT),
            None => (facts_primary.clone(), FACTS_IN_FLIGHT),
        };
        let replica = match options.read_url {
            Some(_) => {
                // A replica unreachable at start stops the start: a wrong URL or password is
                // seen at deploy time, not hidden behind the fallback to the primary.
                if let Err(e) = sqlx::query("SELECT 1").execute(&facts_eligibility).await {
                    let e = match (e, &options.read_url) {
                        (sqlx::Error::PoolTimedOut, Some(url)) => {
                            why_unreachable(url, options.read_timeout.max(options.acquire_timeout)).await
                        }
                        (e, _) => db_err(e),
                    };
                    return Err(StoreError::Unavailable(format!("{REPLICA_UNREACHABLE}: {e}")));
                }
                // Probed through the pool that serves the checks: a read stuck on it shows.
                Some(crate::replica::ReplicaWatch::start(
                    facts_eligibility.clone(),
                    options.read_timeout,
                ))
            }
            None => None,
        };
        let facts = FactsLoaders::start(
            (&facts_primary, FACTS_IN_FLIGHT),
            (&facts_eligibility, eligibility_in_flight),
        );
        Ok(PgStore {
            write: pool.clone(),
            read: pool,
            products: ProductCache::default(),
            chain,
            facts,
            replica,
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.write
    }
}

include!("shared.rs");
include!("registry.rs");
include!("retention.rs");
include!("eligibility.rs");
include!("batches.rs");
include!("claims.rs");
include!("claims_postgres.rs");
include!("settlements.rs");
include!("webhooks.rs");

impl PgStore {
    /// How the audit log's `since` filter reads (`shared.rs`): as planned. The statement is
    /// planned for its values, and PostgreSQL's statistics of `at`, with the index's actual last
    /// value, tell a recent `since` (the index of `at`) from an old one (the newest events first).
    async fn audit_since_access(
        &self,
        _since: DateTime<Utc>,
        _before: Option<i64>,
        _limit: u32,
        _narrowed: bool,
    ) -> Result<super::SinceAccess, StoreError> {
        Ok(super::SinceAccess::default())
    }
}

/// A pool that timed out at start says only that: one direct connection, bounded by `limit`,
/// names the cause (refused, unknown host, wrong password, no such database) for the operator.
async fn why_unreachable(url: &str, limit: std::time::Duration) -> StoreError {
    let tried = tokio::time::timeout(limit, <sqlx::PgConnection as sqlx::Connection>::connect(url)).await;
    let cause = match tried {
        Ok(Ok(_)) => "the pool timed out while the server accepted a connection".to_owned(),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {} ms", limit.as_millis()),
    };
    StoreError::Unavailable(format!("cannot connect: {cause}"))
}

/// How a start that cannot reach the read replica says so, for the binary to name its setting.
pub const REPLICA_UNREACHABLE: &str = "the read replica cannot be reached";
