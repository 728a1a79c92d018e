//! SQLite storage: the embedded default. WAL lets readers run beside the one writer; all writes
//! go through a single connection, so write transactions never race for SQLite's lock.

use std::str::FromStr;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Sqlite as Db, SqlitePool};

use super::{DatabaseOptions, ProductCache};
use crate::audit_chain::Chainer;

pub struct SqliteStore {
    write: SqlitePool,
    read: SqlitePool,
    products: ProductCache,
    /// The one task of this process that appends to the audit chain.
    chain: Chainer,
    /// Batches concurrent eligibility facts reads (`eligibility.rs`).
    facts: FactsLoaders,
    /// Always `None`: SQLite has no read replica (`eligibility.rs` shares the field).
    replica: Option<crate::replica::ReplicaWatch>,
    /// Checks' facts, read in place (`sqlite_facts.rs`); `None` for an in-memory database.
    inline_facts: Option<inline_facts::InlineFacts>,
    /// The database's file (`database_file`).
    file: Option<std::path::PathBuf>,
}

#[path = "sqlite_facts.rs"]
mod inline_facts;

type This = SqliteStore;

/// The single writer connection serialises appends within a process. A no-op write rather than
/// a read makes the head's first statement take the database's write lock (waiting up to the
/// busy timeout), so a second process on the same file cannot slip a commit in between and
/// fail the upgrade from reader to writer.
const LOCK_HEAD: &str = "UPDATE audit_head SET seq = seq WHERE id = 1 RETURNING seq, digest";

/// A write transaction takes the database's write lock at once, waiting up to the busy timeout
/// for another process (`passerelle import` beside `passerelle serve`, say). A deferred one
/// would start as a reader, and when another process committed before its first write, fail
/// with `SQLITE_BUSY_SNAPSHOT` at once, since no wait can make its snapshot current again.
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// SQLite reuses the pages of deleted rows by itself.
const TIDY_QUEUE: Option<&str> = None;

/// No row locks in SQLite: its single writer connection serialises read-modify-write transactions.
const FOR_UPDATE: &str = "";
const FOR_SHARE: &str = "";
const FOR_KEY_SHARE: &str = "";
const FOR_NO_KEY_UPDATE: &str = "";

/// A page of claims changed since a recent instant (`claims.rs`) reads the index of `updated_at`:
/// SQLite, which has no statistics here, would walk a party's or a state's index instead
/// (0.1–0.2 s at 200,000 claims).
const CLAIMS_BY_UPDATE: &str = " INDEXED BY claims_updated";

/// The claims of one `external_id` (`claims.rs`) read the unique index of `(provider,
/// external_id)`: without statistics SQLite would read every claim of the caller's parties'
/// indexes (0.1 s at 1,300,000 claims).
const CLAIMS_BY_EXTERNAL_ID: &str = " INDEXED BY claims_external_id";

/// The single writer serialises leases; the lease columns keep two processes apart.
const SKIP_LOCKED: &str = "";

/// The webhook lease's reads of the outbox by index (`webhooks.rs`): SQLite, which has no
/// statistics here, read the subscriptions with pending deliveries and the live leases through
/// the index of `status` instead, every pending delivery at each lease (136 ms against 1 ms
/// over 40,000 pending).
const PENDING_BY_SUBSCRIPTION: &str = " INDEXED BY webhook_deliveries_due_by_subscription";
const LIVE_LEASES: &str = " INDEXED BY webhook_deliveries_leased";
/// A subscription's deliveries of one status (`webhooks.rs`): the failed ones from their own
/// index (migration 32), the pending ones from theirs (`PENDING_BY_SUBSCRIPTION`), the
/// delivered from the index of all its deliveries by id.
const FAILED_BY_SUBSCRIPTION: &str = " INDEXED BY webhook_deliveries_failed";
const ALL_BY_SUBSCRIPTION: &str = " INDEXED BY webhook_deliveries_subscription";
/// Before a term that must not choose the index (SQLite's unary `+`): the lease's re-check of
/// its candidates by id read every pending delivery through the index of `status` instead.
const UNINDEXED: &str = "+";

