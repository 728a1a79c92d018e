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
use crate::extract::{perm, replayed, AppQuery, Authorized, Caller, IdempotentJson};
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
    /// Subscription id, chosen by the server.
    pub id: String,
    /// Where deliveries are POSTed.
    pub url: String,
    /// The event types delivered, each once.
    pub events: Vec<String>,
    /// When it was created (RFC 3339, UTC).
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
    /// The HMAC-SHA256 key of the signatures, 32 to 256 characters; when absent, 64 random hex
    /// characters are generated. Shown only in the answer to this request.
    pub secret: Option<String>,
}

fn private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.octets()[0] == 0
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
                // An IPv4 address carried in IPv6: IPv4-compatible (`::a.b.c.d`) or through a
                // NAT64 gateway (`64:ff9b::a.b.c.d`) reaches that IPv4 address.
                || embedded_ipv4(v6).is_some_and(|v4| private(IpAddr::V4(v4)))
        }
    }
}

fn embedded_ipv4(v6: std::net::Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    let s = v6.segments();
    let carried = s[..6] == [0; 6] || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
    carried.then(|| {
        let [.., a, b, c, d] = v6.octets();
        std::net::Ipv4Addr::new(a, b, c, d)
    })
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

/// The body of a delivery: what a subscriber's URL receives, one POST per event (`Content-Type:
/// application/json`), with the headers `Passerelle-Event-Id` (the event's id) and
/// `Passerelle-Signature: t=<unix seconds>,v1=<lowercase hex HMAC-SHA256(secret, "<t>.<raw
/// body>")>`. Verify the signature over the raw body before parsing it; deliveries are at least
/// once, so dedupe on `event_id`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"event_id": "0193a5b2-8d2f-7e4b-a011-3c2d5e6f7081", "type": "coverage.changed",
    "created_at": "2026-11-30T10:15:00Z", "organization": "mut-tsevie",
    "data": {"id": "01937f0e-7d3b-7e4c-8f10-2b3c4d5e6f70", "beneficiary": "01937f0e-6c2a-7d3b-9e0f-1a2b3c4d5e6f",
             "product": "01937f0e-5b19-7c2a-8d0e-0f1a2b3c4d5e", "organization": "mut-tsevie", "layer": "complementary",
             "member_number": "TSV-0042", "relationship": "principal", "start_date": "2026-01-01",
             "status": "suspended", "paid_through": "2026-06-30"}}))]
pub struct WebhookEvent {
    /// The event's id, also in `Passerelle-Event-Id`.
    pub event_id: String,
    /// One of the six event types: `claim.submitted`, `claim.base_adjudicated`,
    /// `claim.adjudicated`, `claim.cancelled`, `claim.settled`, `coverage.changed`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When the change happened.
    pub created_at: DateTime<Utc>,
    /// The organisation whose action raised the event.
    pub organization: String,
    /// The resource as a GET by the subscriber shows it: a claim for `claim.*`, a coverage for
    /// `coverage.changed`.
    pub data: WebhookData,
}

/// The resource an event is about.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum WebhookData {
    Claim(Box<super::claims::ClaimView>),
    Coverage(Box<super::registry::CoverageView>),
}

/// Subscribe to events of the resources your organisation may read.
///
/// Any organisation kind with `webhooks:write`. A claim's events go to its parties (provider,
/// submitter, base payer, routed mutuelle), a coverage's to its organisation, and every event to
/// operators and auditors. Each is POSTed as a `WebhookEvent` (see Schemas),
/// `{event_id, type, created_at, organization, data}`, `data` being the resource as its GET
/// shows it, with `Passerelle-Event-Id` and
/// `Passerelle-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`. A
/// non-2xx answer or a timeout is retried with exponential backoff (10 s, doubling, ±20 %;
/// 12 attempts by default); receivers dedupe on `event_id`. The URL must be `https://` on a
/// public address (422 on `/url`). Answers 201 with the `secret`, shown only here.
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
    if let Some(first) = replayed::<Subscription>(&state, &auth.caller, idempotency.as_ref()).await? {
        let v = view(first, true);
        return Ok(created(format!("/v1/webhooks/{}", v.id), &v));
    }
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
        .is_some_and(|s| !(MIN_SECRET..=MAX_SECRET).contains(&s.chars().count()))
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
///
/// Only your organisation's subscriptions, ordered by id; secrets are never shown again.
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
///
/// Only your organisation's subscriptions (404 otherwise, and on a second `DELETE`). Nothing
/// more is delivered to it: its pending deliveries become `failed`. Answers 204 without a body.
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

/// One try to deliver an event.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"attempt": 1, "at": "2026-11-28T09:14:03.512Z", "status_code": 503, "error": null, "duration_ms": 412}))]
pub struct AttemptView {
    /// 1 for the first try.
    pub attempt: u32,
    /// When the try started.
    pub at: DateTime<Utc>,
    /// The receiver's HTTP status, when it answered.
    pub status_code: Option<u16>,
    /// Why the try failed without an HTTP answer (timeout, refused connection…).
    pub error: Option<String>,
    /// How long the try took, in milliseconds.
    pub duration_ms: u64,
}

/// One event's delivery to a subscription, with every try.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "01938b21-7a8b-7c9d-8e0f-1a2b3c4d5e6f:01937f12-4d5e-7f60-8172-8c9d0e1f2031",
    "event_id": "01938b21-7a8b-7c9d-8e0f-1a2b3c4d5e6f", "type": "claim.adjudicated", "status": "delivered",
    "attempts": [
        {"attempt": 1, "at": "2026-11-28T09:14:03.512Z", "status_code": 503, "error": null, "duration_ms": 412},
        {"attempt": 2, "at": "2026-11-28T09:14:14.020Z", "status_code": 200, "error": null, "duration_ms": 87}],
    "next_attempt_at": null, "created_at": "2026-11-28T09:14:03.498Z", "delivered_at": "2026-11-28T09:14:14.020Z"}))]
pub struct DeliveryView {
    /// Delivery id: `<event_id>:<subscription id>`.
    pub id: String,
    /// The event's id, also in the body and in `Passerelle-Event-Id`: receivers dedupe on it.
    pub event_id: String,
    /// The event type, e.g. `claim.adjudicated`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// `pending`, `delivered` or `failed` (given up after the last attempt).
    pub status: String,
    /// Every try so far, oldest first.
    pub attempts: Vec<AttemptView>,
    /// When the next try is due, while `pending`; null otherwise.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When the event was raised, with the change that raised it.
    pub created_at: DateTime<Utc>,
    /// When a try got a 2xx answer; null until then.
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
///
/// Only for your organisation's subscriptions (404 otherwise): to see what was sent, what the
/// receiver answered and when the next try is due.
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
