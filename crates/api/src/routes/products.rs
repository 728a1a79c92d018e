//! `/v1/products`: benefit packages, versioned by effective date.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::NaiveDate;
use passerelle_domain::error::{FieldError, StoreError};
use passerelle_domain::product::{
    successor_faults, superseded_by, CareLevel, Category, Layer, ProductDraft, ProductVersion, RuleDraft,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{created, ListOf, PageQuery};
use crate::extract::{perm, replayed, AppJson, AppQuery, Authorized, Caller, IdempotentJson};
use crate::fields::{merge, Fields};
use crate::problem::ApiError;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_product, list_products))
        .routes(routes!(get_product, replace_product))
        .routes(routes!(list_product_versions))
}

/// One version of a benefit package.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "01937f0e-5b1a-7c3d-8e9f-0a1b2c3d4e5f", "organization": "mut-tsevie", "layer": "complementary",
    "name": "Formule famille", "rules": [{"care_level": "health_center", "rate_bp": 10000}, {"category": "pharmacy", "rate_bp": 7000}],
    "annual_ceiling_xof": 150000, "waiting_period_days": 90, "grace_period_days": 30,
    "excluded_categories": ["dental", "optical"], "max_dependants": 8, "child_max_age": 21,
    "effective_from": "2026-01-01", "version": 1
}))]
pub struct ProductView {
    /// Product id, chosen by the server; the same for every version.
    pub id: String,
    /// The owning mutuelle or scheme.
    pub organization: String,
    /// `base` (schemes), `complementary` or `primary` (mutuelles).
    pub layer: String,
    /// Display name, accents kept.
    pub name: String,
    /// The first rule whose `care_level` and `category` match (absent = any) decides the rate;
    /// none matching = not covered.
    pub rules: Vec<RuleView>,
    /// Most the product pays per person per calendar year; absent = no ceiling.
    #[schema(required = true)]
    pub annual_ceiling_xof: Option<i64>,
    /// A coverage is eligible from `start_date + waiting_period_days`.
    pub waiting_period_days: u32,
    /// Days after `paid_through` during which contributions are not yet in arrears.
    pub grace_period_days: u32,
    /// Categories never paid, whatever the rules (`EXCLUDED_CATEGORY`).
    pub excluded_categories: Vec<String>,
    /// Most dependants a household may register; absent = no limit.
    #[schema(required = true)]
    pub max_dependants: Option<u32>,
    /// Oldest age, in whole years, of a `child` dependant: on the registration's start date to
    /// be registered, on the service date to be eligible (`DEPENDANT_AGE_LIMIT`); absent = no limit.
    #[schema(required = true)]
    pub child_max_age: Option<u32>,
    /// The first day this version is in force, unless a later version supersedes it first. A
    /// claim is priced with the version in force on its service date: the highest-numbered one
    /// whose `effective_from` is on or before it.
    pub effective_from: NaiveDate,
    /// 1 for the first version, then +1 per `PUT`.
    pub version: u32,
    /// In `/versions` only: the version that replaced this one while it was still scheduled, by
    /// starting on or before its `effective_from`; this one never takes effect. Absent for a
    /// version that takes (or took) effect.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub superseded_by: Option<u32>,
}

/// One pricing rule: what the product pays, as a rate, for a care level and category.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"care_level": "health_center", "category": "consultation", "rate_bp": 8000}))]
pub struct RuleView {
    /// `health_post`, `health_center`, `hospital` or `university_hospital`; absent = any.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub care_level: Option<String>,
    /// `consultation`, `hospitalization`, `pharmacy`, `laboratory`, `imaging`, `maternity`,
    /// `surgery`, `dental`, `optical` or `emergency`; absent = any.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub category: Option<String>,
    /// 0–10000 (10000 = 100 %). A 0 rule carves a care out ahead of a broader rule: not covered.
    pub rate_bp: u32,
}