/// How the webhook lease joins each subscription of `rooms` to its first due deliveries
/// (`webhooks.rs`, `{first}` the ids of one subscription's): SQLite has no lateral join, and
/// a correlated list reads them from the index of pending deliveries per subscription.
const ROOMS_FIRST_DUE: &str = "rooms r JOIN webhook_deliveries d ON d.id IN ({first})";

/// Most events in one insert: ten parameters each, well under SQLite's limit of 32,766.
const CHAINED_PER_INSERT: usize = 600;

/// `INSERT INTO audit_events … SELECT * FROM (VALUES …)` for `chained`, ready for a filter.
fn insert_chained_query(chained: &[passerelle_domain::audit::AuditEvent]) -> sqlx::QueryBuilder<'_, Db> {
    let mut insert = sqlx::QueryBuilder::<Db>::new(
        "INSERT INTO audit_events (seq, at, organization, subject, action, resource_type, resource_id, \
         request_id, digest, prev_digest) SELECT * FROM (",
    );
    insert.push_values(chained, |mut row, e| {
        row.push_bind(e.seq)
            .push_bind(e.at)
            .push_bind(&e.organization)
            .push_bind(&e.subject)
            .push_bind(&e.action)
            .push_bind(&e.resource_type)
            .push_bind(&e.resource_id)
            .push_bind(&e.request_id)
            .push_bind(&e.digest)
            .push_bind(&e.prev_digest);
    });
    insert.push(")");
    insert
}

/// `audit_events.at` as SQLite stores it: text, read as text (`read_audit_at`).
type AuditAt = String;

/// A stored `at`: the instant, and the damage when the text is not the one every insert of this
/// backend writes for that instant. SQLite compares that text (`since`), so another spelling
/// of the same instant is tampering too, though the digest, which covers the instant, matches.
fn read_audit_at(
    stored: String,
) -> (
    chrono::DateTime<chrono::Utc>,
    Option<passerelle_domain::audit::RowDamage>,
) {
    super::rows::instant_from_text(stored, written_text)
}

/// The text sqlx binds for an instant (`to_rfc3339_opts(AutoSi, false)` in sqlx 0.8:
/// `2026-12-02T01:34:50.640+00:00`), asked of its encoder itself so that the two cannot part.
fn written_text(at: chrono::DateTime<chrono::Utc>) -> Option<String> {
    let mut buffer = Vec::new();
    match sqlx::Encode::<Db>::encode_by_ref(&at, &mut buffer) {
        Ok(sqlx::encode::IsNull::No) => match buffer.pop() {
            Some(sqlx::sqlite::SqliteArgumentValue::Text(text)) => Some(text.into_owned()),
            _ => None,
        },
        _ => None,
    }
}

/// Writes chained events, one multi-row statement per chunk. Preparing a statement is a call
/// within this process, so the varying text costs little here.
async fn insert_chained(tx: &mut Tx, chained: &[passerelle_domain::audit::AuditEvent]) -> Result<(), StoreError> {
    for chunk in chained.chunks(CHAINED_PER_INSERT) {
        insert_chained_query(chunk)
            .build()
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
    }
    Ok(())
}

/// The ids of a subquery `x`, comma-separated, as one value (`bulk_registry.rs`).
const ID_LIST: &str = "group_concat(x.id, ',')";

/// Facts statements running at once per pool (`eligibility.rs`): claims read through the
/// writer's single connection, which simply queues them; checks read in place
/// (`sqlite_facts.rs`) and use the read pool only on an in-memory database or a busy file, where
/// up to its number of connections run at once. A SQLite statement is a call within this
/// process, with no round trip to share, and batching checks into fewer statements measured
/// slower here (about 3,400 checks/s against 4,250 at concurrency 16).
const FACTS_IN_FLIGHT: usize = 8;

