//! `/v1/organizations`: created by the operator, readable by every organisation.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::Json;
use chrono::{DateTime, Utc};
use passerelle_domain::organization::{OrgKind, Organization, OrganizationDraft};
use passerelle_domain::ports::OrganizationFilter;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{created, ListOf, PageQuery};
use crate::extract::{perm, replayed, AppQuery, Authorized, IdempotentJson};
use crate::fields::Fields;
use crate::problem::ApiError;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_organization, list_organizations))
        .routes(routes!(get_organization))
        .routes(routes!(deactivate_organization))
        .routes(routes!(reactivate_organization))
}

/// An organisation: the operator, a mutuelle, a national scheme, a health facility or an auditor.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "mut-tsevie", "kind": "mutuelle", "country": "TG", "name": "Mutuelle de santé de Tsévié", "registration_number": "TG-MS-2019-014", "created_at": "2026-11-30T08:00:00Z"}))]
pub struct OrganizationView {
    /// Readable slug chosen by the operator, `^[a-z0-9][a-z0-9-]{1,62}$`.
    pub id: String,
    /// What the organisation is; with the token's scopes it decides what its callers may do.
    pub kind: KindView,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    /// Display name, accents kept as registered.
    pub name: String,
    /// Its official registration number; null when none was given.
    #[schema(required = true)]
    pub registration_number: Option<String>,
    /// When it was created (RFC 3339, UTC).
    pub created_at: DateTime<Utc>,
    /// Present while the operator has it deactivated (since when): every request with one of its
    /// tokens is refused (403) and no new webhook event is queued for it. Its products,
    /// coverages, claims and settlements stay as they are.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub deactivated_at: Option<DateTime<Utc>>,
}

/// An organisation's kind: `operator` (runs the exchange: creates organisations, reads
/// everything, its reads audited), `mutuelle` (a community health mutual), `scheme` (a national
/// base insurer), `provider` (a health facility) or `auditor` (reads everything, its reads
/// audited).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KindView {
    Operator,
    Mutuelle,
    Scheme,
    Provider,
    Auditor,
}

impl From<OrgKind> for KindView {
    fn from(k: OrgKind) -> Self {
        match k {
            OrgKind::Operator => KindView::Operator,
            OrgKind::Mutuelle => KindView::Mutuelle,
            OrgKind::Scheme => KindView::Scheme,
            OrgKind::Provider => KindView::Provider,
            OrgKind::Auditor => KindView::Auditor,
        }
    }
}

impl From<Organization> for OrganizationView {
    fn from(o: Organization) -> Self {
        OrganizationView {
            id: o.id.to_string(),
            kind: o.kind.into(),
            country: o.country.as_str().to_owned(),
            name: o.name,
            registration_number: o.registration_number,
            created_at: o.created_at,
            deactivated_at: o.deactivated_at,
        }
    }
}

/// The body of `POST /v1/organizations`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"id": "mut-tsevie", "kind": "mutuelle", "country": "TG", "name": "Mutuelle de santé de Tsévié", "registration_number": "TG-MS-2019-014"}))]
pub struct OrganizationCreate {
    /// `^[a-z0-9][a-z0-9-]{1,62}$`
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{1,62}$")]
    pub id: String,
    /// What the organisation is; it cannot change later.
    pub kind: KindView,
    /// ISO 3166-1 alpha-2, upper case.
    #[schema(pattern = "^[A-Z]{2}$")]
    pub country: String,
    /// 1–200 characters once surrounding white space is trimmed (it is stored trimmed), accents
    /// kept as sent; no control or invisible formatting character (422 `invalid_characters`).
    // `OrganizationDraft` (organization.rs): trimmed, then 1 to `MAX_NAME_CHARS` (200)
    // characters. The schema gives the form to send, unpadded (the server also trims a padded one).
    #[schema(
        pattern = r"^[^\s\x00-\x1F\x7F-\x9F](?:[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F])?$",
        min_length = 1,
        max_length = 200
    )]
    pub name: String,
    /// Its official registration number, 1–64 characters, no control or invisible formatting
    /// character (422 `invalid_characters`); optional.
    // 422 `invalid_length` when blank once trimmed or past `MAX_REGISTRATION_NUMBER_CHARS` (64)
    // characters (counted untrimmed).
    #[schema(min_length = 1, max_length = 64, pattern = r"\S")]
    pub registration_number: Option<String>,
}