/// One pricing rule as a request sends it: the members of `RuleView` and no other (422
/// `unknown_field`). Schema only; the body is read field by field.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"care_level": "health_center", "category": "consultation", "rate_bp": 8000}))]
pub struct RuleWrite {
    /// `health_post`, `health_center`, `hospital` or `university_hospital`; absent = any.
    #[schema(schema_with = nullable_care_level)]
    pub care_level: Option<String>,
    /// `consultation`, `hospitalization`, `pharmacy`, `laboratory`, `imaging`, `maternity`,
    /// `surgery`, `dental`, `optical` or `emergency`; absent = any.
    #[schema(schema_with = nullable_category)]
    pub category: Option<String>,
    /// 0–10000 (10000 = 100 %). A 0 rule carves a care out ahead of a broader rule: not covered.
    // `BasisPoints::new`: `0..=10_000`.
    #[schema(minimum = 0, maximum = 10000)]
    pub rate_bp: u32,
}

/// A string among `values`, or null: an optional member of a closed set, where `null` reads as
/// absent.
fn nullable_enum(values: &[&str], description: &str) -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    let mut listed: Vec<Value> = values.iter().map(|v| Value::from(*v)).collect();
    listed.push(Value::Null);
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .enum_values(Some(listed))
        .description(Some(description))
        .build()
}

/// `excluded_categories` of a write: `Category::ALL` items, each at most once, or null (absent).
fn excluded_categories() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
    let item = ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(Category::ALL.map(Category::as_str)));
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(item)
        .unique_items(true)
        .description(Some("Categories never paid, each at most once; default none."))
        .build()
}

/// `CareLevel::ALL`, which `validate_rule` reads.
fn nullable_care_level() -> utoipa::openapi::schema::Object {
    nullable_enum(
        &CareLevel::ALL.map(CareLevel::as_str),
        "`health_post`, `health_center`, `hospital` or `university_hospital`; absent = any.",
    )
}

/// `Category::ALL`, which `validate_rule` reads.
fn nullable_category() -> utoipa::openapi::schema::Object {
    nullable_enum(
        &Category::ALL.map(Category::as_str),
        "`consultation`, `hospitalization`, `pharmacy`, `laboratory`, `imaging`, `maternity`,\n\
         `surgery`, `dental`, `optical` or `emergency`; absent = any.",
    )
}

impl From<ProductVersion> for ProductView {
    fn from(v: ProductVersion) -> Self {
        ProductView {
            id: v.product_id,
            organization: v.organization,
            layer: v.layer.as_str().to_owned(),
            name: v.name,
            rules: v
                .rules
                .into_iter()
                .map(|r| RuleView {
                    care_level: r.care_level.map(|c| c.as_str().to_owned()),
                    category: r.category.map(|c| c.as_str().to_owned()),
                    rate_bp: r.rate_bp.value(),
                })
                .collect(),
            annual_ceiling_xof: v.annual_ceiling_xof.map(|x| x.value()),
            waiting_period_days: v.waiting_period_days,
            grace_period_days: v.grace_period_days,
            excluded_categories: v
                .excluded_categories
                .into_iter()
                .map(|c| c.as_str().to_owned())
                .collect(),
            max_dependants: v.max_dependants,
            child_max_age: v.child_max_age,
            effective_from: v.effective_from,
            version: v.version,
            superseded_by: None,
        }
    }
}

