//! `/v1/beneficiaries`, `/v1/coverages` and contributions: who is covered, by whom, until when.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::NaiveDate;
use passerelle_domain::beneficiary::Beneficiary;
use passerelle_domain::coverage::{Contribution, Coverage, CoverageStatus};
use passerelle_domain::error::{FieldError, StoreError};
use passerelle_domain::money::{grouped_en, grouped_fr};
use passerelle_domain::money::{Xof, MAX_XOF};
use passerelle_domain::pagination::{Page, PageRequest};
use passerelle_domain::ports::CoverageUpdate;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::products::{check_if_match, etag, retry_if_match_any};
use super::{ListOf, PageQuery};
use crate::extract::{perm, replayed, AppQuery, Authorized, Caller, IdempotentJson, MergePatch};
use crate::fields::Fields;
use crate::problem::ApiError;
use crate::state::AppState;
use passerelle_domain::beneficiary::{BeneficiaryDraft, LocalityDraft, NationalIdDraft};
use passerelle_domain::coverage::Relationship;
use passerelle_domain::eligibility::{born_after, born_after_start};
use passerelle_domain::ports::{NewHousehold, PersonRef, RegisteredMember};
use passerelle_domain::product::Layer;
use passerelle_domain::registration::MemberNumber;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(search_beneficiaries))
        .routes(routes!(get_beneficiary, super::people::patch_beneficiary))
        .routes(routes!(super::merges::merge_beneficiary))
        .routes(routes!(list_coverages, create_coverage))
        .routes(routes!(get_coverage, patch_coverage))
        .routes(routes!(add_contribution, list_contributions))
        .routes(routes!(cancel_contribution))
}

/// A national identity number. Same country, type and value = same person.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"country": "TG", "type": "NIU", "value": "123456789012"}))]
pub struct NationalIdView {
    /// ISO 3166-1 alpha-2.
    pub country: String,
    /// `NIU` (TG, 12 digits), `NINA` (ML, 15 letters and digits), `CNI` (SN, 12–17 digits) or
    /// `RNU` (SN, 5–20 letters and digits).
    #[serde(rename = "type")]
    pub id_type: String,
    /// Normalised before it is checked, stored or compared: spaces and dashes removed, letters
    /// upper-cased.
    pub value: String,
}

impl From<passerelle_domain::beneficiary::NationalId> for NationalIdView {
    fn from(n: passerelle_domain::beneficiary::NationalId) -> Self {
        NationalIdView {
            country: n.country,
            id_type: n.id_type,
            value: n.value,
        }
    }
}

/// Where a person lives: all three parts, or no locality at all.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"region": "Maritime", "district": "Zio", "commune": "Zio 1"}))]
pub struct LocalityView {
    /// 1–100 characters, e.g. `Maritime`.
    pub region: String,
    /// 1–100 characters, e.g. `Zio`.
    pub district: String,
    /// 1–100 characters, e.g. `Zio 1`.
    pub commune: String,
}

/// A national identity number as a request sends it: the members of `NationalIdView` and no
/// other (422 `unknown_field`). Schema only; the body is read field by field.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"country": "TG", "type": "NIU", "value": "1234 5678 9012"}))]
pub struct NationalIdWrite {
    /// ISO 3166-1 alpha-2 (trimmed and upper-cased before it is looked up).
    pub country: String,
    /// `NIU` (TG, 12 digits), `NINA` (ML, 15 letters and digits), `CNI` (SN, 12–17 digits) or
    /// `RNU` (SN, 5–20 letters and digits): the deployment's national id rules decide, so the
    /// list is not closed here.
    #[serde(rename = "type")]
    pub id_type: String,
    /// Normalised before it is checked, stored or compared: spaces and dashes removed, letters
    /// upper-cased.
    #[schema(min_length = 1)]
    pub value: String,
}

/// Where a person lives, as a request sends it: all three parts or no locality at all, and no
/// other member (422 `unknown_field`). Schema only; the body is read field by field.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"region": "Maritime", "district": "Zio", "commune": "Zio 1"}))]
pub struct LocalityWrite {
    /// 1–100 characters once surrounding white space is trimmed, without control or invisible formatting characters (direction marks, zero-width spaces),
    /// e.g. `Maritime`.
    // `beneficiary::check_text` with `MAX_LOCALITY_CHARS` (100).
    #[schema(
        pattern = r"^[^\s\x00-\x1F\x7F-\x9F](?:[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F])?$",
        min_length = 1,
        max_length = 100
    )]
    pub region: String,
    /// 1–100 characters once surrounding white space is trimmed, without control or invisible formatting characters (direction marks, zero-width spaces),
    /// e.g. `Zio`.
    #[schema(
        pattern = r"^[^\s\x00-\x1F\x7F-\x9F](?:[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F])?$",
        min_length = 1,
        max_length = 100
    )]
    pub district: String,
    /// 1–100 characters once surrounding white space is trimmed, without control or invisible formatting characters (direction marks, zero-width spaces),
    /// e.g. `Zio 1`.
    #[schema(
        pattern = r"^[^\s\x00-\x1F\x7F-\x9F](?:[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F])?$",
        min_length = 1,
        max_length = 100
    )]
    pub commune: String,
}

/// A person, once, whichever mutuelle or scheme covers them.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "01937f0e-6c2a-7d3b-9e0f-1a2b3c4d5e6f", "national_id": {"country": "TG", "type": "NIU", "value": "234567890123"},
    "family_name": "Agbéko", "given_names": "Akossiwa Élise", "sex": "F", "birth_date": "1988-01-01",
    "birth_date_precision": "year", "phone": "+22890123456",
    "locality": {"region": "Maritime", "district": "Zio", "commune": "Zio 1"}, "version": 1
}))]
pub struct BeneficiaryView {
    /// Beneficiary id, chosen by the server.
    pub id: String,
    /// The person's national id; absent for people without papers.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub national_id: Option<NationalIdView>,
    /// Byte-exact as registered, accents kept.
    pub family_name: String,
    /// Byte-exact as registered, accents kept.
    pub given_names: String,
    /// `F` or `M`.
    pub sex: String,
    /// `YYYY-MM-DD`; `YYYY-01-01` when only the year is known.
    pub birth_date: NaiveDate,
    /// `day` or `year`.
    pub birth_date_precision: String,
    /// E.164.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub phone: Option<String>,
    /// Where the person lives, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub locality: Option<LocalityView>,
    /// Present only on a record merged into another person (`POST
    /// /v1/beneficiaries/{id}/merge`): that person's id. The record holds no coverage any more;
    /// the claims and events that name it are that person's.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub merged_into: Option<String>,
    /// The person's version: 1 when registered, one more with each correction or merge. The
    /// number in the `ETag`, and a webhook event's `version` (a receiver that read the person can
    /// tell an older event from a newer one).
    #[schema(minimum = 1, example = 1)]
    pub version: u32,
}

