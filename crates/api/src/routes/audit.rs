//! `/v1/audit-events`: the hash-chained log of every change, and its verification.

use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, Utc};
use passerelle_domain::audit::{canonical_at, AuditEvent, ChainBreak, ChainVerifier, RowDamage};
use passerelle_domain::error::{FieldError, StoreError};
use passerelle_domain::ports::{AuditFilter, AuditStore};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ListOf, PageQuery};
use crate::extract::{perm, AppQuery, Authorized, Caller};
use crate::problem::ApiError;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_audit_events))
        .routes(routes!(verify_audit_chain))
        .routes(routes!(get_audit_event))
}

/// One audited change or check. People are referenced by id only.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"seq": 42, "at": "2026-11-30T08:00:00.123456Z", "organization": "operator", "subject": "ops-console", "action": "organization.created", "resource_type": "organization", "resource_id": "mut-tsevie", "request_id": "0193a5b2-7c1e-7d3a-9f00-2b1c4e5d6f70", "digest": "5f1c…", "prev_digest": "9a0b…"}))]
pub struct AuditEventView {
    /// Position in the chain, from 1, without gaps.
    pub seq: i64,
    /// When the change or check happened (RFC 3339, UTC, microseconds).
    #[serde(serialize_with = "serialize_at")]
    pub at: DateTime<Utc>,
    /// The organisation whose caller acted.
    pub organization: String,
    /// The token's `sub`.
    pub subject: String,
    /// `<resource>.<verb>`, e.g. `organization.created`, `organization.read`.
    pub action: String,
    /// What was changed or read: `organization`, `product`, `beneficiary`, `coverage`,
    /// `contribution`, `claim`, `settlement`, `webhook`, `registration_batch`, `audit_event`…
    pub resource_type: String,
    /// Its id; `*` for a list, `beneficiary:<id>` or `coverage:<id>` for a filtered one.
    pub resource_id: String,
    /// The `X-Request-Id` of the request that made the change (`startup` for the operator's
    /// creation at first start).
    pub request_id: String,
    /// Lower-case hex SHA-256 over `prev_digest`, a newline and the event's canonical form: the
    /// JSON array `[seq, at (RFC 3339, microseconds, Z), organization, subject, action,
    /// resource_type, resource_id, request_id, prev_digest]`.
    pub digest: String,
    /// The previous event's digest; 64 zeros for the first event.
    pub prev_digest: String,
}

/// `at` exactly as the digest's canonical form holds it: six fractional digits and `Z`, also
/// at a whole second or millisecond, where chrono's own form would drop the trailing zeros and
/// a client re-hashing the event would find another digest.
fn serialize_at<S: serde::Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&canonical_at(at))
}

/// The answer for an event the API cannot serve: its stored `at` is no instant, so the row
/// was changed outside the service. Verification names it too; the message, logged, says so.
fn damaged(event: &AuditEvent) -> Option<ApiError> {
    match &event.damage {
        Some(RowDamage::AtUnreadable(_)) => Some(ApiError::AuditLogDamaged { seq: event.seq }),
        // The instant is intact, and the digest covers it: served as written.
        Some(RowDamage::AtRespelled(_)) | None => None,
    }
}

impl From<AuditEvent> for AuditEventView {
    fn from(e: AuditEvent) -> Self {
        AuditEventView {
            seq: e.seq,
            at: e.at,
            organization: e.organization,
            subject: e.subject,
            action: e.action,
            resource_type: e.resource_type,
            resource_id: e.resource_id,
            request_id: e.request_id,
            digest: e.digest,
            prev_digest: e.prev_digest,
        }
    }
}

/// The result of walking the whole chain.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"valid": false, "events_checked": 7, "first_invalid_seq": 7,
    "failure": "digest_mismatch", "head_seq": 9,
    "head_digest": "4f1c0b6e9a8d7c2b5e3f1a0d9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b"}))]
pub struct VerificationView {
    /// True when every event is in place and matches its digest and its link to the previous one.
    pub valid: bool,
    /// Events examined: all of them when valid, else up to and including the first invalid one.
    pub events_checked: u64,
    /// The first event whose digest, link or position is wrong; absent when valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub first_invalid_seq: Option<i64>,
    /// What was wrong there; absent when valid (described in `chain_failure`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, schema_with = chain_failure)]
    pub failure: Option<&'static str>,
    /// The chain's head as recorded when the walk began: the newest event's `seq` (0 when
    /// empty), which the walk must reach.
    pub head_seq: i64,
    /// That event's digest. Kept outside the database (a daily copy, say), it lets a later
    /// verification show that the log was not cut back and its head rewritten to match.
    pub head_digest: String,
}