/// Create an organisation (operator only).
///
/// Registers a mutuelle, a scheme, a health facility, an auditor or another operator under a
/// readable id the operator chooses; tokens then name it in their `org` claim. Only an `operator`
/// organisation with the `admin` scope may call this (403 otherwise). The id is permanent: 409
/// when it is taken. Every missing or invalid field is listed at once (422).
#[utoipa::path(
    post,
    path = "/v1/organizations",
    tag = "organizations",
    request_body = OrganizationCreate,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for the same request")),
    responses(
        (status = 201, description = "Created; `Location` names it", body = OrganizationView,
         headers(("Location" = String, description = "/v1/organizations/{id}"))),
        (status = 409, description = "An organisation with this id already exists", body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin"]))
)]
pub async fn create_organization(
    State(state): State<AppState>,
    auth: Authorized<perm::CreateOrganization>,
    IdempotentJson { body, idempotency }: IdempotentJson<Map<String, Value>>,
) -> Result<Response, ApiError> {
    if let Some(first) = replayed::<Organization>(&state, &auth.caller, idempotency.as_ref()).await? {
        let view = OrganizationView::from(first);
        return Ok(created(format!("/v1/organizations/{}", view.id), &view));
    }
    let mut f = Fields::new(&body);
    let draft = OrganizationDraft {
        id: f.str("id"),
        kind: f.str("kind"),
        country: f.str("country"),
        name: f.str("name"),
        registration_number: f.opt_str("registration_number"),
    };
    let mut errors = f.finish();
    let ctx = auth.caller.write_context(&state, idempotency);
    let org = match draft.validate(ctx.at) {
        Ok(org) if errors.is_empty() => org,
        Ok(_) => return Err(ApiError::validation(errors)),
        Err(rule_errors) => {
            // A field already reported as missing or mistyped is not reported twice.
            for e in rule_errors {
                if !errors.iter().any(|x| x.field == e.field) {
                    errors.push(e);
                }
            }
            return Err(ApiError::validation(errors));
        }
    };
    let written = state.store.create_organization(&ctx, &org).await?;
    let view = OrganizationView::from(written.value);
    Ok(created(format!("/v1/organizations/{}", view.id), &view))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrganizationQuery {
    /// Only organisations of this kind.
    pub kind: Option<KindView>,
    /// Only organisations of this country (ISO 3166-1 alpha-2, upper case, e.g. `TG`).
    pub country: Option<String>,
}

/// List organisations, ordered by id.
///
/// Any organisation kind may list every organisation with `registry:read`, e.g. to find a
/// provider or payee id. Filters combine; an unknown `kind` is 422 on `/query/kind`.
#[utoipa::path(
    get,
    path = "/v1/organizations",
    tag = "organizations",
    params(PageQuery, OrganizationQuery),
    responses((status = 200, description = "A page of organisations", body = ListOf<OrganizationView>)),
    security(("bearer" = ["registry:read"]))
)]
pub async fn list_organizations(
    State(state): State<AppState>,
    auth: Authorized<perm::ReadOrganizations>,
    AppQuery(page): AppQuery<PageQuery>,
    AppQuery(query): AppQuery<OrganizationQuery>,
) -> Result<Json<ListOf<OrganizationView>>, ApiError> {
    let page = page.parse()?;
    let filter = OrganizationFilter {
        kind: query.kind.map(|k| match k {
            KindView::Operator => OrgKind::Operator,
            KindView::Mutuelle => OrgKind::Mutuelle,
            KindView::Scheme => OrgKind::Scheme,
            KindView::Provider => OrgKind::Provider,
            KindView::Auditor => OrgKind::Auditor,
        }),
        country: query.country,
    };
    let result = state.store.list_organizations(&filter, &page).await?;
    crate::routes::audit::record_read(&state, &auth.caller, "organization", "*").await?;
    Ok(Json(ListOf::from_page(result, OrganizationView::from)))
}

/// Read one organisation.
///
/// Any organisation kind may read any organisation with `registry:read`; 404 when no
/// organisation has this id.
#[utoipa::path(
    get,
    path = "/v1/organizations/{id}",
    tag = "organizations",
    params(("id" = String, Path, description = "Organisation id, e.g. `mut-tsevie`")),
    responses(
        (status = 200, description = "The organisation", body = OrganizationView),
        (status = 404, description = "No such organisation", body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["registry:read"]))
)]
pub async fn get_organization(
    State(state): State<AppState>,
    auth: Authorized<perm::ReadOrganizations>,
    Path(id): Path<String>,
) -> Result<Json<OrganizationView>, ApiError> {
    let org = state.store.get_organization(&id).await?.ok_or(ApiError::NotFound)?;
    crate::routes::audit::record_read(&state, &auth.caller, "organization", &id).await?;
    Ok(Json(org.into()))
}

