//! `POST /v1/registrations`: a household joins a mutuelle's product, all or nothing.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use passerelle_domain::coverage::Relationship;
use passerelle_domain::error::{FieldError, StoreError};
use passerelle_domain::ports::{NewHousehold, NewMember, RegisteredMember, Registration};
use passerelle_domain::product::{select_version_or_first, ProductVersion};
use passerelle_domain::registration::{merge_errors, RegistrationDraft, ValidRegistration};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::openapi::schema::{AllOfBuilder, Schema};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::registry::{BeneficiaryView, CoverageView, LocalityWrite, NationalIdWrite};
use crate::extract::{perm, replayed, Authorized, Caller, IdempotentJson};
use crate::problem::ApiError;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(register))
}

/// A person as sent in a registration: matched by national id when it is known, else created.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"national_id": {"country": "TG", "type": "NIU", "value": "123456789012"}, "family_name": "Agbéko",
    "given_names": "Kossi", "sex": "M", "birth_date": "1984-03-12", "phone": "+22890123456",
    "locality": {"region": "Maritime", "district": "Zio", "commune": "Zio 1"}}))]
pub struct PersonWrite {
    /// Optional: many people have no papers. Same country, type and value = same person, when
    /// the sex and birth date agree with the person stored under it (the same day; the same year
    /// when either birth date is year-only); else 409 `identity_mismatch`, naming no one.
    pub national_id: Option<NationalIdWrite>,
    /// 1–100 characters once surrounding white space is trimmed, without control or invisible formatting characters (direction marks, zero-width spaces);
    /// kept byte-exact.
    // `beneficiary::check_text` with `MAX_NAME_CHARS` (100). The schema gives the form to send,
    // unpadded (the server also trims a padded one).
    #[schema(
        pattern = r"^[^\s\x00-\x1F\x7F-\x9F](?:[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F])?$",
        min_length = 1,
        max_length = 100
    )]
    pub family_name: String,
    /// 1–100 characters once surrounding white space is trimmed, without control or invisible formatting characters (direction marks, zero-width spaces);
    /// kept byte-exact.
    #[schema(
        pattern = r"^[^\s\x00-\x1F\x7F-\x9F](?:[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F])?$",
        min_length = 1,
        max_length = 100
    )]
    pub given_names: String,
    /// `F` or `M`.
    pub sex: String,
    /// `YYYY-MM-DD` from 1900 to today; when only the year is known, `YYYY-01-01` with
    /// `birth_date_precision: "year"`, or just `YYYY`. Surrounding white space is ignored.
    // `beneficiary::check_birth_date`: trimmed, `YYYY` or a calendar date, year from
    // `MIN_BIRTH_YEAR` (1900).
    #[schema(pattern = r"^[0-9]{4}(?:-[0-9]{2}-[0-9]{2})?$")]
    pub birth_date: String,
    /// `day` (default) or `year`.
    pub birth_date_precision: Option<String>,
    /// E.164, e.g. `+22890123456` (spaces, dots and dashes are removed first): `+` then 8 to 15
    /// digits, the first not 0; `00`, the international call prefix, is read as the `+`
    /// (`00221…` is `+221…`); at most 64 bytes as sent.
    // `beneficiary::parse_phone`. The pattern gives the form to send (single separators between
    // digits); the server also removes other separators.
    #[schema(pattern = r"^(?:\+|00)[1-9](?:[ .-]?[0-9]){7,14}$", max_length = 64)]
    pub phone: Option<String>,
    /// Where the person lives: region, district and commune, all three or none.
    pub locality: Option<LocalityWrite>,
}

/// A dependant: a person plus their relationship to the principal.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"relationship": "child", "family_name": "Agbéko", "given_names": "Yao", "sex": "M", "birth_date": "2015-07-30"}))]
pub struct DependantWrite {
    /// `spouse`, `child`, `parent` or `other`.
    pub relationship: String,
    /// The dependant's own member number, when the mutuelle gives one (same format as the
    /// household's, distinct from every other in the registration, whatever the case); else the
    /// household's applies.
    // `MemberNumber::parse`: trimmed, 1 to `MAX_MEMBER_NUMBER_CHARS` (50) ASCII letters, digits,
    // `-`, `/` or `.`.
    #[schema(pattern = r"^[A-Za-z0-9./-]{1,50}$")]
    pub member_number: Option<String>,
    #[serde(flatten)]
    pub person: PersonWrite,
}

