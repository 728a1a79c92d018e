//! Building the service: state, routes, middleware, and serving until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use passerelle_adapters::{Database, DatabaseOptions};
use passerelle_domain::clock::SystemClock;
use passerelle_domain::organization::Organization;
use passerelle_domain::ports::WriteContext;
use tower::ServiceBuilder;
use tower_http::limit::RequestBodyLimitLayer;
use tracing::Instrument;
use utoipa_swagger_ui::SwaggerUi;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::problem::{problem_response, ApiError, Lang, RequestContext, PROBLEM_JSON, REQUEST};
use crate::state::{AppState, OrgKindCache};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub async fn connect(config: &Config) -> Result<Database, String> {
    connect_with(config, false, true).await
}

/// As [`connect`], without the read replica: for the commands that never read through it
/// (`passerelle migrate`), so that a replica down does not stop them.
pub async fn connect_primary(config: &Config) -> Result<Database, String> {
    connect_with(config, false, false).await
}

/// As [`connect_primary`], chaining no audit event: for reading the log where writing is
/// impossible or unwanted (`passerelle audit verify` on a standby or a restored copy).
pub async fn connect_read_only(config: &Config) -> Result<Database, String> {
    connect_with(config, true, false).await
}

async fn connect_with(config: &Config, read_only: bool, replica: bool) -> Result<Database, String> {
    let mut options = DatabaseOptions::new(&config.database_url);
    options.read_only = read_only;
    options.max_connections = config.database_max_connections;
    options.read_url = config.database_read_url.clone().filter(|_| replica);
    options.read_timeout = config.database_read_timeout;
    options.migration_lock_timeout = config.migration_lock_timeout;
    passerelle_adapters::connect(&options).await.map_err(|e| {
        let e = e.to_string();
        if e.contains(passerelle_adapters::storage::postgres::REPLICA_UNREACHABLE) {
            format!("cannot open the read replica (PASSERELLE_DATABASE_READ_URL): {e}")
        } else {
            format!("cannot open the database: {e}")
        }
    })
}

/// Refuses a database that lacks migrations this binary needs, naming the first and the command
/// that applies them: behind, the service would pass its readiness probe and then fail the
/// requests that touch the newer tables. A database ahead of the binary (a rolled-back binary)
/// is accepted: each release keeps the previous binary working unless its notes say otherwise.
pub async fn require_schema(db: &Database) -> Result<(), String> {
    let pending = db
        .pending_migrations()
        .await
        .map_err(|e| format!("cannot read the database's migrations: {e}"))?;
    match pending.first() {
        None => Ok(()),
        Some((version, description)) => Err(format!(
            "the database lacks {} migration(s) this binary needs, from {version} ({description}): \
             run `passerelle migrate` first",
            pending.len()
        )),
    }
}

pub async fn state(config: Config, db: &Database) -> Result<AppState, String> {
    let auth = Authenticator::from_config(&config)
        .await
        .map_err(|e| format!("configuration error: PASSERELLE_JWT_JWKS: {e}"))?;
    let national_ids = match &config.national_id_rules {
        None => passerelle_domain::beneficiary::NationalIdRules::SHIPPED,
        Some(path) => {
            let text = tokio::fs::read_to_string(path).await.map_err(|e| {
                format!(
                    "configuration error: PASSERELLE_NATIONAL_ID_RULES: cannot read {}: {e}",
                    path.display()
                )
            })?;
            passerelle_domain::beneficiary::NationalIdRules::from_json(&text).map_err(|e| {
                format!(
                    "configuration error: PASSERELLE_NATIONAL_ID_RULES: {}: {e}",
                    path.display()
                )
            })?
        }
    };
    Ok(AppState {
        store: db.store.clone(),
        backend: db.backend,
        auth: Arc::new(auth),
        clock: Arc::new(SystemClock),
        org_kinds: Arc::new(OrgKindCache::default()),
        deactivated: Arc::new(crate::state::DeactivatedOrgs::default()),
        batch_queued: Arc::new(tokio::sync::Notify::new()),
        bulk: Arc::new(crate::bulk::runner::Control::default()),
        rate_limits: Arc::new(crate::rate_limit::RateLimits::new(
            config.rate_limit_per_second,
            config.rate_limit_burst,
        )),
        national_ids: Arc::new(national_ids),
        config: Arc::new(config),
    })
}