/// No yield to gather (`batch_loader::worth_a_yield`): a cycle on SQLite is cheap next to the
/// time its batch waits, and yielding cost 10–17 % of checks/s at concurrency 64 in alternating
/// runs (deploy/SCALING.md §5).
const YIELD_TO_GATHER: bool = false;

/// The keys of a facts batch (`eligibility.rs`) as one JSON array of rows: SQLite has no arrays,
/// and one parameter keeps the statement's text fixed whatever their number.
const FACTS_KEYS: &str = "(SELECT json_extract(value, '$[0]') AS n, json_extract(value, '$[1]') AS day, \
     json_extract(value, '$[2]') AS plan_year, json_extract(value, '$[3]') AS k1, \
     json_extract(value, '$[4]') AS k2, json_extract(value, '$[5]') AS k3 FROM json_each($1)) AS k";

fn bind_facts_keys<'q, O>(
    query: sqlx::query::QueryAs<'q, Db, O, sqlx::sqlite::SqliteArguments<'q>>,
    keys: &[(i64, &FactsKey)],
) -> sqlx::query::QueryAs<'q, Db, O, sqlx::sqlite::SqliteArguments<'q>> {
    let rows: Vec<serde_json::Value> = keys
        .iter()
        .map(|(n, (key, day))| {
            let [k1, k2, k3] = KeyKind::columns(key);
            // Dates as SQLite stores them: ISO 8601 text, compared as text.
            serde_json::json!([n, day.format("%Y-%m-%d").to_string(), day.year(), k1, k2, k3])
        })
        .collect();
    query.bind(serde_json::Value::Array(rows).to_string())
}

/// A cycle of eligibility events alone, without a transaction: one statement appends them
/// only while the head is still `expected` (the head this chainer last wrote), and the trigger
/// of migration 11 moves the head with them; the statement commits on its own. `None`: another
/// process (`passerelle import`, say) moved the head and nothing was written, or the cycle must
/// drain the queue, which takes the locking cycle.
///
/// Each statement is a call to the writer connection's own thread, and under load each call
/// waits for that thread to be scheduled: the locking cycle's five calls took 1.3 ms at
/// concurrency 16, four times its commit, and every check waited for one.
async fn chain_by_compare_and_set(
    pool: &SqlitePool,
    expected: HeadRow,
    direct: &[NewAuditEvent],
    drain: bool,
) -> Result<Option<(usize, HeadRow)>, StoreError> {
    if drain || direct.len() > CHAINED_PER_INSERT {
        return Ok(None);
    }
    if direct.is_empty() {
        return Ok(Some((0, expected)));
    }
    let (chained, head) = chain_in_memory(expected.clone(), direct);
    let mut insert = insert_chained_query(&chained);
    // Evaluated once, before the first row is written: with a row trigger, SQLite runs the
    // whole SELECT into a temporary table first.
    // Without the trigger (a file whose migrations `serve --no-migrate` did not apply) the
    // head would not move with the rows: then nothing is written, and the locking cycle runs.
    insert
        .push(" WHERE (SELECT seq FROM audit_head WHERE id = 1) = ")
        .push_bind(expected.seq)
        .push(" AND (SELECT digest FROM audit_head WHERE id = 1) = ")
        .push_bind(&expected.digest)
        .push(" AND EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = 'audit_head_follows')");
    match insert.build().execute(pool).await.map_err(db_err)?.rows_affected() {
        0 => Ok(None),
        n if n == chained.len() as u64 => Ok(Some((0, head))),
        _ => Err(corrupt("a conditional audit append wrote some of its events")),
    }
}

