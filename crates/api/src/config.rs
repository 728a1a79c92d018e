//! Typed configuration from `PASSERELLE_*` variables and an optional TOML file; the environment
//! wins. Any bad value stops the start with one line naming the key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use passerelle_adapters::Backend;
use passerelle_domain::organization::{Country, OrgId};

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: String,
    pub database_read_url: Option<String>,
    pub database_read_timeout: Duration,
    /// The base URL callers reach the service at (`https://passerelle.example.org`), without a
    /// trailing `/`: FHIR Bundles' links and `fullUrl`s start with it.
    pub public_url: Option<String>,
    pub database_max_connections: u32,
    /// On PostgreSQL, the longest a migration waits for a lock (`None`: as long as it takes).
    pub migration_lock_timeout: Option<Duration>,
    pub operator_org: OrgId,
    pub operator_name: String,
    pub operator_country: Country,
    pub jwt_jwks: Option<String>,
    /// A JSON file of the national id types accepted, replacing the shipped list.
    pub national_id_rules: Option<std::path::PathBuf>,
    pub jwt_hs256_secret: Option<Secret>,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    pub body_limit_bytes: usize,
    pub batch_max_bytes: u64,
    /// Most bytes the spool folder holds, uploads being received counted at their largest.
    pub batch_spool_max_bytes: u64,
    /// Where uploads wait for their job; a replica processes the uploads in its own folder.
    pub batch_spool_dir: std::path::PathBuf,
    /// A running job with no progress, or a queued one no replica has seen, for this long is failed.
    pub batch_stale_after: Duration,
    /// A bulk upload that sends nothing for this long is cut, and its room in the spool given back.
    pub batch_upload_idle: Duration,
    /// A bulk job that has run this long while another organisation's job waits goes back to
    /// the queue at its next group boundary (`bulk/runner.rs`, turns).
    pub batch_turn: Duration,
    pub request_timeout: Duration,
    /// A connection that has not sent a whole request head within this is closed (also an idle
    /// keep-alive connection, counted from its last answer).
    pub header_read_timeout: Duration,
    /// A connection whose client takes none of its answer's bytes for this long is closed.
    pub send_timeout: Duration,
    /// Requests a second per organisation and replica; 0 = no limit.
    pub rate_limit_per_second: u32,
    /// Most requests at once (the bucket the rate refills); 0 = the rate.
    pub rate_limit_burst: u32,
    pub webhook_allow_insecure: bool,
    pub webhook_retry_initial: Duration,
    pub webhook_max_attempts: u32,
    /// How long `Idempotency-Key`s and the responses kept with them are kept (≥ 24 h).
    pub idempotency_retention: Duration,
    /// How long delivered webhook deliveries (and deleted subscriptions' ones) are kept; `None`
    /// for ever.
    pub webhook_delivery_retention: Option<Duration>,
    /// How long the row reports of ended bulk jobs are kept; `None` for ever.
    pub batch_report_retention: Option<Duration>,
    pub log: String,
    pub log_format: LogFormat,
}

