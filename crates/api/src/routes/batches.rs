//! `/v1/registrations/batches`: bulk registration from CSV or JSON lines. The upload is spooled
//! to disk and answered 202 at once; a worker (`bulk::worker`) registers its households and the
//! job reports its progress and row errors.

use std::path::PathBuf;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use passerelle_domain::batch::{check_csv_header, RowDuplicate, RowError};
use passerelle_domain::error::FieldError;
use passerelle_domain::ports::{BatchFormat, BatchJob, BatchStatus, IdempotencyKey, NewBatch};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::audit::record_read;
use super::registrations::own_product;
use crate::bulk::spool;
use crate::extract::{perm, AppQuery, Authorized, Idempotency};
use crate::problem::{current_lang, ApiError};
use crate::state::AppState;

/// Row errors (and possible duplicates) a job shows; `errors_total` counts them all.
pub const ERRORS_SHOWN: u32 = 1000;

/// `POST`: its bodies are files, outside the JSON body limit.
pub fn uploads() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(upload))
}

pub fn reads() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_batch))
        .routes(routes!(list_batches))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// One of your `complementary` or `primary` products: every household's for CSV (required),
    /// the default of JSON lines that name none.
    pub product: Option<String>,
}

/// One problem found in the file.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"row": 8, "household": "H3", "field": "member_number", "code": "member_number_taken",
    "message": "this member number is already held in your mutuelle by another person"}))]
pub struct RowErrorView {
    /// The row as a spreadsheet shows it (header = 1; a cell typed over several lines does not
    /// move it); for JSON lines, the line number from 1.
    pub row: u64,
    /// The CSV `household` value; for JSON lines, the line's `member_number`.
    pub household: String,
    /// The CSV column (empty for the whole row), or a JSON Pointer into the line.
    pub field: String,
    /// `invalid_encoding` (JSON lines), `truncated`, `unclosed_quote`, `stray_quote`, `line_break_in_cell`,
    /// `unnamed_column`, `wrong_field_count`,
    /// `garbled_characters`, `spreadsheet_error`,
    /// `member_number_taken`, `not_in_household`, `household_terminated`,
    /// `registered_for_other_product`, `required`,
    /// `invalid_national_id`, `household_not_contiguous`, … (docs/bulk-registration.md lists them)
    pub code: String,
    /// In the language of `Accept-Language`.
    pub message: String,
}

/// A person the job created without a national id who looks like people already registered,
/// or created earlier by the same job: same names (without accents, case or punctuation), sex
/// and birth date (API.md §5 Beneficiaries). The person was created all the same; a clerk
/// decides whether they are the same, as with `possible_duplicates` of a single registration.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"row": 5, "household": "H2", "field": "family_name",
    "beneficiary": "01937f0e-7d3b-7e4c-8f50-2b3c4d5e6f70", "possible_duplicates": ["01937f0e-6c2a-7d3b-9e0f-1a2b3c4d5e6f"]}))]
pub struct PossibleDuplicateView {
    /// The member's line, as for errors.
    pub row: u64,
    /// The member's household, as for errors.
    pub household: String,
    /// `family_name` for CSV (the row is the person); for JSON lines, the member's pointer
    /// (`/principal`, `/dependants/0`…).
    pub field: String,
    /// The person created.
    pub beneficiary: String,
    /// Who they look like, by id (at most 20).
    pub possible_duplicates: Vec<String>,
}

/// Why a job stopped before the end of its file.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"code": "interrupted",
    "message": "processing stopped before the end of the file (the server restarted?); what was registered is kept: post the same file again with a new Idempotency-Key, households already registered are skipped"}))]
pub struct BatchFailureView {
    /// `interrupted`, `unreadable_file`, `invalid_encoding` (a CSV file with a line that is not
    /// UTF-8: nothing of it is registered), `storage_unavailable` or `organization_deactivated`.
    pub code: String,
    /// What happened and what to do, in the language of `Accept-Language`.
    pub message: String,
}