/// Makes sure the operator organisation exists (first start).
pub async fn ensure_operator(state: &AppState) -> Result<(), String> {
    let config = &state.config;
    let now = state.clock.now();
    let org = Organization {
        id: config.operator_org.clone(),
        kind: passerelle_domain::organization::OrgKind::Operator,
        country: config.operator_country.clone(),
        name: config.operator_name.clone(),
        registration_number: None,
        created_at: now,
        deactivated_at: None,
    };
    let ctx = WriteContext {
        organization: config.operator_org.to_string(),
        subject: "passerelle".into(),
        request_id: "startup".into(),
        trace_parent: None,
        at: now,
        idempotency: None,
    };
    state
        .store
        .ensure_organization(&ctx, &org)
        .await
        .map_err(|e| format!("cannot create the operator organisation: {e}"))?;
    // An id already taken by another kind of organisation would leave the service with no
    // operator, its `admin` tokens refused: said at start instead.
    let stored = state
        .store
        .get_organization(config.operator_org.as_str())
        .await
        .map_err(|e| format!("cannot read the operator organisation: {e}"))?;
    // Before the first request: a deactivated organisation is refused from the start.
    crate::housekeeping::read_deactivated(state)
        .await
        .map_err(|e| format!("cannot read the deactivated organisations: {e}"))?;
    if state.deactivated.contains(config.operator_org.as_str()) {
        return Err(format!(
            "configuration error: PASSERELLE_OPERATOR_ORG: {} is deactivated; reactivate it from another \
             operator, or name another id",
            config.operator_org
        ));
    }
    match stored {
        Some(o) if o.kind == passerelle_domain::organization::OrgKind::Operator => Ok(()),
        Some(o) => Err(format!(
            "configuration error: PASSERELLE_OPERATOR_ORG: {} is an organisation of kind {}, not the operator; \
             name another id",
            o.id,
            o.kind.as_str()
        )),
        None => Err(format!(
            "the operator organisation {} could not be created",
            config.operator_org
        )),
    }
}

/// Starts what runs beside the API: the webhook outbox's delivery worker, and the forgetting of
/// expired `Idempotency-Key`s.
pub fn start_workers(state: &AppState) -> Option<crate::webhook_worker::Worker> {
    crate::housekeeping::start(state.clone());
    crate::webhook_worker::start(state.clone())
}