/// A secret that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// Every key: (name in the file, default, what it is). The variable is `PASSERELLE_` + upper case.
pub const KEYS: &[(&str, Option<&str>, &str)] = &[
    ("listen", Some("127.0.0.1:8080"), "address and port to listen on"),
    (
        "database_url",
        Some("sqlite://passerelle.db"),
        "`sqlite://FILE` (created if missing) or `postgres://…`",
    ),
    (
        "database_read_url",
        None,
        "optional PostgreSQL read replica for eligibility reads (the primary answers while it is down)",
    ),
    (
        "database_read_timeout_ms",
        Some("1000"),
        "a check's read on the replica taking longer is answered from the primary, and the replica marked down; with a replica, shorter than request_timeout_ms",
    ),
    ("database_max_connections", Some("16"), "connection pool size"),
    (
        "migration_lock_timeout_ms",
        Some("10000"),
        "on PostgreSQL, a migration waiting longer for a lock fails, writing nothing, to be run again (0: waits as long as it takes)",
    ),
    (
        "operator_org",
        Some("operator"),
        "id of the operating organisation, created at first start",
    ),
    ("operator_name", Some("Passerelle operator"), "its display name"),
    ("operator_country", Some("TG"), "its ISO 3166-1 alpha-2 country"),
    (
        "jwt_jwks",
        None,
        "path or https URL of a JWKS (RS256, ES256, EdDSA keys chosen by `kid`)",
    ),
    (
        "jwt_hs256_secret",
        None,
        "development only: HS256 secret of at least 32 bytes",
    ),
        ("jwt_issuer", Some("passerelle"), "required `iss` of tokens"),
    (
        "national_id_rules",
        None,
        "a JSON file of the national id types accepted and their formats, replacing the shipped list (deploy/national-id-rules.json is that list)",
    ),
    ("jwt_audience", Some("passerelle"), "required member of `aud`"),
    ("body_limit_bytes", Some("1048576"), "largest JSON request body"),
    ("batch_max_bytes", Some("104857600"), "largest bulk upload"),
    (
        "batch_spool_max_bytes",
        Some("838860800"),
        "most bytes the spool folder holds: its uploads waiting for their jobs, and those being received counted at their declared length (or `batch_max_bytes`); an upload past it is 503 with Retry-After 60. At least `batch_max_bytes`",
    ),
    (
        "batch_spool_dir",
        None,
        "where bulk uploads wait for their job (default: `passerelle-batches` in the system temporary folder); a replica processes the uploads in its own",
    ),
    (
        "batch_stale_after_ms",
        Some("300000"),
        "a running bulk job without progress, or a queued one no replica has seen, for this long is failed as interrupted",
    ),
    (
        "batch_upload_idle_ms",
        Some("60000"),
        "a bulk upload that sends nothing for this long is cut (408), nothing kept, and its room in the spool given back",
    ),
    (
        "batch_turn_ms",
        Some("10000"),
        "a bulk job that has run this long while another organisation's job waits on the replica goes back to the queue, and resumes at its next turn",
    ),
    ("request_timeout_ms", Some("30000"), "requests taking longer answer 503, or 408 when their body is still arriving"),
    (
        "header_read_timeout_ms",
        Some("75000"),
        "a connection that has not sent a whole request head within this is closed (a slow or stalled client); an idle keep-alive connection too, counted from its last answer",
    ),
    (
        "send_timeout_ms",
        Some("60000"),
        "a connection whose client takes no byte of its answer for this long is closed (a client that stopped reading); one reading slowly is not",
    ),
    (
        "rate_limit_per_second",
        Some("0"),
        "requests a second each organisation may send to one replica; more answer 429 (0: no limit)",
    ),
    (
        "rate_limit_burst",
        Some("0"),
        "most requests an organisation may send at once, the rate refilling it (0: as many as the rate a second)",
    ),
    (
        "webhook_allow_insecure",
        Some("false"),
        "allow http and private webhook URLs (tests, development)",
    ),
    (
        "webhook_retry_initial_ms",
        Some("10000"),
        "first webhook retry delay, doubling after",
    ),
    (
        "webhook_max_attempts",
        Some("12"),
        "webhook delivery attempts before giving up",
    ),
        (
        "idempotency_retention_hours",
        Some("48"),
        "how long Idempotency-Keys, and the first responses kept to replay (which may hold personal data), are kept; at least 24",
    ),
    (
        "webhook_delivery_retention_days",
        Some("30"),
        "how long delivered webhook deliveries (and those of deleted subscriptions) are kept, with their attempts; failed ones of live subscriptions stay, to be sent again; 0 keeps them for ever",
    ),
    (
        "batch_report_retention_days",
        Some("90"),
        "how long the per-row errors and possible duplicates of ended bulk jobs (which quote the file's cells) are kept; the jobs and their counts stay; 0 keeps them for ever",
    ),
    (
        "public_url",
        None,
        "the base URL callers reach the service at (`https://passerelle.example.org`), for the absolute URLs of FHIR Bundles; unset, they are built from each request's `Host` (and `X-Forwarded-Proto`)",
    ),
    ("log", Some("info"), "log filter (tracing `EnvFilter` syntax)"),
    ("log_format", Some("json"), "`json` or `text`"),
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{CONFIGURATION_ERROR}{key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

/// How every configuration error begins, found while loading or later at start (a JWKS that
/// cannot be read, a spool folder that cannot be written): the binary exits with 2 for them.
const CONFIGURATION_ERROR: &str = "configuration error: ";

/// Whether a start's failure is a configuration to mend rather than something out of reach.
pub fn is_configuration_error(message: &str) -> bool {
    message.starts_with(CONFIGURATION_ERROR)
}

/// A `PASSERELLE_` variable that is no configuration key is ignored, so a misspelt one would
/// silently leave its key at the default (a misspelt database URL would run on a local SQLite
/// file): each is named, with the key it most likely meant.
pub fn unknown_variables(env: &BTreeMap<String, String>) -> Vec<String> {
    let known: Vec<String> = KEYS.iter().map(|(k, _, _)| env_name(k)).collect();
    env.keys()
        .filter(|name| !known.contains(name))
        .map(|name| {
            let closest = known
                .iter()
                .map(|k| (strsim::levenshtein(name, k), k))
                .min()
                .filter(|(distance, _)| *distance <= 3);
            match closest {
                Some((_, key)) => format!("{name} is not a configuration key and is ignored; did you mean {key}?"),
                None => format!("{name} is not a configuration key and is ignored"),
            }
        })
        .collect()
}

fn env_name(key: &str) -> String {
    format!("PASSERELLE_{}", key.to_ascii_uppercase())
}

/// Whether `source` starts with `scheme` (`https://`), in any case, as URLs' schemes are read.
pub fn has_scheme(source: &str, scheme: &str) -> bool {
    source
        .get(..scheme.len())
        .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
}

fn err(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: env_name(key),
        message: message.into(),
    }
}

impl Config {
    /// The bounds on each connection's slow client.
    pub fn connection_limits(&self) -> crate::http_server::ConnectionLimits {
        crate::http_server::ConnectionLimits {
            header_read: self.header_read_timeout,
            send: self.send_timeout,
        }
    }

    /// Reads the optional file, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let env: BTreeMap<String, String> = std::env::vars().filter(|(k, _)| k.starts_with("PASSERELLE_")).collect();
        // Before logging is set up (its level is configuration too): one plain line each, like
        // the configuration errors.
        for warning in unknown_variables(&env) {
            eprintln!("configuration warning: {warning}");
        }
        let file_text = match file {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|e| ConfigError {
                key: "--config".into(),
                message: format!("cannot read {}: {e}", path.display()),
            })?),
            None => None,
        };
        Config::from_sources(file_text.as_deref(), &env)
    }

    pub fn from_sources(file: Option<&str>, env: &BTreeMap<String, String>) -> Result<Config, ConfigError> {
        let mut raw: BTreeMap<&'static str, String> = BTreeMap::new();
        for (key, default, _) in KEYS {
            if let Some(d) = default {
                raw.insert(key, (*d).to_owned());
            }
        }
        // The keys whose value the file gave and no variable overrode: an error in one names
        // the key as the file spells it, not a variable the operator never set.
        let mut from_file: Vec<&'static str> = Vec::new();
        if let Some(text) = file {
            let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
                // Where, as an editor counts: line and column from 1.
                let at = e.span().map(|span| {
                    let before = &text[..span.start.min(text.len())];
                    let line = before.matches('\n').count() + 1;
                    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                    format!(" (line {line}, column {column})")
                });
                ConfigError {
                    key: "--config".into(),
                    message: format!("{}{}", e.message(), at.unwrap_or_default()),
                }
            })?;
            for (name, value) in table {
                let Some((key, _, _)) = KEYS.iter().find(|(k, _, _)| *k == name) else {
                    // The variable's name written in the file: say which key it stands for.
                    let hint = name
                        .strip_prefix("PASSERELLE_")
                        .map(str::to_ascii_lowercase)
                        .filter(|k| KEYS.iter().any(|(key, _, _)| key == k))
                        .map(|k| format!("; in the file, write `{k}`"))
                        .unwrap_or_default();
                    return Err(ConfigError {
                        key: name,
                        message: format!("unknown key in the configuration file{hint}"),
                    });
                };
                let text = match value {
                    toml::Value::String(s) => s,
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    other => {
                        return Err(ConfigError {
                            key: format!("{key} (in the --config file)"),
                            message: format!("must be a string, integer or boolean, not {}", other.type_str()),
                        })
                    }
                };
                raw.insert(key, text);
                from_file.push(key);
            }
        }
        for (key, _, _) in KEYS {
            if let Some(value) = env.get(&env_name(key)) {
                raw.insert(key, value.clone());
                from_file.retain(|k| k != key);
            }
        }
        Config::from_raw(&raw).map_err(|mut e| {
            if let Some(key) = from_file.iter().find(|k| env_name(k) == e.key) {
                e.key = format!("{key} (in the --config file)");
            }
            e
        })
    }

    /// Every key's text, from the defaults, the file and the environment, checked and parsed.
    fn from_raw(raw: &BTreeMap<&'static str, String>) -> Result<Config, ConfigError> {
        let get = |key: &str| raw.get(key).cloned();
        let required = |key: &str| get(key).ok_or_else(|| err(key, "is required"));
        let optional = |key: &str| get(key).filter(|v| !v.trim().is_empty());

        let listen = required("listen")?;
        let listen: SocketAddr = listen.parse().map_err(|_| {
            err(
                "listen",
                format!("{listen:?} is not an address and port such as 127.0.0.1:8080"),
            )
        })?;

        // Trimmed: a space after a SQLite path named another file, created empty.
        let database_url = required("database_url")?.trim().to_owned();
        check_database_url("database_url", &database_url)?;
        let database_read_url = optional("database_read_url").map(|url| url.trim().to_owned());
        if let Some(url) = &database_read_url {
            check_database_url("database_read_url", url)?;
            if passerelle_adapters::storage::backend_of(url) != Some(Backend::Postgres) {
                return Err(err(
                    "database_read_url",
                    "must be a postgres:// URL (read replicas are for PostgreSQL)",
                ));
            }
            if passerelle_adapters::storage::backend_of(&database_url) != Some(Backend::Postgres) {
                return Err(err(
                    "database_read_url",
                    "is set, but PASSERELLE_DATABASE_URL is a SQLite file, which has no replicas: unset it, or \
                     use PostgreSQL",
                ));
            }
        }

        let operator = required("operator_org")?;
        let operator_org = OrgId::parse(&operator).ok_or_else(|| {
            err(
                "operator_org",
                format!("{operator:?} must match ^[a-z0-9][a-z0-9-]{{1,62}}$"),
            )
        })?;
        let operator_country = required("operator_country")?;
        let operator_country = Country::parse(&operator_country).ok_or_else(|| {
            err(
                "operator_country",
                format!("{operator_country:?} is not an ISO 3166-1 alpha-2 code such as TG"),
            )
        })?;

        // A burst alone would be no limit at all (a rate of 0 turns limits off) and say nothing.
        let burst = parse_range("rate_limit_burst", &required("rate_limit_burst")?, 0, 10_000_000)?;
        if burst > 0
            && parse_range(
                "rate_limit_per_second",
                &required("rate_limit_per_second")?,
                0,
                1_000_000,
            )? == 0
        {
            return Err(err(
                "rate_limit_burst",
                "is set while the rate (rate_limit_per_second) is 0, which turns limits off: set the rate too",
            ));
        }

        let jwt_hs256_secret = optional("jwt_hs256_secret").map(Secret);
        if let Some(secret) = &jwt_hs256_secret {
            if secret.expose().len() < 32 {
                return Err(err("jwt_hs256_secret", "must be at least 32 bytes long"));
            }
        }
        let jwt_jwks = optional("jwt_jwks");
        if let Some(source) = &jwt_jwks {
            if has_scheme(source, "http://") {
                return Err(err("jwt_jwks", "a JWKS URL must use https://"));
            }
            if has_scheme(source, "https://") {
                // Not quoted back: what makes it fail may be a secret of its own.
                let url = reqwest::Url::parse(source).map_err(|e| err("jwt_jwks", format!("not a URL ({e})")))?;
                if !url.username().is_empty() || url.password().is_some() {
                    return Err(err(
                        "jwt_jwks",
                        "a JWKS URL holds no credentials: a key set is public, and they would be written in logs",
                    ));
                }
            }
        }

        let config = Config {
            national_id_rules: optional("national_id_rules").map(std::path::PathBuf::from),
            listen,
            database_url,
            database_read_url,
            database_read_timeout: Duration::from_millis(parse_range(
                "database_read_timeout_ms",
                &required("database_read_timeout_ms")?,
                10,
                60_000,
            )?),
            database_max_connections: parse_range(
                "database_max_connections",
                &required("database_max_connections")?,
                1,
                1000,
            )? as u32,
            migration_lock_timeout: match parse_range(
                "migration_lock_timeout_ms",
                &required("migration_lock_timeout_ms")?,
                0,
                3_600_000,
            )? {
                0 => None,
                ms => Some(Duration::from_millis(ms)),
            },
            operator_org,
            operator_name: organization_name("operator_name", required("operator_name")?)?,
            operator_country,
            jwt_jwks,
            jwt_hs256_secret,
            jwt_issuer: non_empty("jwt_issuer", required("jwt_issuer")?)?,
            jwt_audience: non_empty("jwt_audience", required("jwt_audience")?)?,
            body_limit_bytes: parse_range("body_limit_bytes", &required("body_limit_bytes")?, 1024, 1 << 30)? as usize,
            batch_max_bytes: parse_range("batch_max_bytes", &required("batch_max_bytes")?, 1024, 1 << 40)?,
            batch_spool_max_bytes: parse_range(
                "batch_spool_max_bytes",
                &required("batch_spool_max_bytes")?,
                parse_range("batch_max_bytes", &required("batch_max_bytes")?, 1024, 1 << 40)?,
                1 << 44,
            )?,
            batch_spool_dir: optional("batch_spool_dir")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| std::env::temp_dir().join("passerelle-batches")),
            batch_stale_after: Duration::from_millis(parse_range(
                "batch_stale_after_ms",
                &required("batch_stale_after_ms")?,
                100,
                86_400_000,
            )?),
            batch_upload_idle: Duration::from_millis(parse_range(
                "batch_upload_idle_ms",
                &required("batch_upload_idle_ms")?,
                100,
                1_800_000,
            )?),
            batch_turn: Duration::from_millis(parse_range(
                "batch_turn_ms",
                &required("batch_turn_ms")?,
                100,
                3_600_000,
            )?),
            request_timeout: Duration::from_millis(parse_range(
                "request_timeout_ms",
                &required("request_timeout_ms")?,
                10,
                3_600_000,
            )?),
            header_read_timeout: Duration::from_millis(parse_range(
                "header_read_timeout_ms",
                &required("header_read_timeout_ms")?,
                100,
                3_600_000,
            )?),
            send_timeout: Duration::from_millis(parse_range(
                "send_timeout_ms",
                &required("send_timeout_ms")?,
                100,
                3_600_000,
            )?),
            rate_limit_per_second: parse_range(
                "rate_limit_per_second",
                &required("rate_limit_per_second")?,
                0,
                1_000_000,
            )? as u32,
            rate_limit_burst: parse_range("rate_limit_burst", &required("rate_limit_burst")?, 0, 10_000_000)? as u32,
            webhook_allow_insecure: parse_bool("webhook_allow_insecure", &required("webhook_allow_insecure")?)?,
            webhook_retry_initial: Duration::from_millis(parse_range(
                "webhook_retry_initial_ms",
                &required("webhook_retry_initial_ms")?,
                1,
                86_400_000,
            )?),
            webhook_max_attempts: parse_range("webhook_max_attempts", &required("webhook_max_attempts")?, 1, 100)?
                as u32,
            idempotency_retention: Duration::from_secs(
                3600 * parse_range(
                    "idempotency_retention_hours",
                    &required("idempotency_retention_hours")?,
                    24,
                    24 * 366,
                )?,
            ),
            webhook_delivery_retention: retention_days(
                "webhook_delivery_retention_days",
                &required("webhook_delivery_retention_days")?,
            )?,
            batch_report_retention: retention_days(
                "batch_report_retention_days",
                &required("batch_report_retention_days")?,
            )?,
            public_url: optional("public_url").map(|u| public_url(&u)).transpose()?,
            log: log_filter(required("log")?)?,
            log_format: match required("log_format")?.as_str() {
                "json" => LogFormat::Json,
                "text" => LogFormat::Text,
                other => return Err(err("log_format", format!("{other:?} must be json or text"))),
            },
        };
        // A check would otherwise hit the request timeout (503) before it could fall back to
        // the primary. Without a replica the read timeout is never used, and not compared.
        if config.database_read_url.is_some() && config.database_read_timeout >= config.request_timeout {
            return Err(err(
                "database_read_timeout_ms",
                format!(
                    "must be shorter than PASSERELLE_REQUEST_TIMEOUT_MS ({} ms)",
                    config.request_timeout.as_millis()
                ),
            ));
        }
        Ok(config)
    }

    /// Defaults only, with the given database: for tests and tools.
    pub fn for_database(url: &str) -> Config {
        let mut env = BTreeMap::new();
        env.insert("PASSERELLE_DATABASE_URL".to_owned(), url.to_owned());
        match Config::from_sources(None, &env) {
            Ok(config) => config,
            Err(e) => panic!("the defaults must be valid: {e}"),
        }
    }
}