/// `VerificationView::failure`: one of `ChainBreak::ALL`.
fn chain_failure() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(ChainBreak::ALL.map(ChainBreak::code)))
        .description(Some(
            "What was wrong at `first_invalid_seq`; absent when valid. `out_of_sequence`: the \
             event is not the next `seq` (events before it deleted, or a row stored out of place). \
             `malformed_row`: a row storage could not have written. `link_mismatch`: its \
             `prev_digest` is not the previous event's digest (the previous event rewritten with \
             a recomputed digest, or this one put in another's place). `digest_mismatch`: its \
             content or its digest was edited. `missing_tail`: the walk ended before the recorded \
             head, at the first event missing (the newest events deleted). `head_mismatch`: the \
             event at `head_seq` is intact and chained but is not the one the head records: \
             either that event was rewritten with a recomputed digest or the record of the head \
             was altered; a head kept outside the database tells which. `head_behind`: intact \
             events go on past the head as recorded once the walk ended, from the one named (the \
             record of the head moved back, or a row stored after it): no event can be chained \
             after that head, so changes' events wait in the queue and eligibility checks fail \
             until it is put right.",
        ))
        .examples(["digest_mismatch"])
        .build()
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Events of this organisation's callers. Organisations other than operators and auditors
    /// only ever see their own.
    pub organization: Option<String>,
    /// Events about this kind of resource, e.g. `claim` or `coverage`.
    pub resource_type: Option<String>,
    /// Events about the resource with this id (with `resource_type` to be unambiguous).
    pub resource_id: Option<String>,
    /// Events of this action, e.g. `claim.submitted` or `organization.read`.
    pub action: Option<String>,
    /// RFC 3339 instant or `YYYY-MM-DD` (00:00 UTC): events at or after it.
    #[param(value_type = Option<Since>, inline)]
    pub since: Option<String>,
}

/// A `since` query parameter as [`parse_since`] reads it: an RFC 3339 instant or a `YYYY-MM-DD`
/// date. `anyOf`, not `oneOf`: where `format` is an annotation only, every string would match
/// both and `oneOf` would refuse them all. Schema only (inlined).
pub(crate) struct Since;

impl utoipa::PartialSchema for Since {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        since_schema()
    }
}

impl ToSchema for Since {}

fn since_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{AnyOfBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
    let string = |format| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(format)))
    };
    // chrono's `parse_from_rfc3339` also takes a space for the `T` (RFC 3339 §5.6's note).
    let spaced = ObjectBuilder::new().schema_type(Type::String).pattern(Some(
        r"^[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01]) (?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)(?:\.[0-9]+)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})$",
    ));
    let any_of = AnyOfBuilder::new()
        .item(string(KnownFormat::DateTime))
        .item(string(KnownFormat::Date))
        .item(spaced)
        .build();
    utoipa::openapi::RefOr::T(Schema::AnyOf(any_of))
}

/// The first stored instant at or after `t`: instants are kept to the microsecond, so one between
/// two microseconds is after the first. PostgreSQL would round it to the nearer one, keeping
/// what changed during that microsecond but before the instant.
fn next_microsecond(t: DateTime<Utc>) -> DateTime<Utc> {
    match t.timestamp_subsec_nanos() % 1_000 {
        0 => t,
        past => t
            .checked_add_signed(chrono::Duration::nanoseconds(i64::from(1_000 - past)))
            .unwrap_or(t),
    }
}

/// RFC 3339's leap second (`23:59:60.5`) as the instant it is, half a second into the next
/// minute: chrono keeps it as the 59th second with a fraction past one, which SQLite, comparing
/// text, placed before that minute (`…:60` sorts before the next minute's `…:00`) where
/// PostgreSQL reads it as after.
fn without_leap_second(t: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::Timelike;
    match t.nanosecond().checked_sub(1_000_000_000) {
        Some(past) => t
            .with_nanosecond(past)
            .and_then(|t| t.checked_add_signed(chrono::Duration::seconds(1)))
            .unwrap_or(t),
        None => t,
    }
}