/// The service. Bulk uploads stream up to `batch_max_bytes` to disk and may take longer than a
/// request: they get their own body limit and timeout, every other route the JSON ones. Also
/// starts this replica's bulk registration worker, the other half of the uploads.
pub fn router(state: AppState) -> Router {
    crate::metrics::install();
    crate::bulk::runner::start(&state);
    let (json_api, _) = crate::openapi::json_routes().split_for_parts();
    let (uploads, _) = crate::routes::batches::uploads().split_for_parts();
    let mut doc = crate::openapi::document();
    // Under a gateway's prefix, the root-relative server `/` sent Swagger UI's "Try it out" out
    // of the prefix, to a 404: the served document names the public base instead.
    if let Some(base) = &state.config.public_url {
        doc.servers = Some(vec![utoipa::openapi::server::ServerBuilder::new()
            .url(base.clone())
            .description(Some("This service"))
            .build()]);
    }
    let doc = crate::openapi::document_json(&doc);
    let timeout = state.config.request_timeout;
    let body_limit = state.config.body_limit_bytes;
    // Answers carry people's data: no shared cache (a proxy, a browser) keeps them, unless a
    // route says otherwise.
    let no_store = tower_http::set_header::SetResponseHeaderLayer::if_not_present(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    // Each stack is one `ServiceBuilder`, given to `layer` once: axum wraps every route in a
    // boxed service at each `layer` call, and each such wrapper clones all those inside it per
    // request. With one call per layer that was about 75 allocations per request; grouped, a
    // `/health/ready` costs a fifth fewer instructions (callgrind, 74k to 60k). The order is the
    // one the layers always had, outermost first.
    let json_api = json_api.layer(
        ServiceBuilder::new()
            .layer(from_fn_with_state(timeout, enforce_timeout))
            .layer(from_fn_with_state(body_limit, drain_oversized))
            .layer(RequestBodyLimitLayer::new(body_limit))
            .layer(no_store.clone()),
    );
    let uploads = uploads.layer(
        ServiceBuilder::new()
            .layer(from_fn_with_state(
                timeout.max(crate::bulk::UPLOAD_TIMEOUT),
                enforce_timeout,
            ))
            .layer(no_store),
    );
    let public_url = state.config.public_url.clone();
    // Per route rather than around the whole router: `context` and `metrics::track` read the
    // route's template (`MatchedPath`), which only routing sets.
    let router = json_api
        .merge(uploads)
        .merge(
            // The contract and its viewer hold no one's data, and change with each release: a
            // cache may keep them, but asks again before using them.
            // Without a validator: Swagger UI's default sends this service's address to
            // validator.swagger.io from any browser not on localhost.
            axum::Router::from(
                SwaggerUi::new("/docs")
                    .external_url_unchecked("/openapi.json", doc.clone())
                    // Relative to the page (`/docs/`), so that it is found under a gateway's prefix.
                    .config(utoipa_swagger_ui::Config::new(["../openapi.json"]).validator_url("none")),
            )
            .layer(
                ServiceBuilder::new()
                    .layer(from_fn_with_state(Arc::new(DocsTag::new(doc)), revalidate_docs))
                    .layer(tower_http::set_header::SetResponseHeaderLayer::if_not_present(
                        axum::http::header::CACHE_CONTROL,
                        axum::http::HeaderValue::from_static("no-cache"),
                    )),
            ),
        )
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                .layer(from_fn(crate::unread_body::close_after_unread))
                .layer(from_fn(crate::fhir::outcome::rewrite))
                .layer(from_fn(context))
                .layer(from_fn(crate::metrics::track))
                .layer(catch_panic())
                .layer(axum::extract::DefaultBodyLimit::disable())
                .layer(from_fn(refuse_nul))
                .layer(from_fn(refuse_encoded)),
        );
    match public_url {
        Some(base) => router.layer(from_fn_with_state(Arc::<str>::from(base), absolute_location)),
        None => router,
    }
}

/// What a panicking handler sends instead of nothing: the 500 `internal_error` problem, inside
/// `context` (so with its `X-Request-Id`) and `metrics::track` (so counted). The panic's message
/// may hold personal data: it is neither answered nor logged, only that a panic happened and on
/// which route. No allocation unless a panic happens, besides the boxing of the body.
fn catch_panic() -> tower_http::catch_panic::CatchPanicLayer<fn(Box<dyn std::any::Any + Send + 'static>) -> Response> {
    fn answer(_payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
        let route = REQUEST
            .try_with(|r| r.route.clone())
            .unwrap_or_else(|_| "unknown".into());
        ApiError::Internal(format!("a handler panicked (route {route})")).into_response()
    }
    tower_http::catch_panic::CatchPanicLayer::custom(answer)
}

/// The entity tag of the contract and its viewer, which change only with the binary: the
/// release and a digest of the document, worked out at the first request for them.
struct DocsTag {
    doc: serde_json::Value,
    tag: std::sync::OnceLock<HeaderValue>,
}

impl DocsTag {
    fn new(doc: serde_json::Value) -> DocsTag {
        DocsTag {
            doc,
            tag: std::sync::OnceLock::new(),
        }
    }

    fn tag(&self) -> &HeaderValue {
        self.tag.get_or_init(|| {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(serde_json::to_vec(&self.doc).unwrap_or_default());
            let tag = format!("\"{}-{}\"", env!("CARGO_PKG_VERSION"), hex::encode(&digest[..8]));
            HeaderValue::from_str(&tag).unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
        })
    }
}