/// The database's file, when the in-place reader (`sqlite_facts.rs`) can open it as sqlx does:
/// a plain file. Not an in-memory database (`sqlite::memory:`, `?mode=memory`), which only
/// sqlx's own connections share, nor one opened through another VFS or as immutable, options
/// that reader does not repeat.
fn database_file(url: &str, connect: &SqliteConnectOptions) -> Option<std::path::PathBuf> {
    // The URL's own parameters, as sqlx reads them (`SqliteConnectOptions::from_str`).
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let plain = query.split('&').all(|pair| match pair.split_once('=') {
        Some(("mode", value)) => value != "memory",
        Some(("vfs" | "immutable", _)) => false,
        _ => true,
    });
    let path = connect.get_filename();
    let name = path.to_string_lossy();
    (plain && !name.is_empty() && name != ":memory:" && !name.starts_with("file:")).then(|| path.to_owned())
}

/// The size the write-ahead log is cut back to once it starts over (`journal_size_limit`). A
/// log grows past its automatic checkpoint while readers keep the checkpoint from finishing (a
/// large load by another process beside a busy service: the eligibility bench's seed of
/// 1,000,000 people left a 790 MB file), and SQLite otherwise keeps the file at its largest
/// size for ever, writing it again from the start.
const WAL_SIZE_LIMIT: u64 = 64 * 1024 * 1024;

/// The options of a connection that writes: the file created when missing, in WAL mode.
fn writable(url: SqliteConnectOptions, wal_size_limit: u64) -> SqliteConnectOptions {
    url.create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL: a commit is on disk before the answer leaves, as on PostgreSQL. NORMAL
        // would let a power cut take back transactions callers were told had succeeded.
        .synchronous(SqliteSynchronous::Full)
        .pragma("journal_size_limit", wal_size_limit.to_string())
}

/// A failure to open the database, naming its file: SQLite's own messages ("unable to open
/// database file", "disk I/O error" for a folder) name none.
fn opening(file: Option<&std::path::Path>) -> impl Fn(sqlx::Error) -> StoreError + '_ {
    move |e| match (db_err(e), file) {
        (StoreError::Unavailable(m), Some(f)) => StoreError::Unavailable(format!("{}: {m}", f.display())),
        (StoreError::Internal(m), Some(f)) => StoreError::Internal(format!("{}: {m}", f.display())),
        (other, _) => other,
    }
}

/// Opens a pool, trying again for up to `patience` while another process holds the file.
/// SQLite answers "database is locked" at once, without waiting out the busy timeout, to a
/// connection whose wait could deadlock: processes opening one new file together each read it,
/// then each asks to turn it to WAL, and all but one are refused. One of every two hundred
/// `passerelle migrate` started at once on a new file failed so.
async fn open_pool(
    pool: sqlx::pool::PoolOptions<Db>,
    connect: &SqliteConnectOptions,
    patience: std::time::Duration,
) -> Result<SqlitePool, sqlx::Error> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        match pool.clone().connect_with(connect.clone()).await {
            Err(sqlx::Error::Database(e)) if is_busy(e.code().as_deref()) && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            answer => return answer,
        }
    }
}

/// SQLite's SQLITE_BUSY and SQLITE_LOCKED, extended codes (SQLITE_BUSY_RECOVERY, …) included.
fn is_busy(code: Option<&str>) -> bool {
    code.and_then(|c| c.parse::<i32>().ok())
        .is_some_and(|c| matches!(c & 0xff, 5 | 6))
}