/// An http(s) URL with a host and nothing after its path, kept without its trailing `/`.
fn public_url(value: &str) -> Result<String, ConfigError> {
    let url = value.trim().trim_end_matches('/');
    let host = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    match host {
        Some(rest)
            if !rest.is_empty()
                && !rest.starts_with('/')
                && !rest.contains(['?', '#', '@'])
                && !rest.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            Ok(url.to_owned())
        }
        _ => Err(err(
            "public_url",
            format!("{value:?} must be an http:// or https:// URL such as https://passerelle.example.org, without query or fragment"),
        )),
    }
}

fn check_database_url(key: &str, url: &str) -> Result<(), ConfigError> {
    if let Some(fault) = passerelle_adapters::storage::url_fault(url) {
        return Err(err(key, format!("does not read as a database URL: {fault}")));
    }
    match passerelle_adapters::storage::backend_of(url) {
        None => Err(err(key, "must start with sqlite:// or postgres://")),
        Some(Backend::Sqlite) => {
            // An in-memory database vanishes with the pool's last connection (an idle pool closes
            // them), taking every registration with it; without a path, there is no file to open.
            let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"));
            let path = rest.unwrap_or_default().split('?').next().unwrap_or_default();
            if path.is_empty() || path == ":memory:" || url.contains("mode=memory") {
                return Err(err(
                    key,
                    "must name a database file, such as sqlite://passerelle.db (an in-memory database vanishes \
                     with its last connection, and every registration with it)",
                ));
            }
            Ok(())
        }
        Some(Backend::Postgres) => Ok(()),
    }
}