/// Deactivate an organisation (operator only).
///
/// Suspends an organisation's access, when its agreement ends or its credentials leak, say:
/// from now on every request with one of its tokens is refused (403 `forbidden`, on this replica
/// at once and on the others within 5 seconds), and no new webhook event is queued for it. What it
/// registered, covers, submitted or is owed stays as it is: coverages are ended by terminating
/// them, and claims routed to it wait; webhook deliveries still queued for it are dropped, and a
/// bulk job of its own stops at its next group. 409 `already_deactivated` when it is so already,
/// `own_organization` for the caller's own and `configured_operator` for the service's own
/// operator (`PASSERELLE_OPERATOR_ORG`), so that an operator always remains. Audited as
/// `organization.deactivated`.
#[utoipa::path(
    post,
    path = "/v1/organizations/{id}/deactivate",
    tag = "organizations",
    params(("id" = String, Path, description = "Organisation id, e.g. `mut-tsevie`")),
    responses(
        (status = 200, description = "The organisation, with `deactivated_at`", body = OrganizationView,
            example = json!({"id": "mut-tsevie", "kind": "mutuelle", "country": "TG", "name": "Mutuelle de santé de Tsévié",
                "registration_number": "TG-MS-2019-014", "created_at": "2026-11-30T08:00:00Z",
                "deactivated_at": "2026-12-06T09:30:00Z"})),
        (status = 404, description = "No such organisation", body = crate::problem::Problem, content_type = "application/problem+json"),
                (status = 409, description = "Already deactivated (`already_deactivated`), the caller's own organisation (`own_organization`), or the service's own operator (`configured_operator`)", body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin"]))
)]
pub async fn deactivate_organization(
    State(state): State<AppState>,
    auth: Authorized<perm::CreateOrganization>,
    Path(id): Path<String>,
) -> Result<Json<OrganizationView>, ApiError> {
    if id == auth.caller.org.as_str() {
        return Err(own_organization());
    }
    // The configured operator stays: with it, some operator can always reactivate the others.
    if id == state.config.operator_org.as_str() {
        return Err(configured_operator());
    }
    set_active(&state, &auth.caller, &id, false).await
}

pub(crate) fn own_organization() -> ApiError {
    crate::problem::conflict_at(
        "",
        "own_organization",
        "An operator cannot deactivate its own organisation.",
        "Un opérateur ne peut pas désactiver sa propre organisation.",
    )
}

pub(crate) fn configured_operator() -> ApiError {
    crate::problem::conflict_at(
        "",
        "configured_operator",
        "The service's own operator organisation (PASSERELLE_OPERATOR_ORG) cannot be deactivated.",
        "L'organisation opératrice du service (PASSERELLE_OPERATOR_ORG) ne peut pas être désactivée.",
    )
}

/// Reactivate an organisation (operator only).
///
/// Its tokens are accepted again (on this replica at once, on the others within 5 seconds) and
/// webhook events are queued for it again; those of the time it was deactivated are not. 409
/// `already_active` when it is not deactivated. Audited as `organization.reactivated`.
#[utoipa::path(
    post,
    path = "/v1/organizations/{id}/reactivate",
    tag = "organizations",
    params(("id" = String, Path, description = "Organisation id, e.g. `mut-tsevie`")),
    responses(
        (status = 200, description = "The organisation, without `deactivated_at`", body = OrganizationView),
        (status = 404, description = "No such organisation", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not deactivated (`already_active`)", body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin"]))
)]
pub async fn reactivate_organization(
    State(state): State<AppState>,
    auth: Authorized<perm::CreateOrganization>,
    Path(id): Path<String>,
) -> Result<Json<OrganizationView>, ApiError> {
    set_active(&state, &auth.caller, &id, true).await
}

async fn set_active(
    state: &AppState,
    caller: &crate::extract::Caller,
    id: &str,
    active: bool,
) -> Result<Json<OrganizationView>, ApiError> {
    let ctx = caller.write_context(state, None);
    let org = state
        .store
        .set_organization_active(&ctx, id, active)
        .await?
        .ok_or(ApiError::NotFound)?;
    state.deactivated.set(id, !active);
    Ok(Json(org.into()))
}
