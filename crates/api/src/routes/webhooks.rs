//! `/v1/webhooks`: subscriptions and their deliveries.

use std::net::IpAddr;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use passerelle_adapters::public_address::globally_routable;
use passerelle_domain::error::FieldError;
use passerelle_domain::pagination::PageRequest;
use passerelle_domain::ports::Redelivery;
use passerelle_domain::webhook::{Delivery, Subscription, DELIVERY_STATUSES, EVENT_TYPES};
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
        .routes(routes!(get_webhook, delete_webhook))
        .routes(routes!(list_deliveries))
        .routes(routes!(redeliver))
        .routes(routes!(redeliver_failed))
}

pub const MIN_SECRET: usize = 32;
pub const MAX_SECRET: usize = 256;

/// A subscription. `secret` is only ever shown in the answer to its creation.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "01937f12-4d5e-7f60-8172-8c9d0e1f2031", "url": "https://mutuelle.example.org/passerelle/events",
    "events": ["claim.submitted", "claim.adjudicated"], "created_at": "2026-11-30T08:00:00Z"}))]
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
    #[schema(nullable = false)]
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
    /// service runs with `PASSERELLE_WEBHOOK_ALLOW_INSECURE=true`), without credentials, port
    /// 0 or more than 2000 characters (as sent). Stored and answered as the WHATWG URL Standard
    /// writes it: `HTTPS://Hooks.Example.ORG` as `https://hooks.example.org/`, `http://127.1` as
    /// `http://127.0.0.1/`, `é` in a path as `%C3%A9` (so the stored URL may be longer than
    /// 2000 characters); a `#fragment` is kept but never sent.
    #[schema(max_length = 2000)]
    pub url: String,
    /// Among `claim.submitted`, `claim.base_adjudicated`, `claim.adjudicated`, `claim.cancelled`,
    /// `claim.settled`, `coverage.changed`, `beneficiary.changed`. At least one; one listed twice
    /// counts once.
    // `create_webhook`: empty is 422 `empty`; `Fields::opt_str_list` holds `MAX_LIST_ITEMS`.
    #[schema(min_items = 1, max_items = 1000)]
    pub events: Vec<String>,
    /// The HMAC-SHA256 key of the signatures, 32 to 256 characters; when absent, 64 random hex
    /// characters are generated. Shown only in the answer to this request.
    // `MIN_SECRET..=MAX_SECRET` characters.
    #[schema(min_length = 32, max_length = 256)]
    pub secret: Option<String>,
}

/// Names that only ever mean this machine or a local network. A name may end with the root's
/// dot (`localhost.`): the same name.
fn local_name(name: &str) -> bool {
    let name = name.trim_end_matches('.');
    name == "localhost"
        || [
            ".localhost",
            ".local",
            ".localdomain",
            ".internal",
            ".lan",
            ".home.arpa",
        ]
        .iter()
        .any(|s| name.ends_with(s))
        || !name.contains('.')
}