/// The body of `POST /v1/products` and `PUT /v1/products/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({
    "layer": "complementary", "name": "Formule famille",
    "rules": [{"care_level": "health_center", "rate_bp": 10000}, {"category": "pharmacy", "rate_bp": 7000}],
    "annual_ceiling_xof": 150000, "waiting_period_days": 90, "grace_period_days": 30,
    "excluded_categories": ["dental", "optical"], "max_dependants": 8, "child_max_age": 21, "effective_from": "2026-01-01"
}))]
pub struct ProductWrite {
    /// Must suit the caller: `base` for schemes, `complementary` or `primary` for mutuelles. On
    /// `PUT`, the current version's layer (it cannot change).
    pub layer: String,
    /// 1–200 characters once surrounding white space is trimmed (and stored trimmed), without
    /// control or invisible formatting characters (422 `invalid_characters`); accents kept.
    // `ProductDraft::validate`: trimmed, then 1 to `MAX_NAME_CHARS` (200) characters, none a
    // control character. The schema gives the form to send, unpadded (the server also trims a padded one).
    #[schema(
        pattern = r"^[^\s\x00-\x1F\x7F-\x9F](?:[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F])?$",
        min_length = 1,
        max_length = 200
    )]
    pub name: String,
    /// 1–100 rules, tried in order: the first whose `care_level` and `category` match (absent =
    /// any) decides the rate.
    // `ProductDraft::validate`: empty is 422 `empty`, past `MAX_RULES` (100) `too_many`.
    #[schema(min_items = 1, max_items = 100)]
    pub rules: Vec<RuleWrite>,
    /// Most the product pays per person per calendar year, 0 to 10^12; absent = no ceiling. Not
    /// allowed on `base` products.
    // `ProductDraft::validate`: `0..=MAX_XOF`.
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub annual_ceiling_xof: Option<i64>,
    /// Days after a coverage's start before it pays, 0–3650; default 0.
    // `MAX_PERIOD_DAYS`.
    #[schema(minimum = 0, maximum = 3650)]
    pub waiting_period_days: Option<u32>,
    /// Days after `paid_through` before contributions are in arrears, 0–3650; default 0.
    // `MAX_PERIOD_DAYS`.
    #[schema(minimum = 0, maximum = 3650)]
    pub grace_period_days: Option<u32>,
    /// Categories never paid, each at most once; default none.
    // A category listed twice is 422 `duplicate`: `uniqueItems`.
    #[schema(schema_with = excluded_categories)]
    pub excluded_categories: Option<Vec<String>>,
    /// Most dependants a household may register, 0–100; absent = no limit.
    // `product::MAX_DEPENDANTS`.
    #[schema(minimum = 0, maximum = 100)]
    pub max_dependants: Option<u32>,
    /// Oldest age of a `child` dependant, in whole years, 0–120; absent = no limit.
    // `MAX_CHILD_AGE`.
    #[schema(minimum = 0, maximum = 120)]
    pub child_max_age: Option<u32>,
    /// The first day this version is in force; on `PUT`, later than that of the version in force
    /// today (a version still scheduled from this day or later is superseded).
    pub effective_from: NaiveDate,
}

fn read_draft(body: &Map<String, Value>) -> (ProductDraft, Vec<FieldError>) {
    let mut f = Fields::new(body);
    // Past the bound, its items are not read: the rule says how many, once, not each item's fault.
    let crowded = body
        .get("rules")
        .and_then(Value::as_array)
        .is_some_and(|r| r.len() > passerelle_domain::product::MAX_RULES);
    let draft = ProductDraft {
        layer: f.str("layer"),
        name: f.str("name"),
        // An item of the wrong type is read as an empty one: it keeps the indices of the items
        // after it, and its own rule errors fall under its type error (`merge`).
        rules: if crowded {
            f.opt_array("rules");
            Some(
                (0..=passerelle_domain::product::MAX_RULES)
                    .map(|_| RuleDraft::default())
                    .collect(),
            )
        } else {
            f.opt_objects("rules", |r| RuleDraft {
                care_level: r.opt_str("care_level"),
                category: r.opt_str("category"),
                rate_bp: r.opt_i64("rate_bp"),
            })
            .map(|rules| rules.into_iter().map(Option::unwrap_or_default).collect())
        },
        annual_ceiling_xof: f.opt_i64("annual_ceiling_xof"),
        waiting_period_days: f.opt_i64("waiting_period_days"),
        grace_period_days: f.opt_i64("grace_period_days"),
        excluded_categories: f
            .opt_str_list("excluded_categories")
            .map(|categories| categories.into_iter().map(Option::unwrap_or_default).collect()),
        max_dependants: f.opt_i64("max_dependants"),
        child_max_age: f.opt_i64("child_max_age"),
        effective_from: f.str("effective_from"),
    };
    (draft, f.finish())
}