/// Adds `unevaluatedProperties: false` to an `allOf` schema: the composed object then refuses
/// a member none of its parts names, as the server does (422 `unknown_field`). Each part stays
/// open, so that a part another schema extends keeps taking the extension's members.
pub(crate) fn closed_all_of(schema: RefOr<Schema>) -> RefOr<Schema> {
    match schema {
        RefOr::T(Schema::AllOf(mut all)) => {
            let mut extensions = all.extensions.take().unwrap_or_default();
            extensions.insert("unevaluatedProperties".to_owned(), Value::Bool(false));
            all.extensions = Some(extensions);
            RefOr::T(Schema::AllOf(all))
        }
        other => other,
    }
}

/// [`PersonWrite`] as a request sends it on its own (a registration's `principal`, a base
/// affiliation's person): closed, as the server refuses any other member (422 `unknown_field`).
/// Schema only; the body is read field by field.
pub struct ClosedPersonWrite;

impl PartialSchema for ClosedPersonWrite {
    fn schema() -> RefOr<Schema> {
        let all = AllOfBuilder::new()
            .item(Ref::from_schema_name(PersonWrite::name()))
            .description(Some(
                "A person as sent in a registration (`PersonWrite`), with no other member: matched by \
                 national id when it is known, else created.",
            ))
            .build();
        closed_all_of(RefOr::T(Schema::AllOf(all)))
    }
}

impl ToSchema for ClosedPersonWrite {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((PersonWrite::name().into_owned(), PersonWrite::schema()));
        PersonWrite::schemas(schemas);
    }
}

/// [`DependantWrite`] closed: the person's members and the dependant's own, no other (422
/// `unknown_field`). Published under the name `DependantWrite`; schema only.
pub struct ClosedDependantWrite;

impl PartialSchema for ClosedDependantWrite {
    fn schema() -> RefOr<Schema> {
        closed_all_of(DependantWrite::schema())
    }
}

impl ToSchema for ClosedDependantWrite {
    fn name() -> std::borrow::Cow<'static, str> {
        DependantWrite::name()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        DependantWrite::schemas(schemas);
    }
}

/// The body of `POST /v1/registrations`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({
    "product": "01937f0e-5b1a-7c3d-8e9f-0a1b2c3d4e5f", "member_number": "TSV-0042", "start_date": "2026-01-01",
    "paid_through": "2026-12-31",
    "principal": {"national_id": {"country": "TG", "type": "NIU", "value": "123456789012"}, "family_name": "Agbéko",
                  "given_names": "Kossi", "sex": "M", "birth_date": "1984-03-12", "phone": "+22890123456"},
    "dependants": [
        {"relationship": "spouse", "family_name": "Agbéko", "given_names": "Akossiwa Élise", "sex": "F", "birth_date": "1988-01-01", "birth_date_precision": "year"},
        {"relationship": "child", "family_name": "Agbéko", "given_names": "Yao", "sex": "M", "birth_date": "2015-07-30"}
    ]
}))]
pub struct RegistrationWrite {
    /// One of your `complementary` or `primary` products.
    pub product: String,
    /// The household's number, unique in your mutuelle whatever the case (`TSV-0042` and
    /// `tsv-0042` are one number; it is stored as written): 1 to 50 letters, digits, dashes,
    /// slashes or dots (surrounding white space is ignored).
    // `MemberNumber::parse`: trimmed, 1 to `MAX_MEMBER_NUMBER_CHARS` (50) ASCII letters, digits,
    // `-`, `/` or `.`.
    #[schema(pattern = r"^[A-Za-z0-9./-]{1,50}$")]
    pub member_number: String,
    /// `YYYY-MM-DD`: the first day of cover, from 1900-01-01 to ten years ahead, and not before
    /// the principal's birth (422 `born_after_start` at `/principal/birth_date`). Coverages pay
    /// from `start_date + waiting_period_days`. Surrounding white space is ignored.
    // `registration::optional_date` (trimmed, `dates::parse`) and `dates::check` (from 1900).
    #[schema(format = Date, pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    pub start_date: String,
    /// `YYYY-MM-DD`: contributions already paid up to this day, for the whole household; not
    /// before the day before `start_date`, nor past ten years ahead. Absent = nothing paid yet
    /// (`CONTRIBUTIONS_IN_ARREARS`). Surrounding white space is ignored.
    #[schema(format = Date, pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    pub paid_through: Option<String>,
    /// The household's head, who holds the household's member number.
    #[schema(value_type = ClosedPersonWrite)]
    pub principal: PersonWrite,
    /// In order, at most 100; the product's `max_dependants` and `child_max_age` apply.
    // `registration::MAX_DEPENDANTS` (100): more is 422 `too_many_dependants`.
    #[schema(value_type = Option<Vec<ClosedDependantWrite>>, max_items = 100)]
    pub dependants: Option<Vec<DependantWrite>>,
}