pub fn parse_since(raw: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    if let Ok(instant) = DateTime::parse_from_rfc3339(raw) {
        // `9999-12-31T23:59:59-00:01` is in the year 10000 once in UTC, which SQLite, comparing
        // the text `+10000-…`, would place before every stored time: such an instant is after
        // all of them, as the last instant of 9999 is.
        let last = chrono::NaiveDate::from_ymd_opt(9999, 12, 31)
            .and_then(|d| d.and_hms_micro_opt(23, 59, 59, 999_999))
            .map_or(DateTime::<Utc>::MAX_UTC, |t| t.and_utc());
        return Ok(Some(
            next_microsecond(without_leap_second(instant.with_timezone(&Utc))).min(last),
        ));
    }
    if let Some(date) = passerelle_domain::dates::parse(raw) {
        if let Some(midnight) = date.and_hms_opt(0, 0, 0) {
            return Ok(Some(midnight.and_utc()));
        }
    }
    Err(ApiError::field(FieldError::new(
        "/query/since",
        "invalid_format",
        "must be an RFC 3339 instant or a date YYYY-MM-DD",
        "doit être un instant RFC 3339 ou une date AAAA-MM-JJ",
    )))
}

/// The reads of the organisations that read everything, operators and auditors, are themselves
/// audited (API.md §2; DOMAIN.md: every read of personal data by an auditor or an operator).
pub async fn record_read(
    state: &AppState,
    caller: &Caller,
    resource_type: &str,
    resource_id: &str,
) -> Result<(), ApiError> {
    if !caller.reads_everything() {
        return Ok(());
    }
    let ctx = caller.write_context(state, None);
    state
        .store
        .append_audit(&[ctx.audit(&format!("{resource_type}.read"), resource_type, resource_id)])
        .await?;
    Ok(())
}

/// List audit events, newest first.
///
/// Operators and auditors see every organisation's events and may filter by `organization`;
/// any other organisation with `audit:read` sees only its own callers' events, and a filter
/// naming another organisation answers an empty list. A bad `since` is 422 on `/query/since`.
///
/// The list includes every change answered before this request: a change's events are written
/// in its own transaction and chained within milliseconds, and this request first waits for the
/// chaining of whatever is still queued. The same holds for reading one event and for verify.
#[utoipa::path(
    get,
    path = "/v1/audit-events",
    tag = "audit",
    params(PageQuery, AuditQuery),
    responses((status = 200, description = "A page of events, newest first", body = ListOf<AuditEventView>)),
    security(("bearer" = ["audit:read"]))
)]
pub async fn list_audit_events(
    State(state): State<AppState>,
    auth: Authorized<perm::ReadAuditEvents>,
    AppQuery(page): AppQuery<PageQuery>,
    AppQuery(query): AppQuery<AuditQuery>,
) -> Result<Json<ListOf<AuditEventView>>, ApiError> {
    let page = page.parse()?;
    let since = parse_since(query.since.as_deref())?;
    let caller = &auth.caller;
    let organization = if caller.reads_everything() {
        query.organization
    } else {
        match query.organization {
            // Another organisation's events are not visible: an empty list, as for any filter
            // naming a resource the caller may not see.
            Some(other) if other != caller.org.as_str() => {
                return Ok(Json(ListOf {
                    items: Vec::new(),
                    next_cursor: None,
                }));
            }
            _ => Some(caller.org.to_string()),
        }
    };
    let filter = AuditFilter {
        organization,
        resource_type: query.resource_type,
        resource_id: query.resource_id,
        action: query.action,
        since,
    };
    let result = state.store.list_audit_events(&filter, &page).await?;
    if let Some(error) = result.items.iter().find_map(damaged) {
        return Err(error);
    }
    record_read(&state, caller, "audit_event", "*").await?;
    Ok(Json(ListOf::from_page(result, AuditEventView::from)))
}

/// Read one audit event.
///
/// By its `seq`. Operators and auditors read any event; other organisations with `audit:read`
/// only their own callers' (404 otherwise, and for a `seq` that is not a number).
#[utoipa::path(
    get,
    path = "/v1/audit-events/{seq}",
    tag = "audit",
    params(("seq" = i64, Path, description = "Position in the chain")),
    responses(
        (status = 200, description = "The event", body = AuditEventView),
        (status = 404, description = "No such event, or another organisation's", body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["audit:read"]))
)]
pub async fn get_audit_event(
    State(state): State<AppState>,
    auth: Authorized<perm::ReadAuditEvents>,
    Path(seq): Path<String>,
) -> Result<Json<AuditEventView>, ApiError> {
    // Digits only: `+1` or ` 1` names no event, though Rust's integer parser would read it.
    if !seq.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::NotFound);
    }
    let seq: i64 = seq.parse().map_err(|_| ApiError::NotFound)?;
    let event = state.store.get_audit_event(seq).await?.ok_or(ApiError::NotFound)?;
    if !auth.caller.reads_everything() && event.organization != auth.caller.org.as_str() {
        return Err(ApiError::NotFound);
    }
    if let Some(error) = damaged(&event) {
        return Err(error);
    }
    record_read(&state, &auth.caller, "audit_event", &seq.to_string()).await?;
    Ok(Json(event.into()))
}