/// A bulk registration job.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "01937f0e-9f5d-7a6e-8b32-4d5e6f708192", "organization": "mut-tsevie",
    "product": "01937f0e-5b1a-7c3d-8e9f-0a1b2c3d4e5f", "format": "csv", "status": "completed",
    "rows_total": 9, "rows_processed": 9, "households_created": 2, "households_skipped": 0, "rows_failed": 3,
    "errors_total": 1,
    "errors": [{"row": 8, "household": "H3", "field": "member_number", "code": "member_number_taken",
                "message": "ce numéro d'adhérent est déjà attribué dans votre mutuelle à une autre personne"}],
    "possible_duplicates_total": 1,
    "possible_duplicates": [{"row": 4, "household": "H2", "field": "family_name",
                "beneficiary": "01937f0e-7d3b-7e4c-8f10-2b3c4d5e6f70",
                "possible_duplicates": ["01937f0e-6c2a-7d3b-9e0f-1a2b3c4d5e6f"]}],
    "created_at": "2026-11-30T08:00:00Z", "finished_at": "2026-11-30T08:00:02Z"
}))]
pub struct BatchView {
    /// The job.
    #[serde(flatten)]
    pub job: BatchSummaryView,
    /// The first 1000 errors, by row.
    pub errors: Vec<RowErrorView>,
    /// The first 1000 possible duplicates, by row.
    pub possible_duplicates: Vec<PossibleDuplicateView>,
}

/// A bulk registration job without its rows: its progress and counts.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "01937f0e-9f5d-7a6e-8b32-4d5e6f708192", "organization": "mut-tsevie",
    "product": "01937f0e-5b1a-7c3d-8e9f-0a1b2c3d4e5f", "format": "csv", "status": "completed",
    "rows_total": 9, "rows_processed": 9, "households_created": 2, "households_skipped": 0, "rows_failed": 3,
    "errors_total": 1, "possible_duplicates_total": 1,
    "created_at": "2026-11-30T08:00:00Z", "finished_at": "2026-11-30T08:00:02Z"
}))]
pub struct BatchSummaryView {
    /// The job's id, as in the upload's `Location`.
    pub id: String,
    /// The mutuelle whose job it is.
    pub organization: String,
    /// The `product` of the upload's query, when it named one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// `csv` or `ndjson`.
    pub format: String,
    /// `queued`, `running`, `completed` (every row was read, whatever failed in it) or `failed`
    /// (the job itself stopped; what was registered is kept).
    pub status: String,
    /// Data rows in the file, known once it is read to the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows_total: Option<i64>,
    /// Data rows read so far (all of them once the job has ended).
    pub rows_processed: i64,
    /// Households registered by this job.
    pub households_created: i64,
    /// Households whose member number is already registered for the same person (a re-post).
    pub households_skipped: i64,
    /// Every row of each household that failed, and the row of each member of a skipped
    /// household who was not added (`not_in_household`, `household_terminated`).
    pub rows_failed: i64,
    /// Every error found; the job's `errors` lists the first 1000 by row.
    pub errors_total: i64,
    /// Every person created who looks like someone already known; the job's
    /// `possible_duplicates` lists the first 1000 by row.
    pub possible_duplicates_total: i64,
    /// Set when `status` is `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<BatchFailureView>,
    /// When the upload was accepted (RFC 3339, UTC).
    pub created_at: DateTime<Utc>,
    /// When the job ended, once it has.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
}

impl BatchSummaryView {
    pub fn new(job: &BatchJob) -> BatchSummaryView {
        let lang = current_lang();
        BatchSummaryView {
            id: job.id.clone(),
            organization: job.organization.clone(),
            product: job.product.clone(),
            format: job.format.as_str().to_owned(),
            status: job.status.as_str().to_owned(),
            rows_total: job.rows_total,
            rows_processed: job.counts.rows_processed,
            households_created: job.counts.households_created,
            households_skipped: job.counts.households_skipped,
            rows_failed: job.counts.rows_failed,
            errors_total: job.counts.errors_total,
            possible_duplicates_total: job.counts.possible_duplicates_total,
            failure: job.failure.as_ref().map(|f| BatchFailureView {
                code: f.code.clone(),
                message: lang.pick(&f.en, &f.fr).to_owned(),
            }),
            created_at: job.created_at,
            finished_at: job.finished_at,
        }
    }
}

