//! `/v1/settlements`: a mutuelle's batch of adjudicated claims owed to one payee for a period,
//! and the payments that settle it.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::NaiveDate;
use passerelle_domain::claim::Claim;
use passerelle_domain::error::FieldError;
use passerelle_domain::money::{grouped_en, grouped_fr};
use passerelle_domain::money::{Xof, MAX_XOF};
use passerelle_domain::organization::{OrgId, OrgKind};
use passerelle_domain::pagination::PageRequest;
use passerelle_domain::ports::{SettlementError, SettlementFilter};
use passerelle_domain::settlement::{Payment, PaymentRefusal, Settlement, SettlementStatus, SettlementSummary};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ListOf, PageQuery};
use crate::extract::{perm, replayed, AppQuery, Authorized, Caller, IdempotentJson};
use crate::fields::Fields;
use crate::problem::ApiError;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_settlement, list_settlements))
        .routes(routes!(get_settlement))
        .routes(routes!(add_payment))
}

/// A payment towards a settlement.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "01937f11-3c4d-7e5f-8a61-7b8c9d0e1f20", "amount_xof": 1000, "paid_at": "2026-11-30", "reference": "VIR-4411"}))]
pub struct PaymentView {
    /// Payment id, chosen by the server.
    pub id: String,
    /// The amount paid, in XOF.
    pub amount_xof: i64,
    /// The day it was paid.
    pub paid_at: NaiveDate,
    /// The transfer's or cheque's reference.
    pub reference: String,
}

/// A settlement batch (*bordereau*).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "01937f10-2b3c-7d4e-8f50-6a7b8c9d0e1f", "mutuelle": "mut-tsevie", "payee": "cms-tsevie",
    "period_start": "2026-11-01", "period_end": "2026-11-30", "status": "partially_paid",
    "claims": ["01937f0f-1a2b-7c3d-8e4f-5a6b7c8d9e0f"], "claim_count": 1, "total_xof": 2001, "paid_xof": 1000,
    "payments": [{"id": "01937f11-3c4d-7e5f-8a61-7b8c9d0e1f20", "amount_xof": 1000, "paid_at": "2026-11-30", "reference": "VIR-4411"}]}))]
pub struct SettlementView {
    /// Settlement id, chosen by the server.
    pub id: String,
    /// The mutuelle that owes and pays it.
    pub mutuelle: String,
    /// The health facility paid.
    pub payee: String,
    /// The first service date of the period, inclusive.
    pub period_start: NaiveDate,
    /// The last service date of the period, inclusive.
    pub period_end: NaiveDate,
    /// `open`, `partially_paid` or `paid`.
    pub status: String,
    /// The claims in the batch (their ids); each claim is in at most one batch.
    pub claims: Vec<String>,
    /// How many claims.
    pub claim_count: usize,
    /// The sum of its claims' complementary shares.
    pub total_xof: i64,
    /// The sum of its payments so far.
    pub paid_xof: i64,
    /// Its payments, in the order recorded.
    pub payments: Vec<PaymentView>,
}

impl From<Settlement> for SettlementView {
    fn from(s: Settlement) -> Self {
        SettlementView {
            id: s.id,
            mutuelle: s.mutuelle,
            payee: s.payee,
            period_start: s.period_start,
            period_end: s.period_end,
            status: s.status.as_str().to_owned(),
            claim_count: s.claims.len(),
            claims: s.claims,
            total_xof: s.total_xof.value(),
            paid_xof: s.paid_xof.value(),
            payments: s
                .payments
                .into_iter()
                .map(|p| PaymentView {
                    id: p.id,
                    amount_xof: p.amount_xof.value(),
                    paid_at: p.paid_at,
                    reference: p.reference,
                })
                .collect(),
        }
    }
}

/// A settlement batch as `GET /v1/settlements` lists it: without its claims and payments, which
/// `GET /v1/settlements/{id}` gives.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "01937f10-2b3c-7d4e-8f50-6a7b8c9d0e1f", "mutuelle": "mut-tsevie", "payee": "cms-tsevie",
    "period_start": "2026-11-01", "period_end": "2026-11-30", "status": "partially_paid",
    "claim_count": 1, "total_xof": 2001, "paid_xof": 1000}))]
