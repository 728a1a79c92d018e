//! Translation of driver errors into the domain's `StoreError`, keeping SQL text out of it.

use passerelle_domain::error::StoreError;

pub(crate) fn db_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => StoreError::Unavailable(e.to_string()),
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            // PostgreSQL class 08 (connection), 57P (operator intervention), 53 (resources);
            // SQLite BUSY (5) and LOCKED (6) after the busy timeout.
            if code.starts_with("08") || code.starts_with("57P") || code.starts_with("53") || code == "5" || code == "6"
            {
                StoreError::Unavailable(e.to_string())
            } else if code == "40P01" || code == "40001" {
                // A deadlock's victim or a serialization failure: rolled back whole.
                StoreError::Contention(e.to_string())
            } else if matches!(db.kind(), sqlx::error::ErrorKind::UniqueViolation) {
                StoreError::Conflict {
                    constraint: db.constraint().unwrap_or("unique").to_owned(),
                }
            } else {
                StoreError::Internal(e.to_string())
            }
        }
        _ => StoreError::Internal(e.to_string()),
    }
}

pub(crate) fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("stored {what} does not parse"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestDatabase;
    use crate::Backend;

    /// Two transactions that lock two rows in opposite orders: PostgreSQL aborts one as the
    /// deadlock's victim, and it reads as `Contention` (503 to a client, a retry in bulk jobs),
    /// never as a fault.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_deadlock_victim_is_contention() {
        let db = TestDatabase::new(Backend::Postgres).await;
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        sqlx::query("CREATE TABLE locks (id INT PRIMARY KEY)")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO locks VALUES (1), (2)")
            .execute(&pool)
            .await
            .unwrap();
        let lock = |id: i32| sqlx::query("UPDATE locks SET id = id WHERE id = $1").bind(id);
        let mut a = pool.begin().await.unwrap();
        let mut b = pool.begin().await.unwrap();
        lock(1).execute(&mut *a).await.unwrap();
        lock(2).execute(&mut *b).await.unwrap();
        // Each ends its transaction as soon as its second lock is decided: the victim's locks
        // are held until it rolls back, and the other waits for them.
        let second = |mut tx: sqlx::Transaction<'static, sqlx::Postgres>, id: i32| async move {
            match lock(id).execute(&mut *tx).await {
                Ok(_) => tx.commit().await.err(),
                Err(e) => {
                    let _ = tx.rollback().await;
                    Some(e)
                }
            }
        };
        let (ra, rb) = tokio::join!(second(a, 2), second(b, 1));
        let failed: Vec<StoreError> = [ra, rb].into_iter().flatten().map(db_err).collect();
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert!(matches!(failed[0], StoreError::Contention(_)), "{:?}", failed[0]);
    }
}