impl BatchView {
    pub fn new(job: &BatchJob, errors: Vec<RowError>, duplicates: Vec<RowDuplicate>) -> BatchView {
        let lang = current_lang();
        BatchView {
            job: BatchSummaryView::new(job),
            errors: errors
                .into_iter()
                .map(|e| RowErrorView {
                    message: lang.pick(&e.message_en, &e.message_fr).to_owned(),
                    row: e.row,
                    household: e.household,
                    field: e.field,
                    code: e.code,
                })
                .collect(),
            possible_duplicates: duplicates
                .into_iter()
                .map(|d| PossibleDuplicateView {
                    row: d.row,
                    household: d.household,
                    field: d.field,
                    beneficiary: d.beneficiary,
                    possible_duplicates: d.matches,
                })
                .collect(),
        }
    }
}

pub(crate) const MEDIA_TYPES: &str = "text/csv or application/x-ndjson";

/// The format a `Content-Type` names; a charset other than UTF-8 is refused too.
fn format_of(headers: &HeaderMap) -> Result<BatchFormat, ApiError> {
    let unsupported = ApiError::UnsupportedMediaType { expected: MEDIA_TYPES };
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or(ApiError::UnsupportedMediaType { expected: MEDIA_TYPES })?;
    let mut parts = value.split(';');
    let format = match parts.next().map(|m| m.trim().to_ascii_lowercase()).as_deref() {
        Some("text/csv") => BatchFormat::Csv,
        Some("application/x-ndjson") => BatchFormat::Ndjson,
        _ => return Err(unsupported),
    };
    for param in parts {
        if let Some((name, charset)) = param.split_once('=') {
            let charset = charset.trim().trim_matches('"');
            let utf8 = charset.eq_ignore_ascii_case("utf-8") || charset.eq_ignore_ascii_case("utf8");
            if name.trim().eq_ignore_ascii_case("charset") && !utf8 {
                return Err(ApiError::UnsupportedCharset);
            }
        }
    }
    Ok(format)
}

/// A CSV header with a missing, unknown or repeated column is refused before any job exists.
async fn check_header(path: PathBuf) -> Result<(), ApiError> {
    let checked = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&path)?;
        Ok::<_, std::io::Error>(check_csv_header(file))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
    .map_err(|e| ApiError::Internal(format!("cannot reread a spooled upload: {e}")))?;
    checked.map(|_separator| ()).map_err(ApiError::validation)
}