/// `/openapi.json` and the docs' files carry an `ETag`, and a request naming it in
/// `If-None-Match` is 304: with `no-cache` alone and no validator, a browser or proxy fetched
/// the 2.4 MB again at every page load, slow on the links many mutuelles work over.
async fn revalidate_docs(State(tag): State<Arc<DocsTag>>, request: Request, next: Next) -> Response {
    let tag = tag.tag();
    let held = crate::routes::products::none_match_tag(request.headers(), tag.to_str().unwrap_or_default());
    let reads = matches!(*request.method(), axum::http::Method::GET | axum::http::Method::HEAD);
    if held && reads {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        response.headers_mut().insert(header::ETAG, tag.clone());
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        return response;
    }
    let mut response = next.run(request).await;
    if response.status() == StatusCode::OK {
        response.headers_mut().insert(header::ETAG, tag.clone());
    }
    response
}

/// With `public_url` set, a `Location` names the resource under it (scheme, host and any path
/// prefix a gateway publishes the service at): a path alone resolved, under a gateway mounting
/// the service at `/passerelle/`, outside the prefix, to a 404.
async fn absolute_location(State(base): State<Arc<str>>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let relative = response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .filter(|l| l.starts_with('/') && !l.starts_with("//"))
        .map(str::to_owned);
    if let Some(path) = relative {
        if let Ok(absolute) = HeaderValue::from_str(&format!("{base}{path}")) {
            response.headers_mut().insert(header::LOCATION, absolute);
        }
    }
    response
}

/// A body sent compressed (`Content-Encoding: gzip`) is 415, naming the one coding taken
/// (RFC 7694): read as it came, a JSON body was "not UTF-8" and a CSV upload was told to be
/// saved as UTF-8, which it was. Only where a body may be read (`POST`, `PUT`, `PATCH`): no
/// `GET` or `DELETE` reads one, and a body sent with one is ignored, coded or not.
async fn refuse_encoded(request: Request, next: Next) -> Response {
    let coded = matches!(*request.method(), Method::POST | Method::PUT | Method::PATCH)
        && crate::unread_body::announces_body(&request)
        && request
            .headers()
            .get_all(header::CONTENT_ENCODING)
            .iter()
            .flat_map(|v| v.to_str().unwrap_or("?").split(','))
            .any(|coding| !coding.trim().is_empty() && !coding.trim().eq_ignore_ascii_case("identity"));
    if coded {
        return ApiError::EncodedBody.into_response();
    }
    next.run(request).await
}

/// A NUL (`%00`) in the path names nothing that can exist: no text here may hold it
/// (`passerelle_domain::nul`), so 404 before any handler, and any statement, sees it. So is a
/// path whose escapes do not decode to UTF-8 (`/v1/organizations/%FF`): no id is such a text, so
/// 404 as well, where the path extractor would answer 400. A NUL in the query is refused by the
/// extractor that reads it ([`crate::extract::AppQuery`]), after authentication; an operation
/// that reads no query ignores it, as it ignores any parameter it does not read.
async fn refuse_nul(request: Request, next: Next) -> Response {
    let uri = request.uri();
    let not_utf8 = || percent_encoding::percent_decode_str(uri.path()).decode_utf8().is_err();
    if crate::extract::has_nul(uri.path()) || not_utf8() {
        return ApiError::NotFound.into_response();
    }
    next.run(request).await
}