pub struct SettlementSummaryView {
    /// Settlement id, chosen by the server.
    pub id: String,
    /// The mutuelle that owes and pays it.
    pub mutuelle: String,
    /// The health facility paid.
    pub payee: String,
    /// The first service date of the period, inclusive.
    pub period_start: NaiveDate,
    /// The last service date of the period, inclusive.
    pub period_end: NaiveDate,
    /// `open`, `partially_paid` or `paid`.
    pub status: String,
    /// How many claims.
    pub claim_count: u64,
    /// The sum of its claims' complementary shares.
    pub total_xof: i64,
    /// The sum of its payments so far.
    pub paid_xof: i64,
}

impl From<SettlementSummary> for SettlementSummaryView {
    fn from(s: SettlementSummary) -> Self {
        SettlementSummaryView {
            id: s.id,
            mutuelle: s.mutuelle,
            payee: s.payee,
            period_start: s.period_start,
            period_end: s.period_end,
            status: s.status.as_str().to_owned(),
            claim_count: s.claim_count,
            total_xof: s.total_xof.value(),
            paid_xof: s.paid_xof.value(),
        }
    }
}

/// The body of `POST /v1/settlements`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"payee": "cms-tsevie", "period_start": "2026-11-01", "period_end": "2026-11-30"}))]
pub struct SettlementCreate {
    /// The provider owed (an organisation of kind `provider`; 422 `unknown_reference` otherwise).
    pub payee: String,
    /// The first service date of the period, inclusive.
    pub period_start: NaiveDate,
    /// The last service date of the period, inclusive; on or after `period_start`.
    pub period_end: NaiveDate,
}

/// The body of `POST /v1/settlements/{id}/payments`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"amount_xof": 1000, "paid_at": "2026-11-30", "reference": "VIR-4411"}))]
pub struct PaymentCreate {
    /// From 1 to what is still due (`total_xof - paid_xof`).
    // `add_payment`: `1..=MAX_XOF`, then at most what is due.
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
    pub amount_xof: i64,
    /// The day it was paid; not in the future.
    pub paid_at: NaiveDate,
    /// The transfer's or cheque's reference: 1–100 characters, not all white space, without
    /// control or invisible formatting characters (422 `invalid_characters`). Compared ignoring
    /// case and how characters are written (Unicode NFKC: an accent composed or not, a no-break
    /// space, full-width letters) for `duplicate_reference`.
    // `fields::reference_error`.
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub reference: String,
}

fn settlement_error(e: SettlementError) -> ApiError {
    match e {
        SettlementError::Store(s) => s.into(),
        SettlementError::Empty => ApiError::field(FieldError::new(
            "",
            "empty_batch",
            "no adjudicated, unsettled claim of yours for this payee and period",
            "aucune demande liquidée et non réglée de votre part pour ce prestataire et cette période",
        )),
        SettlementError::TooLarge => ApiError::field(FieldError::new(
            "",
            "batch_too_large",
            "the claims of this payee and period owe together more than one batch can total: batch a shorter period",
            "les demandes de ce prestataire et de cette période dépassent ensemble le total qu'un bordereau peut atteindre : constituez le bordereau sur une période plus courte",
        )),
        SettlementError::Refused(PaymentRefusal::AlreadyPaid) => already_paid(),
        SettlementError::Refused(PaymentRefusal::Overpayment { due }) => ApiError::field(FieldError::new(
            "/amount_xof",
            "exceeds_amount_due",
            format!("exceeds the amount still due, {} XOF", grouped_en(due.value())),
            format!("dépasse le montant restant dû, {} XOF", grouped_fr(due.value())),
        )),
    }
}