fn accepted(job: &BatchJob) -> Response {
    let mut response = (StatusCode::ACCEPTED, Json(BatchView::new(job, Vec::new(), Vec::new()))).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/registrations/batches/{}", job.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// Register households in bulk from a CSV or JSON lines file.
///
/// The body is streamed to disk (up to `PASSERELLE_BATCH_MAX_BYTES`, 100 MiB by default) and
/// answered at once with the job, `queued`; follow it at its `Location`. CSV: UTF-8, comma
/// separated (or semicolon separated, as a spreadsheet in a French locale saves it: the header's
/// separator decides), RFC 4180 quoting, one row per person, a header naming the fourteen columns in any
/// order (`household,relationship,member_number,family_name,given_names,sex,birth_date,national_id,phone,region,district,commune,start_date,paid_through`;
/// columns without a name are read past while their cells are empty);
/// a household's rows follow one another, its principal first. JSON lines: one registration
/// body per line, as for `POST /v1/registrations`. Each household is registered whole or not at
/// all; one already registered under its principal's member number for the same person is
/// skipped, so posting a file again (after a failure) completes it without duplicates.
#[utoipa::path(
    post,
    path = "/v1/registrations/batches",
    tag = "registrations",
    params(
        UploadQuery,
        ("Idempotency-Key" = String, Header, description = "Required: the same key, query and body answer the first 202 again, without a new job"),
    ),
    request_body(
        description = "The file: `text/csv` (UTF-8) or `application/x-ndjson`.",
        content(
            (String = "text/csv", example = json!("household,relationship,member_number,family_name,given_names,sex,birth_date,national_id,phone,region,district,commune,start_date,paid_through\nH1,principal,TSV-0101,Agbéko,Kossi,M,1984-03-12,TG:NIU:123456789012,+22890123456,Maritime,Zio,Zio 1,2026-01-01,2026-12-31\nH1,spouse,,Agbéko,Akossiwa Élise,F,1988,,,Maritime,Zio,Zio 1,,\nH1,child,,Agbéko,Yao,M,2015-07-30,,,,,,,\n")),
            (String = "application/x-ndjson", example = json!("{\"member_number\": \"SGU-0001\", \"start_date\": \"2026-01-01\", \"principal\": {\"family_name\": \"Traoré\", \"given_names\": \"Awa\", \"sex\": \"F\", \"birth_date\": \"1975-01-01\", \"birth_date_precision\": \"year\"}, \"dependants\": [{\"relationship\": \"child\", \"family_name\": \"Traoré\", \"given_names\": \"Bakary\", \"sex\": \"M\", \"birth_date\": \"2012-05-04\"}]}\n"))
        )
    ),
    responses(
        (status = 202, description = "Accepted: the job, `queued`", body = BatchView,
         headers(("Location" = String, description = "The job: `/v1/registrations/batches/{id}`"))),
        (status = 400, description = "The upload stopped before its end", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 413, description = "The file is larger than `PASSERELLE_BATCH_MAX_BYTES`; no job was created", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is neither `text/csv` nor `application/x-ndjson` (or not UTF-8)", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A CSV header with a missing or unknown column (one error per column at `/header/<column>`), `product` missing (CSV) or not one of yours (`/query/product`), or `idempotency_key_reused`; no job was created", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 428, description = "Idempotency-Key is missing", body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["registry:write"]))
)]
pub async fn upload(
    State(state): State<AppState>,
    auth: Authorized<perm::Register>,
    AppQuery(query): AppQuery<UploadQuery>,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Result<Response, ApiError> {
    let format = format_of(&headers)?;
    let Idempotency(Some(key)) = Idempotency::read(&headers, "POST", &uri.to_string(), b"")? else {
        return Err(ApiError::PreconditionRequired {
            header: "Idempotency-Key",
        });
    };
    let caller = &auth.caller;
    let product = match (&query.product, format) {
        (None, BatchFormat::Csv) => return Err(ApiError::field(FieldError::required("/query/product"))),
        (None, BatchFormat::Ndjson) => None,
        (Some(id), _) => match own_product(&state, caller, id, None).await? {
            Some(p) if p.layer.is_mutuelle_layer() => Some(p.product_id),
            _ => return Err(ApiError::field(FieldError::unknown_reference("/query/product"))),
        },
    };
    let max_bytes = state.config.batch_max_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_bytes) {
        return Err(ApiError::PayloadTooLarge);
    }
    // The fingerprint covers the method, path, query and body, as for JSON requests.
    let prefix = format!("POST {uri}\n");
    let spooled = spool::spool(&state.config.batch_spool_dir, body, max_bytes, prefix.as_bytes()).await?;
    if format == BatchFormat::Csv {
        check_header(spooled.path().to_path_buf()).await?;
    }
    let ctx = caller.write_context(
        &state,
        Some(IdempotencyKey {
            key: key.key,
            fingerprint: spooled.digest.clone(),
            canonical: None,
            legacy_canonical: None,
        }),
    );
    let batch = NewBatch {
        id: uuid::Uuid::now_v7().to_string(),
        product,
        format,
        spool_path: spooled.path().to_string_lossy().into_owned(),
        worker: None,
    };
    let written = state.store.create_batch(&ctx, &batch).await?;
    if written.replayed {
        // The first upload's file serves its job; this copy goes.
        return Ok(accepted(&written.value));
    }
    spooled.keep();
    state.batch_queued.notify_one();
    Ok(accepted(&written.value))
}