/// One registered member: the person, their new coverage, and how the person was found.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"relationship": "principal",
    "beneficiary": {"id": "01938a41-2c7d-7e15-8b3a-5f0c1d2e3a4b", "national_id": {"country": "TG", "type": "NIU", "value": "123456789012"},
        "family_name": "Agbéko", "given_names": "Kossi", "sex": "M", "birth_date": "1984-03-12", "birth_date_precision": "day", "phone": "+22890123456", "version": 1},
    "coverage": {"id": "01938a41-2c7e-7a02-9c4d-6e1f2a3b4c5d", "beneficiary": "01938a41-2c7d-7e15-8b3a-5f0c1d2e3a4b",
        "product": "01937f0e-5b1a-7c3d-8e9f-0a1b2c3d4e5f", "organization": "mut-tsevie", "layer": "complementary",
        "member_number": "TSV-0042", "relationship": "principal", "start_date": "2026-01-01", "status": "active", "paid_through": "2026-12-31", "version": 1},
    "matched": false, "possible_duplicates": []}))]
pub struct MemberView {
    /// `principal`, then the dependants' relationships in request order.
    pub relationship: String,
    /// The person: found by national id, or created.
    pub beneficiary: BeneficiaryView,
    /// The new coverage of the product, `active`, from `start_date`.
    pub coverage: CoverageView,
    /// True when the person was already known by their national id, with the same sex and a
    /// birth date that agrees (their stored record is returned and kept).
    pub matched: bool,
    /// People without a national id who look the same (names without accents or case, sex,
    /// birth date); never merged silently.
    pub possible_duplicates: Vec<String>,
}

/// A registered household.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"members": [
    {"relationship": "principal",
     "beneficiary": {"id": "01938a41-2c7d-7e15-8b3a-5f0c1d2e3a4b", "national_id": {"country": "TG", "type": "NIU", "value": "123456789012"},
         "family_name": "Agbéko", "given_names": "Kossi", "sex": "M", "birth_date": "1984-03-12", "birth_date_precision": "day", "phone": "+22890123456", "version": 1},
     "coverage": {"id": "01938a41-2c7e-7a02-9c4d-6e1f2a3b4c5d", "beneficiary": "01938a41-2c7d-7e15-8b3a-5f0c1d2e3a4b",
         "product": "01937f0e-5b1a-7c3d-8e9f-0a1b2c3d4e5f", "organization": "mut-tsevie", "layer": "complementary",
         "member_number": "TSV-0042", "relationship": "principal", "start_date": "2026-01-01", "status": "active", "paid_through": "2026-12-31", "version": 1},
     "matched": false, "possible_duplicates": []},
    {"relationship": "spouse",
     "beneficiary": {"id": "01938a41-2c7f-7b33-a5e6-7f2a3b4c5d6e", "family_name": "Agbéko", "given_names": "Akossiwa Élise", "sex": "F",
         "birth_date": "1988-01-01", "birth_date_precision": "year", "version": 1},
     "coverage": {"id": "01938a41-2c80-7c44-b6f7-8a3b4c5d6e7f", "beneficiary": "01938a41-2c7f-7b33-a5e6-7f2a3b4c5d6e",
         "product": "01937f0e-5b1a-7c3d-8e9f-0a1b2c3d4e5f", "organization": "mut-tsevie", "layer": "complementary",
         "member_number": "TSV-0042", "relationship": "spouse", "principal_coverage": "01938a41-2c7e-7a02-9c4d-6e1f2a3b4c5d",
         "start_date": "2026-01-01", "status": "active", "paid_through": "2026-12-31", "version": 1},
     "matched": false, "possible_duplicates": ["01937f0e-6c2a-7d3b-9e0f-1a2b3c4d5e6f"]},
    {"relationship": "child",
     "beneficiary": {"id": "01938a41-2c81-7d55-87a8-9b4c5d6e7f80", "family_name": "Agbéko", "given_names": "Yao", "sex": "M",
         "birth_date": "2015-07-30", "birth_date_precision": "day", "version": 1},
     "coverage": {"id": "01938a41-2c82-7e66-98b9-ac5d6e7f8091", "beneficiary": "01938a41-2c81-7d55-87a8-9b4c5d6e7f80",
         "product": "01937f0e-5b1a-7c3d-8e9f-0a1b2c3d4e5f", "organization": "mut-tsevie", "layer": "complementary",
         "member_number": "TSV-0042", "relationship": "child", "principal_coverage": "01938a41-2c7e-7a02-9c4d-6e1f2a3b4c5d",
         "start_date": "2026-01-01", "status": "active", "paid_through": "2026-12-31", "version": 1},
     "matched": false, "possible_duplicates": []}
]}))]
pub struct RegistrationView {
    /// Principal first, then the dependants in request order.
    pub members: Vec<MemberView>,
}