pub fn etag(version: u32) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
}

fn with_etag(mut response: Response, version: u32) -> Response {
    response.headers_mut().insert(header::ETAG, etag(version));
    response
}

/// The versions of a product the caller may see; empty (→ 404) for anyone else's.
async fn visible_versions(state: &AppState, caller: &Caller, id: &str) -> Result<Vec<ProductVersion>, ApiError> {
    let versions = state.store.product_versions(id).await?;
    match versions.first() {
        Some(v) if caller.reads_everything() || v.organization == caller.org.as_str() => Ok(versions),
        _ => Err(ApiError::NotFound),
    }
}

/// The product a body describes, every rule checked, its `effective_from` within the dates of
/// the business: a version dated 9999 would never apply, and no later one could follow it. On
/// `PUT`, `history` is the product's versions, which the new one must be able to follow
/// (`check_successor`). Each rule is judged on every field that was well formed, whatever the
/// faults of the others, so that one answer lists them all.
fn validate_body(
    body: &Map<String, Value>,
    caller: &Caller,
    today: NaiveDate,
    history: Option<&[ProductVersion]>,
) -> Result<passerelle_domain::product::ProductDraftValid, ApiError> {
    let (draft, parse_errors) = read_draft(body);
    // What the date and successor rules read, when the body gives it well formed. On `PUT` a
    // layer other than the product's is `layer_changed` whatever the caller's kind may create:
    // one mistake, one code (the product's own layer suits its owner).
    let layer = draft.layer.as_deref().and_then(Layer::parse);
    let effective_from = draft
        .effective_from
        .as_deref()
        .and_then(passerelle_domain::dates::parse);
    let (valid, mut errors) = match draft.validate(caller.kind) {
        Ok(valid) => (Some(valid), parse_errors),
        Err(rule_errors) => (None, merge(parse_errors, rule_errors)),
    };
    let effective_from = effective_from.filter(|day| {
        let fault = passerelle_domain::dates::check(*day, "/effective_from", today);
        let in_range = fault.is_none();
        errors.extend(fault);
        in_range
    });
    if let Some(history) = history {
        let faults = successor_faults(history, layer, effective_from, today);
        if faults.iter().any(|e| e.code == "layer_changed") {
            errors.retain(|e| !(e.field == "/layer" && e.code == "layer_not_allowed"));
        }
        errors.extend(faults);
    }
    match valid {
        Some(valid) if errors.is_empty() => Ok(valid),
        _ => Err(ApiError::validation(errors)),
    }
}

/// Create a product (a mutuelle's `complementary`/`primary`, a scheme's `base`).
///
/// Mutuelles and schemes with `registry:write` create their own benefit packages (403 for other
/// kinds); the product's `organization` is the caller's. A `layer` that does not suit the
/// caller's kind is 422 on `/layer`, and a `base` product takes no `annual_ceiling_xof`,
/// `max_dependants` or `child_max_age` (422 `not_allowed_for_layer`). Every
/// broken rule is listed at once (422). Answers 201 with version 1, its `Location` and `ETag`.
#[utoipa::path(
    post,
    path = "/v1/products",
    tag = "products",
    request_body = ProductWrite,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for the same request")),
    responses((status = 201, description = "Created, version 1", body = ProductView,
        headers(("Location" = String, description = "/v1/products/{id}"), ("ETag" = String, description = "The version, quoted")))),
    security(("bearer" = ["registry:write"]))
)]
pub async fn create_product(
    State(state): State<AppState>,
    auth: Authorized<perm::WriteProducts>,
    IdempotentJson { body, idempotency }: IdempotentJson<Map<String, Value>>,
) -> Result<Response, ApiError> {
    if let Some(first) = replayed::<ProductVersion>(&state, &auth.caller, idempotency.as_ref()).await? {
        return Ok(product_created(first));
    }
    let valid = validate_body(&body, &auth.caller, state.clock.today(), None)?;
    let ctx = auth.caller.write_context(&state, idempotency);
    let first = valid.into_version(uuid::Uuid::now_v7().to_string(), auth.caller.org.to_string(), 1);
    let written = state.store.create_product(&ctx, &first).await?;
    Ok(product_created(written.value))
}