impl SqliteStore {
    pub async fn connect(options: &DatabaseOptions) -> Result<Self, StoreError> {
        let url = SqliteConnectOptions::from_str(&options.url)
            .map_err(|e| StoreError::Unavailable(format!("bad SQLite URL: {e}")))?;
        let connect = if options.read_only {
            // The file as it stands: not created when missing, its journal mode left alone.
            url.read_only(true).create_if_missing(false)
        } else {
            writable(url, WAL_SIZE_LIMIT)
        }
        .foreign_keys(true)
        .busy_timeout(options.acquire_timeout);
        let file = database_file(&options.url, &connect);
        let inline_facts = file.as_deref().map(inline_facts::InlineFacts::new);
        let patience = options.acquire_timeout;
        let write = open_pool(
            super::pool_options::<Db>(options).max_connections(1),
            &connect,
            patience,
        )
        .await
        .map_err(opening(file.as_deref()))?;
        let read = open_pool(
            super::pool_options::<Db>(options).max_connections(options.max_connections.clamp(1, 8)),
            &connect,
            patience,
        )
        .await
        .map_err(opening(file.as_deref()))?;
        let chain = if options.read_only {
            Chainer::read_only()
        } else {
            Chainer::start(Arc::new(QueueChain::new(write.clone())), YIELD_TO_GATHER)
        };
        let facts = FactsLoaders::start((&write, FACTS_IN_FLIGHT), (&read, FACTS_IN_FLIGHT));
        Ok(SqliteStore {
            write,
            read,
            products: ProductCache::default(),
            chain,
            facts,
            replica: None,
            inline_facts,
            file,
        })
    }

    pub fn write_pool(&self) -> &SqlitePool {
        &self.write
    }

    /// The database's file, when the URL names one plainly.
    pub fn file(&self) -> Option<&std::path::Path> {
        self.file.as_deref()
    }
}

include!("shared.rs");
include!("registry.rs");
include!("retention.rs");
include!("eligibility.rs");
include!("batches.rs");
include!("claims.rs");
include!("settlements.rs");
include!("webhooks.rs");

impl SqliteStore {
    /// A check's facts: read in place, or through sqlx's pool on an in-memory database and when
    /// the file is busy (`sqlite_facts.rs`).
    async fn eligibility_rows(&self, asked: FactsKey) -> Result<Vec<FactsRow>, StoreError> {
        if let Some(inline) = &self.inline_facts {
            match inline.read(&asked.0, asked.1) {
                Err(StoreError::Unavailable(e)) => {
                    tracing::debug!(error = %e, "in-place facts read refused; reading through the pool");
                }
                answer => return answer,
            }
        }
        self.facts.eligibility.load(asked).await
    }

    /// How the audit log's `since` filter reads (`shared.rs`), which SQLite's planner cannot
    /// judge (it has no statistics of values) and always reads newest first, through the primary
    /// key or another filter's index, until the page is full: the whole log, or all of that
    /// filter's events, when fewer match. Through the index of `at` instead when few events are
    /// that recent: fewer than the page holds for `since` alone (more are found among the
    /// newest events at once), up to `NARROWED_FEW` with other filters (reading that many costs
    /// milliseconds, where the other filter's events may be millions). With other filters and
    /// up to `NARROWED_MANY` recent events, the other filter's index is read only down to the
    /// first `seq` among them (exact: every matching event is at or after it): a mutuelle
    /// polling its own events since its last poll no longer walks its whole history when none
    /// is that recent. Events are appended in about the order of `at`. The count stops at the
    /// bound; it reads the index of `at` alone (200,000 entries in about 10 ms).
    async fn audit_since_access(
        &self,
        since: DateTime<Utc>,
        before: Option<i64>,
        limit: u32,
        narrowed: bool,
    ) -> Result<super::SinceAccess, StoreError> {
        const NARROWED_FEW: i64 = 10_000;
        const NARROWED_MANY: i64 = 200_000;
        let few = if narrowed { NARROWED_FEW } else { i64::from(limit) };
        let bound = if narrowed { NARROWED_MANY } else { few };
        let (matching, first): (i64, Option<i64>) = sqlx::query_as(
            "SELECT count(*), min(seq) FROM (SELECT seq FROM audit_events INDEXED BY audit_events_at \
             WHERE at >= $1 AND ($2 IS NULL OR seq < $2) LIMIT $3)",
        )
        .bind(since)
        .bind(before)
        .bind(bound + 1)
        .fetch_one(&self.read)
        .await
        .map_err(db_err)?;
        Ok(if matching <= few {
            super::SinceAccess {
                index: " INDEXED BY audit_events_at",
                from_seq: None,
            }
        } else {
            super::SinceAccess {
                index: "",
                from_seq: first.filter(|_| matching <= bound),
            }
        })
    }