impl From<Beneficiary> for BeneficiaryView {
    fn from(b: Beneficiary) -> Self {
        BeneficiaryView {
            id: b.id,
            national_id: b.national_id.map(NationalIdView::from),
            family_name: b.family_name,
            given_names: b.given_names,
            sex: b.sex.as_str().to_owned(),
            birth_date: b.birth_date,
            birth_date_precision: b.birth_date_precision.as_str().to_owned(),
            phone: b.phone,
            locality: b.locality.map(|l| LocalityView {
                region: l.region,
                district: l.district,
                commune: l.commune,
            }),
            merged_into: b.merged_into,
            version: b.version,
        }
    }
}

/// A person's membership of a product (FHIR's Coverage).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "01937f0e-7d3b-7e4c-8f10-2b3c4d5e6f70", "beneficiary": "01937f0e-6c2a-7d3b-9e0f-1a2b3c4d5e6f",
    "product": "01937f0e-5b1a-7c3d-8e9f-0a1b2c3d4e5f", "organization": "mut-tsevie", "layer": "complementary",
    "member_number": "TSV-0042", "relationship": "principal", "start_date": "2026-01-01", "status": "active",
    "paid_through": "2026-12-31", "version": 1
}))]
pub struct CoverageView {
    /// Coverage id, chosen by the server.
    pub id: String,
    /// The person covered (a beneficiary id).
    pub beneficiary: String,
    /// The product (its id); a claim uses the version in force on its service date.
    pub product: String,
    /// The mutuelle or scheme that holds the coverage: the product's owner.
    pub organization: String,
    /// `base`, `complementary` or `primary`.
    pub layer: String,
    /// The household's number, or a dependant's own, as it was registered.
    pub member_number: String,
    /// `principal`, `spouse`, `child`, `parent` or `other`.
    pub relationship: String,
    /// A dependant's principal's coverage.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub principal_coverage: Option<String>,
    /// The first day of cover; it pays from `start_date + waiting_period_days` of the product
    /// (for a child born after it, from its birth if later).
    pub start_date: NaiveDate,
    /// The last covered day, when set (`ENDED` after it).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub end_date: Option<NaiveDate>,
    /// `active`, `suspended` or `terminated`.
    pub status: String,
    /// The last day paid without a gap: from the `paid_through` given at registration (or the
    /// first period paid) through the contributions whose periods join up; absent when nothing
    /// is paid. For a dependant's eligibility, its principal's payments count too.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub paid_through: Option<NaiveDate>,
    /// The coverage's version: 1 when created, one more with each change (its status or end date,
    /// a contribution recorded or cancelled, a dependant ended with its principal, its person
    /// merged). The number in the `ETag`, and a webhook event's `version` (a receiver that read
    /// the coverage can tell an older event from a newer one).
    #[schema(minimum = 1, example = 1)]
    pub version: u32,
}

impl From<Coverage> for CoverageView {
    fn from(c: Coverage) -> Self {
        CoverageView {
            id: c.id,
            beneficiary: c.beneficiary,
            product: c.product,
            organization: c.organization,
            layer: c.layer.as_str().to_owned(),
            member_number: c.member_number,
            relationship: c.relationship.as_str().to_owned(),
            principal_coverage: c.principal_coverage,
            start_date: c.start_date,
            end_date: c.end_date,
            status: c.status.as_str().to_owned(),
            paid_through: c.paid_through,
            version: c.version,
        }
    }
}

/// A contribution paid towards a coverage.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "01937f0e-8e4c-7f5d-9a21-3c4d5e6f7081", "coverage": "01937f0e-7d3b-7e4c-8f10-2b3c4d5e6f70",
    "amount_xof": 6000, "period_start": "2026-01-01", "period_end": "2026-12-31", "paid_at": "2026-01-05", "reference": "RECU-2026-0113"}))]
pub struct ContributionView {
    /// Contribution id, chosen by the server.
    pub id: String,
    /// The coverage it was paid towards.
    pub coverage: String,
    /// The amount paid, in XOF.
    pub amount_xof: i64,
    /// The first day it pays for.
    pub period_start: NaiveDate,
    /// The last day it pays for.
    pub period_end: NaiveDate,
    /// The day it was paid.
    pub paid_at: NaiveDate,
    /// The payer's receipt or transaction reference.
    pub reference: String,
    /// When it was cancelled (recorded by mistake); absent until then. A cancelled contribution
    /// counts for nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub cancelled_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<Contribution> for ContributionView {
    fn from(c: Contribution) -> Self {
        ContributionView {
            id: c.id,
            coverage: c.coverage,
            amount_xof: c.amount_xof.value(),
            period_start: c.period_start,
            period_end: c.period_end,
            paid_at: c.paid_at,
            reference: c.reference,
            cancelled_at: c.cancelled_at,
        }
    }
}

/// Whether the caller may see this person: operators and auditors always; others when they
/// cover them.
pub async fn may_see_person(state: &AppState, caller: &Caller, beneficiary: &str) -> Result<bool, ApiError> {
    Ok(caller.reads_everything() || state.store.covers(caller.org.as_str(), beneficiary).await?)
}

/// A record merged into another person holds no coverage; the organisation that merged it, whose
/// record it was, still reads it (to learn where it went), and operators and auditors do. The
/// person's other organisations never covered the record, and are not shown it.
pub(crate) fn may_see_merged(caller: &Caller, record: &Beneficiary) -> bool {
    caller.reads_everything() || record.merged_by.as_deref() == Some(caller.org.as_str())
}

fn may_see_coverage(caller: &Caller, coverage: &Coverage) -> bool {
    caller.reads_everything() || coverage.organization == caller.org.as_str()
}

