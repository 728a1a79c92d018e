//! `POST /v1/coverages/{id}/dependants`: a dependant joins a household already registered (a
//! birth, a marriage), without registering the household again.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use passerelle_domain::coverage::{CoverageStatus, Relationship};
use passerelle_domain::error::{FieldError, StoreError};
use passerelle_domain::ports::{NewMember, RegisteredMember};
use passerelle_domain::registration::{AddedDependantDraft, DependantDraft, HouseholdSpan};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::registrations::{closed_all_of, own_product, MemberView, PersonWrite};
use super::registry::{read_person_fields, visible_coverage};
use crate::extract::{perm, replayed, Authorized, IdempotentJson};
use crate::fields::Fields;
use crate::problem::ApiError;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(add_dependant))
}

/// The body of `POST /v1/coverages/{id}/dependants`: a dependant as in a registration, and the
/// day their coverage starts.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"relationship": "child", "start_date": "2026-03-02", "family_name": "Agbéko",
    "given_names": "Afi", "sex": "F", "birth_date": "2026-03-01"}))]
pub struct DependantAdd {
    /// `spouse`, `child`, `parent` or `other`.
    pub relationship: String,
    /// The dependant's own member number, when the mutuelle gives one (unique in your
    /// mutuelle, whatever the case): 1 to 50 letters, digits, dashes, slashes or dots; else the
    /// household's applies.
    // `MemberNumber::parse`: trimmed, 1 to `MAX_MEMBER_NUMBER_CHARS` (50) ASCII letters, digits,
    // `-`, `/` or `.`.
    #[schema(pattern = r"^[A-Za-z0-9./-]{1,50}$")]
    pub member_number: Option<String>,
    /// `YYYY-MM-DD`: the first day of the dependant's coverage, not before the household's
    /// `start_date` (422 `before_household_start`) nor after its `end_date` (422
    /// `after_household_end`). The product's waiting period counts from it, and a `child`'s age
    /// limit is judged on it (422 `dependant_age_limit` at `/birth_date`). Not before the
    /// dependant's birth date (422 `born_after_start` at `/birth_date`). Surrounding white
    /// space is ignored.
    // `AddedDependantDraft::check`: trimmed (`optional_date`), then `dates::check` (from 1900).
    #[schema(format = Date, pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    pub start_date: String,
    #[serde(flatten)]
    pub person: PersonWrite,
}

/// [`DependantAdd`] closed: the person's members and the dependant's own, no other (422
/// `unknown_field`). Published under the name `DependantAdd`; schema only.
pub struct ClosedDependantAdd;

impl PartialSchema for ClosedDependantAdd {
    fn schema() -> RefOr<Schema> {
        closed_all_of(DependantAdd::schema())
    }
}

impl ToSchema for ClosedDependantAdd {
    fn name() -> std::borrow::Cow<'static, str> {
        DependantAdd::name()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        DependantAdd::schemas(schemas);
    }
}