/// Checks a webhook URL without any network access: scheme, and for literal addresses or
/// obviously local names, that they are public. Names are checked again when resolved.
pub fn check_url(raw: &str, allow_insecure: bool) -> Result<String, FieldError> {
    let bad = |en: &str, fr: &str| FieldError::new("/url", "invalid_url", en, fr);
    if raw.chars().count() > 2000 {
        return Err(bad(
            "must be at most 2000 characters",
            "doit compter au plus 2000 caractères",
        ));
    }
    let url = reqwest::Url::parse(raw).map_err(|_| bad("must be an absolute URL", "doit être une URL absolue"))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_insecure => {}
        _ if allow_insecure => return Err(bad("must use https:// or http://", "doit utiliser https:// ou http://")),
        _ => return Err(bad("must use https://", "doit utiliser https://")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "must not carry credentials (user:password@)",
            "ne doit pas contenir d'identifiants de connexion (utilisateur:mot de passe@)",
        ));
    }
    let host = url
        .host_str()
        .ok_or_else(|| bad("must name a host", "doit indiquer un hôte"))?;
    // Port 0 names no port a receiver can listen on: no delivery could ever arrive.
    if url.port() == Some(0) {
        return Err(bad(
            "must name a port from 1 to 65535",
            "doit indiquer un port de 1 à 65535",
        ));
    }
    if !allow_insecure {
        // `domain()` is the host when it is a name; otherwise the host is an address literal,
        // IPv6 ones in brackets (`url` crate's `Host`, which this crate does not name).
        let public = match url.domain() {
            Some(name) => !local_name(name),
            None => host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok_and(globally_routable),
        };
        if !public {
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
        "created_at": "2026-11-30T10:15:00Z", "organization": "mut-tsevie", "version": 4,
    "data": {"id": "01937f0e-7d3b-7e4c-8f10-2b3c4d5e6f70", "beneficiary": "01937f0e-6c2a-7d3b-9e0f-1a2b3c4d5e6f",
             "product": "01937f0e-5b19-7c2a-8d0e-0f1a2b3c4d5e", "organization": "mut-tsevie", "layer": "complementary",
             "member_number": "TSV-0042", "relationship": "principal", "start_date": "2026-01-01",
             "status": "suspended", "paid_through": "2026-06-30", "version": 4}}))]
pub struct WebhookEvent {
    /// The event's id, also in `Passerelle-Event-Id`.
    pub event_id: String,
    /// One of the eight event types: `claim.submitted`, `claim.base_adjudicated`,
    /// `claim.adjudicated`, `claim.cancelled`, `claim.settled`, `coverage.changed`,
    /// `beneficiary.changed`, `beneficiary.erased`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When the request that made the change was received. Changes of one resource commit in
    /// the order of their `version`, not always of their `created_at`: order by `version`.
    pub created_at: DateTime<Utc>,
    /// The organisation whose action raised the event; `null` in a `beneficiary.changed` sent
    /// to another organisation that covers the person (who else covers them is not its to know).
    #[schema(required = true)]
    pub organization: Option<String>,
    /// The resource's version after this change: it grows by one with each change of the
    /// resource (for a coverage or a person, the number in its `ETag`). Deliveries come in no set order:
    /// for one resource, keep the event with the highest `version` and ignore a lower one
    /// arriving after it.
    #[schema(example = 4)]
    pub version: u32,
    /// The resource as a GET by the subscriber shows it: a claim for `claim.*`, a coverage for
    /// `coverage.changed`, a person for `beneficiary.changed`; for `beneficiary.erased`, whose
    /// person a GET answers 410, only the record's id, version and the instant of the erasure.
    pub data: WebhookData,
}

/// The person of a `beneficiary.erased` event: their names, national id, phone and place were
/// erased under the deployment's retention period (`passerelle erase-personal-data`, API.md §5
/// *Erasure*). Forget your own copy of them as your retention allows; the id stays valid in the
/// claims, coverages and audit events that name it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "01937f0e-6c2a-7d3b-9e0f-1a2b3c4d5e6f", "version": 3,
    "erased_at": "2036-12-08T02:30:00.123456Z"}))]
pub struct BeneficiaryErasureView {
    /// The beneficiary id.
    pub id: String,
    /// The record's version after the erasure: one more than its last version (as its last GET
    /// showed; an organisation whose coverage had ended was not told of later corrections).
    #[schema(minimum = 1, example = 3)]
    pub version: u32,
    /// When the personal data was erased.
    pub erased_at: DateTime<Utc>,
}

impl From<passerelle_domain::retention::ErasedRecord> for BeneficiaryErasureView {
    fn from(r: passerelle_domain::retention::ErasedRecord) -> Self {
        BeneficiaryErasureView {
            id: r.id,
            version: r.version,
            erased_at: r.erased_at,
        }
    }
}

/// The resource an event is about.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum WebhookData {
    Claim(Box<super::claims::ClaimView>),
    Coverage(Box<super::registry::CoverageView>),
    Beneficiary(Box<super::registry::BeneficiaryView>),
    Erasure(Box<BeneficiaryErasureView>),
}

