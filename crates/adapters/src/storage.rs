//! Storage: one implementation of the domain's storage ports per database, chosen by the URL.

mod errors;
pub mod postgres;
mod rows;
pub mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use passerelle_domain::error::StoreError;
use passerelle_domain::ports::Store;

/// Product versions by (product, version): immutable once written, so safe to keep for the
/// life of the process, on every replica.
pub(crate) type ProductCache =
    std::sync::RwLock<std::collections::HashMap<(String, i64), Arc<passerelle_domain::product::ProductVersion>>>;

/// A pooled connection idle this long is pinged before it is handed out.
const PING_IDLE_AFTER: Duration = Duration::from_secs(1);

/// PostgreSQL's SQLSTATE of a lock not granted within `lock_timeout`.
const LOCK_NOT_AVAILABLE: &str = "55P03";

/// What every pool shares. sqlx pings each connection before handing it out, by default: a
/// full extra round trip per statement, for the one statement that follows. Passerelle pings
/// only connections that sat idle, the ones a database restart or a dropped link may have
/// broken unnoticed; a connection in steady use has just shown it works. A failed ping, like a
/// failed default check, drops the connection and the pool hands out another.
fn pool_options<DB: sqlx::Database>(options: &DatabaseOptions) -> sqlx::pool::PoolOptions<DB> {
    sqlx::pool::PoolOptions::new()
        .max_connections(options.max_connections)
        .acquire_timeout(options.acquire_timeout)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_IDLE_AFTER {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

#[derive(Debug, Clone)]
pub struct DatabaseOptions {
    pub url: String,
    /// A PostgreSQL read replica for eligibility reads.
    pub read_url: Option<String>,
    /// How long a facts read may wait on the replica before the primary answers it instead.
    pub read_timeout: Duration,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// Chain nothing: the audit log is read as it stands (`passerelle audit verify`), so a
    /// standby, a read-only role or a restored copy can be checked without being changed.
    pub read_only: bool,
    /// On PostgreSQL, how long a migration may wait for a lock before it fails, whole (each
    /// migration is one transaction), to be run again: every request needing the table waits
    /// behind a migration that waits. `None`: as long as it takes.
    pub migration_lock_timeout: Option<Duration>,
}

impl DatabaseOptions {
    pub fn new(url: impl Into<String>) -> Self {
        DatabaseOptions {
            url: url.into(),
            read_url: None,
            read_timeout: crate::replica::DEFAULT_READ_TIMEOUT,
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
            read_only: false,
            migration_lock_timeout: None,
        }
    }
}

/// The indexes that migrations 25, 29 and 34 may find built beforehand, each refused when a
/// failed concurrent build left it invalid, by the words that end the migration's message
/// (their checks are these lists, by name; migrations 30 and 32 name their one index
/// themselves).
const CHECKED_INDEXES: [(&str, &[&str]); 3] = [
    (
        "(deploy/README.md, migration 25)",
        &[
            "audit_events_at",
            "audit_events_action",
            "audit_events_organization_action",
        ],
    ),
    (
        "(deploy/README.md, migration 29)",
        &[
            "claims_by_status",
            "claims_by_provider",
            "claims_by_submitter",
            "claims_by_base_payer",
            "claims_by_routed_to",
            "claims_by_settlement",
        ],
    ),
    ("(deploy/README.md, migration 34)", &["audit_events_organization_type"]),
];

/// A connected store, with what the binary needs beyond the ports.
#[derive(Clone)]
pub struct Database {
    pub backend: Backend,
    pub store: Arc<dyn Store>,
    migrator: Migrator,
}

#[derive(Clone)]
enum Migrator {
    Postgres(sqlx::PgPool, Option<Duration>),
    /// The pool, and the database's file when the URL names one.
    Sqlite(sqlx::SqlitePool, Option<std::path::PathBuf>),
}

impl Database {
    /// Applies the embedded migrations that are not applied yet.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let result = self.run_migrations().await;
        // Migrations 25, 29 and 34 refuse an index of theirs that a failed concurrent build left
        // invalid, in a message that cannot name it (an applied migration's text never changes:
        // sqlx checks it): the names are looked up here, among those the migrations check.
        match (&self.migrator, result) {
            (Migrator::Postgres(pool, _), Err(StoreError::Unavailable(message)))
                if message.contains("left invalid by a failed CREATE INDEX CONCURRENTLY") =>
            {
                let names: &[&str] = CHECKED_INDEXES
                    .iter()
                    .find(|(words, _)| message.contains(words))
                    .map_or(&[], |(_, names)| names);
                let invalid: Vec<String> = sqlx::query_scalar(
                    "SELECT c.relname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
                     WHERE c.relname = ANY($1) AND NOT i.indisvalid ORDER BY 1",
                )
                .bind(names)
                .fetch_all(pool)
                .await
                .unwrap_or_default();
                Err(StoreError::Unavailable(if invalid.is_empty() {
                    message
                } else {
                    format!("{message}. Invalid: {}", invalid.join(", "))
                }))
            }
            (_, result) => result,
        }
    }

    async fn run_migrations(&self) -> Result<(), StoreError> {
        let failed = |e: sqlx::migrate::MigrateError| StoreError::Unavailable(format!("migration failed: {e}"));
        match &self.migrator {
            Migrator::Postgres(pool, timeout) => {
                // A connection of its own, closed whatever the outcome. sqlx takes its migration
                // lock for the session and, when a migration fails, returns without releasing
                // it: on a pooled connection the lock went back to the pool, and the process's
                // next migration, given another connection, waited for it for ever. And no
                // request inherits the lock timeout.
                let mut options = (*pool.connect_options()).clone();
                if let Some(timeout) = timeout {
                    options = options.options([("lock_timeout", timeout.as_millis().to_string())]);
                }
                let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect_with(&options)
                    .await
                    .map_err(errors::db_err)?;
                let result = sqlx::migrate!("../../migrations/postgres").run(&mut conn).await;
                let _ = sqlx::Connection::close(conn).await;
                result.map_err(|e| match (&e, timeout) {
                    (
                        sqlx::migrate::MigrateError::Execute(sqlx::Error::Database(d))
                        | sqlx::migrate::MigrateError::ExecuteMigration(sqlx::Error::Database(d), _),
                        Some(timeout),
                    ) if d.code().as_deref() == Some(LOCK_NOT_AVAILABLE) => StoreError::Unavailable(format!(
                        "migration failed: {e}. It waited for a lock longer than {} ms (another transaction \
                             holds the table, or another migration runs) and wrote nothing: find the long \
                             transaction in pg_stat_activity and run the migrations again",
                        timeout.as_millis()
                    )),
                    _ => failed(e),
                })
            }
            Migrator::Sqlite(pool, file) => {
                // SQLite's migrations take no lock of their own: two processes migrating a new
                // file at once each applied the first migration, and all but one failed on
                // tables that already existed. An exclusive lock runs them one after the other;
                // the later ones find nothing left to apply.
                let _lock = match file {
                    Some(file) => lock_for_migrations(file.clone()).await,
                    None => None,
                };
                sqlx::migrate!("../../migrations/sqlite")
                    .run(pool)
                    .await
                    .map_err(failed)
            }
        }
    }

    /// The embedded migrations the database has not applied, oldest first, as `(version,
    /// description)`: a binary started with `--no-migrate` on a database behind it would answer
    /// `/health/ready` and then fail the requests that need the newer tables.
    pub async fn pending_migrations(&self) -> Result<Vec<(i64, String)>, StoreError> {
        const APPLIED: &str = "SELECT version FROM _sqlx_migrations WHERE success";
        let (embedded, applied) = match &self.migrator {
            Migrator::Postgres(pool, _) => (
                sqlx::migrate!("../../migrations/postgres"),
                sqlx::query_as::<_, (i64,)>(APPLIED).fetch_all(pool).await,
            ),
            Migrator::Sqlite(pool, _) => (
                sqlx::migrate!("../../migrations/sqlite"),
                sqlx::query_as::<_, (i64,)>(APPLIED).fetch_all(pool).await,
            ),
        };
        let applied: Vec<i64> = match applied {
            Ok(rows) => rows.into_iter().map(|(v,)| v).collect(),
            // Only a missing table means "never migrated" (PostgreSQL 42P01; SQLite's generic
            // code 1 with this message): a refused permission, say, is an error of its own.
            Err(sqlx::Error::Database(e))
                if e.code().as_deref() == Some("42P01")
                    || e.message().starts_with("no such table: _sqlx_migrations") =>
            {
                Vec::new()
            }
            Err(e) => return Err(errors::db_err(e)),
        };
        Ok(embedded
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .map(|m| (m.version, m.description.to_string()))
            .collect())
    }

    pub async fn close(&self) {
        match &self.migrator {
            Migrator::Postgres(pool, _) => pool.close().await,
            Migrator::Sqlite(pool, _) => pool.close().await,
        }
    }
}

pub fn backend_of(url: &str) -> Option<Backend> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Some(Backend::Postgres)
    } else if url.starts_with("sqlite:") {
        Some(Backend::Sqlite)
    } else {
        None
    }
}

