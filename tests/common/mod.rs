//! Starts the real service on a free loopback port, against a fresh SQLite file or PostgreSQL
//! schema, and talks to it over HTTP like any client.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step must stop the test loudly

pub mod conformance;
pub mod proxy;
pub mod tokens;

use std::path::PathBuf;

use passerelle_adapters::testing::TestDatabase;
use passerelle_adapters::Backend;
use passerelle_api::app;
use passerelle_api::config::{Config, Secret};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::Value;

pub const SECRET: &str = "test-secret-test-secret-test-secret-0123456789";

pub fn fixture(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(path)
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub db: TestDatabase,
    pub backend: Backend,
    pub config: Config,
    running: Option<app::Running>,
    workers: Option<passerelle_api::webhook_worker::Worker>,
}

/// A response read whole: status, headers and the body as JSON (Null when empty or not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a problem+json body with this status and code, and returns it.
    pub fn problem(&self, status: u16, code: &str) -> &Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "body: {}",
            self.text
        );
        assert_eq!(self.json["code"], code, "body: {}", self.text);
        // Whichever layer made it: an answer to one caller, kept by no cache.
        assert_eq!(self.header("cache-control"), Some("no-store"), "body: {}", self.text);
        assert_eq!(self.json["status"], status);
        assert!(self.json["title"].is_string() && self.json["detail"].is_string());
        // API.md §4: every conflict names its case, for a program to tell them apart.
        if status == 409 {
            assert!(
                self.json["errors"][0]["code"].as_str().is_some_and(|c| !c.is_empty()),
                "a 409 without errors[0].code: {}",
                self.text
            );
        }
        &self.json
    }

    /// The `(field, code)` pairs of a 422 `validation_failed`, in order.
    pub fn field_codes(&self) -> Vec<(String, String)> {
        self.problem(422, "validation_failed");
        self.json["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["field"].as_str().unwrap().to_owned(),
                    e["code"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    pub fn error_fields(&self) -> Vec<String> {
        self.json["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| e["field"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

pub fn test_config(url: &str) -> Config {
    let mut config = Config::for_database(url);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.jwt_hs256_secret = Some(Secret::new(SECRET));
    config.jwt_jwks = Some(fixture("keys/jwks.json").display().to_string());
    config
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        TestApp::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> TestApp {
        let db = TestDatabase::new(backend).await;
        let mut config = test_config(&db.url);
        adjust(&mut config);
        TestApp::start(db, config).await
    }

    pub async fn start(db: TestDatabase, config: Config) -> TestApp {
        let database = app::connect(&config).await.expect("connect");
        database.migrate().await.expect("migrate");
        let state = app::state(config.clone(), &database).await.expect("state");
        app::ensure_operator(&state).await.expect("operator");
        let workers = app::start_workers(&state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let running = app::serve(listener, app::router(state), config.connection_limits())
            .await
            .expect("serve");
        let base = format!("http://{}", running.addr);
        let client = reqwest::Client::builder().no_proxy().build().expect("client");
        let backend = db.backend;
        TestApp {
            base,
            client,
            db,
            backend,
            config,
            running: Some(running),
            workers,
        }
    }

    /// Stops this service and starts a new one on the same database (a restart, or with a
    /// changed configuration).
    pub async fn restart(mut self, adjust: impl FnOnce(&mut Config)) -> TestApp {
        self.stop().await;
        let mut config = self.config.clone();
        adjust(&mut config);
        let db = std::mem::replace(&mut self.db, TestDatabase::detached(self.backend));
        TestApp::start(db, config).await
    }

    /// A second service on the same database, as another replica would be.
    pub async fn replica(&self) -> TestApp {
        TestApp::start(TestDatabase::alias(&self.db), self.config.clone()).await
    }

    /// Stops the server and its background workers, as a process exit would.
    pub async fn stop(&mut self) {
        if let Some(w) = self.workers.take() {
            w.abort();
        }
        if let Some(running) = self.running.take() {
            let _ = running.shutdown.send(());
            let _ = running.handle.await;
        }
    }

    /// A development token for `org` with these scopes, valid one hour.
    pub fn token(&self, org: &str, scopes: &str) -> String {
        tokens::hs256(SECRET, &tokens::claims(org, scopes))
    }

    /// A token with arbitrary claims, signed with the development secret.
    pub fn token_from(&self, claims: &Value) -> String {
        tokens::hs256(SECRET, claims)
    }

    pub fn operator(&self) -> String {
        self.token("operator", "admin registry:read audit:read")
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{}", self.base, path))
    }

    /// Sends the request and reads the answer whole; an answer the OpenAPI document does not
    /// describe fails the test ([`conformance`]).
    pub async fn send(&self, builder: RequestBuilder) -> Reply {
        let (client, request) = builder.build_split();
        let request = request.expect("request");
        let method = request.method().clone();
        let response = client.execute(request).await.expect("request");
        let status = response.status();
        let headers = response.headers().clone();
        let path = response.url().path().to_owned();
        let text = response.text().await.expect("body");
        if let Err(fault) = conformance::check(&method, &path, status, &headers, &text) {
            panic!("undocumented answer: {fault}");
        }
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            text,
            json,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.send(self.request(Method::GET, path).bearer_auth(token)).await
    }

    pub async fn post(&self, path: &str, token: &str, body: &Value) -> Reply {
        self.send(self.request(Method::POST, path).bearer_auth(token).json(body))
            .await
    }

    /// Creates an organisation as the operator and asserts it worked.
    pub async fn create_org(&self, id: &str, kind: &str, country: &str) {
        let body = serde_json::json!({"id": id, "kind": kind, "country": country, "name": format!("Test {id}")});
        let reply = self.post("/v1/organizations", &self.operator(), &body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    }

    /// Creates the scheme's base product (AMU, 80 %, from 2024) with `token` and asserts it
    /// worked; returns its id.
    pub async fn create_base_product(&self, token: &str) -> String {
        let body = serde_json::json!({"layer": "base", "name": "AMU", "rules": [{"rate_bp": 8000}],
            "effective_from": "2024-01-01"});
        let reply = self.post("/v1/products", token, &body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        reply.json["id"].as_str().unwrap().to_owned()
    }

    /// Rows in a table, read straight from the database.
    pub async fn count(&self, table: &str) -> i64 {
        self.db.scalar(&format!("SELECT count(*) FROM {table}")).await
    }

    /// Audit events that are durable: chained, or still queued with the change that wrote them
    /// (a change does not wait for the chain; the log's readers chain first).
    pub async fn audited(&self) -> i64 {
        self.db
            .scalar("SELECT (SELECT count(*) FROM audit_events) + (SELECT count(*) FROM audit_queue)")
            .await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(w) = self.workers.take() {
            w.abort();
        }
        if let Some(running) = self.running.take() {
            let _ = running.shutdown.send(());
            running.handle.abort();
        }
    }
}

/// Stamps out one `#[tokio::test]` per database for each `async fn case(backend: Backend)`.
#[macro_export]
macro_rules! on_both_databases {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(passerelle_adapters::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(passerelle_adapters::Backend::Postgres).await;
                }
            )*
        }
    };
}