/// Subscribe to events of the resources your organisation may read.
///
/// Any organisation kind with `webhooks:write`. A claim's events go to its parties (provider,
/// submitter, base payer, routed mutuelle), a coverage's to its organisation, a person's
/// correction (`beneficiary.changed`) to the organisations that cover them, their erasure past the
/// retention period (`beneficiary.erased`) to those that covered them, and every event to
/// operators and auditors. Each is POSTed as a `WebhookEvent` (see Schemas, and the document's
/// `webhooks`, one per event type, for a generator to type a receiver),
/// `{event_id, type, created_at, organization, version, data}`, `data` being the resource as its
/// GET shows it and `version` its version after the change (keep the highest per resource), with `Passerelle-Event-Id` and
/// `Passerelle-Signature: t=<unix seconds>,v1=<lowercase hex HMAC-SHA256(secret, "<t>.<raw body>")>` (the key: the secret's UTF-8 bytes as shown). A
/// non-2xx answer or a timeout is retried with exponential backoff (10 s, doubling, each delay
/// up to 20 % longer; 12 attempts by default); receivers dedupe on `event_id`. The URL must be `https://` on a
/// public address (422 on `/url`). Answers 201 with the `secret`, shown only here.
#[utoipa::path(
    post,
    path = "/v1/webhooks",
    tag = "webhooks",
    request_body = WebhookCreate,
    params(("Idempotency-Key" = Option<String>, Header, description = "The same key with the same body replays the first response (the same subscription and secret) and creates nothing new; once that subscription is deleted, 409 `conflict`; with another body, 422 `idempotency_key_reused`")),
    responses(
        (status = 201, description = "Created, with its `secret` (shown only here)", body = WebhookView,
            headers(("Location" = String, description = "/v1/webhooks/{id}")),
            example = json!({"id": "01937f12-4d5e-7f60-8172-8c9d0e1f2031", "url": "https://mutuelle.example.org/passerelle/events",
                "events": ["claim.submitted", "claim.adjudicated"], "created_at": "2026-11-30T08:00:00Z",
                "secret": "7c3f0a9e1b2d4c6e8f0a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6"})),
        (status = 409, description = "The `Idempotency-Key` was used for a subscription deleted since (`errors[0].code` `subscription_deleted`), or your organisation already holds 10 live subscriptions (`too_many_subscriptions`: delete one first)", body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["webhooks:write"]))
)]
pub async fn create_webhook(
    State(state): State<AppState>,
    auth: Authorized<perm::ManageWebhooks>,
    IdempotentJson { body, idempotency }: IdempotentJson<Map<String, Value>>,
) -> Result<Response, ApiError> {
    if let Some(first) = replayed::<Subscription>(&state, &auth.caller, idempotency.as_ref()).await? {
        return answer_replay(&state, first).await;
    }
    let mut f = Fields::new(&body);
    let url = f.str("url");
    let events = f.opt_str_list("events");
    let secret = f.opt_str_exact("secret");
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
            // An item of the wrong type is reported already, at its own index.
            let Some(e) = e else { continue };
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
    let id = uuid::Uuid::now_v7().to_string();
    let sub = Subscription {
        id: id.clone(),
        organization: auth.caller.org.to_string(),
        url,
        events: chosen,
        secret: secret.unwrap_or_else(|| format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())),
        created_at: ctx.at,
    };
    let sub = state.store.create_subscription(&ctx, &sub).await?;
    if sub.id != id {
        // A concurrent request with the same key created it first.
        return answer_replay(&state, sub).await;
    }
    let v = view(sub, true);
    Ok(created(format!("/v1/webhooks/{}", v.id), &v))
}

/// The replay of a creation whose subscription was deleted since.
pub fn subscription_deleted() -> ApiError {
    crate::problem::conflict_at(
        "",
        "subscription_deleted",
        "The subscription this Idempotency-Key created has been deleted since; to subscribe again, send a new key.",
        "L'abonnement créé avec cette Idempotency-Key a été supprimé depuis ; pour vous abonner de nouveau, envoyez une nouvelle clé.",
    )
}

