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
