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
    pub registration_number: Option<String>,
    /// When it was created (RFC 3339, UTC).
    pub created_at: DateTime<Utc>,
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
    /// 1–200 characters, accents kept as sent.
    #[schema(max_length = 200)]
    pub name: String,
    /// Its official registration number, 1–64 characters; optional.
    #[schema(max_length = 64)]
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