pub(crate) async fn visible_coverage(state: &AppState, caller: &Caller, id: &str) -> Result<Coverage, ApiError> {
    match state.store.get_coverage(id).await? {
        Some(c) if may_see_coverage(caller, &c) => Ok(c),
        _ => Err(ApiError::NotFound),
    }
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BeneficiaryQuery {
    /// `CC:TYPE:VALUE`, e.g. `SN:CNI:1234567890123` (normalised before the search). Required.
    // `NationalIdRules::parse_compact`: three parts split at the first two colons; a country and
    // a type no rule has, or a value holding a colon, is 422 `invalid_national_id`.
    #[param(required = true, pattern = r"^\s*[A-Za-z]{2}\s*:[^:]+:[^:]+$")]
    pub national_id: Option<String>,
}

/// Find a person by national id: a list of at most one, empty when none is visible to you.
///
/// `national_id` is required (422 on `/query/national_id` when missing or malformed) and is
/// normalised before the search. Operators and auditors find anyone; other organisations only
/// people they hold a coverage of (providers therefore always get an empty list), so an empty
/// list does not tell whether the person exists. One page: `next_cursor` is always null.
#[utoipa::path(
    get,
    path = "/v1/beneficiaries",
    tag = "beneficiaries",
    params(BeneficiaryQuery),
    responses((status = 200, description = "The matching person, if visible", body = ListOf<BeneficiaryView>)),
    security(("bearer" = ["registry:read"]))
)]
pub async fn search_beneficiaries(
    State(state): State<AppState>,
    auth: Authorized<perm::ReadRegistry>,
    AppQuery(query): AppQuery<BeneficiaryQuery>,
) -> Result<Json<ListOf<BeneficiaryView>>, ApiError> {
    let raw = query
        .national_id
        .ok_or_else(|| ApiError::field(FieldError::required("/query/national_id")))?;
    let nid = state
        .national_ids
        .parse_compact(&raw, "/query/national_id")
        .map_err(ApiError::field)?;
    let found = state.store.find_by_national_id(&nid).await?;
    let mut items = Vec::new();
    if let Some(person) = found {
        if may_see_person(&state, &auth.caller, &person.id).await? {
            crate::routes::audit::record_read(&state, &auth.caller, "beneficiary", &person.id).await?;
            items.push(BeneficiaryView::from(person));
        }
    }
    Ok(Json(ListOf {
        items,
        next_cursor: None,
    }))
}

/// Read a person.
///
/// Operators and auditors read anyone; other organisations with `registry:read` only people
/// they hold a coverage of, and get 404 otherwise, exactly as for an unknown id. Its `ETag` is
/// what `PATCH` needs in `If-Match`.
#[utoipa::path(
    get,
    path = "/v1/beneficiaries/{id}",
    tag = "beneficiaries",
    params(
        ("id" = String, Path, description = "Beneficiary id"),
        ("If-None-Match" = Option<String>, Header, description = "The ETag of a copy the client holds (a list, compared weakly, or `*`): 304 without a body when the person has not been corrected since"),
        ("If-Match" = Option<String>, Header, description = "Read only if the person is at this version (compared strongly, as for `PATCH`): 412 otherwise"),
    ),
    responses(
        (status = 200, description = "The person", body = BeneficiaryView, headers(("ETag" = String, description = "Pass as If-Match to PATCH"))),
        (status = 304, description = "`If-None-Match` names the current version: the client's copy is current. No body", headers(("ETag" = String, description = "The current version, quoted"))),
        (status = 404, description = "No such person, or not covered by you", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 410, description = "The person's personal data was erased at the end of the deployment's retention period (`personal_data_erased`, `detail` gives the day): the record's id remains, named by coverages and claims, and nothing else of the person", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 412, description = "`If-Match` names another version", body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["registry:read"]))
)]
pub async fn get_beneficiary(
    State(state): State<AppState>,
    auth: Authorized<perm::ReadRegistry>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let person = read_person(&state, &auth.caller, &id).await?;
    let version = person.version;
    if let Some(not_modified) = super::products::read_preconditions(&headers, version)? {
        return Ok(not_modified);
    }
    let mut response = Json(BeneficiaryView::from(person)).into_response();
    response.headers_mut().insert(axum::http::header::ETAG, etag(version));
    Ok(response)
}

/// A person the caller may see (404 otherwise), its read audited: for `/v1` and FHIR alike. A
/// record merged into another person is its merger's alone (`may_see_merged`).
pub(crate) async fn read_person(state: &AppState, caller: &Caller, id: &str) -> Result<Beneficiary, ApiError> {
    let person = state.store.get_beneficiary(id).await?.ok_or(ApiError::NotFound)?;
    let visible = match &person.merged_into {
        Some(_) => may_see_merged(caller, &person),
        None => may_see_person(state, caller, id).await?,
    };
    if !visible {
        return Err(ApiError::NotFound);
    }
    // To whoever may see the record, said as such: the person existed, and nothing of them is
    // kept (a client drops its copy, rather than wondering whether it lost sight of them).
    if let Some(at) = person.erased_at {
        return Err(ApiError::Erased { on: at.date_naive() });
    }
    crate::routes::audit::record_read(state, caller, "beneficiary", id).await?;
    Ok(person)
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CoverageQuery {
    /// The person whose coverages to list (required).
    // An `Option` so that its absence is the handler's 422 (`required`, `/query/beneficiary`).
    #[param(required = true)]
    pub beneficiary: Option<String>,
}

/// A person's coverages that you hold (all of them for operators and auditors).
///
/// `beneficiary` is required (422 on `/query/beneficiary`). Organisations other than operators
/// and auditors see only their own coverages of the person: an empty list when they hold none,
/// whether or not the person exists.
#[utoipa::path(
    get,
    path = "/v1/coverages",
    tag = "coverages",
    params(PageQuery, CoverageQuery),
    responses((status = 200, description = "A page of coverages, ordered by id", body = ListOf<CoverageView>)),
    security(("bearer" = ["registry:read"]))
)]
pub async fn list_coverages(
    State(state): State<AppState>,
    auth: Authorized<perm::ReadRegistry>,
    AppQuery(page): AppQuery<PageQuery>,
    AppQuery(query): AppQuery<CoverageQuery>,
) -> Result<Json<ListOf<CoverageView>>, ApiError> {
    let page = page.parse()?;
    let beneficiary = query
        .beneficiary
        .ok_or_else(|| ApiError::field(FieldError::required("/query/beneficiary")))?;
    let result = coverages_of(&state, &auth.caller, &beneficiary, &page).await?;
    Ok(Json(ListOf::from_page(result, CoverageView::from)))
}

/// A page of the person's coverages that the caller holds (all for operators and auditors),
/// the read audited: for `/v1` and FHIR alike.
pub(crate) async fn coverages_of(
    state: &AppState,
    caller: &Caller,
    beneficiary: &str,
    page: &PageRequest,
) -> Result<Page<Coverage>, ApiError> {
    let organization = (!caller.reads_everything()).then(|| caller.org.to_string());
    let result = state
        .store
        .list_coverages(beneficiary, organization.as_deref(), page)
        .await?;
    // Recorded only when it named a person: the value is then that person's id. Otherwise it is
    // whatever the caller typed (a national id, say), which the chain would keep for ever, and
    // nothing about anyone was read.
    if !result.items.is_empty() {
        crate::routes::audit::record_read(state, caller, "coverage", &format!("beneficiary:{beneficiary}")).await?;
    }
    Ok(result)
}