/// Batch your adjudicated, unsettled claims owed to one payee for a period of service dates.
///
/// Mutuelles only, with `settlements:write` (403 for other kinds). The batch takes every claim
/// routed to you, `adjudicated`, from this provider, with a service date in the period and in no
/// other batch; when there is none, 422 `empty_batch` (and when they would total more than
/// 9,007,199,254,740,991 XOF, 2^53 − 1, the largest integer a JSON reader keeping numbers as
/// doubles reads exactly, 422 `batch_too_large`: batch a shorter period). `total_xof` is the sum of their
/// complementary shares; claims adjudicated with nothing owed are batched too. Answers 201 with
/// the batch, `open`, and its `Location`; a batch whose total is 0 (only such claims) is `paid`
/// at once and its claims `settled` (subscribers receive `claim.settled`).
#[utoipa::path(
    post,
    path = "/v1/settlements",
    tag = "settlements",
    request_body = SettlementCreate,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for the same request")),
    responses(
        (status = 201, description = "Created, `open` (or `paid` at once when it totals 0); `Location` names it", body = SettlementView,
         headers(("Location" = String, description = "/v1/settlements/{id}")),
         example = json!({"id": "01937f10-2b3c-7d4e-8f50-6a7b8c9d0e1f", "mutuelle": "mut-tsevie", "payee": "cms-tsevie",
             "period_start": "2026-11-01", "period_end": "2026-11-30", "status": "open",
             "claims": ["01937f0f-1a2b-7c3d-8e4f-5a6b7c8d9e0f"], "claim_count": 1, "total_xof": 2001, "paid_xof": 0, "payments": []})),
    ),
    security(("bearer" = ["settlements:write"]))
)]
pub async fn create_settlement(
    State(state): State<AppState>,
    auth: Authorized<perm::WriteSettlements>,
    IdempotentJson { body, idempotency }: IdempotentJson<Map<String, Value>>,
) -> Result<Response, ApiError> {
    if let Some(first) = replayed::<Settlement>(&state, &auth.caller, idempotency.as_ref()).await? {
        let view = SettlementView::from(first);
        return Ok(super::created(format!("/v1/settlements/{}", view.id), &view));
    }
    let mut f = Fields::new(&body);
    let mut errors = Vec::new();
    let payee = f.str("payee");
    let start = crate::fields::required_date(&mut f, "period_start", state.clock.today(), &mut errors);
    let end = crate::fields::required_date(&mut f, "period_end", state.clock.today(), &mut errors);
    errors.extend(f.finish());
    if let (Some(s), Some(e)) = (start, end) {
        if e < s {
            errors.push(FieldError::new(
                "/period_end",
                "before_period_start",
                "must be on or after period_start",
                "ne doit pas précéder period_start",
            ));
        }
    }
    if let Some(p) = &payee {
        let org = state.store.get_organization(p).await?;
        if org.is_none_or(|o| o.kind != OrgKind::Provider) {
            errors.push(FieldError::unknown_reference("/payee"));
        }
    }
    let (Some(payee), Some(start), Some(end)) = (payee, start, end) else {
        return Err(ApiError::validation(errors));
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let ctx = auth.caller.write_context(&state, idempotency);
    let id = uuid::Uuid::now_v7().to_string();
    let settlement = state
        .store
        .create_settlement(&ctx, &id, &payee, (start, end))
        .await
        .map_err(settlement_error)?;
    let view = SettlementView::from(settlement);
    Ok(super::created(format!("/v1/settlements/{}", view.id), &view))
}

fn visible(caller: &Caller, s: &Settlement) -> bool {
    caller.reads_everything() || s.mutuelle == caller.org.as_str() || s.payee == caller.org.as_str()
}

pub const CSV_COLUMNS: [&str; 10] = [
    "claim_id",
    "external_id",
    "beneficiary",
    "service_date",
    "care_level",
    "status",
    "billed_xof",
    "base_xof",
    "complementary_xof",
    "patient_xof",
];

/// The bordereau as CSV, for the mutuelle's accountant: a UTF-8 byte order mark first (without
/// it spreadsheets read the file as Latin-1), and every text cell written as the import's error
/// report writes its own (`csv_field`: `external_id` is the provider's free text, and
/// `=HYPERLINK(…)`, or `X;=1+1` in a French locale, would run as a formula). Amounts stay numbers.
/// Lines end with `\n`, as in the error reports and the files this service reads.
fn to_csv(claims: &[Claim], separator: &str) -> Result<Vec<u8>, ApiError> {
    use crate::import::csv_field as text;
    let mut out = String::from("\u{FEFF}");
    out.push_str(&CSV_COLUMNS.join(separator));
    out.push('\n');
    for c in claims {
        let cells = [
            text(&c.id),
            text(&c.external_id),
            text(&c.beneficiary),
            text(&c.service_date.to_string()),
            text(c.care_level.as_str()),
            text(c.status.as_str()),
            c.totals.billed_xof.value().to_string(),
            c.totals.base_xof.value().to_string(),
            c.totals.complementary_xof.value().to_string(),
            c.totals.patient_xof.value().to_string(),
        ];
        out.push_str(&cells.join(separator));
        out.push('\n');
    }
    Ok(out.into_bytes())
}

/// A qvalue (RFC 9110 §12.4.2) in thousandths; `None` when it is not one.
fn qvalue(raw: &str) -> Option<u16> {
    let (whole, fraction) = raw.split_once('.').unwrap_or((raw, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths: u16 = format!("{fraction:0<3}").parse().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// How `accept` weighs `kind/subtype`: from the most specific range that names it (`text/csv`
/// before `text/*` before `*/*`), its qvalue, that specificity and the range's position; `None`
/// when no range names it. A range with a malformed `q` is ignored; media type parameters other
/// than `q` are not compared.
fn weigh(accept: &str, kind: &str, subtype: &str) -> Option<(u16, u8, usize)> {
    let mut best: Option<(u16, u8, usize)> = None;
    for (position, range) in accept.split(',').enumerate() {
        let mut parts = range.split(';');
        let Some((t, s)) = parts.next().unwrap_or_default().trim().split_once('/') else {
            continue;
        };
        let (t, s) = (t.trim(), s.trim());
        let specificity = if t.eq_ignore_ascii_case(kind) && s.eq_ignore_ascii_case(subtype) {
            2
        } else if t.eq_ignore_ascii_case(kind) && s == "*" {
            1
        } else if t == "*" && s == "*" {
            0
        } else {
            continue;
        };
        let mut q = Some(1000);
        for param in parts {
            if let Some((name, value)) = param.split_once('=') {
                if name.trim().eq_ignore_ascii_case("q") {
                    q = qvalue(value.trim());
                }
            }
        }
        let Some(q) = q else { continue };
        if best.is_none_or(|(_, known, _)| specificity > known) {
            best = Some((q, specificity, position));
        }
    }
    best
}

/// Whether `Accept` asks for CSV rather than JSON (RFC 9110 §12.5.1): `text/csv` must be
/// acceptable (`q` above 0) and weigh more than `application/json` — a higher `q`, or the same
/// `q` from a more specific range (`text/csv` against `*/*`), or else listed first. Without
/// `Accept`, JSON.
pub(crate) fn prefers_csv(accept: Option<&str>) -> bool {
    let Some(accept) = accept else { return false };
    let Some(csv) = weigh(accept, "text", "csv").filter(|(q, _, _)| *q > 0) else {
        return false;
    };
    match weigh(accept, "application", "json") {
        None => true,
        Some(json) => (csv.0, csv.1, std::cmp::Reverse(csv.2)) > (json.0, json.1, std::cmp::Reverse(json.2)),
    }
}

/// Read a settlement, as JSON or CSV.
///
/// Readable, with `claims:read`, by its mutuelle, its payee, operators and auditors (404 for
/// anyone else; 403 for schemes). `paid_xof` and `status` are always those of the `payments`
/// listed, even while a payment is being recorded. CSV is sent when `Accept` prefers `text/csv`
/// to `application/json`, weighed by their `q` (RFC 9110: `q=0` is not acceptable; on equal `q`
/// the more specific range, then the one listed first, wins), JSON otherwise and without
/// `Accept`. The CSV starts with a UTF-8 byte order mark, then one row per claim with the
/// columns `claim_id, external_id, beneficiary, service_date, care_level, status, billed_xof,
/// base_xof, complementary_xof, patient_xof` (each claim's totals); a text cell that a
/// spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage
/// return) is written after a `'`. `?separator=semicolon` separates the cells with `;`, which a
/// spreadsheet in a French locale expects when it opens a file (it shows a comma-separated file
/// as a single column). Both forms are sent with `Vary: Accept` and
/// `Cache-Control: private, no-store`.
#[utoipa::path(
    get,
    path = "/v1/settlements/{id}",
    tag = "settlements",
    params(("id" = String, Path, description = "Settlement id"), SettlementReadQuery),
    responses(
        (status = 200, description = "The settlement", content(
            (SettlementView = "application/json"),
            (String = "text/csv", example = "\u{FEFF}claim_id,external_id,beneficiary,service_date,care_level,status,billed_xof,base_xof,complementary_xof,patient_xof\n01937f0f-1a2b-7c3d-8e4f-5a6b7c8d9e0f,CMS-2026-000123,01937f0e-6c2a-7d3b-9e0f-1a2b3c4d5e6f,2026-11-28,health_center,adjudicated,10001,8000,2001,0\n")
        ), headers(
            ("Vary" = String, description = "`Accept`"),
            ("Cache-Control" = String, description = "`private, no-store`"),
            ("Content-Disposition" = String, description = "CSV only: `attachment; filename=\"settlement-<id>.csv\"`, the name a browser saves it under")
        )),
        (status = 404, description = "No such settlement, or not yours", body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["claims:read"]))
)]
pub async fn get_settlement(
    State(state): State<AppState>,
    auth: Authorized<perm::ReadSettlements>,
    Path(id): Path<String>,
    AppQuery(query): AppQuery<SettlementReadQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let separator = csv_separator(query.separator.as_deref())?;
    let settlement = match state.store.get_settlement(&id).await? {
        Some(s) if visible(&auth.caller, &s) => s,
        _ => return Err(ApiError::NotFound),
    };
    crate::routes::audit::record_read(&state, &auth.caller, "settlement", &id).await?;
    // The form follows `Accept`, and the body names beneficiaries: no shared cache may keep it
    // or answer another `Accept` with it.
    let caching = CSV_OR_JSON_CACHING;
    if wants_csv(&headers) {
        let claims = state.store.settlement_claims(&id).await?;
        let body = to_csv(&claims, separator)?;
        let file = attachment(&format!("settlement-{id}.csv"));
        return Ok((
            caching,
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/csv; charset=utf-8"),
                ),
                file,
            ],
            body,
        )
            .into_response());
    }
    Ok((caching, Json(SettlementView::from(settlement))).into_response())
}

