//! Eligibility checks' facts on SQLite, read on the calling task through SQLite's library
//! directly (rusqlite), not through sqlx.
//!
//! sqlx runs each SQLite connection on a thread of its own: a statement is sent to that thread,
//! and every row comes back through a channel, each a thread wake-up. For the facts of one check
//! (a few index lookups, tens of microseconds inside SQLite) those hand-offs cost more than the
//! statement, and profiles of checks under load showed sqlx's connection threads taking 43 % of
//! the machine's CPU. Here a check runs its statement in place and gets its rows back as a
//! plain vector. The statement is the same text as the batched one (`eligibility.rs`), with the
//! key given as parameters instead of a JSON array.
//!
//! The read does not yield: it holds its runtime thread for the statement's duration, a few
//! tens of microseconds with the file in the operating system's cache. Only checks read here;
//! claims, which must see their own writes, and everything else keep sqlx's pools.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use chrono::{Datelike, NaiveDate};
use passerelle_domain::error::StoreError;
use passerelle_domain::ports::PersonKey;
use rusqlite::{Connection, OpenFlags, Row};

use super::{facts_row_at, facts_sql, names_no_one, FactsRow, KeyKind, OptionalCoverageRow};

/// Connections kept open between checks, at least. A read never yields, so at most one runs per
/// runtime thread: as many as the machine has threads are kept, when that is more.
const KEEP: usize = 8;

/// How long a read waits for a busy file before giving up. WAL readers are almost never refused
/// (recovery after a crash, another process holding the file exclusively), but when they are,
/// SQLite's wait sleeps on the runtime thread that serves the check and every task queued on it:
/// so the wait is short, and the check then reads through sqlx's pool, whose own thread waits.
const BUSY_WAIT: Duration = Duration::from_millis(20);

/// The one key of a check, as the row source `k` of [`facts_sql`].
const ONE_KEY: &str = "(SELECT 0 AS n, ?1 AS day, ?2 AS plan_year, ?3 AS k1, ?4 AS k2, ?5 AS k3) AS k";

pub(super) struct InlineFacts {
    path: PathBuf,
    keep: usize,
    idle: Mutex<Vec<Connection>>,
}

impl InlineFacts {
    /// A reader of the database file `path`.
    pub(super) fn new(path: &Path) -> InlineFacts {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        InlineFacts {
            path: path.to_owned(),
            keep: KEEP.max(threads),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The facts rows of one person on one day.
    pub(super) fn read(&self, key: &PersonKey, day: NaiveDate) -> Result<Vec<FactsRow>, StoreError> {
        if names_no_one(key) {
            return Ok(Vec::new());
        }
        let kept = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match kept {
            Some(conn) => conn,
            None => self.open()?,
        };
        let rows = read_with(&conn, key, day);
        // A connection whose statement failed is dropped rather than kept: a fresh one costs
        // little, and no failure state can outlive the check that met it.
        if rows.is_ok() {
            if let Ok(mut idle) = self.idle.lock() {
                if idle.len() < self.keep {
                    idle.push(conn);
                }
            }
        }
        rows.map_err(sqlite_err)
    }

    fn open(&self) -> Result<Connection, StoreError> {
        // Read-only: this connection never writes, and cannot by mistake. The file is in WAL
        // mode already (the writer pool set it), so readers never wait for the writer.
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(&self.path, flags).map_err(sqlite_err)?;
        conn.busy_timeout(BUSY_WAIT).map_err(sqlite_err)?;
        Ok(conn)
    }
}

fn read_with(conn: &Connection, key: &PersonKey, day: NaiveDate) -> rusqlite::Result<Vec<FactsRow>> {
    let kind = KeyKind::of(key);
    let [k1, k2, k3] = KeyKind::columns(key);
    let mut statement = conn.prepare_cached(one_key_sql(kind))?;
    // Dates as sqlx stores them in SQLite: ISO 8601 text, compared as text (a date's `Display`
    // is that form, without parsing a format string on every check).
    let day_text = day.to_string();
    let rows = statement.query_map(
        rusqlite::params![day_text, i64::from(day.year()), k1, k2, k3],
        facts_row,
    )?;
    rows.collect()
}

fn one_key_sql(kind: KeyKind) -> &'static str {
    static SQL: [OnceLock<String>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    SQL[kind.slot()].get_or_init(|| facts_sql(ONE_KEY, kind))
}

/// One row of the facts statement, read by position (`facts_row_at`).
fn facts_row(row: &Row<'_>) -> rusqlite::Result<FactsRow> {
    Ok(facts_row_at!(row.get))
}

/// As `db_err` does for sqlx: a busy or locked file, or one that cannot be opened, is the
/// database being unavailable; anything else is a fault.
fn sqlite_err(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::{CannotOpen, DatabaseBusy, DatabaseLocked};
    match &e {
        rusqlite::Error::SqliteFailure(f, _) if matches!(f.code, DatabaseBusy | DatabaseLocked | CannotOpen) => {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Internal(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The positions `facts_row_at` reads.
    const COLUMNS: [&str; 23] = [
        "n",
        "person_id",
        "birth_date",
        "birth_date_precision",
        "id",
        "beneficiary",
        "product",
        "organization",
        "layer",
        "member_number",
        "relationship",
        "principal_coverage",
        "start_date",
        "end_date",
        "status",
        "paid_through",
        "version",
        "principal_paid_through",
        "principal_status",
        "principal_end_date",
        "product_version",
        "used_xof",
        "latest_version",
    ];

    /// Only a plain file is read in place; every other kind of database keeps sqlx's pool.
    #[test]
    fn only_plain_files_are_read_in_place() {
        use std::str::FromStr;
        let file = |url: &str| {
            super::super::database_file(
                url,
                &sqlx::sqlite::SqliteConnectOptions::from_str(url).expect("URL parses"),
            )
        };
        assert_eq!(
            file("sqlite://data/passerelle.db"),
            Some(PathBuf::from("data/passerelle.db"))
        );
        assert_eq!(
            file("sqlite:///var/lib/p.db?mode=rwc"),
            Some(PathBuf::from("/var/lib/p.db"))
        );
        assert_eq!(
            file("sqlite:///var/lib/p.db?mode=ro"),
            Some(PathBuf::from("/var/lib/p.db"))
        );
        for other in [
            "sqlite::memory:",
            "sqlite:///var/lib/p.db?mode=memory",
            "sqlite:///var/lib/p.db?vfs=unix-excl",
            "sqlite:///var/lib/p.db?immutable=true",
        ] {
            assert_eq!(file(other), None, "{other}");
        }
    }

    /// The positions `facts_row_at` reads are the statement's columns, for every way of naming a
    /// person.
    #[test]
    fn columns_are_read_where_the_statement_puts_them() {
        let conn = Connection::open_in_memory().expect("memory database");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations/sqlite");
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("migrations")
            .map(|e| e.expect("migration").path())
            .collect();
        files.sort();
        for file in files {
            conn.execute_batch(&std::fs::read_to_string(&file).expect("migration text"))
                .expect("migration applies");
        }
        for kind in [KeyKind::Id, KeyKind::NationalId, KeyKind::Member] {
            let statement = conn.prepare(one_key_sql(kind)).expect("facts statement prepares");
            assert_eq!(statement.column_names(), COLUMNS, "{kind:?}");
        }
    }
}