/// A creation replayed with its `Idempotency-Key` (API.md §3) is answered as the first one was,
/// with the secret read from the live subscription: the key does not keep it, so that deleting
/// a subscription erases its secret everywhere. Once deleted there is no secret left to give
/// back, and the key already created its subscription: 409.
async fn answer_replay(state: &AppState, first: Subscription) -> Result<Response, ApiError> {
    let Some(live) = state.store.get_subscription(&first.id).await? else {
        return Err(subscription_deleted());
    };
    let v = view(
        Subscription {
            secret: live.secret,
            ..first
        },
        true,
    );
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

/// One of your subscriptions (without its secret).
///
/// The resource the creation's `Location` names: its URL, events and creation time. Only your
/// organisation's live subscriptions (404 otherwise, and once deleted); the secret is never
/// shown again.
#[utoipa::path(
    get,
    path = "/v1/webhooks/{id}",
    tag = "webhooks",
    params(("id" = String, Path, description = "Subscription id")),
    responses(
        (status = 200, description = "The subscription", body = WebhookView),
        (status = 404, description = "No such subscription of yours (also once deleted)", body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["webhooks:write"]))
)]
pub async fn get_webhook(
    State(state): State<AppState>,
    auth: Authorized<perm::ManageWebhooks>,
    Path(id): Path<String>,
) -> Result<Json<WebhookView>, ApiError> {
    let sub = own(&state, &auth.caller, &id).await?;
    Ok(Json(view(sub, false)))
}

/// Delete a subscription; pending deliveries to it are dropped.
///
/// Only your organisation's subscriptions (404 otherwise, and on a second `DELETE`). Nothing
/// more is delivered to it: its pending deliveries become `failed` (a send already under way
/// when the deletion commits still completes, and its answer is recorded). Answers 204 without a
/// body.
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
    #[schema(required = true)]
    pub status_code: Option<u16>,
    /// Why the try failed without an HTTP answer (timeout, refused connection…).
    #[schema(required = true)]
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
    "next_attempt_at": null, "created_at": "2026-11-28T09:14:03.498Z", "delivered_at": "2026-11-28T09:14:14.020Z",
    "redelivered_at": null}))]
pub struct DeliveryView {
    /// Delivery id: `<event_id>:<subscription id>`.
    pub id: String,
    /// The event's id, also in the body and in `Passerelle-Event-Id`: receivers dedupe on it.
    pub event_id: String,
    /// The event type, e.g. `claim.adjudicated`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// `pending`, `delivered` or `failed`: given up after its last attempt, its subscription
    /// deleted or its organisation deactivated while it was pending, or its stored event
    /// unreadable (the attempt's `error` says so). A failed one of a live subscription may be
    /// sent again (`…/redeliver`).
    pub status: String,
    /// Every try so far, oldest first.
    pub attempts: Vec<AttemptView>,
    /// When the next try is due, while `pending`; null otherwise.
    #[schema(required = true)]
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When the event was raised, with the change that raised it.
    pub created_at: DateTime<Utc>,
    /// When a try got a 2xx answer; null until then.
    #[schema(required = true)]
    pub delivered_at: Option<DateTime<Utc>>,
    /// When you last asked for it again after it failed (`…/redeliver`); null if never.
    #[schema(required = true)]
    pub redelivered_at: Option<DateTime<Utc>>,
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
            redelivered_at: d.redelivered_at,
        }
    }
}

/// The filter of a subscription's deliveries.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// Only the deliveries in this state: `pending`, `delivered` or `failed` (another value is
    /// 422 `unknown_value` on `/query/status`).
    #[param(value_type = Option<DeliveryStatusFilter>, inline)]
    pub status: Option<String>,
}

/// The `status` filter's values. Schema only (inlined).
pub struct DeliveryStatusFilter;

impl utoipa::PartialSchema for DeliveryStatusFilter {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        super::claims::string_enum(&DELIVERY_STATUSES)
    }
}

impl ToSchema for DeliveryStatusFilter {}