fn product_created(first: ProductVersion) -> Response {
    let view = ProductView::from(first);
    let version = view.version;
    with_etag(created(format!("/v1/products/{}", view.id), &view), version)
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProductQuery {
    /// Only this organisation's products (operators and auditors; others only ever see their own).
    pub organization: Option<String>,
}

/// List products (their latest versions), ordered by id.
///
/// Any organisation kind with `registry:read` may call this. Operators and auditors see every
/// product and may filter by `organization`; other organisations see only their own, and a
/// filter naming another organisation answers an empty list.
#[utoipa::path(
    get,
    path = "/v1/products",
    tag = "products",
    params(PageQuery, ProductQuery),
    responses((status = 200, description = "A page of products", body = ListOf<ProductView>)),
    security(("bearer" = ["registry:read"]))
)]
pub async fn list_products(
    State(state): State<AppState>,
    auth: Authorized<perm::ReadProducts>,
    AppQuery(page): AppQuery<PageQuery>,
    AppQuery(query): AppQuery<ProductQuery>,
) -> Result<Json<ListOf<ProductView>>, ApiError> {
    let page = page.parse()?;
    let caller = &auth.caller;
    let organization = if caller.reads_everything() {
        query.organization
    } else {
        match query.organization {
            Some(other) if other != caller.org.as_str() => {
                return Ok(Json(ListOf {
                    items: Vec::new(),
                    next_cursor: None,
                }))
            }
            _ => Some(caller.org.to_string()),
        }
    };
    let result = state.store.list_products(organization.as_deref(), &page).await?;
    crate::routes::audit::record_read(&state, caller, "product", "*").await?;
    Ok(Json(ListOf::from_page(result, ProductView::from)))
}

/// Read a product's latest version.
///
/// The highest `version`, which may take effect after today. Readable by its organisation,
/// operators and auditors; 404 for anyone else. Its `ETag` is what `PUT` needs in `If-Match`.
#[utoipa::path(
    get,
    path = "/v1/products/{id}",
    tag = "products",
    params(
        ("id" = String, Path, description = "Product id"),
        ("If-None-Match" = Option<String>, Header, description = "The ETag of a copy the client holds (a list, compared weakly, or `*`): 304 without a body when it is still the latest version"),
        ("If-Match" = Option<String>, Header, description = "Read only if the latest version is this one (compared strongly, as for `PUT`): 412 otherwise"),
    ),
    responses(
        (status = 200, description = "The latest version", body = ProductView, headers(("ETag" = String, description = "Pass as If-Match to PUT"))),
        (status = 304, description = "`If-None-Match` names the latest version: the client's copy is current. No body", headers(("ETag" = String, description = "The latest version, quoted"))),
        (status = 404, description = "No such product, or another organisation's", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 412, description = "`If-Match` names another version", body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["registry:read"]))
)]
pub async fn get_product(
    State(state): State<AppState>,
    auth: Authorized<perm::ReadProducts>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let mut versions = visible_versions(&state, &auth.caller, &id).await?;
    let latest = versions.pop().ok_or(ApiError::NotFound)?;
    crate::routes::audit::record_read(&state, &auth.caller, "product", &id).await?;
    let version = latest.version;
    if let Some(not_modified) = read_preconditions(&headers, version)? {
        return Ok(not_modified);
    }
    Ok(with_etag(Json(ProductView::from(latest)).into_response(), version))
}