/// The levels a directive without `=` may be, by name or by number (`LevelFilter`'s reading).
const LEVELS: [&str; 12] = [
    "off", "error", "warn", "info", "debug", "trace", "0", "1", "2", "3", "4", "5",
];

/// The log filter: not empty, and each directive without `=` a level. `EnvFilter` reads any other
/// bare word (`inof`, `warning`) as a target enabled at every level, and then filters out every
/// other line, the service's own included: a misspelt level silenced it whole. A target is
/// named with its level (`passerelle=debug`).
/// The filter is kept as its directives trimmed: `EnvFilter` read `info ` (a space after it) as
/// a target too.
fn log_filter(value: String) -> Result<String, ConfigError> {
    let value = non_empty("log", value)?;
    let directives: Vec<&str> = value.split(',').map(str::trim).filter(|d| !d.is_empty()).collect();
    for directive in &directives {
        if !directive.contains('=') && !LEVELS.iter().any(|l| l.eq_ignore_ascii_case(directive)) {
            return Err(err(
                "log",
                format!(
                    "{directive:?} is not a level: use off, error, warn, info, debug or trace, or target=level \
                     for one target (tracing's EnvFilter syntax)"
                ),
            ));
        }
    }
    Ok(directives.join(","))
}

/// The operator organisation's name, held to the rules of any organisation's (API.md §5
/// Organisations), since no request can rename it: trimmed, 1 to 200 characters, no control or
/// invisible formatting character.
fn organization_name(key: &str, value: String) -> Result<String, ConfigError> {
    let name = non_empty(key, value)?.trim().to_owned();
    if name.chars().count() > passerelle_domain::organization::MAX_NAME_CHARS {
        return Err(err(
            key,
            format!(
                "must be at most {} characters",
                passerelle_domain::organization::MAX_NAME_CHARS
            ),
        ));
    }
    if name.chars().any(passerelle_domain::text::is_forbidden) {
        return Err(err(key, "must hold no control or invisible formatting character"));
    }
    Ok(name)
}