/// Read a coverage.
///
/// Readable by the organisation that holds it, operators and auditors; 404 for anyone else. Its
/// `ETag` is what `PATCH` needs in `If-Match`.
#[utoipa::path(
    get,
    path = "/v1/coverages/{id}",
    tag = "coverages",
    params(
        ("id" = String, Path, description = "Coverage id"),
        ("If-None-Match" = Option<String>, Header, description = "The ETag of a copy the client holds (a list, compared weakly, or `*`): 304 without a body when the coverage has not changed since"),
        ("If-Match" = Option<String>, Header, description = "Read only if the coverage is at this version (compared strongly, as for `PATCH`): 412 otherwise"),
    ),
    responses(
        (status = 200, description = "The coverage", body = CoverageView, headers(("ETag" = String, description = "Pass as If-Match to PATCH"))),
        (status = 304, description = "`If-None-Match` names the current version: the client's copy is current. No body", headers(("ETag" = String, description = "The current version, quoted"))),
        (status = 404, description = "No such coverage, or another organisation's", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 412, description = "`If-Match` names another version", body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["registry:read"]))
)]
pub async fn get_coverage(
    State(state): State<AppState>,
    auth: Authorized<perm::ReadRegistry>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let coverage = visible_coverage(&state, &auth.caller, &id).await?;
    crate::routes::audit::record_read(&state, &auth.caller, "coverage", &id).await?;
    let version = coverage.version;
    if let Some(not_modified) = super::products::read_preconditions(&headers, version)? {
        return Ok(not_modified);
    }
    let mut response = Json(CoverageView::from(coverage)).into_response();
    response.headers_mut().insert(axum::http::header::ETAG, etag(version));
    Ok(response)
}

/// The body of `PATCH /v1/coverages/{id}` (a JSON merge patch).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"status": "suspended"}))]
pub struct CoveragePatch {
    /// `active`, `suspended` or `terminated` (final). A suspended coverage is not eligible
    /// (`SUSPENDED`); a terminated one is not after its `end_date` (`TERMINATED`), which
    /// terminating sets to today unless an earlier one is given. May be left out, never `null`: a coverage always
    /// has a status (422 `invalid_type`).
    #[schema(nullable = false)]
    pub status: Option<String>,
    /// The last covered day, on or after `start_date`; `null` removes it.
    pub end_date: Option<NaiveDate>,
}

/// Change a coverage's status or end date (its organisation; `If-Match` required).
///
/// Mutuelles and schemes with `registry:write`, on their own coverages (404 otherwise). The body
/// is a JSON merge patch of `status` and `end_date`; any other member is 422 `unknown_field`.
/// `If-Match` carries the `ETag` of the last read: 428 without it, 412 when the coverage changed
/// since (a contribution changes it too). A patch that changes nothing answers 200 with the same
/// `ETag`, and writes nothing. `terminated` is final: changing a terminated coverage
/// is 409. Terminating sets `end_date` to today, or keeps an earlier one (a later `end_date`
/// sent with the termination is 422 `after_termination`: send it alone, and terminate on that
/// day): services up to that
/// day are still paid when claimed later (a coverage terminated before it starts gets no end
/// date and never pays). Terminating a principal's coverage terminates its dependants' live coverages with it
/// (ending with it, or on their own earlier end date), so the household may register again under
/// a new member number. Subscribers receive `coverage.changed`,
/// for each coverage changed.
#[utoipa::path(
    patch,
    path = "/v1/coverages/{id}",
    tag = "coverages",
    request_body(content(
        (CoveragePatch = "application/merge-patch+json"),
        (CoveragePatch = "application/json")
    )),
    params(
        ("id" = String, Path, description = "Coverage id"),
        ("If-Match" = String, Header, description = "The ETag of the last read (RFC 9110: a list matches when one of its tags does, `*` matches any version, and a weak tag `W/\"n\"` names version n as `\"n\"` does, since proxies that compress answers weaken tags)"),
    ),
    responses(
        (status = 200, description = "The updated coverage", body = CoverageView, headers(("ETag" = String, description = "The new version")),
            example = json!({"id": "01937f0e-7d3b-7e4c-8f10-2b3c4d5e6f70", "beneficiary": "01937f0e-6c2a-7d3b-9e0f-1a2b3c4d5e6f",
                "product": "01937f0e-5b1a-7c3d-8e9f-0a1b2c3d4e5f", "organization": "mut-tsevie", "layer": "complementary",
                "member_number": "TSV-0042", "relationship": "principal", "start_date": "2026-01-01", "status": "suspended",
                "paid_through": "2026-12-31", "version": 2})),
        (status = 404, description = "No such coverage, or another organisation's", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "A terminated coverage cannot change", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 410, description = "The person covered had their personal data erased at the end of the deployment's retention period (`personal_data_erased`): their coverages change no more", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 412, description = "If-Match is stale", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is neither `application/merge-patch+json` nor `application/json` (a JSON Patch, `application/json-patch+json`, is not taken); `Accept-Patch` names the type", body = crate::problem::Problem, content_type = "application/problem+json",
            headers(("Accept-Patch" = String, description = "application/merge-patch+json"))),
        (status = 428, description = "If-Match is missing", body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["registry:write"]))
)]
pub async fn patch_coverage(
    State(state): State<AppState>,
    auth: Authorized<perm::UpdateCoverage>,
    Path(id): Path<String>,
    headers: HeaderMap,
    MergePatch(body): MergePatch<Map<String, Value>>,
) -> Result<Response, ApiError> {
    retry_if_match_any(&headers, || patch_once(&state, &auth.caller, &id, &headers, &body)).await
}

/// A coverage's `status` that is none of the three.
pub(crate) fn unknown_coverage_status() -> FieldError {
    FieldError::new(
        "/status",
        "unknown_value",
        "must be active, suspended or terminated",
        "doit être active, suspended ou terminated",
    )
}