/// Every version of a product, oldest first.
///
/// All versions in one page (`next_cursor` is always null), for its organisation, operators and
/// auditors; 404 for anyone else. A claim is priced with the version in force on its service
/// date: the highest-numbered one whose `effective_from` is on or before it. A version replaced
/// while still scheduled names the one that replaced it (`superseded_by`).
#[utoipa::path(
    get,
    path = "/v1/products/{id}/versions",
    tag = "products",
    params(("id" = String, Path, description = "Product id")),
    responses(
        (status = 200, description = "All versions, oldest first (one page)", body = ListOf<ProductView>,
         example = json!({"items": [
            {"id": "01937f0e-5b1a-7c3d-8e9f-0a1b2c3d4e5f", "organization": "mut-tsevie", "layer": "complementary",
             "name": "Formule famille", "rules": [{"care_level": "health_center", "rate_bp": 10000}, {"category": "pharmacy", "rate_bp": 7000}],
             "annual_ceiling_xof": 150000, "waiting_period_days": 90, "grace_period_days": 30,
             "excluded_categories": ["dental", "optical"], "max_dependants": 8, "child_max_age": 21,
             "effective_from": "2026-01-01", "version": 1},
            {"id": "01937f0e-5b1a-7c3d-8e9f-0a1b2c3d4e5f", "organization": "mut-tsevie", "layer": "complementary",
             "name": "Formule famille", "rules": [{"care_level": "health_center", "rate_bp": 10000}, {"category": "pharmacy", "rate_bp": 7500}],
             "annual_ceiling_xof": 175000, "waiting_period_days": 90, "grace_period_days": 30,
             "excluded_categories": ["dental", "optical"], "max_dependants": 8, "child_max_age": 21,
             "effective_from": "2026-07-01", "version": 2}],
            "next_cursor": null})),
        (status = 404, description = "No such product, or another organisation's", body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["registry:read"]))
)]
pub async fn list_product_versions(
    State(state): State<AppState>,
    auth: Authorized<perm::ReadProducts>,
    Path(id): Path<String>,
) -> Result<Json<ListOf<ProductView>>, ApiError> {
    let versions = visible_versions(&state, &auth.caller, &id).await?;
    crate::routes::audit::record_read(&state, &auth.caller, "product", &id).await?;
    let superseded: Vec<Option<u32>> = versions.iter().map(|v| superseded_by(&versions, v)).collect();
    Ok(Json(ListOf {
        items: versions
            .into_iter()
            .zip(superseded)
            .map(|(v, by)| ProductView {
                superseded_by: by,
                ..ProductView::from(v)
            })
            .collect(),
        next_cursor: None,
    }))
}

/// `If-Match` against the resource's current version, as RFC 9110 §13.1.1 has it: 428 when
/// absent; `*` matches (the resource exists); otherwise one of the listed entity tags must name
/// the current version; 412 when none does. A weak tag (`W/"3"`) names its version as the strong
/// one does, unlike RFC 9110's strong comparison: a proxy that compresses answers (nginx's
/// `gzip`, Cloudflare) turns `"3"` into `W/"3"`, and every update through it was 412 for ever.
/// The tag names the resource's version, not its bytes (French and English bodies share it),
/// so the weak form says just as much.
pub fn check_if_match(headers: &HeaderMap, version: u32) -> Result<(), ApiError> {
    if if_match_any(headers) {
        return Ok(());
    }
    let mut lines = headers.get_all(header::IF_MATCH).iter().peekable();
    if lines.peek().is_none() {
        return Err(ApiError::PreconditionRequired { header: "If-Match" });
    }
    // Several header lines are one list (RFC 9110 §5.3).
    let mut tags = Vec::new();
    for line in lines {
        let line = line.to_str().map_err(|_| ApiError::PreconditionFailed)?;
        tags.extend(line.split(',').map(str::trim));
    }
    let current = format!("\"{version}\"");
    let matches = tags.iter().any(|tag| tag.strip_prefix("W/").unwrap_or(tag) == current);
    if matches {
        Ok(())
    } else {
        Err(ApiError::PreconditionFailed)
    }
}

