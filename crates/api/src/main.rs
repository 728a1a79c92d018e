//! The `passerelle` binary.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use passerelle_api::config::{Config, Secret};
use passerelle_api::problem::Lang;
use passerelle_api::stdout::emit;
use passerelle_api::{app, auth, demo, erasure, import, openapi, routes, telemetry};
use passerelle_domain::error::StoreError;
use passerelle_domain::ports::BatchFormat;

/// Every request allocates and frees many small buffers across the runtime's threads; mimalloc's
/// per-thread free lists cost less there than glibc's malloc (measured with bench/claims.sh).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "passerelle",
    version,
    about = "Interoperability API between mutuelles de santé and national health-insurance schemes"
)]
struct Cli {
    /// Optional TOML file; every key is also a PASSERELLE_* variable, which wins.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (applies pending migrations first unless --no-migrate).
    Serve {
        /// Apply no migration: a database lacking one this binary needs stops the start, naming
        /// it (run `passerelle migrate` first; for replicas started after a migration job).
        #[arg(long)]
        no_migrate: bool,
        /// Seed clearly-labelled demo organisations and print a token for each.
        #[arg(long)]
        demo: bool,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI document.
    Openapi,
    /// Mint a development token signed with PASSERELLE_JWT_HS256_SECRET.
    Token {
        #[arg(long)]
        org: String,
        /// Space-separated scopes, e.g. "registry:read audit:read".
        #[arg(long, default_value = "")]
        scope: String,
        /// Lifetime: 90s, 15m, 1h, 7d.
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// The token's `sub`; defaults to dev-<org>.
        #[arg(long)]
        sub: Option<String>,
    },
    /// Register the households of a CSV or JSON lines file for a mutuelle, here and now, with
    /// a progress bar; the row errors go to FILE.errors.csv. Exit 0 when every row was read.
    Import {
        /// The file: CSV (UTF-8, one row per person) or JSON lines (one registration per line).
        file: PathBuf,
        /// The mutuelle registering the households.
        #[arg(long)]
        org: String,
        /// One of its complementary or primary products (required for CSV).
        #[arg(long)]
        product: Option<String>,
        /// csv or ndjson; by default from the file name (.csv, .ndjson, .jsonl).
        #[arg(long, value_parser = ["csv", "ndjson"])]
        format: Option<String>,
        /// Language of the error messages: fr or en.
        #[arg(long, default_value = "fr", value_parser = ["fr", "en"])]
        lang: String,
    },
    /// Erase the personal data of the people whose coverages all ended before a day: names,
    /// national id, phone and place go, the birth date is kept to its year, the record's id
    /// stays for the coverages, claims and audit events naming it. Audited
    /// (`beneficiary.erased`); prints what it did as JSON.
    ErasePersonalData {
        /// Erase the people whose every coverage ended before this day (YYYY-MM-DD, not after
        /// today).
        #[arg(long, value_name = "YYYY-MM-DD")]
        ended_before: Option<chrono::NaiveDate>,
        /// Or: whose every coverage ended more than this many days ago (1 to 36600).
        #[arg(long, value_name = "DAYS")]
        retention_days: Option<u32>,
        /// Count who would be erased, and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Audit log tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify the whole hash chain offline, straight from the database.
    Verify,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Openapi = cli.command {
        return match emit(&openapi::to_pretty_json(&openapi::document_json(&openapi::document()))) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => Failure::from(e).exit(),
        };
    }
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => return Failure::from(e.to_string()).exit(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return Failure::from(format!("cannot start the async runtime: {e}")).exit(),
    };
    let result = runtime.block_on(run(cli.command, config));
    // Requests left behind by a bounded shutdown drain end here, without holding the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.exit(),
    }
}

/// Why a command stopped, told once: on standard error, unless the service's log already
/// carries it (in JSON when the log is JSON, so that a collector sees the cause of a stop).
struct Failure {
    message: String,
    logged: bool,
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure { message, logged: false }
    }
}