async fn patch_once(
    state: &AppState,
    caller: &Caller,
    id: &str,
    headers: &HeaderMap,
    body: &Map<String, Value>,
) -> Result<Response, ApiError> {
    let current = visible_coverage(state, caller, id).await?;
    if current.organization != caller.org.as_str() {
        return Err(ApiError::NotFound);
    }
    check_if_match(headers, current.version)?;
    let mut errors = Vec::new();
    let mut next = current.clone();
    for key in body.keys() {
        if key != "status" && key != "end_date" {
            errors.push(FieldError::new(
                format!("/{}", key.replace('~', "~0").replace('/', "~1")),
                "unknown_field",
                "only status and end_date can change",
                "seuls status et end_date peuvent changer",
            ));
        }
    }
    match body.get("status") {
        None => {}
        // Trimmed, as every text the server reads (API.md §4).
        Some(Value::String(s)) => match CoverageStatus::parse(s.trim()) {
            Some(status) => next.status = status,
            None => errors.push(unknown_coverage_status()),
        },
        Some(_) => errors.push(FieldError::new(
            "/status",
            "invalid_type",
            "must be a string",
            "doit être une chaîne de caractères",
        )),
    }
    match body.get("end_date") {
        None => {}
        Some(Value::Null) => next.end_date = None,
        Some(Value::String(s)) => match passerelle_domain::dates::parse(s.trim()).ok_or(()) {
            Ok(d) if d >= current.start_date => {
                errors.extend(passerelle_domain::dates::check(d, "/end_date", state.clock.today()));
                next.end_date = Some(d);
            }
            Ok(_) => errors.push(FieldError::new(
                "/end_date",
                "before_start_date",
                format!("must be on or after the start date {}", current.start_date),
                format!("ne doit pas précéder la date de début, le {}", current.start_date),
            )),
            Err(_) => errors.push(FieldError::new(
                "/end_date",
                "invalid_date",
                "must be YYYY-MM-DD",
                "doit être au format AAAA-MM-JJ",
            )),
        },
        Some(_) => errors.push(FieldError::new(
            "/end_date",
            "invalid_type",
            "must be a date or null",
            "doit être une date ou null",
        )),
    }
    // A termination takes effect today at the latest: a later end date sent with it would be
    // dropped, and its sender believe the coverage pays until then.
    let terminating = current.status != CoverageStatus::Terminated && next.status == CoverageStatus::Terminated;
    if terminating && body.contains_key("end_date") && next.end_date.is_some_and(|end| end > state.clock.today()) {
        errors.push(FieldError::new(
            "/end_date",
            "after_termination",
            "a termination takes effect today at the latest: to end the coverage on a later day, send end_date alone now and terminate it on that day",
            "une résiliation prend effet aujourd'hui au plus tard : pour mettre fin à la couverture à une date ultérieure, envoyez maintenant end_date seule et résiliez-la ce jour-là",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    if next.status == CoverageStatus::Terminated && body.contains_key("status") {
        // A termination takes effect at the end of today, or of an earlier end date given:
        // services up to it stay paid when they are claimed later. Terminated before it starts,
        // a coverage has no last day and never pays. Sent again, the same termination is
        // brought back to the day it took effect, and changes nothing.
        let last_day = if current.status == CoverageStatus::Terminated {
            current.end_date
        } else {
            let today = state.clock.today();
            (today >= next.start_date).then_some(today)
        };
        next.end_date = last_day.map(|last| next.end_date.map_or(last, |end| end.min(last)));
    }
    if current.status == CoverageStatus::Terminated && next != current {
        return Err(terminated_coverage());
    }

    if next == current {
        // Nothing changes: no new version, no audit event, no `coverage.changed`.
        let mut response = Json(CoverageView::from(current.clone())).into_response();
        response
            .headers_mut()
            .insert(axum::http::header::ETAG, etag(current.version));
        return Ok(response);
    }
    next.version = current.version + 1;
    let action = if next.status != current.status {
        match next.status {
            CoverageStatus::Active => "coverage.reactivated",
            CoverageStatus::Suspended => "coverage.suspended",
            CoverageStatus::Terminated => "coverage.terminated",
        }
    } else {
        "coverage.updated"
    };
    let ctx = caller.write_context(state, None);
    state
        .store
        .update_coverage(
            &ctx,
            &CoverageUpdate {
                coverage: next.clone(),
                action,
            },
        )
        .await?;
    let version = next.version;
    let mut response = Json(CoverageView::from(next)).into_response();
    response.headers_mut().insert(axum::http::header::ETAG, etag(version));
    Ok(response)
}

/// The body of `POST /v1/coverages/{id}/contributions`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"amount_xof": 6000, "period_start": "2026-01-01", "period_end": "2026-12-31", "paid_at": "2026-01-05", "reference": "RECU-2026-0113"}))]
pub struct ContributionCreate {
    /// 1 to 10^12.
    // `add_contribution`: `1..=MAX_XOF`.
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
    pub amount_xof: i64,
    /// The first day it pays for.
    pub period_start: NaiveDate,
    /// On or after `period_start`; becomes the coverage's `paid_through` when later and the
    /// period joins the days already paid (a period after a gap counts once the gap is paid).
    pub period_end: NaiveDate,
    /// Not in the future.
    pub paid_at: NaiveDate,
    /// The receipt's reference: 1–100 characters, not all white space, without control or
    /// invisible formatting characters (422 `invalid_characters`). Compared ignoring case and
    /// how characters are written (Unicode NFKC: an accent composed or not, a no-break space,
    /// full-width letters) for `duplicate_reference`.
    // `fields::reference_error`.
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub reference: String,
}

/// Record a contribution (the coverage's organisation); `paid_through` moves to `period_end`
/// when the period joins the days already paid.
///
/// Mutuelles and schemes with `registry:write`, on their own coverages (404 otherwise). The
/// coverage's `paid_through` is the last day of its paid run: from the `paid_through` given at
/// registration (without one, from the first period paid), through every contribution whose
/// period starts at most a day after the run's end, in whatever order they were recorded. A
/// payment for a later period does not pay the days before it: it is recorded (201) and counts
/// once they are paid. A new `ETag` results either way;
/// a `reference` already recorded on the coverage (and not cancelled), in any case or Unicode
/// form, is 409
/// `duplicate_reference`, so that one receipt entered twice counts once; a period that ends
/// before the coverage's `start_date` is 422 `before_coverage_start` at `/period_end`, one that
/// starts after its `end_date` 422 `after_coverage_end` at `/period_start` (a mistyped year);
/// a dependant's eligibility also counts its principal's payments. Contributions decide
/// `CONTRIBUTIONS_IN_ARREARS` for `complementary` and `primary` coverages only. Answers 201
/// without `Location`: the contribution is listed under its coverage. Subscribers receive
/// `coverage.changed`. A `terminated` coverage is final: a contribution to it is 409.
#[utoipa::path(
    post,
    path = "/v1/coverages/{id}/contributions",
    tag = "coverages",
    request_body = ContributionCreate,
    params(
        ("id" = String, Path, description = "Coverage id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for the same request"),
    ),
    responses(
        (status = 201, description = "Recorded (listed under the coverage; no Location)", body = ContributionView),
                (status = 404, description = "No such coverage, or another organisation's", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`errors[0].code` names the case: the coverage is terminated, nothing more is paid into it (`coverage_terminated`); or a contribution not cancelled already carries this `reference` (`duplicate_reference`, at `/reference`)", body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["registry:write"]))
)]
pub async fn add_contribution(
    State(state): State<AppState>,
    auth: Authorized<perm::UpdateCoverage>,
    Path(id): Path<String>,
    IdempotentJson { body, idempotency }: IdempotentJson<Map<String, Value>>,
) -> Result<Response, ApiError> {
    let coverage = visible_coverage(&state, &auth.caller, &id).await?;
    if coverage.organization != auth.caller.org.as_str() {
        return Err(ApiError::NotFound);
    }
    if let Some(first) = replayed::<Contribution>(&state, &auth.caller, idempotency.as_ref()).await? {
        return Ok((axum::http::StatusCode::CREATED, Json(ContributionView::from(first))).into_response());
    }
    let today = state.clock.today();
    let mut f = Fields::new(&body);
    let mut errors = Vec::new();
    let amount = f.opt_i64("amount_xof");
    if body.get("amount_xof").is_none_or(Value::is_null) {
        errors.push(FieldError::required("/amount_xof"));
    }
    let period_start = crate::fields::required_date(&mut f, "period_start", today, &mut errors);
    let period_end = crate::fields::required_date(&mut f, "period_end", today, &mut errors);
    let paid_at = crate::fields::required_date(&mut f, "paid_at", today, &mut errors);
    let reference = f.str("reference");
    let mut all = f.finish();
    all.append(&mut errors);
    if let Some(a) = amount {
        if !(1..=MAX_XOF).contains(&a) {
            all.push(FieldError::new(
                "/amount_xof",
                "out_of_range",
                format!("must be from 1 to {} XOF", grouped_en(MAX_XOF)),
                format!("doit être de 1 à {} XOF", grouped_fr(MAX_XOF)),
            ));
        }
    }
    if let (Some(s), Some(e)) = (period_start, period_end) {
        if e < s {
            all.push(FieldError::new(
                "/period_end",
                "before_period_start",
                "must be on or after period_start",
                "ne doit pas précéder period_start",
            ));
        }
    }
    // A period wholly outside the coverage's dates pays for nothing it covers: a mistyped year.
    // Not judged on a terminated coverage, which takes no contribution at all: its 409
    // `coverage_terminated` says more.
    let open = coverage.status != CoverageStatus::Terminated;
    if open && period_end.is_some_and(|e| e < coverage.start_date) {
        all.push(FieldError::new(
            "/period_end",
            "before_coverage_start",
            format!("must not be before the coverage's start_date, {}", coverage.start_date),
            format!(
                "ne doit pas précéder la date de début de la couverture, le {}",
                coverage.start_date
            ),
        ));
    }
    if let (Some(s), Some(end)) = (period_start, coverage.end_date.filter(|_| open)) {
        if s > end {
            all.push(FieldError::new(
                "/period_start",
                "after_coverage_end",
                format!("must not be after the coverage's end_date, {end}"),
                format!("ne doit pas être postérieure à la date de fin de la couverture, le {end}"),
            ));
        }
    }
    if paid_at.is_some_and(|p| p > today) {
        all.push(FieldError::new(
            "/paid_at",
            "in_future",
            "must not be in the future",
            "ne doit pas être dans le futur",
        ));
    }
    all.extend(
        reference
            .as_deref()
            .and_then(|r| crate::fields::reference_error("/reference", r)),
    );
    let (Some(amount), Some(period_start), Some(period_end), Some(paid_at), Some(reference)) =
        (amount, period_start, period_end, paid_at, reference)
    else {
        return Err(ApiError::validation(all));
    };
    if !all.is_empty() {
        return Err(ApiError::validation(all));
    }
    let ctx = auth.caller.write_context(&state, idempotency);
    let contribution = Contribution {
        id: uuid::Uuid::now_v7().to_string(),
        coverage: id,
        amount_xof: Xof(amount),
        period_start,
        period_end,
        paid_at,
        reference: reference.trim().to_owned(),
        created_at: ctx.at,
        cancelled_at: None,
    };
    let written = state.store.add_contribution(&ctx, &contribution).await?;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(ContributionView::from(written.value)),
    )
        .into_response())
}

/// A coverage's contributions, newest first.
///
/// By `paid_at`, latest first. Readable by the organisation that holds the coverage, operators
/// and auditors; 404 for anyone else.
#[utoipa::path(
    get,
    path = "/v1/coverages/{id}/contributions",
    tag = "coverages",
    params(("id" = String, Path, description = "Coverage id"), PageQuery),
    responses(
        (status = 200, description = "A page of contributions, newest first", body = ListOf<ContributionView>),
        (status = 404, description = "No such coverage, or another organisation's", body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["registry:read"]))
)]
pub async fn list_contributions(
    State(state): State<AppState>,
    auth: Authorized<perm::ReadRegistry>,
    Path(id): Path<String>,
    AppQuery(page): AppQuery<PageQuery>,
) -> Result<Json<ListOf<ContributionView>>, ApiError> {
    let page = page.parse()?;
    visible_coverage(&state, &auth.caller, &id).await?;
    let result = state.store.list_contributions(&id, &page).await?;
    crate::routes::audit::record_read(&state, &auth.caller, "contribution", &format!("coverage:{id}")).await?;
    Ok(Json(ListOf::from_page(result, ContributionView::from)))
}