/// Add a dependant to a registered household (the principal's coverage).
///
/// Mutuelles only, with `registry:write`; `Idempotency-Key` is required (428 without it). `id`
/// is the principal's coverage, one of yours (404 otherwise). The person is matched by national
/// id (when the sex and birth date agree with the person stored under it: 409
/// `identity_mismatch` otherwise) or created, as in a registration (`possible_duplicates` lists
/// look-alikes), and gets a coverage of the household's product, linked to the principal's,
/// under the household's member number unless one of their own is given. The product version in force on
/// `start_date` applies: a `child` older than its `child_max_age` on that day is 422 (on the
/// birth date stored for a child found by national id, which the person keeps), and a
/// household that already has `max_dependants` live dependants is 409. The dependant's
/// eligibility follows the principal's status and payments, as for any dependant. Any member
/// of the body not listed here is 422 `unknown_field`. 201 with the new coverage's `Location`
/// and `ETag`.
#[utoipa::path(
    post,
    path = "/v1/coverages/{id}/dependants",
    tag = "registrations",
    request_body = ClosedDependantAdd,
    params(
        ("id" = String, Path, description = "The principal's coverage id"),
        ("Idempotency-Key" = String, Header, description = "Required: the same key and body replay the first response"),
    ),
    responses(
        (status = 201, description = "Added: the dependant with their beneficiary and coverage", body = MemberView,
         headers(("Location" = String, description = "/v1/coverages/{id} of the new coverage"), ("ETag" = String, description = "The new coverage's version")),
         example = json!({"relationship": "child", "matched": false, "possible_duplicates": [],
            "beneficiary": {"id": "01938a41-3d8f-7b13-8d5e-7f2a3b4c5d6e", "family_name": "Agbéko", "given_names": "Afi",
                "sex": "F", "birth_date": "2026-03-01", "birth_date_precision": "day", "version": 1},
            "coverage": {"id": "01938a41-4e90-7c24-9e6f-803b4c5d6e7f", "beneficiary": "01938a41-3d8f-7b13-8d5e-7f2a3b4c5d6e",
                "product": "01937f0e-5b1a-7c3d-8e9f-0a1b2c3d4e5f", "organization": "mut-tsevie", "layer": "complementary",
                "member_number": "TSV-0042", "relationship": "child", "principal_coverage": "01938a41-2c7e-7a02-9c4d-6e1f2a3b4c5d",
                "start_date": "2026-03-02", "status": "active", "paid_through": "2026-12-31", "version": 1}})),
        (status = 404, description = "No such coverage, or another organisation's", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`errors[0].code` names the case: the coverage is a dependant's (`not_principal`) or terminated (`household_terminated`); the household is full (`household_full`); the person is already a member (`duplicate_member`: same names, sex and birth date, one of the two without a national id) or already holds this product (`already_covered`, the same national id included); their national id is registered for a person of another sex or birth date (`identity_mismatch`, audited as `beneficiary.identity_mismatch`); or their own member number is taken (`member_number_taken`, at `/member_number`)", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 410, description = "The household's principal had their personal data erased at the end of the deployment's retention period (`personal_data_erased`): the household ended, and takes no one", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 428, description = "Idempotency-Key is missing", body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["registry:write"]))
)]
pub async fn add_dependant(
    State(state): State<AppState>,
    auth: Authorized<perm::Register>,
    Path(id): Path<String>,
    IdempotentJson { body, idempotency }: IdempotentJson<Map<String, Value>>,
) -> Result<Response, ApiError> {
    let Some(idempotency) = idempotency else {
        return Err(ApiError::PreconditionRequired {
            header: "Idempotency-Key",
        });
    };
    let caller = &auth.caller;
    let principal = visible_coverage(&state, caller, &id).await?;
    if principal.organization != caller.org.as_str() {
        return Err(ApiError::NotFound);
    }
    if let Some(first) = replayed::<RegisteredMember>(&state, caller, Some(&idempotency)).await? {
        return Ok(added(first));
    }
    if principal.relationship != Relationship::Principal {
        return Err(household_conflict("not_principal"));
    }
    // A household whose principal was erased ended long ago, and no one can extend it again.
    if let Some(at) = state
        .store
        .get_beneficiary(&principal.beneficiary)
        .await?
        .and_then(|p| p.erased_at)
    {
        return Err(ApiError::Erased { on: at.date_naive() });
    }
    if principal.status == CoverageStatus::Terminated {
        return Err(household_conflict("household_terminated"));
    }
    let today = state.clock.today();
    let mut f = Fields::new(&body);
    let mut errors = Vec::new();
    let relationship = f.opt_str("relationship");
    let member_number = f.opt_str("member_number");
    let start_date = f.opt_str("start_date");
    let beneficiary = read_person_fields(&mut f, "", &mut errors);
    errors.extend(f.finish());
    let start = start_date
        .as_deref()
        .and_then(|d| passerelle_domain::beneficiary::parse_date(d.trim()));
    let product = own_product(&state, caller, &principal.product, start.or(Some(principal.start_date)))
        .await?
        .ok_or_else(|| ApiError::Internal("a coverage's product is missing".into()))?;
    let draft = AddedDependantDraft {
        dependant: DependantDraft {
            relationship,
            member_number,
            beneficiary,
        },
        start_date,
    };
    let household = HouseholdSpan {
        start_date: principal.start_date,
        end_date: principal.end_date,
    };
    let (dependant, start_date) = match draft.validate_with(&state.national_ids, &product, household, today) {
        Ok(valid) if errors.is_empty() => valid,
        Ok(_) => return Err(ApiError::validation(errors)),
        Err(rule_errors) => return Err(ApiError::validation(crate::fields::merge(errors, rule_errors))),
    };
    let member = NewMember {
        relationship: dependant.relationship,
        own_number: dependant.member_number.map(|m| m.into_string()),
        person: dependant.beneficiary,
    };
    let ctx = caller.write_context(&state, Some(idempotency));
    let added_one = state
        .store
        .add_dependant(&ctx, &principal.id, &member, start_date, &product)
        .await;
    let written = super::registrations::audit_identity_refusal(&state, caller, added_one)
        .await
        .map_err(|e| match e {
            StoreError::Conflict { constraint } if constraint == "after_household_end" => {
                ApiError::field(after_household_end())
            }
            StoreError::Conflict { constraint } if constraint == "dependant_age_limit" => {
                ApiError::field(passerelle_domain::eligibility::matched_child_too_old("/birth_date"))
            }
            StoreError::Conflict { constraint } => household_conflict(&constraint),
            other => ApiError::from(other),
        })?;
    Ok(added(written.value))
}