    /// SQLite's statements are calls within this process, not round trips, and its one writer
    /// serialises submissions anyway: the locking path of `claims.rs` is the only one.
    async fn submit_optimistically(
        &self,
        _ctx: &WriteContext,
        _usage: Option<&UsageKey>,
        _seen: Xof,
        _price: &PriceFn<'_>,
    ) -> Result<Option<Written<Claim>>, ClaimError> {
        Ok(None)
    }
}

#[cfg(test)]
mod audit_at_tests {
    use chrono::{Duration, TimeZone, Utc};
    use passerelle_domain::audit::RowDamage;

    /// What every insert of this backend stores for an instant, and reads back as intact. Were
    /// sqlx to spell instants otherwise, every row stored before would read as respelled: this
    /// test failing says to accept the old spelling too.
    #[test]
    fn the_text_written_reads_back_intact() {
        let second = Utc.with_ymd_and_hms(2026, 12, 2, 1, 34, 50).unwrap();
        for (at, text) in [
            (second, "2026-12-02T01:34:50+00:00"),
            (second + Duration::milliseconds(640), "2026-12-02T01:34:50.640+00:00"),
            (
                second + Duration::microseconds(640_100),
                "2026-12-02T01:34:50.640100+00:00",
            ),
        ] {
            assert_eq!(super::written_text(at).as_deref(), Some(text));
            assert_eq!(super::read_audit_at(text.to_owned()), (at, None));
        }
    }

    #[test]
    fn another_spelling_or_no_instant_is_damage() {
        let at = Utc.with_ymd_and_hms(2026, 12, 2, 1, 34, 50).unwrap() + Duration::milliseconds(640);
        for other in [
            "2026-12-02T01:34:50.640Z",
            "2026-12-02T00:34:50.640-01:00",
            "2026-12-02T01:34:50.640000+00:00",
            "2026-12-02 01:34:50.640+00:00",
        ] {
            assert_eq!(
                super::read_audit_at(other.to_owned()),
                (at, Some(RowDamage::AtRespelled(other.to_owned()))),
            );
        }
        for garbage in ["not a date", "", "2026-12-02", "2026-12-02 01:34:50"] {
            let (read, damage) = super::read_audit_at(garbage.to_owned());
            assert_eq!(read, chrono::DateTime::UNIX_EPOCH);
            assert_eq!(damage, Some(RowDamage::AtUnreadable(garbage.to_owned())));
        }
    }
}

#[cfg(test)]
mod wal_tests {
    use sqlx::{ConnectOptions, Connection};

    /// After a large transaction, the write-ahead log file shrinks back to the limit once the
    /// log starts over, instead of keeping its largest size.
    #[tokio::test]
    async fn the_write_ahead_log_is_cut_back_once_it_starts_over() {
        let dir = std::env::temp_dir().join(format!("passerelle-wal-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("t.db");
        let url = format!("sqlite://{}", file.display());
        let options = super::writable(url.parse().unwrap(), 64 * 1024);
        let mut conn = options.connect().await.unwrap();
        sqlx::query("CREATE TABLE t (x BLOB)").execute(&mut conn).await.unwrap();
        let mut tx = conn.begin().await.unwrap();
        for _ in 0..512 {
            sqlx::query("INSERT INTO t VALUES (randomblob(4096))")
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
        let wal = dir.join("t.db-wal");
        let grown = std::fs::metadata(&wal).unwrap().len();
        assert!(grown > 2 * 1024 * 1024, "{grown}");
        sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&mut conn)
            .await
            .unwrap();
        // The next write starts the log over, and cuts the file back.
        sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&mut conn)
            .await
            .unwrap();
        let after = std::fs::metadata(&wal).unwrap().len();
        assert!(after <= 64 * 1024, "{after}");
        conn.close().await.unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