/// Cancel a contribution recorded by mistake (the coverage's organisation).
///
/// Mutuelles and schemes with `registry:write`, on their own coverages (404 otherwise, and for a
/// contribution that is not the coverage's). The contribution stays listed, with its
/// `cancelled_at`, and counts for nothing from then on: the coverage's `paid_through` is worked
/// out again from the contributions left, as on recording one (a cancelled period inside the
/// paid run opens a gap there; none left and none given at registration: nothing paid,
/// `CONTRIBUTIONS_IN_ARREARS`). The coverage gets a new
/// `ETag` either way: read it again before a `PATCH`. Its `reference` may then be recorded
/// again. Answers 200 with the contribution; no body is read. Cancelling twice is 409
/// `already_cancelled` (in `errors`: a retried cancel that had succeeded), and cancelling on a
/// `terminated` coverage, which no longer changes, 409 `coverage_terminated`. Subscribers receive `coverage.changed`; the audit log records
/// `contribution.cancelled`.
#[utoipa::path(
    post,
    path = "/v1/coverages/{id}/contributions/{contribution}/cancel",
    tag = "coverages",
    params(
        ("id" = String, Path, description = "Coverage id"),
        ("contribution" = String, Path, description = "Contribution id"),
    ),
    responses(
        (status = 200, description = "Cancelled; the coverage's `paid_through` is worked out again", body = ContributionView,
         example = json!({"id": "01937f0e-8e4c-7f5d-9a21-3c4d5e6f7081", "coverage": "01937f0e-7d3b-7e4c-8f10-2b3c4d5e6f70",
            "amount_xof": 6000, "period_start": "2026-01-01", "period_end": "2026-12-31", "paid_at": "2026-01-05",
            "reference": "RECU-2026-0113", "cancelled_at": "2026-12-01T15:30:00.123456Z"})),
        (status = 404, description = "No such coverage, another organisation's, or no such contribution on it", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`errors[0].code` names the case: already cancelled (`already_cancelled`, also when the coverage was terminated since), or the coverage is terminated (`coverage_terminated`)", body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["registry:write"]))
)]
pub async fn cancel_contribution(
    State(state): State<AppState>,
    auth: Authorized<perm::UpdateCoverage>,
    Path((id, contribution)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let coverage = visible_coverage(&state, &auth.caller, &id).await?;
    if coverage.organization != auth.caller.org.as_str() {
        return Err(ApiError::NotFound);
    }
    let ctx = auth.caller.write_context(&state, None);
    let cancelled = state.store.cancel_contribution(&ctx, &id, &contribution).await?;
    Ok((
        axum::http::StatusCode::OK,
        Json(ContributionView::from(cancelled.value)),
    )
        .into_response())
}

/// Reads a person's fields as in a registration, at `prefix`.
pub fn read_person_fields(f: &mut Fields<'_>, prefix: &str, errors: &mut Vec<FieldError>) -> BeneficiaryDraft {
    let national_id = f.opt_object("national_id").map(|n| {
        let mut g = Fields::nested(n, &format!("{prefix}/national_id"));
        let draft = NationalIdDraft {
            country: g.opt_str("country"),
            id_type: g.opt_str("type"),
            value: g.opt_str("value"),
        };
        errors.extend(g.finish());
        draft
    });
    let locality = f.opt_object("locality").map(|l| {
        let mut g = Fields::nested(l, &format!("{prefix}/locality"));
        let draft = LocalityDraft {
            region: g.opt_str("region"),
            district: g.opt_str("district"),
            commune: g.opt_str("commune"),
        };
        errors.extend(g.finish());
        draft
    });
    BeneficiaryDraft {
        national_id,
        family_name: f.opt_str("family_name"),
        given_names: f.opt_str("given_names"),
        sex: f.opt_str("sex"),
        birth_date: f.opt_str("birth_date"),
        birth_date_precision: f.opt_str("birth_date_precision"),
        phone: f.opt_str("phone"),
        locality,
    }
}

/// A person the scheme already covers, by id.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"id": "01937f0e-6c2a-7d3b-9e0f-1a2b3c4d5e6f"}))]
pub struct BeneficiaryRef {
    /// The beneficiary's id; 422 `unknown_reference` when the scheme covers no such person.
    pub id: String,
}

/// Who a base affiliation is for: `{"id": …}` of a person the scheme already covers, or the
/// person's fields, matched by national id or created as in a registration (the way to
/// affiliate someone the scheme does not cover yet).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
#[schema(example = json!({"id": "01937f0e-6c2a-7d3b-9e0f-1a2b3c4d5e6f"}))]
pub enum CoveragePersonWrite {
    Known(BeneficiaryRef),
    #[schema(value_type = super::registrations::ClosedPersonWrite)]
    Fields(Box<super::registrations::PersonWrite>),
}

/// The body of `POST /v1/coverages`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"product": "01937f0e-5b1a-7c3d-8e9f-0a1b2c3d4e60", "member_number": "INAM-TG-0042",
    "beneficiary": {"national_id": {"country": "TG", "type": "NIU", "value": "123456789012"}, "family_name": "Agbéko",
                    "given_names": "Kossi", "sex": "M", "birth_date": "1984-03-12"},
    "start_date": "2025-01-01"}))]