/// Holds an exclusive lock (flock) on the folder of the SQLite file until the returned handle is
/// dropped, waiting for another process's migrations to end. The folder, not the file: closing
/// any descriptor of the file would drop every POSIX lock this process's SQLite connections hold
/// on it (fcntl locks belong to the process and the file, not the descriptor), and another
/// process could then write beside them ("How To Corrupt An SQLite Database File", §2.2).
async fn lock_for_migrations(file: std::path::PathBuf) -> Option<std::fs::File> {
    let locked = tokio::task::spawn_blocking(move || {
        let folder = match file.parent() {
            Some(folder) if !folder.as_os_str().is_empty() => folder.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        let handle = std::fs::File::open(folder)?;
        handle.lock()?;
        Ok::<_, std::io::Error>(handle)
    })
    .await;
    match locked {
        Ok(Ok(handle)) => Some(handle),
        // A folder the service may write but not read (mode 733): the migrations run unlocked,
        // as they did before the lock, which only orders processes migrating at once.
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot lock the database's folder; migrating without the lock");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot lock the database's folder; migrating without the lock");
            None
        }
    }
}

/// Why a database URL does not read as its backend's options (a port that is no number, an
/// unknown `sslmode` or SQLite parameter); `None` when it does, or names no backend. Judged when
/// the configuration is read, so that a mistyped URL is told as such, not as an outage.
pub fn url_fault(url: &str) -> Option<String> {
    use std::str::FromStr;
    match backend_of(url)? {
        Backend::Postgres => sqlx::postgres::PgConnectOptions::from_str(url).err(),
        Backend::Sqlite => sqlx::sqlite::SqliteConnectOptions::from_str(url).err(),
    }
    .map(|e| e.to_string())
}