fn unknown_delivery_status() -> FieldError {
    FieldError::new(
        "/query/status",
        "unknown_value",
        "must be pending, delivered or failed",
        "doit être pending, delivered ou failed",
    )
}

/// A subscription's deliveries, newest first, each with its attempts.
///
/// Only for your organisation's subscriptions (404 otherwise): to see what was sent, what the
/// receiver answered and when the next try is due. `?status=failed` lists those given up, which
/// `…/redeliver` sends again.
#[utoipa::path(
    get,
    path = "/v1/webhooks/{id}/deliveries",
    tag = "webhooks",
    params(("id" = String, Path, description = "Subscription id"), PageQuery, DeliveryQuery),
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
    AppQuery(query): AppQuery<DeliveryQuery>,
) -> Result<Json<ListOf<DeliveryView>>, ApiError> {
    // Every broken rule of the query at once (API.md §4).
    let mut errors = Vec::new();
    let page = match page.parse() {
        Ok(page) => Some(page),
        Err(ApiError::Validation(mut e)) => {
            errors.append(&mut e);
            None
        }
        Err(e) => return Err(e),
    };
    let status = query.status.as_deref();
    if status.is_some_and(|s| !DELIVERY_STATUSES.contains(&s)) {
        errors.push(unknown_delivery_status());
    }
    let Some(page) = page.filter(|_| errors.is_empty()) else {
        return Err(ApiError::validation(errors));
    };
    own(&state, &auth.caller, &id).await?;
    let result = state.store.list_deliveries(&id, status, &page).await?;
    Ok(Json(ListOf::from_page(result, DeliveryView::from)))
}

/// A redelivery asked of a delivery that has not failed.
pub fn not_failed(status: &str) -> ApiError {
    if status == "delivered" {
        crate::problem::conflict_at(
            "",
            "already_delivered",
            "This delivery was delivered: the receiver answered 2xx. Nothing is sent again.",
            "Cette livraison a abouti : le destinataire a répondu 2xx. Rien n'est renvoyé.",
        )
    } else {
        crate::problem::conflict_at(
            "",
            "delivery_pending",
            "This delivery is still being tried (see next_attempt_at); only a failed one may be sent again.",
            "Cette livraison est encore en cours (prochaine tentative : voir next_attempt_at) ; seule une livraison en échec peut être renvoyée.",
        )
    }
}

