//! `/v1/webhooks`: subscriptions and their deliveries.

use std::net::IpAddr;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use passerelle_domain::error::FieldError;
use passerelle_domain::webhook::{Delivery, Subscription, EVENT_TYPES};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{created, ListOf, PageQuery};
use crate::extract::{perm, AppQuery, Authorized, Caller, IdempotentJson};
use crate::fields::Fields;
use crate::problem::ApiError;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(delete_webhook))
        .routes(routes!(list_deliveries))
}

pub const MIN_SECRET: usize = 32;
pub const MAX_SECRET: usize = 256;

/// A subscription. `secret` is only ever shown in the answer to its creation.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "01937f12-4d5e-7f60-8172-8c9d0e1f2031", "url": "https://mutuelle.example.org/passerelle/events",
    "events": ["claim.submitted", "claim.adjudicated"], "created_at": "2026-11-30T08:00:00Z",
    "secret": "7c3f0a9e1b2d4c6e8f0a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6"}))]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub created_at: DateTime<Utc>,
    /// HMAC-SHA256 key of the signatures; only in the creation's answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

fn view(s: Subscription, with_secret: bool) -> WebhookView {
    WebhookView {
        id: s.id,
        url: s.url,
        events: s.events,
        created_at: s.created_at,
        secret: with_secret.then_some(s.secret),
    }
}

/// The body of `POST /v1/webhooks`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"url": "https://mutuelle.example.org/passerelle/events", "events": ["claim.submitted", "claim.adjudicated"]}))]
pub struct WebhookCreate {
    /// `https://` on a public address (`http`, loopback and private addresses only when the
    /// service runs with `PASSERELLE_WEBHOOK_ALLOW_INSECURE=true`).
    pub url: String,
    /// Among `claim.submitted`, `claim.base_adjudicated`, `claim.adjudicated`, `claim.cancelled`,
    /// `claim.settled`, `coverage.changed`.
    pub events: Vec<String>,
    /// 32 to 256 characters; generated when absent.
    pub secret: Option<String>,
}

fn private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.octets()[0] == 100 && (64..128).contains(&v4.octets()[1])
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6.to_ipv4_mapped().is_some_and(|v4| private(IpAddr::V4(v4)))
        }
    }
}

/// Whether a resolved address may receive deliveries (SSRF guard, also applied when sending).
pub fn address_allowed(ip: IpAddr, allow_insecure: bool) -> bool {
    allow_insecure || !private(ip)
}

/// Checks a webhook URL without any network access: scheme, and for literal addresses or
/// obviously local names, that they are public. Names are checked again when resolved.
pub fn check_url(raw: &str, allow_insecure: bool) -> Result<String, FieldError> {
    let bad = |en: &str, fr: &str| FieldError::new("/url", "invalid_url", en, fr);
    if raw.len() > 2000 {
        return Err(bad(
            "must be at most 2000 characters",
            "doit compter au plus 2000 caractères",
        ));
    }
    let url = reqwest::Url::parse(raw).map_err(|_| bad("must be an absolute URL", "doit être une URL absolue"))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_insecure => {}
        _ => return Err(bad("must use https://", "doit utiliser https://")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry credentials", "ne doit pas contenir d'identifiants"));
    }
    let host = url
        .host_str()
        .ok_or_else(|| bad("must name a host", "doit nommer un hôte"))?;
    if !allow_insecure {
        let literal = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok();
        let local_name = host == "localhost"
            || [".localhost", ".local", ".internal", ".lan", ".home.arpa"]
                .iter()
                .any(|s| host.ends_with(s))
            || !host.contains('.');
        if literal.is_some_and(private) || local_name {
            return Err(FieldError::new(
                "/url",
                "private_address",
                "must be a public address",
                "doit être une adresse publique",
            ));
        }
    }
    Ok(url.to_string())
}