/// A bulk registration job: its progress, counts, the first 1000 row errors and the first 1000
/// possible duplicates.
///
/// Readable by its mutuelle, operators and auditors; 404 for any other organisation.
#[utoipa::path(
    get,
    path = "/v1/registrations/batches/{id}",
    tag = "registrations",
    params(("id" = String, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The job; `errors` lists at most the first 1000 errors by row, `errors_total` counts them all", body = BatchView),
        (status = 404, description = "No such job, or not yours", body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["registry:read"]))
)]
pub async fn get_batch(
    State(state): State<AppState>,
    auth: Authorized<perm::ReadBatches>,
    Path(id): Path<String>,
) -> Result<Json<BatchView>, ApiError> {
    let caller = &auth.caller;
    let job = state.store.get_batch(&id).await?.ok_or(ApiError::NotFound)?;
    if !caller.reads_everything() && job.organization != caller.org.as_str() {
        return Err(ApiError::NotFound);
    }
    let errors = state.store.batch_errors(&id, ERRORS_SHOWN).await?;
    let duplicates = state.store.batch_duplicates(&id, ERRORS_SHOWN).await?;
    record_read(&state, caller, "registration_batch", &id).await?;
    Ok(Json(BatchView::new(&job, errors, duplicates)))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BatchQuery {
    /// Only jobs in this state: `queued`, `running`, `completed` or `failed` (another value is
    /// 422 on `/query/status`).
    #[param(value_type = Option<BatchStatusFilter>, inline)]
    pub status: Option<String>,
}

/// The `status` filter: the values `BatchStatus::parse` reads. Schema only (inlined).
pub struct BatchStatusFilter;

impl utoipa::PartialSchema for BatchStatusFilter {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        super::claims::string_enum(
            &[
                BatchStatus::Queued,
                BatchStatus::Running,
                BatchStatus::Completed,
                BatchStatus::Failed,
            ]
            .map(BatchStatus::as_str),
        )
    }
}

impl ToSchema for BatchStatusFilter {}

/// List bulk registration jobs, in upload order.
///
/// A mutuelle's own jobs; operators and auditors see every organisation's. Each is the job
/// without its rows: read `GET /v1/registrations/batches/{id}` for its errors and possible
/// duplicates. Filter by `status`, e.g. `status=failed` for the jobs to post again.
#[utoipa::path(
    get,
    path = "/v1/registrations/batches",
    tag = "registrations",
    params(super::PageQuery, BatchQuery),
    responses((status = 200, description = "A page of jobs, oldest first", body = super::ListOf<BatchSummaryView>)),
    security(("bearer" = ["registry:read"]))
)]
pub async fn list_batches(
    State(state): State<AppState>,
    auth: Authorized<perm::ReadBatches>,
    AppQuery(page): AppQuery<super::PageQuery>,
    AppQuery(query): AppQuery<BatchQuery>,
) -> Result<Json<super::ListOf<BatchSummaryView>>, ApiError> {
    let page = page.parse()?;
    let status = match query.status.as_deref() {
        None => None,
        Some(s) => Some(BatchStatus::parse(s).ok_or_else(|| {
            ApiError::field(FieldError::new(
                "/query/status",
                "unknown_value",
                "must be queued, running, completed or failed",
                "doit être queued, running, completed ou failed",
            ))
        })?),
    };
    let caller = &auth.caller;
    let organization = (!caller.reads_everything()).then(|| caller.org.to_string());
    let result = state.store.list_batches(organization.as_deref(), status, &page).await?;
    record_read(&state, caller, "registration_batch", "*").await?;
    Ok(Json(super::ListOf::from_page(result, |job| {
        BatchSummaryView::new(&job)
    })))
}
