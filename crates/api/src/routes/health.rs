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

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub struct HealthView {
    /// `ok` (live) or `ready`.
    pub status: &'static str,
    /// Readiness only, with `PASSERELLE_DATABASE_READ_URL`: `up`, or `down` while eligibility
    /// checks read from the primary instead (the service stays ready). Probed every 2 s.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "up")]
    pub read_replica: Option<&'static str>,
}

/// The process is up.
#[utoipa::path(get, path = "/health/live", tag = "service", security(()), responses((status = 200, description = "Alive", body = HealthView)))]
pub async fn live() -> Json<HealthView> {
    Json(HealthView {
        status: "ok",
        read_replica: None,
    })
}

/// The database answers (one round trip to the primary, at most 2 s). A read replica that does
/// not answer leaves the service ready: checks read from the primary meanwhile.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "service",
    security(()),
    responses(
        (status = 200, description = "Ready to serve", body = HealthView),
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

/// Prometheus text exposition: `http_requests_total` and `http_request_duration_seconds` by
/// method, route and status.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "service",
    security(()),
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain", body = String))
)]
pub async fn metrics() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(),
    )
}
