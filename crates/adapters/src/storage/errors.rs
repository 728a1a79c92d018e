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
            if unavailable(&code) || closed_for_maintenance(&code, db.message()) {
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

/// A read of the audit chain's head: its one row is made by the migrations and never deleted,
/// so a row missing is a database changed behind the service, said as such rather than as a
/// driver's "no rows returned".
pub(crate) fn head_err(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::RowNotFound => StoreError::Internal(
            "the audit chain's head (the row of audit_head) is missing: the database was changed outside the \
             service; restore it from a backup"
                .to_owned(),
        ),
        e => db_err(e),
    }
}

/// A failed `COMMIT`. A connection that breaks (or a server shut down) while the commit is in
/// flight leaves the client unable to tell whether the server committed before it went: that is
/// not "nothing changed", which `Unavailable` tells the caller. A commit the server refused
/// (a full disk, a busy SQLite file, a serialization failure) was rolled back and keeps its kind.
pub(crate) fn commit_err(e: sqlx::Error) -> StoreError {
    let connection_lost = match &e {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.len() == 5 && (c.starts_with("08") || c.starts_with("57P"))),
        _ => false,
    };
    if connection_lost {
        StoreError::Indeterminate(e.to_string())
    } else {
        db_err(e)
    }
}

/// Codes that say the database cannot serve now, not that the request is wrong: a 503 to retry.
/// PostgreSQL: class 08 (connection), 57P (operator intervention), 53 (resources), 58 (system
/// and I/O), 28 (credentials refused: a password rotated under the service), 3D000 (the
/// database dropped or renamed), 57014 (a server `statement_timeout`), 55P03 (a
/// `lock_timeout`), 25006 (a read-only transaction: still connected to a primary demoted by a
/// failover). SQLite reports extended codes, whose low byte is the primary one: BUSY (5) and
/// LOCKED (6) after the busy timeout, whatever the variant (`SQLITE_BUSY_RECOVERY` is 261),
/// READONLY (8), IOERR (10), FULL (13, the disk) and CANTOPEN (14).
/// A database whose owner stopped new connections for maintenance (`ALTER DATABASE …
/// ALLOW_CONNECTIONS false`) refuses them with 55000, a code PostgreSQL also gives faults of a
/// statement's own (`currval` before `nextval`), which stay errors.
fn closed_for_maintenance(code: &str, message: &str) -> bool {
    code == "55000" && message.contains("is not currently accepting connections")
}

fn unavailable(code: &str) -> bool {
    // PostgreSQL's codes have five characters, SQLite's at most four digits.
    if code.len() == 5 {
        return ["08", "57P", "53", "58", "28"]
            .iter()
            .any(|class| code.starts_with(class))
            || ["3D000", "57014", "55P03", "25006"].contains(&code);
    }
    code.len() <= 4
        && code
            .parse::<i32>()
            .is_ok_and(|n| matches!(n & 0xff, 5 | 6 | 8 | 10 | 13 | 14))
}

pub(crate) fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("stored {what} does not parse"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_closed_for_maintenance_cannot_serve_now() {
        assert!(closed_for_maintenance(
            "55000",
            "database \"passerelle\" is not currently accepting connections"
        ));
        assert!(!closed_for_maintenance(
            "55000",
            "currval of sequence \"s\" is not yet defined in this session"
        ));
    }

    #[test]
    fn codes_of_a_database_that_cannot_serve_now() {
        for code in [
            "08006", "57P01", "53300", "58030", "28P01", "28000", "3D000", "57014", "55P03", "25006", "5", "6", "261",
            "517", "262", "8", "10", "13", "14",
        ] {
            assert!(unavailable(code), "{code}");
        }
        // A wrong request or a fault, not an outage: 23505 unique, 22008 date out of range,
        // 42P01 missing table; SQLite CONSTRAINT (19, 2067) and ERROR (1).
        // SQLite's CONSTRAINT_PINNED (2835) is not PostgreSQL's class 28.
        for code in ["23505", "22008", "42P01", "40P01", "19", "2067", "2835", "1", ""] {
            assert!(!unavailable(code), "{code}");
        }
    }
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

    /// A commit whose connection the server closed under it cannot say whether it committed:
    /// `Indeterminate`, never `Unavailable`'s "nothing changed". A commit the server refused is
    /// still what it was.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_commit_on_a_broken_connection_is_indeterminate() {
        let db = TestDatabase::new(Backend::Postgres).await;
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        sqlx::query("CREATE TABLE marks (id INT PRIMARY KEY)")
            .execute(&pool)
            .await
            .unwrap();
        let mut tx = pool.begin().await.unwrap();
        let (pid,): (i32,) = sqlx::query_as("SELECT pg_backend_pid()")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        sqlx::query("INSERT INTO marks VALUES (1)")
            .execute(&mut *tx)
            .await
            .unwrap();
        let (killed,): (bool,) = sqlx::query_as("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert!(killed);
        let failed = tx.commit().await.expect_err("the connection was closed");
        assert!(matches!(commit_err(failed), StoreError::Indeterminate(_)));

        // A deferred unique violation refused at commit was rolled back: a conflict, as ever.
        sqlx::query("CREATE TABLE once (id INT, CONSTRAINT once_id UNIQUE (id) DEFERRABLE INITIALLY DEFERRED)")
            .execute(&pool)
            .await
            .unwrap();
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("INSERT INTO once VALUES (1), (1)")
            .execute(&mut *tx)
            .await
            .unwrap();
        let refused = tx.commit().await.expect_err("a duplicate");
        assert!(matches!(commit_err(refused), StoreError::Conflict { .. }));
    }
}