/// Connects to the database the URL names (`postgres://…` or `sqlite://…`).
pub async fn connect(options: &DatabaseOptions) -> Result<Database, StoreError> {
    match backend_of(&options.url) {
        Some(Backend::Postgres) => {
            let store = postgres::PgStore::connect(options).await?;
            let migrator = Migrator::Postgres(store.pool().clone(), options.migration_lock_timeout);
            Ok(Database {
                backend: Backend::Postgres,
                store: Arc::new(store),
                migrator,
            })
        }
        Some(Backend::Sqlite) => {
            let store = sqlite::SqliteStore::connect(options).await?;
            let migrator = Migrator::Sqlite(
                store.write_pool().clone(),
                store.file().map(std::path::Path::to_path_buf),
            );
            Ok(Database {
                backend: Backend::Sqlite,
                store: Arc::new(store),
                migrator,
            })
        }
        None => Err(StoreError::Internal(
            "the database URL must start with postgres:// or sqlite:".into(),
        )),
    }
}

/// How the audit log's `since` filter reads (`shared.rs`): through the index named (SQLite's
/// `INDEXED BY`, or empty for the planner's choice), and from which `seq` on, when known.
#[derive(Default)]
struct SinceAccess {
    index: &'static str,
    from_seq: Option<i64>,
}

/// The predicate of the audit log's action index (migration 25), which a query for any other
/// action repeats so that both planners can use the index: the actions of an answered check,
/// most of the log, are left out.
const AUDIT_ACTION_INDEX_PREDICATE: &str = "action NOT IN ('eligibility.eligible', 'eligibility.not_eligible')";

#[cfg(test)]
mod tests {
    use sqlx::{Connection, Executor};

    use super::*;

    /// The queries' copy of the action index's predicate is the migrations' text, and leaves out
    /// exactly the actions the check route writes.
    #[test]
    fn the_action_index_predicate_is_the_migrations() {
        for migration in [
            include_str!("../../../migrations/postgres/20261202000025_audit_log_filters.sql"),
            include_str!("../../../migrations/sqlite/20261202000025_audit_log_filters.sql"),
            include_str!("../../../migrations/postgres/20261206000034_audit_log_by_organization_and_type.sql"),
            include_str!("../../../migrations/sqlite/20261206000034_audit_log_by_organization_and_type.sql"),
        ] {
            assert!(migration.contains(&format!("WHERE {AUDIT_ACTION_INDEX_PREDICATE};")));
        }
        let quoted: Vec<String> = passerelle_domain::audit::CHECK_ACTIONS
            .iter()
            .map(|a| format!("'{a}'"))
            .collect();
        assert_eq!(
            AUDIT_ACTION_INDEX_PREDICATE,
            format!("action NOT IN ({})", quoted.join(", "))
        );
    }