impl From<RegisteredMember> for MemberView {
    fn from(m: RegisteredMember) -> Self {
        MemberView {
            relationship: m.relationship.as_str().to_owned(),
            beneficiary: m.beneficiary.into(),
            coverage: m.coverage.into(),
            matched: m.matched,
            possible_duplicates: m.possible_duplicates,
        }
    }
}

impl From<Registration> for RegistrationView {
    fn from(r: Registration) -> Self {
        RegistrationView {
            members: r.members.into_iter().map(MemberView::from).collect(),
        }
    }
}

/// The caller's own product, in the version in force on `on` (or its first version when `on`
/// comes before it); `None` when it is not theirs or does not exist.
pub async fn own_product(
    state: &AppState,
    caller: &Caller,
    id: &str,
    on: Option<chrono::NaiveDate>,
) -> Result<Option<ProductVersion>, ApiError> {
    let versions = state.store.product_versions(id).await?;
    let Some(first) = versions.first() else { return Ok(None) };
    if first.organization != caller.org.as_str() {
        return Ok(None);
    }
    let chosen = match on {
        Some(d) => select_version_or_first(&versions, d),
        None => versions.last(),
    };
    Ok(chosen.cloned())
}

/// Validates a registration body against the product it names (or `default_product`), listing
/// every problem; shared by this endpoint and bulk uploads.
pub async fn validate_registration(
    state: &AppState,
    caller: &Caller,
    draft: RegistrationDraft,
    read_errors: Vec<FieldError>,
    default_product: Option<&ProductVersion>,
) -> Result<Result<(ValidRegistration, ProductVersion), Vec<FieldError>>, ApiError> {
    let today = state.clock.today();
    let start = draft
        .start_date
        .as_deref()
        // Trimmed as the validation reads it: the version in force on that day sets the rules.
        .and_then(|d| passerelle_domain::beneficiary::parse_date(d.trim()));
    let product = match (&draft.product, default_product) {
        (Some(id), _) => own_product(state, caller, id, start).await?,
        (None, Some(p)) => Some(p.clone()),
        (None, None) => None,
    };
    let Some(product) = product else {
        let product_given = draft.product.is_some();
        let mut errors = merge_errors(read_errors, draft.errors_without_product(&state.national_ids, today));
        if !errors.iter().any(|e| e.field == "/product") {
            errors.push(if product_given {
                FieldError::unknown_reference("/product")
            } else {
                FieldError::required("/product")
            });
        }
        return Ok(Err(errors));
    };
    if !product.layer.is_mutuelle_layer() {
        return Ok(Err(vec![FieldError::unknown_reference("/product")]));
    }
    Ok(match draft.validate_with(&state.national_ids, &product, today) {
        Ok(valid) if read_errors.is_empty() => Ok((valid, product)),
        Ok(_) => Err(read_errors),
        Err(rule_errors) => Err(merge_errors(read_errors, rule_errors)),
    })
}

pub fn household_of(valid: ValidRegistration, product: ProductVersion) -> NewHousehold {
    let mut members = vec![NewMember {
        relationship: Relationship::Principal,
        own_number: None,
        person: valid.principal,
    }];
    members.extend(valid.dependants.into_iter().map(|d| NewMember {
        relationship: d.relationship,
        own_number: d.member_number.map(|m| m.into_string()),
        person: d.beneficiary,
    }));
    NewHousehold {
        product,
        member_number: valid.member_number.into_string(),
        start_date: valid.start_date,
        end_date: None,
        paid_through: valid.paid_through,
        members,
    }
}

