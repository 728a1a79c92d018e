//! PostgreSQL storage: production. One pool serves reads and writes.

use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres as Db};

use super::{DatabaseOptions, ProductCache};
use crate::audit_chain::Chainer;

pub struct PgStore {
    write: PgPool,
    read: PgPool,
    /// Eligibility reads: the read replica when one is configured, else `read`.
    eligibility_pool: PgPool,
    products: ProductCache,
    /// The one task of this process that appends to the audit chain.
    chain: Chainer,
}

type This = PgStore;

/// Writers queue on the head row only from their append to their commit.
const LOCK_HEAD: &str = "SELECT seq, digest FROM audit_head WHERE id = 1 FOR UPDATE";

/// Every queued audit event is deleted within milliseconds, far faster than autovacuum's rounds
/// come: the chainer vacuums the queue itself so that draining it stays a scan of a few pages.
const TIDY_QUEUE: Option<&str> = Some("VACUUM (SKIP_LOCKED) audit_queue");

/// Row locks for read-modify-write transactions.
const FOR_UPDATE: &str = " FOR UPDATE";

/// Several replicas lease outbox rows without waiting on each other.
const SKIP_LOCKED: &str = " FOR UPDATE SKIP LOCKED";

impl PgStore {
    pub async fn connect(options: &DatabaseOptions) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect(&options.url)
            .await
            .map_err(db_err)?;
        let eligibility_pool = match &options.read_url {
            Some(url) => PgPoolOptions::new()
                .max_connections(options.max_connections)
                .acquire_timeout(options.acquire_timeout)
                .connect(url)
                .await
                .map_err(db_err)?,
            None => pool.clone(),
        };
        let chain = Chainer::start(Arc::new(QueueChain(pool.clone())));
        Ok(PgStore {
            write: pool.clone(),
            read: pool,
            eligibility_pool,
            products: ProductCache::default(),
            chain,
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.write
    }
}

include!("shared.rs");
include!("registry.rs");
include!("eligibility.rs");
include!("batches.rs");
include!("claims.rs");
include!("claims_postgres.rs");
include!("settlements.rs");
include!("webhooks.rs");
