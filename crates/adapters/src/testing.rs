//! Isolated databases for tests: a new SQLite file, or a new PostgreSQL schema, per test, so
//! tests run in parallel. PostgreSQL tests fail — never skip — when the server is unreachable.

use std::path::PathBuf;

use sqlx::{Connection, Executor};

use crate::storage::Backend;

pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The PostgreSQL database the tests use: `PASSERELLE_TEST_POSTGRES_URL` or the local default.
pub fn postgres_base_url() -> String {
    std::env::var("PASSERELLE_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

pub struct TestDatabase {
    pub backend: Backend,
    pub url: String,
    dir: Option<PathBuf>,
    schema: Option<String>,
}

impl TestDatabase {
    pub async fn new(backend: Backend) -> TestDatabase {
        let id = uuid::Uuid::now_v7().simple().to_string();
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("passerelle-test-{id}"));
                if let Err(e) = std::fs::create_dir_all(&dir) {
                    panic!("cannot create {}: {e}", dir.display());
                }
                let url = format!("sqlite://{}", dir.join("passerelle.db").display());
                TestDatabase {
                    backend,
                    url,
                    dir: Some(dir),
                    schema: None,
                }
            }
            Backend::Postgres => {
                let base = postgres_base_url();
                let schema = format!("t_{id}");
                let mut conn = match sqlx::PgConnection::connect(&base).await {
                    Ok(c) => c,
                    Err(e) => panic!(
                        "PostgreSQL tests need a server at {base} ({e}); start it with \
                         `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` \
                         or set PASSERELLE_TEST_POSTGRES_URL"
                    ),
                };
                if let Err(e) = conn.execute(format!("CREATE SCHEMA {schema}").as_str()).await {
                    panic!("cannot create schema {schema}: {e}");
                }
                let _ = conn.close().await;
                let sep = if base.contains('?') { '&' } else { '?' };
                let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
                TestDatabase {
                    backend,
                    url,
                    dir: None,
                    schema: Some(schema),
                }
            }
        }
    }

    /// A handle on the same database that does not remove it when dropped.
    pub fn alias(other: &TestDatabase) -> TestDatabase {
        TestDatabase {
            backend: other.backend,
            url: other.url.clone(),
            dir: None,
            schema: None,
        }
    }

    /// A placeholder owning nothing.
    pub fn detached(backend: Backend) -> TestDatabase {
        TestDatabase {
            backend,
            url: String::new(),
            dir: None,
            schema: None,
        }
    }

    /// Runs SQL straight on the database, around the service (to tamper with rows, say).
    pub async fn execute(&self, sql: &str) -> u64 {
        let result = match self.backend {
            Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.url)
                    .await
                    .expect("sqlite connect");
                c.execute(sql).await.map(|r| r.rows_affected())
            }
            Backend::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url).await.expect("postgres connect");
                c.execute(sql).await.map(|r| r.rows_affected())
            }
        };
        match result {
            Ok(n) => n,
            Err(e) => panic!("{sql}: {e}"),
        }
    }

    /// One integer from a query such as `SELECT count(*) FROM organizations`.
    pub async fn scalar(&self, sql: &str) -> i64 {
        let result: Result<(i64,), sqlx::Error> = match self.backend {
            Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.url)
                    .await
                    .expect("sqlite connect");
                sqlx::query_as(sql).fetch_one(&mut c).await
            }
            Backend::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url).await.expect("postgres connect");
                sqlx::query_as(sql).fetch_one(&mut c).await
            }
        };
        match result {
            Ok((n,)) => n,
            Err(e) => panic!("{sql}: {e}"),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some(schema) = self.schema.take() {
            // Drop cannot await: a short-lived thread with its own runtime removes the schema.
            let base = postgres_base_url();
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                    return;
                };
                rt.block_on(async {
                    if let Ok(mut c) = sqlx::PgConnection::connect(&base).await {
                        let _ = c
                            .execute(format!("DROP SCHEMA IF EXISTS {schema} CASCADE").as_str())
                            .await;
                    }
                });
            })
            .join();
        }
    }
}