fn non_empty(key: &str, value: String) -> Result<String, ConfigError> {
    if value.trim().is_empty() {
        Err(err(key, "must not be empty"))
    } else {
        Ok(value)
    }
}

fn parse_range(key: &str, value: &str, min: u64, max: u64) -> Result<u64, ConfigError> {
    match value.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(err(
            key,
            format!("{value:?} must be a whole number from {min} to {max}"),
        )),
    }
}

/// A retention in days, 0 for ever (ten years at most: a longer one is a typo for 0).
fn retention_days(key: &str, value: &str) -> Result<Option<Duration>, ConfigError> {
    let days = parse_range(key, value, 0, 3660)?;
    Ok((days > 0).then(|| Duration::from_secs(86_400 * days)))
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(err(key, format!("{value:?} must be true or false"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    /// Retentions in days: 30 and 90 by default, 0 for ever, past ten years a typo refused.
    #[test]
    fn retentions_are_days_or_for_ever() {
        let day = Duration::from_secs(86_400);
        let defaults = Config::from_sources(None, &env(&[])).unwrap();
        assert_eq!(defaults.webhook_delivery_retention, Some(day * 30));
        assert_eq!(defaults.batch_report_retention, Some(day * 90));
        let set = Config::from_sources(
            None,
            &env(&[
                ("PASSERELLE_WEBHOOK_DELIVERY_RETENTION_DAYS", "0"),
                ("PASSERELLE_BATCH_REPORT_RETENTION_DAYS", "7"),
            ]),
        )
        .unwrap();
        assert_eq!(
            (set.webhook_delivery_retention, set.batch_report_retention),
            (None, Some(day * 7))
        );
        let e = Config::from_sources(None, &env(&[("PASSERELLE_BATCH_REPORT_RETENTION_DAYS", "3661")])).unwrap_err();
        assert_eq!(e.key, "PASSERELLE_BATCH_REPORT_RETENTION_DAYS");
    }

    /// A JWKS URL is https in any case, and holds no credentials (its errors are logged).
    #[test]
    fn a_jwks_url_is_https_without_credentials() {
        let jwks = |url: &str| Config::from_sources(None, &env(&[("PASSERELLE_JWT_JWKS", url)]));
        for refused in ["http://idp.example/jwks.json", "HTTP://idp.example/jwks.json"] {
            let e = jwks(refused).unwrap_err();
            assert_eq!(e.key, "PASSERELLE_JWT_JWKS");
            assert!(e.to_string().contains("https://"), "{e}");
        }
        let e = jwks("https://user:S3cret@idp.example/jwks.json").unwrap_err();
        assert!(e.to_string().contains("no credentials"), "{e}");
        assert!(!e.to_string().contains("S3cret"), "{e}");
        assert!(jwks("https://user@idp.example/jwks.json").is_err());
        for accepted in ["HTTPS://idp.example/jwks.json", "/etc/passerelle/jwks/jwks.json"] {
            assert_eq!(jwks(accepted).unwrap().jwt_jwks.as_deref(), Some(accepted));
        }
    }

    /// The README's configuration table lists every key with its default: it drifted once.
    #[test]
    fn the_readme_lists_every_key() {
        let readme = include_str!("../../../README.md");
        for (key, default, _) in KEYS {
            let row = readme
                .lines()
                .find(|l| l.starts_with(&format!("| `{key}` |")))
                .unwrap_or_else(|| panic!("README.md has no row for `{key}`"));
            if let Some(default) = default {
                assert!(
                    row.contains(&format!("`{default}`")),
                    "README.md gives `{key}` another default: {row}"
                );
            }
        }
    }

    #[test]
    fn defaults_are_valid() {
        let c = Config::from_sources(None, &BTreeMap::new()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database_url, "sqlite://passerelle.db");
        assert_eq!(c.operator_org.as_str(), "operator");
        assert_eq!(c.body_limit_bytes, 1 << 20);
        assert_eq!(
            (c.rate_limit_per_second, c.rate_limit_burst),
            (0, 0),
            "no rate limit unless set"
        );
        assert_eq!(c.database_read_timeout, Duration::from_secs(1));
        assert_eq!(c.migration_lock_timeout, Some(Duration::from_secs(10)));
    }

    /// A migration's lock timeout of 0 is none: it waits as long as it takes.
    #[test]
    fn a_migration_lock_timeout_of_zero_is_none() {
        let c = Config::from_sources(None, &env(&[("PASSERELLE_MIGRATION_LOCK_TIMEOUT_MS", "0")])).unwrap();
        assert_eq!(c.migration_lock_timeout, None);
        let e = Config::from_sources(None, &env(&[("PASSERELLE_MIGRATION_LOCK_TIMEOUT_MS", "-1")])).unwrap_err();
        assert_eq!(e.key, "PASSERELLE_MIGRATION_LOCK_TIMEOUT_MS");
    }

    /// The read timeout matters only with a replica: a short request timeout alone is valid.
    #[test]
    fn the_read_timeout_is_compared_only_with_a_replica() {
        let c = Config::from_sources(None, &env(&[("PASSERELLE_REQUEST_TIMEOUT_MS", "800")])).unwrap();
        assert_eq!(c.request_timeout, Duration::from_millis(800));
        let with_replica = env(&[
            ("PASSERELLE_REQUEST_TIMEOUT_MS", "800"),
            ("PASSERELLE_DATABASE_URL", "postgres://primary/passerelle"),
            ("PASSERELLE_DATABASE_READ_URL", "postgres://replica/passerelle"),
        ]);
        let e = Config::from_sources(None, &with_replica).unwrap_err();
        assert_eq!(e.key, "PASSERELLE_DATABASE_READ_TIMEOUT_MS");
        assert!(e.to_string().contains("800 ms"), "{e}");
        let mut shorter = with_replica.clone();
        shorter.insert("PASSERELLE_DATABASE_READ_TIMEOUT_MS".to_owned(), "500".to_owned());
        let c = Config::from_sources(None, &shorter).unwrap();
        assert_eq!(c.database_read_timeout, Duration::from_millis(500));
    }

    #[test]
    fn misspelt_variables_are_named_with_their_likely_key() {
        let warnings = unknown_variables(&env(&[
            ("PASSERELLE_DATABSE_URL", "postgres://db/passerelle"),
            ("PASSERELLE_LISTEN", "127.0.0.1:9000"),
            ("PASSERELLE_SOMETHING_ELSE", "x"),
        ]));
        assert_eq!(
            warnings,
            [
                "PASSERELLE_DATABSE_URL is not a configuration key and is ignored; did you mean PASSERELLE_DATABASE_URL?",
                "PASSERELLE_SOMETHING_ELSE is not a configuration key and is ignored",
            ]
        );
    }

    #[test]
    fn the_public_url_is_an_http_base() {
        let with = |url: &str| Config::from_sources(None, &env(&[("PASSERELLE_PUBLIC_URL", url)]));
        assert_eq!(
            with("https://passerelle.example.org/").unwrap().public_url.as_deref(),
            Some("https://passerelle.example.org")
        );
        assert_eq!(
            with("http://127.0.0.1:8080/api").unwrap().public_url.as_deref(),
            Some("http://127.0.0.1:8080/api")
        );
        for bad in [
            "passerelle.example.org",
            "ftp://x",
            "https://",
            "https://x/?a=1",
            "https://x y",
            "https://u@x",
        ] {
            let e = with(bad).unwrap_err();
            assert_eq!(e.key, "PASSERELLE_PUBLIC_URL", "{bad}");
        }
        assert_eq!(Config::from_sources(None, &env(&[])).unwrap().public_url, None);
    }

    /// A file's faults say where they are, and a variable's name written as a key says which key.
    #[test]
    fn file_errors_name_their_place_and_key() {
        let e = Config::from_sources(
            Some("listen = \"127.0.0.1:9000\"\nwebhook_max_attempts = \"3\n"),
            &env(&[]),
        )
        .unwrap_err();
        assert_eq!(e.key, "--config");
        assert!(e.to_string().contains("(line 2, column "), "{e}");
        let e = Config::from_sources(Some("PASSERELLE_LISTEN = \"127.0.0.1:9000\"\n"), &env(&[])).unwrap_err();
        assert!(e.to_string().contains("write `listen`"), "{e}");
    }

    #[test]
    fn the_environment_wins_over_the_file() {
        let file = "listen = \"127.0.0.1:9000\"\nwebhook_max_attempts = 3\n";
        let c = Config::from_sources(Some(file), &env(&[("PASSERELLE_LISTEN", "127.0.0.1:9001")])).unwrap();
        assert_eq!(c.listen.port(), 9001);
        assert_eq!(c.webhook_max_attempts, 3);
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let e = Config::from_sources(None, &env(&[("PASSERELLE_LISTEN", "nowhere")])).unwrap_err();
        assert_eq!(e.key, "PASSERELLE_LISTEN");
        let e = Config::from_sources(None, &env(&[("PASSERELLE_JWT_HS256_SECRET", "short")])).unwrap_err();
        assert_eq!(e.key, "PASSERELLE_JWT_HS256_SECRET");
        let e = Config::from_sources(None, &env(&[("PASSERELLE_DATABASE_URL", "mysql://x")])).unwrap_err();
        assert_eq!(e.key, "PASSERELLE_DATABASE_URL");
        let e = Config::from_sources(None, &env(&[("PASSERELLE_DATABASE_READ_TIMEOUT_MS", "5")])).unwrap_err();
        assert_eq!(e.key, "PASSERELLE_DATABASE_READ_TIMEOUT_MS");
        let c = Config::from_sources(None, &env(&[("PASSERELLE_DATABASE_READ_TIMEOUT_MS", "250")])).unwrap();
        assert_eq!(c.database_read_timeout, Duration::from_millis(250));
        let e = Config::from_sources(
            None,
            &env(&[
                ("PASSERELLE_DATABASE_URL", "postgres://primary/passerelle"),
                ("PASSERELLE_DATABASE_READ_URL", "postgres://replica/passerelle"),
                ("PASSERELLE_DATABASE_READ_TIMEOUT_MS", "45000"),
                ("PASSERELLE_REQUEST_TIMEOUT_MS", "30000"),
            ]),
        )
        .unwrap_err();
        assert_eq!(e.key, "PASSERELLE_DATABASE_READ_TIMEOUT_MS");
        let e = Config::from_sources(Some("colour = \"blue\""), &BTreeMap::new()).unwrap_err();
        assert_eq!(e.key, "colour");
        let e = Config::from_sources(None, &env(&[("PASSERELLE_WEBHOOK_MAX_ATTEMPTS", "0")])).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("configuration error: PASSERELLE_WEBHOOK_MAX_ATTEMPTS: "));
    }

    /// Values that would start a service that cannot work, or that logs nothing, are refused
    /// before it starts, each naming its key.
    #[test]
    fn values_that_cannot_work_are_refused() {
        let refused = |pairs: &[(&str, &str)]| Config::from_sources(None, &env(pairs)).unwrap_err();
        for url in [
            "sqlite://",
            "sqlite:",
            "sqlite::memory:",
            "sqlite://x.db?mode=memory",
            "sqlite://?mode=rwc",
        ] {
            let e = refused(&[("PASSERELLE_DATABASE_URL", url)]);
            assert_eq!(e.key, "PASSERELLE_DATABASE_URL", "{url}");
            assert!(e.to_string().contains("database file"), "{e}");
        }
        let e = refused(&[("PASSERELLE_DATABASE_READ_URL", "postgres://replica/passerelle")]);
        assert_eq!(e.key, "PASSERELLE_DATABASE_READ_URL");
        assert!(e.to_string().contains("SQLite"), "{e}");
        for filter in [
            "warning",
            "info,Warning",
            "",
            "  ",
            "inof",
            "debgu,sqlx=warn",
            "passerelle",
        ] {
            let e = refused(&[("PASSERELLE_LOG", filter)]);
            assert_eq!(e.key, "PASSERELLE_LOG", "{filter:?}");
        }
        // A URL that does not read as its backend's options is the configuration's fault, and a
        // space after a SQLite path is no part of the file's name.
        for (key, url) in [
            ("PASSERELLE_DATABASE_URL", "postgres://db:port/passerelle"),
            ("PASSERELLE_DATABASE_URL", "postgres://db/passerelle?sslmode=sometimes"),
            ("PASSERELLE_DATABASE_URL", "sqlite://x.db?journal=wal"),
            ("PASSERELLE_DATABASE_READ_URL", "postgres://replica:port/passerelle"),
        ] {
            let mut vars = vec![(key, url)];
            if key == "PASSERELLE_DATABASE_READ_URL" {
                vars.push(("PASSERELLE_DATABASE_URL", "postgres://db/passerelle"));
            }
            let e = refused(&vars);
            assert_eq!(e.key, key, "{url}");
            assert!(e.to_string().contains("does not read as a database URL"), "{e}");
        }
        let c = Config::from_sources(None, &env(&[("PASSERELLE_DATABASE_URL", "sqlite://x.db \t")])).unwrap();
        assert_eq!(c.database_url, "sqlite://x.db");
        // The operator's name is held to an organisation's rules; a burst needs a rate.
        for (key, value) in [
            ("PASSERELLE_OPERATOR_NAME", "x".repeat(201)),
            ("PASSERELLE_OPERATOR_NAME", "Opérateur\u{7}".to_owned()),
            ("PASSERELLE_RATE_LIMIT_BURST", "50".to_owned()),
        ] {
            assert_eq!(refused(&[(key, value.as_str())]).key, key, "{value:?}");
        }
        let c = Config::from_sources(None, &env(&[("PASSERELLE_OPERATOR_NAME", " Opérateur national ")])).unwrap();
        assert_eq!(c.operator_name, "Opérateur national");
        for filter in ["warn", "info,sqlx=debug", "passerelle_api=debug", "off", "2"] {
            let c = Config::from_sources(None, &env(&[("PASSERELLE_LOG", filter)])).unwrap();
            assert_eq!(c.log, filter);
        }
        // Kept trimmed, as EnvFilter would read a space as part of a target's name.
        for (filter, kept) in [
            ("info ", "info"),
            ("sqlx=warn, info", "sqlx=warn,info"),
            (" debug,", "debug"),
        ] {
            let c = Config::from_sources(None, &env(&[("PASSERELLE_LOG", filter)])).unwrap();
            assert_eq!(c.log, kept);
        }
        // A value of the wrong type in the file is the file's key, not the variable.
        let e = Config::from_sources(Some("body_limit_bytes = 1.5\n"), &env(&[])).unwrap_err();
        assert_eq!(e.key, "body_limit_bytes (in the --config file)");
    }

    #[test]
    fn configuration_errors_are_told_from_the_others() {
        let e = Config::from_sources(None, &env(&[("PASSERELLE_LISTEN", "nowhere")])).unwrap_err();
        assert!(is_configuration_error(&e.to_string()));
        assert!(!is_configuration_error("database unavailable: connection refused"));
    }

    /// A bad value the file gave is named as the file spells its key; one a variable gave (even
    /// over the file's) by the variable.
    #[test]
    fn a_bad_value_is_named_where_it_was_written() {
        let e = Config::from_sources(Some("webhook_max_attempts = 0"), &BTreeMap::new()).unwrap_err();
        assert_eq!(e.key, "webhook_max_attempts (in the --config file)");
        assert!(e
            .to_string()
            .starts_with("configuration error: webhook_max_attempts (in the --config file): \"0\" must be"));
        let e = Config::from_sources(
            Some("webhook_max_attempts = 3"),
            &env(&[("PASSERELLE_WEBHOOK_MAX_ATTEMPTS", "0")]),
        )
        .unwrap_err();
        assert_eq!(e.key, "PASSERELLE_WEBHOOK_MAX_ATTEMPTS");
        let e = Config::from_sources(
            Some("webhook_max_attempts = 0"),
            &env(&[("PASSERELLE_WEBHOOK_MAX_ATTEMPTS", "3")]),
        )
        .map(|c| c.webhook_max_attempts);
        assert_eq!(e, Ok(3), "the variable's value replaced the file's");
        let e = Config::from_sources(
            Some("log_format = \"xml\"\nlisten = \"127.0.0.1:9000\""),
            &BTreeMap::new(),
        )
        .unwrap_err();
        assert_eq!(e.key, "log_format (in the --config file)");
    }
}