/// Send a failed delivery again.
///
/// A `failed` delivery of your subscription (given up after its last attempt, or failed by a
/// deactivation of your organisation since reversed) becomes `pending`, due at once, with the
/// whole retry schedule again (`PASSERELLE_WEBHOOK_MAX_ATTEMPTS` more attempts, the first
/// within about 200 ms). Its earlier attempts stay listed and the next ones are numbered after
/// them; the event is the one first sent (same `event_id`, `version` and `data`), signed afresh. Only a
/// failed delivery: 409 `already_delivered` or `delivery_pending` otherwise. Audited as
/// `webhook.redelivered`. Answers 202 with the delivery as it now stands.
#[utoipa::path(
    post,
    path = "/v1/webhooks/{id}/deliveries/{delivery}/redeliver",
    tag = "webhooks",
    params(
        ("id" = String, Path, description = "Subscription id"),
        ("delivery" = String, Path, description = "Delivery id, as listed (`<event_id>:<subscription id>`)"),
    ),
    responses(
        (status = 202, description = "Pending again, due at once", body = DeliveryView,
            example = json!({"id": "01938b21-7a8b-7c9d-8e0f-1a2b3c4d5e6f:01937f12-4d5e-7f60-8172-8c9d0e1f2031",
                "event_id": "01938b21-7a8b-7c9d-8e0f-1a2b3c4d5e6f", "type": "claim.adjudicated", "status": "pending",
                "attempts": [
                    {"attempt": 1, "at": "2026-11-28T09:14:03.512Z", "status_code": 503, "error": null, "duration_ms": 412},
                    {"attempt": 2, "at": "2026-11-28T09:14:14.020Z", "status_code": null, "error": "connection failed", "duration_ms": 3}],
                "next_attempt_at": "2026-11-30T07:02:11.250Z", "created_at": "2026-11-28T09:14:03.498Z", "delivered_at": null,
                "redelivered_at": "2026-11-30T07:02:11.250Z"})),
        (status = 404, description = "No such subscription of yours, or no such delivery of it", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not failed: `errors[0].code` `already_delivered` or `delivery_pending`", body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["webhooks:write"]))
)]
pub async fn redeliver(
    State(state): State<AppState>,
    auth: Authorized<perm::ManageWebhooks>,
    Path((id, delivery)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    own(&state, &auth.caller, &id).await?;
    let ctx = auth.caller.write_context(&state, None);
    match state.store.redeliver(&ctx, &id, &delivery).await? {
        Redelivery::Redelivered(d) => Ok((StatusCode::ACCEPTED, Json(DeliveryView::from(d))).into_response()),
        Redelivery::NotFound => Err(ApiError::NotFound),
        Redelivery::NotFailed(status) => Err(not_failed(&status)),
    }
}

/// Most failed deliveries one request sends again.
pub const REDELIVER_AT_ONCE: u32 = 1000;

/// The filter of `POST /v1/webhooks/{id}/deliveries/redeliver`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RedeliverQuery {
    /// Required: only the deliveries of events whose `created_at` is at or after this RFC 3339
    /// instant or `YYYY-MM-DD` day (00:00 UTC). `1970-01-01` takes every failed delivery of the
    /// subscription. After an outage of your receiver, give a minute before it began: an event
    /// is dated when its request was received, a little before its first try. Required so that
    /// a mistyped name sends nothing, where an unread parameter is otherwise ignored.
    // An `Option` so that its absence is the handler's 422 (`required`, `/query/since`).
    #[param(required = true, value_type = super::audit::Since, inline)]
    pub since: Option<String>,
    /// The previous answer's `next_cursor`, to continue after the deliveries it took; absent for
    /// the first request.
    pub cursor: Option<String>,
}

