//! Liveness, readiness and Prometheus metrics; no token needed.

use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::problem::ApiError;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(live))
        .routes(routes!(ready))
        .routes(routes!(metrics))
}

/// A health answer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub struct HealthView {
    /// `ok` (live) or `ready`.
    pub status: &'static str,
    /// Readiness only, with `PASSERELLE_DATABASE_READ_URL`: `up`, or `down` while eligibility
    /// checks read from the primary instead (the service stays ready). Probed every 2 s.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, example = "up")]
    pub read_replica: Option<&'static str>,
}

/// The process is up.
///
/// For liveness probes: answers 200 `{"status": "ok"}` while the process serves requests,
/// without touching the database. No token needed.
#[utoipa::path(
    get,
    path = "/health/live",
    tag = "service",
    security(()),
    responses((status = 200, description = "Alive", body = HealthView))
)]
pub async fn live() -> Json<HealthView> {
    Json(HealthView {
        status: "ok",
        read_replica: None,
    })
}

/// The service can reach its database.
///
/// For readiness probes: one round trip to the primary database, at most 2 s; 503 (with
/// `Retry-After`) when it does not answer. With a read replica configured
/// (`PASSERELLE_DATABASE_READ_URL`), `read_replica` tells whether it answers; a replica that
/// does not leaves the service ready, eligibility checks reading from the primary meanwhile.
/// No token needed.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "service",
    security(()),
    responses(
        (status = 200, description = "Ready to serve", body = HealthView,
         example = json!({"status": "ready", "read_replica": "up"})),
        (status = 503, description = "The database is unreachable", body = crate::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn ready(State(state): State<AppState>) -> Result<Json<HealthView>, ApiError> {
    match tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await {
        Ok(Ok(())) => Ok(Json(HealthView {
            status: "ready",
            read_replica: state.store.read_replica_up().map(|up| if up { "up" } else { "down" }),
        })),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(ApiError::Unavailable),
    }
}

/// Prometheus metrics.
///
/// The Prometheus text exposition (format 0.0.4): `http_requests_total` and
/// `http_request_duration_seconds` by `method`, `route` (the path template, never a concrete
/// path) and `status`; `passerelle_eligibility_checks_total` by `outcome`;
/// `passerelle_http_header_timeouts_total` (connections closed for sending no whole request head
/// within `PASSERELLE_HEADER_READ_TIMEOUT_MS`, idle keep-alive ones included); and
/// `passerelle_webhook_outbox_pending`. No token needed.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "service",
    security(()),
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain", body = String,
        example = json!("# TYPE http_requests_total counter\nhttp_requests_total{method=\"POST\",route=\"/v1/eligibility-checks\",status=\"200\"} 1284\n# TYPE passerelle_eligibility_checks_total counter\npasserelle_eligibility_checks_total{outcome=\"eligible\"} 1170\npasserelle_eligibility_checks_total{outcome=\"not_eligible\"} 114\n")))
)]
pub async fn metrics() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(),
    )
}