/// Subscribe to events of the resources your organisation may read.
#[utoipa::path(
    post,
    path = "/v1/webhooks",
    tag = "webhooks",
    request_body = WebhookCreate,
    params(("Idempotency-Key" = Option<String>, Header, description = "The same key with the same body replays the first response (the same subscription and secret) and creates nothing new; with another body, 422 `idempotency_key_reused`")),
    responses((status = 201, description = "Created, with its `secret` (shown only here)", body = WebhookView,
        headers(("Location" = String, description = "/v1/webhooks/{id}")))),
    security(("bearer" = ["webhooks:write"]))
)]
pub async fn create_webhook(
    State(state): State<AppState>,
    auth: Authorized<perm::ManageWebhooks>,
    IdempotentJson { body, idempotency }: IdempotentJson<Map<String, Value>>,
) -> Result<Response, ApiError> {
    let mut f = Fields::new(&body);
    let url = f.str("url");
    let events = f.opt_str_list("events");
    let secret = f.opt_str("secret");
    let missing_events = body.get("events").is_none_or(Value::is_null);
    let mut errors = f.finish();
    if missing_events {
        errors.push(FieldError::required("/events"));
    }
    let url = url.and_then(|u| {
        check_url(&u, state.config.webhook_allow_insecure)
            .map_err(|e| errors.push(e))
            .ok()
    });
    let mut chosen = Vec::new();
    if let Some(events) = &events {
        if events.is_empty() {
            errors.push(FieldError::new(
                "/events",
                "empty",
                "name at least one event type",
                "indiquez au moins un type d'événement",
            ));
        }
        for (i, e) in events.iter().enumerate() {
            if !EVENT_TYPES.contains(&e.as_str()) {
                errors.push(FieldError::new(
                    format!("/events/{i}"),
                    "unknown_value",
                    format!("must be one of {}", EVENT_TYPES.join(", ")),
                    format!("doit être l'une des valeurs {}", EVENT_TYPES.join(", ")),
                ));
            } else if !chosen.contains(e) {
                chosen.push(e.clone());
            }
        }
    }
    if secret
        .as_ref()
        .is_some_and(|s| !(MIN_SECRET..=MAX_SECRET).contains(&s.len()))
    {
        errors.push(FieldError::new(
            "/secret",
            "invalid_length",
            format!("must be {MIN_SECRET} to {MAX_SECRET} characters"),
            format!("doit compter de {MIN_SECRET} à {MAX_SECRET} caractères"),
        ));
    }
    let Some(url) = url else {
        return Err(ApiError::validation(errors));
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let ctx = auth.caller.write_context(&state, idempotency);
    let sub = Subscription {
        id: uuid::Uuid::now_v7().to_string(),
        organization: auth.caller.org.to_string(),
        url,
        events: chosen,
        secret: secret.unwrap_or_else(|| format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())),
        created_at: ctx.at,
    };
    let sub = state.store.create_subscription(&ctx, &sub).await?;
    let v = view(sub, true);
    Ok(created(format!("/v1/webhooks/{}", v.id), &v))
}

/// Your subscriptions (without their secrets).
#[utoipa::path(
    get,
    path = "/v1/webhooks",
    tag = "webhooks",
    params(PageQuery),
    responses((status = 200, description = "A page of subscriptions", body = ListOf<WebhookView>)),
    security(("bearer" = ["webhooks:write"]))
)]
pub async fn list_webhooks(
    State(state): State<AppState>,
    auth: Authorized<perm::ManageWebhooks>,
    AppQuery(page): AppQuery<PageQuery>,
) -> Result<Json<ListOf<WebhookView>>, ApiError> {
    let page = page.parse()?;
    let result = state.store.list_subscriptions(auth.caller.org.as_str(), &page).await?;
    Ok(Json(ListOf::from_page(result, |s| view(s, false))))
}

async fn own(state: &AppState, caller: &Caller, id: &str) -> Result<Subscription, ApiError> {
    match state.store.get_subscription(id).await? {
        Some(s) if s.organization == caller.org.as_str() => Ok(s),
        _ => Err(ApiError::NotFound),
    }
}

/// Delete a subscription; pending deliveries to it are dropped.
#[utoipa::path(
    delete,
    path = "/v1/webhooks/{id}",
    tag = "webhooks",
    params(("id" = String, Path, description = "Subscription id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such subscription of yours (also on a second DELETE)", body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["webhooks:write"]))
)]
pub async fn delete_webhook(
    State(state): State<AppState>,
    auth: Authorized<perm::ManageWebhooks>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    own(&state, &auth.caller, &id).await?;
    let ctx = auth.caller.write_context(&state, None);
    if !state.store.delete_subscription(&ctx, &id).await? {
        return Err(ApiError::NotFound);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    pub attempt: u32,
    pub at: DateTime<Utc>,
    /// The receiver's HTTP status, when it answered.
    pub status_code: Option<u16>,
    /// Why the try failed without an HTTP answer (timeout, refused connection…).
    pub error: Option<String>,
    pub duration_ms: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    pub id: String,
    pub event_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    /// `pending`, `delivered` or `failed` (given up after the last attempt).
    pub status: String,
    pub attempts: Vec<AttemptView>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        DeliveryView {
            id: d.id,
            event_id: d.event_id,
            event_type: d.event_type,
            status: d.status,
            attempts: d
                .attempts
                .into_iter()
                .map(|a| AttemptView {
                    attempt: a.attempt,
                    at: a.at,
                    status_code: a.status_code,
                    error: a.error,
                    duration_ms: a.duration_ms,
                })
                .collect(),
            next_attempt_at: d.next_attempt_at,
            created_at: d.created_at,
            delivered_at: d.delivered_at,
        }
    }
}

/// A subscription's deliveries, newest first, each with its attempts.
#[utoipa::path(
    get,
    path = "/v1/webhooks/{id}/deliveries",
    tag = "webhooks",
    params(("id" = String, Path, description = "Subscription id"), PageQuery),
    responses(
        (status = 200, description = "A page of deliveries", body = ListOf<DeliveryView>),
        (status = 404, description = "No such subscription of yours", body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["webhooks:write"]))
)]
pub async fn list_deliveries(
    State(state): State<AppState>,
    auth: Authorized<perm::ManageWebhooks>,
    Path(id): Path<String>,
    AppQuery(page): AppQuery<PageQuery>,
) -> Result<Json<ListOf<DeliveryView>>, ApiError> {
    let page = page.parse()?;
    own(&state, &auth.caller, &id).await?;
    let result = state.store.list_deliveries(&id, &page).await?;
    Ok(Json(ListOf::from_page(result, DeliveryView::from)))
}