/// A body declared larger than the limit is 413; one of a few MiB is read and dropped first, so
/// that a client still sending it gets the 413 rather than a connection reset mid-upload. No
/// `GET`, `HEAD` or `DELETE` reads a body: one sent with them is read past and dropped, whatever
/// its size, and the request served as if it had none (past the few MiB read, the connection
/// closes after the answer, `unread_body`, and a client still sending meets the close).
async fn drain_oversized(State(limit): State<usize>, request: Request, next: Next) -> Response {
    let drain_max = limit.saturating_mul(8).min(16 << 20);
    if !matches!(*request.method(), Method::POST | Method::PUT | Method::PATCH) {
        if !crate::unread_body::announces_body(&request) {
            return next.run(request).await;
        }
        let (mut parts, body) = request.into_parts();
        let _ = axum::body::to_bytes(body, drain_max).await;
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.headers.remove(header::TRANSFER_ENCODING);
        return next.run(Request::from_parts(parts, axum::body::Body::empty())).await;
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    match declared {
        Some(n) if n > limit => {
            // A client that asked `Expect: 100-continue` waits to be told whether to send: the
            // 413 tells it not to, where reading the body would first have it sent in full.
            let waiting = request
                .headers()
                .get(header::EXPECT)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
            if n <= drain_max && !waiting {
                let _ = axum::body::to_bytes(request.into_body(), drain_max).await;
            }
            ApiError::PayloadTooLarge.into_response()
        }
        _ => next.run(request).await,
    }
}

async fn enforce_timeout(State(timeout): State<Duration>, request: Request, next: Next) -> Response {
    // Whether the handler was still reading the body when the deadline passed: nothing acts on
    // a body before all of it is in (JSON is read whole, an upload spooled whole), so then
    // nothing was done, 408. A handler that had the whole body, or never reads one, may have
    // applied the request: 503.
    let (request, body) = if crate::unread_body::announces_body(&request) {
        let (parts, body) = request.into_parts();
        let (body, progress) = crate::unread_body::watched(body);
        (Request::from_parts(parts, body), Some(progress))
    } else {
        (request, None)
    };
    // Dropping the handler at the deadline (or when the client hangs up) is safe: storage begins
    // its transactions in a task of their own (`begin_detached`), so none is left open.
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) if body.is_some_and(|progress| progress.reading()) => ApiError::body_too_slow(timeout).into_response(),
        // Not "nothing was changed": the handler may have committed just before the deadline.
        Err(_) => ApiError::TimedOut.into_response(),
    }
}

fn valid_request_id(value: &HeaderValue) -> Option<String> {
    let s = value.to_str().ok()?;
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    ok.then(|| s.to_owned())
}

/// Request id, language, span and access log; turns any error response that is not yet
/// problem+json (axum's own rejections, the body limit) into one.
async fn context(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(valid_request_id)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        request.headers_mut().insert(REQUEST_ID, value);
    }
    let lang = Lang::negotiate(
        request
            .headers()
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    );
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    // A method outside the known few is `other` (`_OTHER` as the attribute, as the semantic
    // conventions say): any token is a method, and each would otherwise name spans of its own.
    let method = crate::metrics::method_label(request.method());
    let method_attribute = if method == "other" { "_OTHER" } else { method };
    // Only the route template and method are recorded: concrete paths and query strings can
    // carry national ids.
    let span = tracing::info_span!(
        "http.request",
                // The semantic conventions name a span of an unknown method `HTTP {route}`.
        otel.name = format!("{} {route}", if method == "other" { "HTTP" } else { method }),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = method_attribute,
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
        request_id = %request_id,
    );
    let trace_parent = crate::telemetry::join_caller_trace(&span, request.headers());
    let ctx = RequestContext {
        lang,
        path: request.uri().path().to_owned(),
        query: request.uri().query().unwrap_or_default().to_owned(),
        route: route.clone(),
        request_id: request_id.clone(),
        trace_parent,
    };
    let inner_ctx = ctx.clone();
    let mut response = REQUEST
        .scope(
            inner_ctx,
            async move { next.run(request).await }.instrument(span.clone()),
        )
        .await;
    if response.status().as_u16() >= 400 && !is_problem(&response) {
        response = as_problem(response, &ctx);
    }
    let status = response.status().as_u16();
    // An integer, as the semantic conventions want (a u16 would be exported as text).
    span.record("http.response.status_code", i64::from(status));
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if status >= 500 {
            tracing::error!(status, elapsed_ms, "request failed");
        } else {
            tracing::info!(status, elapsed_ms, "request");
        }
    });
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