/// Register a household: a principal and dependants joining one of your products, all or nothing.
///
/// Mutuelles only, with `registry:write` (403 for other kinds); `Idempotency-Key` is required
/// (428 without it). Each person is matched by national id or created; a national id already
/// stored for a person of another sex or birth date (a different day, or year when either is
/// year-only) is 409 `identity_mismatch` at that member, and nothing of the stored person is
/// answered. People without one are never merged, but look-alikes are listed in
/// `possible_duplicates`. `product` must be one of
/// your `complementary` or `primary` products (422 `unknown_reference` otherwise), and its
/// `max_dependants` and `child_max_age` (on `start_date`; for a child found by national id, on
/// the birth date stored for them) apply. Every broken rule is listed at
/// once (422) and nothing is written unless everything is. 201 without `Location`: `members`
/// names every new resource.
#[utoipa::path(
    post,
    path = "/v1/registrations",
    tag = "registrations",
    request_body = RegistrationWrite,
    params(("Idempotency-Key" = String, Header, description = "Required: the same key and body replay the first response")),
    responses(
        (status = 201, description = "Registered: every member with their beneficiary and coverage, principal first", body = RegistrationView),
        (status = 409, description = "The member number is already registered in your mutuelle (`member_number_taken`), a person already holds this product (`already_covered`), or a national id is registered for a person of another sex or birth date (`identity_mismatch`, audited as `beneficiary.identity_mismatch`); `errors` points at the member at fault", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 428, description = "Idempotency-Key is missing", body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["registry:write"]))
)]
pub async fn register(
    State(state): State<AppState>,
    auth: Authorized<perm::Register>,
    IdempotentJson { body, idempotency }: IdempotentJson<Map<String, Value>>,
) -> Result<Response, ApiError> {
    let Some(idempotency) = idempotency else {
        return Err(ApiError::PreconditionRequired {
            header: "Idempotency-Key",
        });
    };
    if let Some(first) = replayed::<Registration>(&state, &auth.caller, Some(&idempotency)).await? {
        return Ok((StatusCode::CREATED, Json(RegistrationView::from(first))).into_response());
    }
    let (draft, read_errors) = RegistrationDraft::from_json(&Value::Object(body), "");
    let (valid, product) = validate_registration(&state, &auth.caller, draft, read_errors, None)
        .await?
        .map_err(ApiError::validation)?;
    let household = household_of(valid, product);
    let ctx = auth.caller.write_context(&state, Some(idempotency));
    let written = audit_identity_refusal(
        &state,
        &auth.caller,
        state.store.register_household(&ctx, &household, false).await,
    )
    .await
    .map_err(|e| match e {
        // A child found by national id whose stored birth date is past the age limit: member
        // `i` of the household is dependant `i - 1` of the body.
        StoreError::Conflict { constraint } => match passerelle_domain::batch::split_member_conflict(&constraint) {
            ("dependant_age_limit", Some(member)) if member > 0 => {
                ApiError::validation(vec![passerelle_domain::eligibility::matched_child_too_old(format!(
                    "/dependants/{}/birth_date",
                    member - 1
                ))])
            }
            _ => ApiError::from(StoreError::Conflict { constraint }),
        },
        other => ApiError::from(other),
    })?;
    Ok((StatusCode::CREATED, Json(RegistrationView::from(written.value))).into_response())
}

/// A request refused because a national id it sent is registered for a person of another sex or
/// birth date (`identity_mismatch`) is audited as `beneficiary.identity_mismatch`, so that a caller
/// trying sexes and birth years in turn to reach a registered person leaves a trace for the
/// auditors. The event names no one (`resource_id` empty): the registered person's id would tell
/// the caller, who reads its own events, whose the national id is. A bulk household so refused
/// is audited by the job's worker, under the job's request id.
pub(crate) fn identity_refusal(
    ctx: &passerelle_domain::ports::WriteContext,
) -> passerelle_domain::audit::NewAuditEvent {
    ctx.audit("beneficiary.identity_mismatch", "beneficiary", "")
}

/// Audits a store's answer that is an `identity_mismatch` refusal ([`identity_refusal`]).
pub(crate) async fn audit_identity_refusal<T>(
    state: &AppState,
    caller: &Caller,
    result: Result<T, StoreError>,
) -> Result<T, StoreError> {
    let refused = matches!(&result, Err(StoreError::Conflict { constraint })
        if passerelle_domain::batch::split_member_conflict(constraint).0 == "identity_mismatch");
    if refused {
        let ctx = caller.write_context(state, None);
        state.store.append_audit(&[identity_refusal(&ctx)]).await?;
    }
    result
}