/// Walks the whole chain from its lowest stored `seq`, which must be 1: the API's
/// `GET /v1/audit-events/verify` and `passerelle audit verify` alike.
pub async fn verify_chain(store: &dyn AuditStore) -> Result<VerificationView, StoreError> {
    const PAGE: u32 = 1000;
    // Every change committed before is chained first, so that the walk covers it; a chain that
    // cannot grow is walked as it stands, and the walk names why.
    match store.flush_audit().await {
        Ok(()) | Err(StoreError::ChainBlocked(_)) => {}
        Err(e) => return Err(e),
    }
    // The head next: the walk must reach it. Events chained while the walk runs continue the
    // chain and are checked as well; so is any row stored beyond the head.
    let (head_seq, head_digest) = store.audit_head().await?;
    let mut verifier = ChainVerifier::up_to_head(head_seq, &head_digest);
    // Every row the list shows, from the lowest `seq` there can be: a row stored before the
    // first event (`seq` 0 or below, which the schema refuses since migration 21) is the first
    // one walked, and fails as out of place.
    let mut from = Some(i64::MIN);
    while let Some(first) = from {
        let events = store.audit_events_from(first, PAGE).await?;
        let Some(last) = events.last() else { break };
        let full = events.len() == PAGE as usize;
        from = (events.iter().all(|e| verifier.push(e)) && full)
            .then(|| last.seq.checked_add(1))
            .flatten();
    }
    // Read again: a chain that goes on past the head it has now was moved back behind events.
    let (head_now, _) = store.audit_head().await?;
    let v = verifier.finish_at_head(head_now);
    Ok(VerificationView {
        valid: v.valid,
        events_checked: v.events_checked,
        first_invalid_seq: v.first_invalid_seq,
        failure: v.failure.map(|f| f.code()),
        head_seq,
        head_digest,
    })
}

/// Verify the whole chain (operators and auditors).
///
/// Walks every stored event in `seq` order, from the lowest (which must be 1) up to the chain's
/// recorded head, recomputing each digest and checking each link to the previous event and that
/// no `seq` is missing; stops at the first event that fails (a row stored before `seq` 1 is
/// named by its own `seq`). The walk must reach the head's `seq` and find its digest there, so
/// deleting the newest events (or all of them) names the first one missing; events chained
/// meanwhile, and any row stored beyond the head, are walked too. The answer carries the head: kept outside
/// the database, it finds a log cut back with its head rewritten to match. Only
/// `operator` and `auditor` organisations may call this (403 for other kinds); the verification
/// is itself audited. The walk is bound by the request timeout (503 past it): verify a log of
/// hundreds of thousands of events with `passerelle audit verify`, which has none.
#[utoipa::path(
    get,
    path = "/v1/audit-events/verify",
    tag = "audit",
    responses((status = 200, description = "Whether every stored event still matches its digest and link", body = VerificationView)),
    security(("bearer" = ["audit:read"]))
)]
pub async fn verify_audit_chain(
    State(state): State<AppState>,
    auth: Authorized<perm::VerifyAudit>,
) -> Result<Json<VerificationView>, ApiError> {
    let result = verify_chain(state.store.as_ref()).await?;
    let ctx = auth.caller.write_context(&state, None);
    match state
        .store
        .append_audit(&[ctx.audit("audit_event.read", "audit_event", "verify")])
        .await
    {
        Ok(()) => {}
        // A chain that cannot grow cannot record this read either; the answer, which names
        // why, is what the operator needs to put it right.
        Err(StoreError::ChainBlocked(e)) if !result.valid => {
            tracing::warn!(error = %e, "a verification of the blocked audit chain could not be recorded");
        }
        Err(e) => return Err(e.into()),
    }
    Ok(Json(result))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leap_second_is_the_instant_after_the_minute() {
        let at = |raw: &str| parse_since(Some(raw)).ok().flatten().map(|t| t.to_rfc3339());
        assert_eq!(at("2026-12-06T23:13:60.500Z"), at("2026-12-06T23:14:00.500Z"));
        assert_eq!(at("2026-12-31T23:59:60Z"), at("2027-01-01T00:00:00Z"));
        assert_eq!(at("2026-12-06T23:14:00.5000001Z"), at("2026-12-06T23:14:00.500001Z"));
        assert_eq!(at("2026-12-06T23:14:00Z").as_deref(), Some("2026-12-06T23:14:00+00:00"));
    }
}