/// A conflict of this endpoint, its code in `errors` so that a program can tell them apart:
/// at `/member_number` for a number taken, at the whole body (`""`) for the others.
pub fn household_conflict(constraint: &str) -> ApiError {
    let (field, en, fr): (&str, &str, &str) = match constraint {
        "not_principal" => (
            "",
            "This coverage is a dependant's: add dependants to the principal's coverage (principal_coverage).",
            "Cette couverture est celle d'un ayant droit : ajoutez les ayants droit à la couverture de l'adhérent principal (principal_coverage).",
        ),
        "household_terminated" => (
            "",
            "The household's coverage is terminated: register the household again.",
            "La couverture du ménage est résiliée : réinscrivez le ménage.",
        ),
        "household_full" => (
            "",
            "The household already has as many dependants as its product admits (max_dependants).",
            "Le ménage compte déjà autant d'ayants droit que son produit en admet (max_dependants).",
        ),
        "duplicate_member" => (
            "",
            "This person is already a member of the household (same names, sex and birth date).",
            "Cette personne est déjà membre du ménage (mêmes noms, sexe et date de naissance).",
        ),
        "identity_mismatch" => ("", crate::problem::IDENTITY_MISMATCH.0, crate::problem::IDENTITY_MISMATCH.1),
        "member_number_taken" => (
            "/member_number",
            "This member number is already held in your organisation.",
            "Ce numéro d'adhérent est déjà attribué dans votre organisation.",
        ),
        "already_covered" => (
            "",
            "This person already holds a coverage of this product.",
            "Cette personne est déjà couverte par ce produit.",
        ),
        other => return ApiError::from(StoreError::Conflict { constraint: other.to_owned() }),
    };
    crate::problem::conflict_at(field, constraint, en, fr)
}

fn after_household_end() -> FieldError {
    FieldError::new(
        "/start_date",
        "after_household_end",
        "must not be after the household's end_date",
        "ne doit pas être postérieure à la date de fin du ménage",
    )
}

fn added(member: RegisteredMember) -> Response {
    let version = member.coverage.version;
    let location = format!("/v1/coverages/{}", member.coverage.id);
    let mut response = super::created(location, &MemberView::from(member));
    response
        .headers_mut()
        .insert(axum::http::header::ETAG, super::products::etag(version));
    response.into_response()
}