    /// A connection the server dropped while it sat in the pool must not reach a caller: the
    /// idle check replaces it. Without that check (sqlx's own is off) this query would fail.
    #[tokio::test]
    async fn a_connection_dropped_while_idle_is_replaced() {
        let url = crate::testing::postgres_base_url();
        let options = DatabaseOptions::new(&url);
        let pool = pool_options::<sqlx::Postgres>(&options)
            .max_connections(1)
            .connect(&url)
            .await
            .expect("PostgreSQL tests need the server of scripts/test.sh");
        let (pid,): (i32,) = sqlx::query_as("SELECT pg_backend_pid()")
            .fetch_one(&pool)
            .await
            .unwrap();
        let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
        admin
            .execute(format!("SELECT pg_terminate_backend({pid})").as_str())
            .await
            .unwrap();
        tokio::time::sleep(PING_IDLE_AFTER + Duration::from_millis(100)).await;
        let (other,): (i32,) = sqlx::query_as("SELECT pg_backend_pid()")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_ne!(other, pid, "the pool handed out the dropped connection's successor");
    }

    /// `url` with libpq's TLS parameters added to its query string.
    fn with_params(url: &str, params: &str) -> String {
        let joiner = if url.contains('?') { '&' } else { '?' };
        format!("{url}{joiner}{params}")
    }

    /// Whether the store's connection to PostgreSQL is encrypted, as the server sees it.
    async fn encrypted(db: &Database) -> bool {
        let Migrator::Postgres(pool, _) = &db.migrator else {
            panic!("not PostgreSQL")
        };
        let (ssl,): (bool,) = sqlx::query_as("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(pool)
            .await
            .unwrap();
        ssl
    }

    /// The test server must offer TLS for these tests to mean anything (Debian's packages turn
    /// it on, with the machine's self-signed "snakeoil" certificate).
    async fn server_offers_tls(url: &str) {
        let mut conn = sqlx::PgConnection::connect(url)
            .await
            .expect("PostgreSQL tests need the server of scripts/test.sh");
        let (ssl,): (String,) = sqlx::query_as("SHOW ssl").fetch_one(&mut conn).await.unwrap();
        assert_eq!(ssl, "on", "the test server has TLS off (ssl = off in postgresql.conf)");
    }

    /// `sslmode=require` encrypts every pooled connection; `disable` does not.
    #[tokio::test]
    async fn postgres_connections_use_tls_when_the_url_asks() {
        let url = crate::testing::postgres_base_url();
        server_offers_tls(&url).await;
        let db = connect(&DatabaseOptions::new(with_params(&url, "sslmode=require")))
            .await
            .expect("a TLS connection to the test server");
        assert!(encrypted(&db).await, "sslmode=require gave a plain connection");
        db.close().await;
        let db = connect(&DatabaseOptions::new(with_params(&url, "sslmode=disable")))
            .await
            .unwrap();
        assert!(!encrypted(&db).await, "sslmode=disable gave an encrypted connection");
        db.close().await;
    }

    /// `verify-full` checks the server's certificate and name: it fails against the built-in
    /// roots, which do not include the test server's self-signed certificate, and succeeds with
    /// that certificate as `sslrootcert` and the name it was made for (`localhost`).
    #[tokio::test]
    async fn postgres_verifies_the_server_certificate() {
        let url = crate::testing::postgres_base_url();
        server_offers_tls(&url).await;
        let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
        let (cert,): (String,) = sqlx::query_as("SHOW ssl_cert_file")
            .fetch_one(&mut admin)
            .await
            .unwrap();
        let untrusted = connect(&DatabaseOptions::new(with_params(&url, "sslmode=verify-full"))).await;
        assert!(untrusted.is_err(), "an unknown self-signed certificate was accepted");
        assert!(
            url.contains("@127.0.0.1:"),
            "this test expects the local server at 127.0.0.1: {url}"
        );
        let by_name = url.replace("@127.0.0.1:", "@localhost:");
        let db = connect(&DatabaseOptions::new(with_params(
            &by_name,
            &format!("sslmode=verify-full&sslrootcert={cert}"),
        )))
        .await
        .expect("the server's own certificate as the root, under its own name");
        assert!(encrypted(&db).await);
        db.close().await;
    }
}