/// `Content-Disposition` naming the file a browser saves a CSV answer as (RFC 6266); the names
/// are made of ids the service issued, which need no quoting.
pub(crate) fn attachment(file: &str) -> (header::HeaderName, HeaderValue) {
    let value = HeaderValue::from_str(&format!("attachment; filename=\"{file}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    (header::CONTENT_DISPOSITION, value)
}

/// `Vary` and `Cache-Control` of a resource answered as JSON or CSV, whose body is for its
/// reader alone.
pub(crate) const CSV_OR_JSON_CACHING: [(header::HeaderName, &str); 2] =
    [(header::VARY, "Accept"), (header::CACHE_CONTROL, "private, no-store")];

/// Whether the request's `Accept` prefers CSV (`prefers_csv`); several `Accept` lines are one
/// list (RFC 9110 §5.3).
pub(crate) fn wants_csv(headers: &HeaderMap) -> bool {
    let accept: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    prefers_csv((!accept.is_empty()).then(|| accept.join(",")).as_deref())
}

/// A CSV form's `separator`: `comma` (the default) or `semicolon`; another value is 422
/// `unknown_value` on `/query/separator`.
pub(crate) fn csv_separator(raw: Option<&str>) -> Result<&'static str, ApiError> {
    match raw {
        None | Some("comma") => Ok(","),
        Some("semicolon") => Ok(";"),
        Some(_) => Err(ApiError::field(FieldError::new(
            "/query/separator",
            "unknown_value",
            "must be comma or semicolon",
            "doit être comma ou semicolon",
        ))),
    }
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SettlementReadQuery {
    /// The CSV form's cell separator: `comma` (the default) or `semicolon`, for a spreadsheet in
    /// a French locale (another value is 422 `unknown_value` on `/query/separator`). The JSON
    /// form ignores it.
    #[param(value_type = Option<CsvSeparator>, inline)]
    pub separator: Option<String>,
}

/// The `separator` values. Schema only (inlined).
pub struct CsvSeparator;

impl utoipa::PartialSchema for CsvSeparator {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        super::claims::string_enum(&["comma", "semicolon"])
    }
}

impl ToSchema for CsvSeparator {}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SettlementQuery {
    /// Only the batches paying this provider (an organisation id; one that names no provider is
    /// 422 `unknown_reference` on `/query/payee`).
    pub payee: Option<String>,
    /// Only the batches in this state: `open`, `partially_paid` or `paid` (another value is 422
    /// `unknown_value` on `/query/status`).
    #[param(value_type = Option<SettlementStatusFilter>, inline)]
    pub status: Option<String>,
}

/// The `status` filter: the values `SettlementStatus::parse` reads. Schema only (inlined).
pub struct SettlementStatusFilter;

impl utoipa::PartialSchema for SettlementStatusFilter {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        super::claims::string_enum(
            &[
                SettlementStatus::Open,
                SettlementStatus::PartiallyPaid,
                SettlementStatus::Paid,
            ]
            .map(SettlementStatus::as_str),
        )
    }
}