pub struct CoverageCreate {
    /// One of your `base` products.
    pub product: String,
    /// Unique in your scheme whatever the case (stored as written): 1 to 50 letters, digits,
    /// dashes, slashes or dots (surrounding white space is ignored).
    // `MemberNumber::parse`: trimmed, 1 to `MAX_MEMBER_NUMBER_CHARS` (50) ASCII letters, digits,
    // `-`, `/` or `.`.
    #[schema(pattern = r"^[A-Za-z0-9./-]{1,50}$")]
    pub member_number: String,
    /// `{"id": …}` of a person you already cover, or the person's fields (matched by national id
    /// or created, as in a registration).
    #[schema(value_type = CoveragePersonWrite)]
    pub beneficiary: Value,
    /// The first day of the affiliation.
    pub start_date: NaiveDate,
    /// The last day, when known; on or after `start_date`.
    pub end_date: Option<NaiveDate>,
}

/// Record a base affiliation (schemes).
///
/// Schemes only, with `registry:write` (403 for other kinds). `product` must be one of your
/// `base` products (422 `unknown_reference`). The person is `{"id": …}` of someone you already
/// cover, or their fields, matched by national id or created, as in a registration (a national
/// id stored for a person of another sex or birth date is 409 `identity_mismatch`). No one is
/// covered before birth: a `start_date` before the birth date sent is 422 `born_after_start` at
/// `/beneficiary/birth_date`, before the birth of a person named by id 422 `before_birth` at
/// `/start_date`. A base
/// coverage is eligible by its status and dates alone: no contributions are needed. Answers 201
/// with its `Location` and `ETag`.
#[utoipa::path(
    post,
    path = "/v1/coverages",
    tag = "coverages",
    request_body = CoverageCreate,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for the same request")),
    responses(
        (status = 201, description = "Created; `Location` names it. The coverage, with `matched` and `possible_duplicates` telling how its person was found", body = AffiliationView,
         headers(("Location" = String, description = "/v1/coverages/{id}"), ("ETag" = String, description = "The version"))),
        (status = 409, description = "The member number is already used in your scheme (`member_number_taken`), the person already holds this product (`already_covered`), or their national id is registered for a person of another sex or birth date (`identity_mismatch`, at `/beneficiary`, audited as `beneficiary.identity_mismatch`)", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 410, description = "The person named by `beneficiary.id` had their personal data erased at the end of the deployment's retention period (`personal_data_erased`): no one covers them again", body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["registry:write"]))
)]
pub async fn create_coverage(
    State(state): State<AppState>,
    auth: Authorized<perm::CreateCoverage>,
    IdempotentJson { body, idempotency }: IdempotentJson<Map<String, Value>>,
) -> Result<Response, ApiError> {
    let caller = &auth.caller;
    if let Some(first) = replayed::<RegisteredMember>(&state, caller, idempotency.as_ref()).await? {
        return Ok(coverage_created(first));
    }
    let today = state.clock.today();
    let mut f = Fields::new(&body);
    let mut errors = Vec::new();
    let product_id = f.str("product");
    let member_number = f.str("member_number");
    let start_date = crate::fields::required_date(&mut f, "start_date", today, &mut errors);
    let end_date = match f.opt_str("end_date") {
        None => None,
        Some(raw) => passerelle_domain::dates::parse(&raw)
            .ok_or(())
            .map(|d| {
                errors.extend(passerelle_domain::dates::check(d, "/end_date", today));
                Some(d)
            })
            .unwrap_or_else(|_| {
                errors.push(FieldError::new(
                    "/end_date",
                    "invalid_date",
                    "must be YYYY-MM-DD",
                    "doit être au format AAAA-MM-JJ",
                ));
                None
            }),
    };
    let person_obj = f.opt_object("beneficiary");
    if body.get("beneficiary").is_none_or(Value::is_null) {
        errors.push(FieldError::required("/beneficiary"));
    }
    errors.extend(f.finish());
    let member_number = member_number.and_then(|m| {
        MemberNumber::parse(&m).or_else(|| {
            errors.push(FieldError::new(
                "/member_number",
                "invalid_format",
                "must be 1 to 50 letters, digits, dashes, slashes or dots",
                "doit compter de 1 à 50 lettres, chiffres, tirets, barres obliques ou points",
            ));
            None
        })
    });
    if let (Some(s), Some(e)) = (start_date, end_date) {
        if e < s {
            errors.push(FieldError::new(
                "/end_date",
                "before_start_date",
                "must be on or after start_date",
                "ne doit pas précéder start_date",
            ));
        }
    }
    let person = match person_obj {
        Some(obj) if obj.contains_key("id") => {
            let mut g = Fields::nested(obj, "/beneficiary");
            let id = g.str("id");
            errors.extend(g.finish());
            match id {
                Some(id) if may_see_person(&state, caller, &id).await? => match state.store.get_beneficiary(&id).await?
                {
                    Some(b) => {
                        // Said at the start date: the birth date is the person's, not in the
                        // request, and an error does not repeat personal data.
                        if start_date.is_some_and(|start| born_after(b.birth_date, b.birth_date_precision, start)) {
                            errors.push(FieldError::new(
                                "/start_date",
                                "before_birth",
                                "is before the person's birth: no one is covered before birth",
                                "est antérieure à la naissance de la personne : nul n'est couvert avant sa naissance",
                            ));
                        }
                        Some(PersonRef::Existing(id))
                    }
                    None => {
                        errors.push(FieldError::unknown_reference("/beneficiary/id"));
                        None
                    }
                },
                Some(_) => {
                    errors.push(FieldError::unknown_reference("/beneficiary/id"));
                    None
                }
                None => None,
            }
        }
        Some(obj) => {
            let mut g = Fields::nested(obj, "/beneficiary");
            let draft = read_person_fields(&mut g, "/beneficiary", &mut errors);
            errors.extend(g.finish());
            match draft.validate_with(&state.national_ids, "/beneficiary", today) {
                Ok(valid) => {
                    if let Some(start) =
                        start_date.filter(|&s| born_after(valid.birth_date, valid.birth_date_precision, s))
                    {
                        errors.push(born_after_start("/beneficiary/birth_date".into(), start));
                    }
                    Some(PersonRef::New(valid))
                }
                Err(rule_errors) => {
                    errors = crate::fields::merge(errors, rule_errors);
                    None
                }
            }
        }
        None => None,
    };
    let product = match &product_id {
        Some(id) => {
            let found = super::registrations::own_product(&state, caller, id, start_date).await?;
            match found {
                Some(p) if p.layer == Layer::Base => Some(p),
                _ => {
                    errors.push(FieldError::unknown_reference("/product"));
                    None
                }
            }
        }
        None => None,
    };
    let (Some(product), Some(member_number), Some(start_date), Some(person)) =
        (product, member_number, start_date, person)
    else {
        return Err(ApiError::validation(errors));
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let household = NewHousehold {
        product,
        member_number: member_number.into_string(),
        start_date,
        end_date,
        paid_through: None,
        members: Vec::new(),
    };
    let ctx = caller.write_context(&state, idempotency);
    let created = state.store.create_coverage(&ctx, &person, &household).await;
    // The person named by id was merged into another since it was read.
    if matches!(created, Err(StoreError::NotFound)) {
        return Err(ApiError::field(FieldError::unknown_reference("/beneficiary/id")));
    }
    let written = super::registrations::audit_identity_refusal(&state, caller, created).await?;
    Ok(coverage_created(written.value))
}

fn coverage_created(member: RegisteredMember) -> Response {
    debug_assert_eq!(member.coverage.relationship, Relationship::Principal);
    let version = member.coverage.version;
    let view = AffiliationView {
        coverage: CoverageView::from(member.coverage),
        matched: member.matched,
        possible_duplicates: member.possible_duplicates,
    };
    let mut response = super::created(format!("/v1/coverages/{}", view.coverage.id), &view);
    response.headers_mut().insert(axum::http::header::ETAG, etag(version));
    response
}

/// A base affiliation recorded: the coverage, as `GET /v1/coverages/{id}` shows it, and how its
/// person was found.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "01937f0e-7d3b-7e4c-8f10-2b3c4d5e6f71", "beneficiary": "01938a41-2c7d-7e15-8b3a-5f0c1d2e3a4b",
    "product": "01937f0e-5b1a-7c3d-8e9f-0a1b2c3d4e60", "organization": "tg-inam", "layer": "base",
    "member_number": "INAM-TG-0042", "relationship": "principal", "start_date": "2025-01-01", "status": "active",
    "version": 1, "matched": true, "possible_duplicates": []
}))]
pub struct AffiliationView {
    #[serde(flatten)]
    pub coverage: CoverageView,
    /// True when the person was already known: named by `id`, or by a national id stored for the
    /// same sex and a birth date that agrees (their stored record is kept). False when the
    /// person was created.
    pub matched: bool,
    /// For a person created without a national id: your affiliates without one who look the
    /// same (names without accents or case, sex, birth date), as in a registration; never
    /// merged. Another organisation's members are not searched (they are not yours to know
    /// of): a person without a national id whom a mutuelle registered becomes a second record
    /// when affiliated by fields, which only a national id on both prevents.
    pub possible_duplicates: Vec<String>,
}

/// 409 for any change of a terminated coverage, coded as a contribution's on one.
pub fn terminated_coverage() -> ApiError {
    crate::problem::conflict_at(
        "",
        "coverage_terminated",
        "A terminated coverage cannot change; register the person again.",
        "Une couverture résiliée ne peut plus changer ; réinscrivez la personne.",
    )
}