/// What `POST /v1/webhooks/{id}/deliveries/redeliver` did.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"redelivered": 1000, "next_cursor": "eyJsIjoiL3YxL3dlYmhvb2tzLzAxOTM3ZjEyIiwiayI6IjAxOTM4YjIxIn0"}))]
pub struct RedeliveredView {
    /// How many failed deliveries became `pending` again.
    pub redelivered: u64,
    /// When failed deliveries matching the request are left: send the same request again with
    /// `cursor` set to this. Null once every one was taken.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// Send a subscription's failed deliveries again, after an outage of your receiver.
///
/// Its oldest `failed` deliveries of events whose `created_at` is at or after `since`
/// (required), at most 1000 a request, each as `…/deliveries/{delivery}/redeliver` does:
/// `pending` again with the whole retry schedule, its attempts kept. While `next_cursor` is not
/// null, send the request again with `cursor` set to it: each request continues after the last
/// delivery the previous one took, so a pass takes each failed delivery once and ends, even
/// when some fail again at once. Send no body. Answers 202, also when there were none. Audited
/// as `webhook.redelivered` when any was.
#[utoipa::path(
    post,
    path = "/v1/webhooks/{id}/deliveries/redeliver",
    tag = "webhooks",
    params(("id" = String, Path, description = "Subscription id"), RedeliverQuery),
    responses(
        (status = 202, description = "How many are pending again, and where to continue", body = RedeliveredView),
        (status = 404, description = "No such subscription of yours", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`since` missing (`required`) or neither an instant nor a day (`invalid_format`), at `/query/since`; a `cursor` that is not a `next_cursor` of this request under the same `since` (`invalid_cursor`, at `/query/cursor`). Every fault is listed in `errors`; nothing was changed", body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["webhooks:write"]))
)]
pub async fn redeliver_failed(
    State(state): State<AppState>,
    auth: Authorized<perm::ManageWebhooks>,
    Path(id): Path<String>,
    AppQuery(query): AppQuery<RedeliverQuery>,
) -> Result<Response, ApiError> {
    // Every broken rule of the query at once (API.md §4).
    let mut errors = Vec::new();
    let since = match super::audit::parse_since(query.since.as_deref()) {
        Ok(Some(since)) => Some(since),
        Ok(None) => {
            errors.push(FieldError::required("/query/since"));
            None
        }
        Err(ApiError::Validation(mut e)) => {
            errors.append(&mut e);
            None
        }
        Err(e) => return Err(e),
    };
    // The cursor is bound to this request's subscription and `since`, as a list's to its list.
    let after = match PageRequest::parse_list(&super::this_list(), None, query.cursor.as_deref()) {
        Ok(page) => page.after,
        Err(mut e) => {
            errors.append(&mut e);
            None
        }
    };
    let Some(since) = since.filter(|_| errors.is_empty()) else {
        return Err(ApiError::validation(errors));
    };
    own(&state, &auth.caller, &id).await?;
    let ctx = auth.caller.write_context(&state, None);
    let done = state
        .store
        .redeliver_failed(&ctx, &id, Some(since), after.as_deref(), REDELIVER_AT_ONCE)
        .await?;
    let view = RedeliveredView {
        redelivered: done.redelivered,
        next_cursor: done
            .next
            .map(|key| passerelle_domain::pagination::encode_list_cursor(&super::this_list(), &key)),
    };
    Ok((StatusCode::ACCEPTED, Json(view)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(url: &str) -> Option<String> {
        check_url(url, false).err().map(|e| e.code)
    }

    #[test]
    fn the_scheme_message_names_what_is_accepted() {
        let en = |url: &str, insecure: bool| check_url(url, insecure).err().map(|e| e.en);
        assert_eq!(en("ftp://127.0.0.1/x", false).as_deref(), Some("must use https://"));
        assert_eq!(
            en("ftp://127.0.0.1/x", true).as_deref(),
            Some("must use https:// or http://")
        );
        assert_eq!(en("http://127.0.0.1/x", true), None);
    }

    #[test]
    fn the_length_is_counted_in_characters_and_port_0_refused() {
        let long = |path: &str| format!("https://hooks.example.org/{path}");
        // 1,026 characters, 2,026 bytes.
        assert_eq!(refused(&long(&"é".repeat(1000))), None);
        assert_eq!(refused(&long(&"a".repeat(2000 - 26))), None);
        assert_eq!(refused(&long(&"a".repeat(2001 - 26))).as_deref(), Some("invalid_url"));
        assert_eq!(refused("https://hooks.example.org:0/x").as_deref(), Some("invalid_url"));
        assert_eq!(
            check_url("http://127.0.0.1:0/x", true).err().map(|e| e.code).as_deref(),
            Some("invalid_url")
        );
        assert_eq!(refused("https://hooks.example.org:1/x"), None);
    }

    #[test]
    fn literal_hosts_are_judged_by_their_address() {
        assert_eq!(refused("https://[2001:4860:4860::8888]/hook"), None);
        assert_eq!(refused("https://8.8.8.8/hook"), None);
        for url in [
            "https://[::1]/hook",
            "https://[fe80::1]/hook",
            "https://[::ffff:127.0.0.1]/hook",
            "https://[2002:7f00:1::1]/hook",
            "https://198.18.0.1/hook",
            "https://0x7f000001/hook",
            "https://2130706433/hook",
        ] {
            assert_eq!(refused(url).as_deref(), Some("private_address"), "{url}");
        }
    }

    #[test]
    fn local_names_are_refused_with_or_without_the_root_dot() {
        for url in [
            "https://localhost/hook",
            "https://localhost./hook",
            "https://LOCALHOST./hook",
            "https://printer./hook",
            "https://printer/hook",
            "https://nas.local./hook",
            "https://api.internal/hook",
            "https://localhost.localdomain/hook",
        ] {
            assert_eq!(refused(url).as_deref(), Some("private_address"), "{url}");
        }
        assert_eq!(refused("https://mutuelle.example.org./hook"), None);
        assert_eq!(refused("https://mutuelle.example.org/hook"), None);
    }
}