fn is_problem(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(PROBLEM_JSON))
}

fn as_problem(response: Response, ctx: &RequestContext) -> Response {
    let error = match response.status() {
        StatusCode::BAD_REQUEST => ApiError::malformed("The request is malformed.", "La requête est mal formée."),
        StatusCode::UNAUTHORIZED => ApiError::Unauthorized {
            en: crate::problem::NO_TOKEN.0,
            fr: crate::problem::NO_TOKEN.1,
        },
        StatusCode::NOT_FOUND => ApiError::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType {
            expected: "application/json",
        },
        StatusCode::REQUEST_TIMEOUT | StatusCode::SERVICE_UNAVAILABLE => ApiError::Unavailable,
        StatusCode::UNPROCESSABLE_ENTITY => ApiError::Validation(Vec::new()),
        _ => ApiError::Internal(format!(
            "unexpected {} response without a problem body",
            response.status()
        )),
    };
    let allow = response.headers().get(header::ALLOW).cloned();
    let mut problem = problem_response(&error, ctx);
    if let Some(allow) = allow {
        problem.headers_mut().insert(header::ALLOW, allow);
    }
    problem
}

/// A running service: its address and a way to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub shutdown: tokio::sync::oneshot::Sender<()>,
    pub handle: tokio::task::JoinHandle<()>,
}

/// Serves until `signal` resolves, then lets the requests in flight finish for at most `drain`.
/// Past it, the connections still open (a bulk upload may take `bulk::UPLOAD_TIMEOUT` to
/// arrive) are left behind, to end with the process, and this returns: what the caller does
/// after it (handing a bulk job back, stopping the webhook worker, closing the database,
/// flushing traces) must fit in the orchestrator's grace period.
pub async fn serve_until(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: crate::http_server::ConnectionLimits,
    signal: impl std::future::Future<Output = ()> + Send + 'static,
    drain: Duration,
) -> Result<(), String> {
    let (signalled, on_signal) = tokio::sync::oneshot::channel::<()>();
    let server = crate::http_server::serve(listener, app, limits, async move {
        signal.await;
        let _ = signalled.send(());
    });
    let deadline = async move {
        if on_signal.await.is_err() {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(drain).await;
    };
    tokio::select! {
        () = server => Ok(()),
        () = deadline => {
            tracing::warn!(
                drain = ?drain,
                "requests were still running when the shutdown's drain ended; their connections close with the process"
            );
            Ok(())
        }
    }
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: crate::http_server::ConnectionLimits,
) -> Result<Running, String> {
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(crate::http_server::serve(listener, app, limits, async {
        let _ = rx.await;
    }));
    Ok(Running {
        addr,
        shutdown: tx,
        handle,
    })
}

#[cfg(test)]
mod tests {
    use tower::ServiceExt;

    use super::*;

    /// A handler's panic is answered: 500 problem+json `internal_error`, with the request id,
    /// and nothing of the panic's message.
    #[tokio::test]
    async fn a_panicking_handler_is_a_500_problem() {
        async fn boom() -> &'static str {
            panic!("Kossi Mensah, born 1990-01-01")
        }
        async fn fine() -> &'static str {
            "fine"
        }
        let app: Router = Router::new()
            .route("/boom", axum::routing::get(boom))
            .route("/fine", axum::routing::get(fine))
            .layer(ServiceBuilder::new().layer(from_fn(context)).layer(catch_panic()));
        let request = axum::http::Request::get("/boom")
            .header(REQUEST_ID, "req-boom-1")
            .header(header::ACCEPT_LANGUAGE, "en")
            .body(axum::body::Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(response.headers()[REQUEST_ID], "req-boom-1");
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["code"], "internal_error");
        assert_eq!(problem["status"], 500);
        assert_eq!(problem["request_id"], "req-boom-1");
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains("Kossi") && !text.contains("1990"), "{text}");
        // Other routes are untouched.
        let request = axum::http::Request::get("/fine")
            .body(axum::body::Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        assert_eq!(&body[..], b"fine");
    }
}