impl ToSchema for SettlementStatusFilter {}

/// List the settlements you owe or are paid by, newest first.
///
/// With `claims:read`, as a single settlement is readable: a mutuelle sees the batches it
/// created, a provider those that pay it, operators and auditors every batch (403 for schemes).
/// Each is the batch without its `claims` and `payments` lists (read
/// `GET /v1/settlements/{id}` for those), with `claim_count`, `total_xof` and `paid_xof`.
/// Filter by `payee` and `status`, e.g. a mutuelle looking for the batch whose answer it lost
/// with `payee=cms-tsevie&status=open`, or a provider for what is still owed to it.
#[utoipa::path(
    get,
    path = "/v1/settlements",
    tag = "settlements",
    params(PageQuery, SettlementQuery),
    responses(
        (status = 200, description = "A page of settlements, newest first", body = ListOf<SettlementSummaryView>),
    ),
    security(("bearer" = ["claims:read"]))
)]
pub async fn list_settlements(
    State(state): State<AppState>,
    auth: Authorized<perm::ReadSettlements>,
    AppQuery(page): AppQuery<PageQuery>,
    AppQuery(query): AppQuery<SettlementQuery>,
) -> Result<Json<ListOf<SettlementSummaryView>>, ApiError> {
    // Every broken rule of the query at once (API.md §4).
    let mut errors = Vec::new();
    let page = match page.parse() {
        Ok(page) => page,
        Err(ApiError::Validation(mut e)) => {
            errors.append(&mut e);
            PageRequest::first(1)
        }
        Err(e) => return Err(e),
    };
    let status = query.status.as_deref().and_then(|raw| {
        let status = SettlementStatus::parse(raw);
        if status.is_none() {
            errors.push(FieldError::new(
                "/query/status",
                "unknown_value",
                "must be open, partially_paid or paid",
                "doit être open, partially_paid ou paid",
            ));
        }
        status
    });
    if let Some(payee) = &query.payee {
        let provider = match OrgId::parse(payee) {
            Some(_) => state
                .store
                .get_organization(payee)
                .await?
                .is_some_and(|o| o.kind == OrgKind::Provider),
            None => false,
        };
        if !provider {
            errors.push(FieldError::unknown_reference("/query/payee"));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let caller = &auth.caller;
    let filter = SettlementFilter {
        party: (!caller.reads_everything()).then(|| caller.org.to_string()),
        payee: query.payee,
        status,
    };
    let result = state.store.list_settlements(&filter, &page).await?;
    crate::routes::audit::record_read(&state, caller, "settlement", "*").await?;
    Ok(Json(ListOf::from_page(result, SettlementSummaryView::from)))
}

/// Record a payment (the settlement's mutuelle).
///
/// With `settlements:write`, on your own settlements (403 for other kinds, 404 for a settlement
/// that is not yours). A payment whose `reference` is already recorded on the batch, in any
/// case or Unicode form, is 409 `duplicate_reference` at `/reference`, whatever its amount (one transfer entered
/// twice counts once; a retry with its `Idempotency-Key` replays). Otherwise payments add up:
/// one that would pass the total is 422 `exceeds_amount_due` naming the amount still due, one to
/// a `paid` batch is 409. The batch
/// is `partially_paid` until `paid_xof` reaches `total_xof`, then `paid`, and its claims
/// `settled` (subscribers receive `claim.settled`). Answers 201 with the updated settlement,
/// without `Location`.
#[utoipa::path(
    post,
    path = "/v1/settlements/{id}/payments",
    tag = "settlements",
    request_body = PaymentCreate,
    params(
        ("id" = String, Path, description = "Settlement id"),
        ("Idempotency-Key" = Option<String>, Header, description = "The same key with the same body replays the first response and records nothing more, so a retried payment is never counted twice; with another body, 422 `idempotency_key_reused`"),
    ),
    responses(
        (status = 201, description = "Recorded (no Location); the updated settlement", body = SettlementView),
        (status = 404, description = "No such settlement, or not yours", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already paid in full, or `duplicate_reference` at `/reference`: a payment with this reference (in any case) is already recorded on the batch", body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["settlements:write"]))
)]
pub async fn add_payment(
    State(state): State<AppState>,
    auth: Authorized<perm::WriteSettlements>,
    Path(id): Path<String>,
    IdempotentJson { body, idempotency }: IdempotentJson<Map<String, Value>>,
) -> Result<Response, ApiError> {
    match state.store.get_settlement(&id).await? {
        Some(s) if s.mutuelle == auth.caller.org.as_str() => {}
        _ => return Err(ApiError::NotFound),
    }
    if let Some(first) = replayed::<Settlement>(&state, &auth.caller, idempotency.as_ref()).await? {
        return Ok((StatusCode::CREATED, Json(SettlementView::from(first))).into_response());
    }
    let mut f = Fields::new(&body);
    let mut errors = Vec::new();
    let amount = f.opt_i64("amount_xof");
    if body.get("amount_xof").is_none_or(Value::is_null) {
        errors.push(FieldError::required("/amount_xof"));
    }
    let paid_at = crate::fields::required_date(&mut f, "paid_at", state.clock.today(), &mut errors);
    let reference = f.str("reference");
    errors.extend(f.finish());
    if amount.is_some_and(|a| !(1..=MAX_XOF).contains(&a)) {
        errors.push(FieldError::new(
            "/amount_xof",
            "out_of_range",
            format!("must be from 1 to {} XOF", grouped_en(MAX_XOF)),
            format!("doit être de 1 à {} XOF", grouped_fr(MAX_XOF)),
        ));
    }
    if paid_at.is_some_and(|d| d > state.clock.today()) {
        errors.push(FieldError::new(
            "/paid_at",
            "in_future",
            "must not be in the future",
            "ne doit pas être dans le futur",
        ));
    }
    errors.extend(
        reference
            .as_deref()
            .and_then(|r| crate::fields::reference_error("/reference", r)),
    );
    let (Some(amount), Some(paid_at), Some(reference)) = (amount, paid_at, reference) else {
        return Err(ApiError::validation(errors));
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let ctx = auth.caller.write_context(&state, idempotency);
    let payment = Payment {
        id: uuid::Uuid::now_v7().to_string(),
        amount_xof: Xof(amount),
        paid_at,
        reference: reference.trim().to_owned(),
        created_at: ctx.at,
    };
    let settlement = state
        .store
        .add_payment(&ctx, &id, &payment)
        .await
        .map_err(settlement_error)?;
    Ok((StatusCode::CREATED, Json(SettlementView::from(settlement))).into_response())
}

/// 409 for a payment on a settlement already paid in full.
pub fn already_paid() -> ApiError {
    crate::problem::conflict_at(
        "",
        "already_paid",
        "This settlement is already paid in full.",
        "Ce bordereau est déjà entièrement réglé.",
    )
}

#[cfg(test)]
mod tests {
    use super::{prefers_csv, qvalue};

    #[test]
    fn accept_is_weighed_by_its_q_values() {
        for (accept, csv) in [
            (None, false),
            (Some("text/csv"), true),
            (Some("text/csv; charset=utf-8"), true),
            (Some("TEXT/CSV"), true),
            (Some("text/*"), true),
            (Some("application/json"), false),
            (Some("*/*"), false),
            // Not acceptable, whatever else is.
            (Some("application/json, text/csv;q=0"), false),
            (Some("text/csv;q=0"), false),
            (Some("text/csv;q=0.000"), false),
            (Some("*/*, text/csv;q=0"), false),
            (Some("text/csv;q=0.5, application/json"), false),
            (Some("text/csv, application/json;q=0.9"), true),
            (Some("application/json;q=0, text/csv;q=0.1"), true),
            // Equal q: the more specific range, then the first listed.
            (Some("text/csv, */*"), true),
            (Some("*/*, text/csv"), true),
            (Some("text/*, application/json"), false),
            (Some("text/csv, application/json"), true),
            (Some("application/json, text/csv"), false),
            // A malformed q ignores its range.
            (Some("text/csv;q=2"), false),
            (Some("text/csv;q=high, application/json"), false),
            (Some("garbage"), false),
        ] {
            assert_eq!(prefers_csv(accept), csv, "{accept:?}");
        }
    }

    #[test]
    fn qvalues_are_thousandths() {
        assert_eq!(qvalue("1"), Some(1000));
        assert_eq!(qvalue("1."), Some(1000));
        assert_eq!(qvalue("1.000"), Some(1000));
        assert_eq!(qvalue("0.5"), Some(500));
        assert_eq!(qvalue("0.001"), Some(1));
        assert_eq!(qvalue("0"), Some(0));
        for bad in ["1.001", "0.0001", "2", "-0", ".5", "0.5x", ""] {
            assert_eq!(qvalue(bad), None, "{bad}");
        }
    }
}
