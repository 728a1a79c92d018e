//! SQLite storage: the embedded default. WAL lets readers run beside the one writer; all writes
//! go through a single connection, so write transactions never race for SQLite's lock.

use std::str::FromStr;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite as Db, SqlitePool};

use super::{DatabaseOptions, ProductCache};

pub struct SqliteStore {
    write: SqlitePool,
    read: SqlitePool,
    eligibility_pool: SqlitePool,
    products: ProductCache,
}

type This = SqliteStore;

/// The single writer connection already serialises appends.
const LOCK_HEAD: &str = "SELECT seq, digest FROM audit_head WHERE id = 1";

/// No row locks in SQLite: its single writer connection serialises read-modify-write transactions.
const FOR_UPDATE: &str = "";

/// The single writer serialises leases; the lease columns keep two processes apart.
const SKIP_LOCKED: &str = "";

impl SqliteStore {
    pub async fn connect(options: &DatabaseOptions) -> Result<Self, StoreError> {
        let connect = SqliteConnectOptions::from_str(&options.url)
            .map_err(|e| StoreError::Unavailable(format!("bad SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(options.acquire_timeout);
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.clone())
            .await
            .map_err(db_err)?;
        let read = SqlitePoolOptions::new()
            .max_connections(options.max_connections.clamp(1, 8))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(db_err)?;
        Ok(SqliteStore {
            write,
            eligibility_pool: read.clone(),
            read,
            products: ProductCache::default(),
        })
    }

    pub fn write_pool(&self) -> &SqlitePool {
        &self.write
    }
}

include!("shared.rs");
include!("registry.rs");
include!("eligibility.rs");
include!("batches.rs");
include!("claims.rs");
include!("settlements.rs");
include!("webhooks.rs");