impl From<&str> for Failure {
    fn from(message: &str) -> Failure {
        Failure::from(message.to_owned())
    }
}

impl Failure {
    /// 2 for a configuration or a command line to mend (as for one clap refuses), 1 for anything else:
    /// a database out of reach, a failed migration, a broken audit chain. README lists them.
    fn exit(self) -> ExitCode {
        if !self.logged {
            eprintln!("{}", self.message);
        }
        if passerelle_api::config::is_configuration_error(&self.message)
            || self.message.starts_with(passerelle_api::import::COMMAND_LINE_ERROR)
        {
            ExitCode::from(2)
        } else {
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> Result<(), Failure> {
    match command {
        Command::Openapi => Ok(()),
        Command::Token { org, scope, ttl, sub } => {
            let secret = config
                .jwt_hs256_secret
                .clone()
                .ok_or("configuration error: PASSERELLE_JWT_HS256_SECRET: is required to mint development tokens")?;
            let ttl = auth::parse_ttl(&ttl).ok_or_else(|| {
                format!(
                    "{}--ttl: use a duration such as 90s, 15m, 1h or 7d (at most 366d)",
                    import::COMMAND_LINE_ERROR
                )
            })?;
            let subject = sub.unwrap_or_else(|| format!("dev-{org}"));
            // Signed as asked (a test may want a token the service refuses), but said.
            if passerelle_domain::organization::OrgId::parse(&org).is_none() {
                eprintln!(
                    "warning: {org:?} is no organisation id (^[a-z0-9][a-z0-9-]{{1,62}}$); the token names no organisation the service can know, and every request with it is 401"
                );
            }
            for unknown in scope
                .split_whitespace()
                .filter(|s| passerelle_domain::scope::Scope::parse(s).is_none())
            {
                eprintln!(
                    "warning: {unknown} is not a scope the service knows; the token carries it, and it grants nothing"
                );
            }
            let now = chrono::Utc::now().timestamp();
            Ok(emit(&format!(
                "{}\n",
                auth::mint_dev_token(&secret, &config, &org, &subject, &scope, ttl, now)?
            ))?)
        }
        Command::Migrate => {
            let db = app::connect_primary(&config).await?;
            db.migrate().await.map_err(migration_failed)?;
            eprintln!("migrations applied");
            Ok(())
        }
        Command::Audit {
            command: AuditCommand::Verify,
        } => {
            // Read-only: it verifies the events chained so far and changes nothing, so that a
            // standby, a read-only role or a restored backup can be checked as it stands.
            // Nor does it ask for every migration: a backup older than the binary is checked as
            // it is, its audit tables being those of the oldest release.
            let db = app::connect_read_only(&config).await?;
            let result = routes::audit::verify_chain(db.store.as_ref()).await.map_err(|e| {
                let text = e.to_string();
                // PostgreSQL's `relation "audit_…" does not exist`, SQLite's `no such table:
                // audit_…`: the audit tables themselves are missing.
                let missing = text.contains("does not exist") || text.contains("no such table");
                if missing && text.contains("audit_") && !text.contains("column") {
                    "this database holds no audit log: it was never migrated (passerelle migrate)".to_owned()
                } else {
                    text
                }
            })?;
            emit(&format!(
                "{}\n",
                serde_json::to_string_pretty(&result).map_err(|e| e.to_string())?
            ))?;
            if result.valid {
                Ok(())
            } else {
                Err(format!(
                    "the audit chain is broken at seq {} ({})",
                    result.first_invalid_seq.unwrap_or_default(),
                    result.failure.unwrap_or_default()
                )
                .into())
            }
        }
        Command::Import {
            file,
            org,
            product,
            format,
            lang,
        } => {
            let args = import::ImportArgs {
                file,
                org,
                product,
                format: format.as_deref().and_then(BatchFormat::parse),
                lang: if lang == "en" { Lang::En } else { Lang::Fr },
            };
            Ok(import::run(config, args).await?)
        }
        Command::ErasePersonalData {
            ended_before,
            retention_days,
            dry_run,
        } => {
            let args = erasure::EraseArgs {
                ended_before,
                retention_days,
                dry_run,
            };
            Ok(emit(&erasure::run(config, args).await?)?)
        }
        Command::Serve { no_migrate, demo } => serve(config, no_migrate, demo).await,
    }
}

/// A migration's own failure (a statement refused, such as migration 23's count of member
/// numbers that differ only in case) is not the database being unavailable, which the
/// error's general wording would say: the message is `migration failed: …` alone.
fn migration_failed(e: StoreError) -> String {
    match e {
        StoreError::Unavailable(message) => message,
        other => other.to_string(),
    }
}

async fn serve(config: Config, no_migrate: bool, with_demo: bool) -> Result<(), Failure> {
    let telemetry = telemetry::init(&config.log, config.log_format)?;
    // A panic's message may quote a person (a value in an `expect`), and Rust's own hook prints
    // it to stderr even when the panic is caught and answered 500 (`app::catch_panic`): logged
    // with where it happened, without what it said.
    std::panic::set_hook(Box::new(|panic| {
        let at = panic
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(at = %at, "a panic (its message is not logged: it may hold personal data)");
    }));
    let served = serve_logged(config, no_migrate, with_demo).await;
    // A filter that hides errors (`off`, or one naming other targets only) hides the stop's
    // cause too: then it is written to stderr as a failure before start-up is.
    let logged = tracing::enabled!(tracing::Level::ERROR);
    if let Err(e) = &served {
        tracing::error!(error = %e, "the service stops");
    }
    // The trace exporter flushes on the way out, with the stop's cause.
    drop(telemetry);
    served.map_err(|message| Failure { message, logged })
}

async fn serve_logged(mut config: Config, no_migrate: bool, with_demo: bool) -> Result<(), String> {
    if with_demo && config.jwt_hs256_secret.is_none() {
        // The demo must work on a bare machine: a secret for this run only.
        let secret = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        config.jwt_hs256_secret = Some(Secret::new(secret));
        tracing::warn!(
            "no PASSERELLE_JWT_HS256_SECRET: demo tokens are signed with a secret made for this run only; \
             development tokens are accepted; never do this in production"
        );
    } else if config.jwt_hs256_secret.is_some() {
        tracing::warn!(
            "PASSERELLE_JWT_HS256_SECRET is set: development tokens are accepted; never do this in production"
        );
    }
    let db = app::connect(&config).await?;
    if no_migrate {
        app::require_schema(&db).await?;
    } else {
        db.migrate().await.map_err(migration_failed)?;
    }
    passerelle_api::bulk::spool::check_writable(&config.batch_spool_dir).await?;
    // Bound before any worker starts or the demo prints its tokens: a port already taken stops
    // the start here, having done nothing.
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    // The address bound, a port 0 made a real one.
    let listen = listener.local_addr().unwrap_or(config.listen);
    let limits = config.connection_limits();
    let state = app::state(config, &db).await?;
    if !state.auth.has_keys() {
        tracing::warn!(
            "neither PASSERELLE_JWT_JWKS nor PASSERELLE_JWT_HS256_SECRET is set: every /v1 request will be refused"
        );
    }
    app::ensure_operator(&state).await?;
    let webhooks = app::start_workers(&state);
    if with_demo {
        let secret = state.config.jwt_hs256_secret.clone().ok_or("demo needs a secret")?;
        let tokens = demo::seed(&state, &secret).await?;
        let mut said = String::from("Demo organisations are ready. Tokens (valid 24 h):\n");
        for (org, kind, token) in &tokens {
            said.push_str(&format!("  {org:<18} {:<9} {token}\n", kind.as_str()));
        }
        said.push_str(&format!(
            "Try: curl -H \"Authorization: Bearer <token>\" http://{listen}/v1/organizations   — docs at http://{listen}/docs\n"
        ));
        // The service goes on when nobody reads its output.
        let _ = emit(&said);
    }
    let auth = state.auth.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(300));
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = auth.refresh().await {
                tracing::warn!(error = %e, "JWKS refresh failed; keeping the previous keys");
            }
        }
    });
    tracing::info!(%listen, backend = ?db.backend, "serving");
    let bulk = state.bulk.clone();
    let store = state.store.clone();
    let router = app::router(state);
    let stop_bulk = bulk.clone();
    let stop_webhooks = webhooks
        .as_ref()
        .map(passerelle_api::webhook_worker::Worker::stop_switch);

    let signal = async move {
        shutdown_signal().await;
        // The bulk job hands itself back while requests drain.
        stop_bulk.stop();
        // No new webhook lease; the sends in flight record their attempts below.
        if let Some(worker) = &stop_webhooks {
            worker.stop();
        }
    };
    // Whatever the serving ended with, the steps below run: a request still running after the
    // drain (a bulk upload may take 30 minutes to arrive) is left to end with the process.
    let served = app::serve_until(listener, router, limits, signal, SHUTDOWN_DRAIN).await;
    // A group takes a second or so; the job is queued again before the pool closes, or left to
    // the sweeper (`interrupted`) if the database hangs. A webhook send takes at most
    // `SEND_TIMEOUT`; one cut short is sent again once its lease expires, maybe a second time.
    let webhooks_done = async {
        match webhooks {
            Some(worker) => {
                let limit = passerelle_adapters::webhook_delivery::SEND_TIMEOUT + std::time::Duration::from_secs(1);
                worker.finished(limit).await
            }
            None => true,
        }
    };
    let (bulk_idle, webhooks_idle) = tokio::join!(bulk.idle(std::time::Duration::from_secs(20)), webhooks_done);
    if !bulk_idle {
        tracing::warn!("a bulk registration job was still running at shutdown; the sweeper will fail it");
    }
    if !webhooks_idle {
        tracing::warn!(
            "webhook sends were still running at shutdown; they will be sent again when their leases expire"
        );
    }
    // The events of the last requests are chained now rather than at the next start, so that a
    // verification of the stopped database finds them in the chain; within the one budget of
    // closing the database, so that the shutdown still fits the grace period.
    let closed_by = tokio::time::Instant::now() + DB_CLOSE_LIMIT;
    if !matches!(
        tokio::time::timeout_at(closed_by, store.flush_audit()).await,
        Ok(Ok(()))
    ) {
        tracing::warn!("the last audit events could not be chained at shutdown; the next start chains them");
    }
    // Closing waits for the connections in use to come back; one held by a request left behind
    // never does.
    if tokio::time::timeout_at(closed_by, db.close()).await.is_err() {
        tracing::warn!("database connections were still in use at shutdown; they close with the process");
    }
    tracing::info!("stopped");
    served
}

/// How long requests in flight may finish after SIGTERM, whatever the request timeout: an upload
/// may run longer than it (30 minutes), and so may writing a large answer to a slow client. A
/// request still running then is dropped with the process. With Kubernetes' preStop (5 s), the 20 s left for a bulk job to
/// hand itself back and the database's close, it fits the 60 s grace period of
/// deploy/kubernetes/base/deployment.yaml, so SIGKILL cuts none of the steps after it.
const SHUTDOWN_DRAIN: std::time::Duration = std::time::Duration::from_secs(30);

/// How long the last events' chaining and closing the database may take together (the close
/// waiting for connections still in use).
const DB_CLOSE_LIMIT: std::time::Duration = std::time::Duration::from_secs(3);

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    let signal = tokio::select! {
        () = ctrl_c => "SIGINT",
        () = terminate => "SIGTERM",
    };
    // So that the log tells a stop that was asked for from a crash.
    tracing::info!(signal, "stopping: requests in flight may finish, no new ones are taken");
}