/// The preconditions of a read of a versioned resource (RFC 9110 §13.2.2): a stale `If-Match`
/// is 412, and an `If-None-Match` naming the current version (compared weakly, or `*`) is 304
/// with the `ETag` and no body, so that a client holding the resource does not fetch it again.
/// `None` when the read answers in full. Called after the read is authorised and audited.
pub fn read_preconditions(headers: &HeaderMap, version: u32) -> Result<Option<Response>, ApiError> {
    if headers.contains_key(header::IF_MATCH) {
        check_if_match(headers, version)?;
    }
    Ok(none_match(headers, version).then(|| with_etag(axum::http::StatusCode::NOT_MODIFIED.into_response(), version)))
}

/// Whether `If-None-Match` names `version` (compared weakly: `W/"3"` and `"3"` alike) or is `*`:
/// the client's copy is current.
pub fn none_match(headers: &HeaderMap, version: u32) -> bool {
    none_match_tag(headers, &format!("\"{version}\""))
}

/// Whether `If-None-Match` names the entity tag `current` (compared weakly) or is `*`.
pub fn none_match_tag(headers: &HeaderMap, current: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|line| line.to_str().ok())
        .flat_map(|line| line.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == current)
}

/// Whether `If-Match` lists `*`, which matches whatever version is current when the change is
/// written (RFC 9110 §13.1.1).
pub fn if_match_any(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::IF_MATCH)
        .iter()
        .filter_map(|line| line.to_str().ok())
        .flat_map(|line| line.split(','))
        .any(|tag| tag.trim() == "*")
}

/// How often a change under `If-Match: *` is read and written again when a concurrent change
/// committed between its read and its write. Each try loses only to a change that did commit,
/// and waits a random part of a window that doubles with each try (2 ms, 4 ms, … 512 ms) before
/// the next, so running out of tries takes a storm of writers on one resource for about a
/// second: it is then 503 and retried.
pub const IF_MATCH_ANY_TRIES: u32 = 10;

/// The wait before try `tries + 1`: writers that lost to the same commit would otherwise read
/// and write again together, and all but one lose again (measured: of 30 writers sent at once,
/// 10–25 got through eight immediate tries).
fn if_match_any_backoff(tries: u32) -> std::time::Duration {
    let window_us = 1_000u64 << tries.min(9);
    let draw = u64::from(u16::from_le_bytes(
        uuid::Uuid::new_v4().as_bytes()[..2].try_into().expect("two bytes"),
    ));
    std::time::Duration::from_micros(draw * window_us / u64::from(u16::MAX))
}

/// Runs `attempt` again while it loses to a concurrent change and `If-Match` is `*`: the
/// version that `*` stands for is the one current at the write, not at the read.
pub async fn retry_if_match_any<F, Fut>(headers: &HeaderMap, mut attempt: F) -> Result<Response, ApiError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Response, ApiError>>,
{
    let any = if_match_any(headers);
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(ApiError::PreconditionFailed) if any && tries < IF_MATCH_ANY_TRIES => {
                tokio::time::sleep(if_match_any_backoff(tries)).await;
                tries += 1;
            }
            Err(ApiError::PreconditionFailed) if any => {
                return Err(ApiError::from(StoreError::Contention(
                    "the resource kept changing while this change was written".into(),
                )))
            }
            other => return other,
        }
    }
}

/// Replace a product: a new version from its `effective_from` (with `If-Match`).
///
/// Its mutuelle or scheme sends the whole product, as on create (the members of a read that
/// are not the product's own, `id`, `organization` and `version`, are left out: unknown
/// members are 422 `unknown_field`), with `If-Match` set to the
/// `ETag` of its last read: 428 without it, 412 when another version was added since. The new
/// `effective_from` must be later than that of the version in force today, and the layer
/// cannot change (422 on `/effective_from`, `/layer`). It may lie in the past: the correction
/// applies to what is judged from now on, while claims already priced keep their terms. A
/// version still scheduled that starts on
/// or after the new one's `effective_from` is superseded and never takes effect: that is how a
/// mistaken future version is corrected or withdrawn (restating the terms to keep). Answers 200
/// with the new version and its new `ETag`.
#[utoipa::path(
    put,
    path = "/v1/products/{id}",
    tag = "products",
    request_body(content = ProductWrite, description = "The whole product, as on create, with an `effective_from` later than the version in force today's",
        example = json!({
            "layer": "complementary", "name": "Formule famille",
            "rules": [{"care_level": "health_center", "rate_bp": 10000}, {"category": "pharmacy", "rate_bp": 7500}],
            "annual_ceiling_xof": 175000, "waiting_period_days": 90, "grace_period_days": 30,
            "excluded_categories": ["dental", "optical"], "max_dependants": 8, "child_max_age": 21, "effective_from": "2026-07-01"
        })),
    params(
        ("id" = String, Path, description = "Product id"),
        ("If-Match" = String, Header, description = "The ETag of the last read (RFC 9110: a list matches when one of its tags does, `*` matches any version, and a weak tag `W/\"n\"` names version n as `\"n\"` does, since proxies that compress answers weaken tags)"),
    ),
    responses(
        (status = 200, description = "The new version", body = ProductView, headers(("ETag" = String, description = "The new version, quoted")),
         example = json!({"id": "01937f0e-5b1a-7c3d-8e9f-0a1b2c3d4e5f", "organization": "mut-tsevie", "layer": "complementary",
             "name": "Formule famille", "rules": [{"care_level": "health_center", "rate_bp": 10000}, {"category": "pharmacy", "rate_bp": 7500}],
             "annual_ceiling_xof": 175000, "waiting_period_days": 90, "grace_period_days": 30,
             "excluded_categories": ["dental", "optical"], "max_dependants": 8, "child_max_age": 21,
             "effective_from": "2026-07-01", "version": 2})),
        (status = 404, description = "No such product, or another organisation's", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 412, description = "If-Match is stale: another version was added", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 428, description = "If-Match is missing", body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["registry:write"]))
)]
pub async fn replace_product(
    State(state): State<AppState>,
    auth: Authorized<perm::WriteProducts>,
    Path(id): Path<String>,
    headers: HeaderMap,
    AppJson(body): AppJson<Map<String, Value>>,
) -> Result<Response, ApiError> {
    retry_if_match_any(&headers, || replace_once(&state, &auth.caller, &id, &headers, &body)).await
}

async fn replace_once(
    state: &AppState,
    caller: &Caller,
    id: &str,
    headers: &HeaderMap,
    body: &Map<String, Value>,
) -> Result<Response, ApiError> {
    let versions = visible_versions(state, caller, id).await?;
    let current = versions.last().ok_or(ApiError::NotFound)?;
    check_if_match(headers, current.version)?;
    let valid = validate_body(body, caller, state.clock.today(), Some(&versions))?;
    let next = valid.into_version(id.to_owned(), current.organization.clone(), current.version + 1);
    let ctx = caller.write_context(state, None);
    state.store.add_product_version(&ctx, &next).await?;
    let version = next.version;
    Ok(with_etag(Json(ProductView::from(next)).into_response(), version))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each wait is a random part of its window, which doubles from 2 ms up to 512 ms: the ten
    /// tries of a change take about a second at most, and writers that lost together spread.
    #[test]
    fn the_waits_between_tries_grow_and_spread() {
        for tries in 1..IF_MATCH_ANY_TRIES {
            let window = std::time::Duration::from_micros(1_000 << tries.min(9));
            let draws: Vec<_> = (0..64).map(|_| if_match_any_backoff(tries)).collect();
            assert!(draws.iter().all(|d| *d <= window), "{tries}: {draws:?}");
            let spread = draws.iter().max().unwrap().saturating_sub(*draws.iter().min().unwrap());
            assert!(spread > window / 4, "{tries}: {draws:?}");
        }
        let longest: std::time::Duration = (1..IF_MATCH_ANY_TRIES)
            .map(|t| std::time::Duration::from_micros(1_000 << t.min(9)))
            .sum();
        assert!(longest <= std::time::Duration::from_millis(1_100), "{longest:?}");
    }
}
