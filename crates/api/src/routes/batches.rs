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
use passerelle_domain::pagination::{invalid_cursor, Page};
use passerelle_domain::ports::{BatchFormat, BatchJob, BatchStatus, IdempotencyKey, NewBatch, ReportKey};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::audit::record_read;
use super::registrations::own_product;
use super::settlements::{csv_separator, wants_csv, CSV_OR_JSON_CACHING};
use crate::bulk::{report, spool};
use crate::extract::{perm, AppQuery, Authorized, Caller, Idempotency};
use crate::problem::{current_lang, ApiError, Lang};
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
        .routes(routes!(list_batch_errors))
        .routes(routes!(list_batch_duplicates))
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
    "message": "this member number is already held in your mutuelle by a person this row does not match (another person, or this one with names corrected since)"}))]
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
    /// UTF-8: nothing of it is registered), `storage_unavailable` (the database could not be
    /// written: at once for a fault of its own, after about eight seconds of tries for a lost
    /// connection), `organization_deactivated`, or `internal_error`
    /// (a fault of the service's own: report it with the job's id).
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
                "message": "ce numéro d'adhérent est déjà attribué dans votre mutuelle à une personne que cette ligne ne décrit pas (une autre, ou celle-ci dont les noms ont été corrigés depuis)"}],
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
    #[schema(nullable = false)]
    pub product: Option<String>,
    /// `csv` or `ndjson`.
    pub format: String,
    /// `queued`, `running`, `completed` (every row was read, whatever failed in it) or `failed`
    /// (the job itself stopped; what was registered is kept).
    pub status: String,
    /// Data rows in the file: present once the job has completed, absent while it runs and on a
    /// failed job (`rows_processed` says how far that one got).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub rows_total: Option<i64>,
    /// Data rows of the households decided so far (all of them once the job has completed).
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
    #[schema(nullable = false)]
    pub failure: Option<BatchFailureView>,
    /// When the upload was accepted (RFC 3339, UTC).
    pub created_at: DateTime<Utc>,
    /// When the job ended, once it has.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
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

impl RowErrorView {
    fn new(e: RowError, lang: Lang) -> RowErrorView {
        RowErrorView {
            message: lang.pick(&e.message_en, &e.message_fr).to_owned(),
            row: e.row,
            household: e.household,
            field: e.field,
            code: e.code,
        }
    }
}

impl From<RowDuplicate> for PossibleDuplicateView {
    fn from(d: RowDuplicate) -> PossibleDuplicateView {
        PossibleDuplicateView {
            row: d.row,
            household: d.household,
            field: d.field,
            beneficiary: d.beneficiary,
            possible_duplicates: d.matches,
        }
    }
}

impl BatchView {
    pub fn new(job: &BatchJob, errors: Vec<RowError>, duplicates: Vec<RowDuplicate>) -> BatchView {
        let lang = current_lang();
        BatchView {
            job: BatchSummaryView::new(job),
            errors: errors.into_iter().map(|e| RowErrorView::new(e, lang)).collect(),
            possible_duplicates: duplicates.into_iter().map(PossibleDuplicateView::from).collect(),
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
    let format = match value
        .split(';')
        .next()
        .map(|m| m.trim().to_ascii_lowercase())
        .as_deref()
    {
        Some("text/csv") => BatchFormat::Csv,
        Some("application/x-ndjson") => BatchFormat::Ndjson,
        _ => return Err(unsupported),
    };
    if crate::extract::foreign_charset(headers) {
        return Err(ApiError::UnsupportedCharset);
    }
    Ok(format)
}

/// A CSV header with a missing, unknown or repeated column is refused before any job exists;
/// the file's separator otherwise.
async fn check_header(path: PathBuf) -> Result<char, ApiError> {
    spooled_header(path)
        .await?
        .map(char::from)
        .map_err(ApiError::validation)
}

/// The spooled upload's first line judged as a CSV header: its separator, or why it is none.
async fn spooled_header(path: PathBuf) -> Result<Result<u8, Vec<FieldError>>, ApiError> {
    tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&path)?;
        Ok::<_, std::io::Error>(check_csv_header(file))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
    .map_err(|e| ApiError::Internal(format!("cannot reread a spooled upload: {e}")))
}

/// The product a bulk upload names: required for CSV (the default of JSON lines), one of the
/// caller's complementary or primary products.
async fn upload_product(
    state: &AppState,
    caller: &Caller,
    query: &UploadQuery,
    format: BatchFormat,
) -> Result<Option<String>, ApiError> {
    // `?product=` with nothing after it names no product, as its absence does.
    match (
        query.product.as_deref().map(str::trim).filter(|p| !p.is_empty()),
        format,
    ) {
        (None, BatchFormat::Csv) => Err(ApiError::field(FieldError::required("/query/product"))),
        (None, BatchFormat::Ndjson) => Ok(None),
        (Some(id), _) => match own_product(state, caller, id, None).await? {
            Some(p) if p.layer.is_mutuelle_layer() => Ok(Some(p.product_id)),
            _ => Err(ApiError::field(FieldError::unknown_reference("/query/product"))),
        },
    }
}

/// The first answer to the key again; the same bytes sent as another format are another
/// request (the key's fingerprint covers the method, path, query and body).
fn replay(first: &BatchJob, format: BatchFormat) -> Result<Response, ApiError> {
    if first.format != format {
        return Err(ApiError::IdempotencyKeyReused);
    }
    Ok(accepted(first))
}

/// A file sent as JSON lines whose first line is a CSV header (one that would be accepted as
/// text/csv) is refused whole, rather than failing on every line as JSON that does not parse.
async fn not_a_csv_file(path: PathBuf) -> Result<(), ApiError> {
    if spooled_header(path).await?.is_ok() {
        return Err(ApiError::field(FieldError::new(
            "/body",
            "not_json_lines",
            "the first line is a CSV header, not a JSON object: send a CSV file as text/csv, with ?product=",
            "la première ligne est un en-tête CSV, pas un objet JSON : envoyez un fichier CSV en text/csv, avec ?product=",
        )));
    }
    Ok(())
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
/// Mutuelles take turns on a replica: a job that has run `PASSERELLE_BATCH_TURN_MS` (10 s by
/// default) while another mutuelle's job waits goes back to `queued` and resumes at its next
/// turn.
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
         headers(("Location" = String, description = "The job: `/v1/registrations/batches/{id}`")),
         example = json!({"id": "01937f0e-9f5d-7a6e-8b32-4d5e6f708192", "organization": "mut-tsevie",
             "product": "01937f0e-5b1a-7c3d-8e9f-0a1b2c3d4e5f", "format": "csv", "status": "queued",
             "rows_processed": 0, "households_created": 0, "households_skipped": 0, "rows_failed": 0,
             "errors_total": 0, "possible_duplicates_total": 0, "errors": [], "possible_duplicates": [],
             "created_at": "2026-11-30T08:00:00Z"})),
        (status = 400, description = "The upload stopped before its end (the client's connection dropped): nothing kept, send it again", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 413, description = "The file is larger than `PASSERELLE_BATCH_MAX_BYTES`; no job was created", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is neither `text/csv` nor `application/x-ndjson` (or not UTF-8)", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A CSV header with a missing, unknown or repeated column (one error per column at `/header/<column>`), a first line naming no column (a spreadsheet's `sep=;` hint included), a blank one or an empty file (`no_header` at `/header`), a first line longer than 1 MiB (`line_too_long` at `/header`), `product` missing (CSV) or not one of yours (`/query/product`), a CSV file sent as JSON lines (`not_json_lines` at `/body`), or `idempotency_key_reused` (the key's first request had another query, body or format; judged before anything else); no job was created", body = crate::problem::Problem, content_type = "application/problem+json"),
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
    // A key used before is judged first (API.md §3): its upload is received to be compared with
    // the first, whatever its query or file would be refused for. A new key's query is judged
    // before the file is received.
    let used_before = state.store.idempotency_key_used(caller.org.as_str(), &key.key).await?;
    let product = if used_before {
        None
    } else {
        upload_product(&state, caller, &query, format).await?
    };
    let max_bytes = state.config.batch_max_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_bytes) {
        return Err(ApiError::PayloadTooLarge);
    }
    let dir = &state.config.batch_spool_dir;
    let room = spool::reserve(
        &state.bulk.receiving,
        dir,
        declared.unwrap_or(max_bytes),
        state.config.batch_spool_max_bytes,
    )
    .await?;
    // The fingerprint covers the method, path, query and body, as for JSON requests.
    let prefix = format!("POST {uri}\n");
    let spooled = spool::spool(dir, body, max_bytes, prefix.as_bytes(), state.config.batch_upload_idle).await?;
    // On disk now, where the next reservation counts it.
    drop(room);
    let idempotency = IdempotencyKey {
        key: key.key,
        fingerprint: spooled.digest.clone(),
        canonical: None,
        legacy_canonical: None,
    };
    let product = if used_before {
        if let Some(first) = crate::extract::replayed::<BatchJob>(&state, caller, Some(&idempotency)).await? {
            return replay(&first, format);
        }
        // The first request is still running, or its key was forgotten meanwhile: this one is
        // judged as new.
        upload_product(&state, caller, &query, format).await?
    } else {
        product
    };
    let csv_separator = match format {
        BatchFormat::Csv => Some(check_header(spooled.path().to_path_buf()).await?),
        BatchFormat::Ndjson => {
            not_a_csv_file(spooled.path().to_path_buf()).await?;
            None
        }
    };
    let ctx = caller.write_context(&state, Some(idempotency));
    let batch = NewBatch {
        id: uuid::Uuid::now_v7().to_string(),
        product,
        format,
        spool_path: spooled.path().to_string_lossy().into_owned(),
        csv_separator,
        worker: None,
    };
    // The job's row and its file are kept together, in a task of their own: a client hanging up
    // while the job committed dropped this handler before `keep`, and the file of a committed
    // job was deleted (its retry with the same key replayed a job that could never run).
    let store = state.store.clone();
    let written = tokio::spawn(async move {
        let written = store.create_batch(&ctx, &batch).await;
        if matches!(&written, Ok(w) if !w.replayed) {
            spooled.keep();
        }
        // Otherwise the file goes: a replay's job has the first upload's, a refused one none.
        written
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    if written.replayed {
        return replay(&written.value, format);
    }
    state.bulk.queued(caller.org.as_str());
    state.batch_queued.notify_one();
    Ok(accepted(&written.value))
}

/// A bulk registration job: its progress, counts, the first 1000 row errors and the first 1000
/// possible duplicates.
///
/// Readable by its mutuelle, operators and auditors; 404 for another mutuelle, and 403 for
/// providers and schemes, whatever the id.
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
    let job = visible_job(&state, caller, &id).await?;
    let errors = state.store.batch_errors(&id, None, ERRORS_SHOWN).await?;
    let duplicates = state.store.batch_duplicates(&id, None, ERRORS_SHOWN).await?;
    record_read(&state, caller, "registration_batch", &id).await?;
    let errors = errors.into_iter().map(|(_, e)| e).collect();
    let duplicates = duplicates.into_iter().map(|(_, d)| d).collect();
    Ok(Json(BatchView::new(&job, errors, duplicates)))
}

/// The job, when the caller may read it: its mutuelle, operators and auditors; 404 for anyone
/// else, as for a job that does not exist.
async fn visible_job(state: &AppState, caller: &Caller, id: &str) -> Result<BatchJob, ApiError> {
    let job = state.store.get_batch(id).await?.ok_or(ApiError::NotFound)?;
    if !caller.reads_everything() && job.organization != caller.org.as_str() {
        return Err(ApiError::NotFound);
    }
    Ok(job)
}

/// A page request of a job's report: the cursor's key must be one these lists issue.
fn report_page(page: &super::PageQuery) -> Result<(Option<ReportKey>, u32), ApiError> {
    let page = page.parse()?;
    let after = match page.after.as_deref() {
        None => None,
        Some(key) => Some(ReportKey::decode(key).ok_or_else(|| ApiError::field(invalid_cursor()))?),
    };
    Ok((after, page.limit))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// The CSV form's cell separator, `comma` or `semicolon` (another value is 422
    /// `unknown_value` on `/query/separator`); without it, the uploaded file's. The JSON form
    /// checks it and otherwise ignores it; it is not part of a cursor's list.
    #[param(value_type = Option<super::settlements::CsvSeparator>, inline)]
    pub separator: Option<String>,
}

/// Every row error of a job, a page at a time, or as one CSV report.
///
/// The job's own `errors` lists the first 1000 by row; this lists all it kept (a job keeps the
/// first 100,000 it finds; `errors_total` counts every one), by row, then in the order found.
/// Readable by its mutuelle, operators and auditors; 404 for another mutuelle, and 403 for
/// providers and schemes, whatever the id.
///
/// With `Accept: text/csv` (weighed against `application/json` as for a settlement), the answer
/// is the whole report, with the lines `passerelle import` writes next to its file (which
/// writes them as it finds them), for a clerk to open in a spreadsheet: a UTF-8 byte order mark,
/// the columns `row, household, field, code, message`, then every error and every possible
/// duplicate (code `possible_duplicate`, its message naming the person created and whom they
/// look like) by row, messages in the language of `Accept-Language`; a text cell that a
/// spreadsheet would run as a formula is written after a `'`. Its cells are separated as the
/// uploaded file's were (`;` for a file separated by semicolons, as a spreadsheet in a French
/// locale saves it; `,` for any other, for JSON lines, and for a job posted to an earlier
/// release, which did not record it), or as `separator` says. When the report lists fewer
/// errors or possible duplicates than the job found (past the 100,000 of each a job keeps, or a
/// job an earlier release worked on, which kept 1,000), a last line with an empty row and the
/// code `report_truncated` says how many it found and how many it lists.
/// `limit` and `cursor` do not apply to it (they are not read), and it is sent as it is read,
/// whatever its size. Both forms are sent with `Vary: Accept` and
/// `Cache-Control: private, no-store`. While the job runs, either form holds what it has found
/// so far: read the report once the job has ended.
#[utoipa::path(
    get,
    path = "/v1/registrations/batches/{id}/errors",
    tag = "registrations",
    params(("id" = String, Path, description = "The job's id"), super::PageQuery, ReportQuery),
    responses(
        (status = 200, description = "A page of the job's row errors, by row; or, for `Accept: text/csv`, its whole report", content(
            (super::ListOf<RowErrorView> = "application/json"),
            (String = "text/csv", example = "\u{FEFF}row,household,field,code,message\n8,H3,member_number,member_number_taken,ce numéro d'adhérent est déjà attribué dans votre mutuelle à une personne que cette ligne ne décrit pas (une autre, ou celle-ci dont les noms ont été corrigés depuis)\n9,H3,family_name,possible_duplicate,\"fiche créée sous 01937f0e-7d3b-7e4c-8f10-2b3c4d5e6f70, qui ressemble à 01937f0e-6c2a-7d3b-9e0f-1a2b3c4d5e6f (mêmes noms, sexe et date de naissance) : à vérifier avant toute fusion\"\n")
        ), headers(
            ("Vary" = String, description = "`Accept`"),
            ("Cache-Control" = String, description = "`private, no-store`"),
            ("Content-Disposition" = String, description = "CSV only: `attachment; filename=\"registration-batch-<id>-errors.csv\"`, the name a browser saves it under")
        )),
        (status = 404, description = "No such job, or not yours", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`limit` out of 1–500 or no whole number, a `cursor` these lists did not issue for this job (`invalid_cursor`), or an unknown `separator`", body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["registry:read"]))
)]
pub async fn list_batch_errors(
    State(state): State<AppState>,
    auth: Authorized<perm::ReadBatches>,
    Path(id): Path<String>,
    AppQuery(page): AppQuery<super::PageQuery>,
    AppQuery(query): AppQuery<ReportQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = &auth.caller;
    if wants_csv(&headers) {
        let separator = query.separator.as_deref().map(|s| csv_separator(Some(s))).transpose()?;
        let job = visible_job(&state, caller, &id).await?;
        record_read(&state, caller, "registration_batch", &id).await?;
        // The uploaded file's separator unless the caller asks for another.
        let separator = separator.unwrap_or(if job.csv_separator == Some(';') { ";" } else { "," });
        let body = report::report_body(state.store.clone(), &job, current_lang(), separator);
        let file = crate::routes::settlements::attachment(&format!("registration-batch-{id}-errors.csv"));
        return Ok((
            CSV_OR_JSON_CACHING,
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
    let (after, limit) = report_page(&page)?;
    csv_separator(query.separator.as_deref())?;
    visible_job(&state, caller, &id).await?;
    let errors = state.store.batch_errors(&id, after, limit + 1).await?;
    record_read(&state, caller, "registration_batch", &id).await?;
    let lang = current_lang();
    let page = Page::from_overfetch(errors, limit, |(key, _)| key.encode());
    let list = super::ListOf::from_page(page, |(_, e)| RowErrorView::new(e, lang));
    Ok((CSV_OR_JSON_CACHING, Json(list)).into_response())
}

/// Every possible duplicate of a job, a page at a time.
///
/// The job's own `possible_duplicates` lists the first 1000 by row; this lists all it kept (the
/// first 100,000 it finds; `possible_duplicates_total` counts every one), by row. Each person
/// was created; a clerk decides whether they are the person they look like. Readable by its
/// mutuelle, operators and auditors; 404 for another mutuelle, and 403 for providers and
/// schemes, whatever the id. The CSV report of
/// `GET /v1/registrations/batches/{id}/errors` lists them too.
#[utoipa::path(
    get,
    path = "/v1/registrations/batches/{id}/possible-duplicates",
    tag = "registrations",
    params(("id" = String, Path, description = "The job's id"), super::PageQuery),
    responses(
        (status = 200, description = "A page of the job's possible duplicates, by row", body = super::ListOf<PossibleDuplicateView>),
        (status = 404, description = "No such job, or not yours", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`limit` out of 1–500 or no whole number, or a `cursor` this list did not issue for this job (`invalid_cursor`)", body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["registry:read"]))
)]
pub async fn list_batch_duplicates(
    State(state): State<AppState>,
    auth: Authorized<perm::ReadBatches>,
    Path(id): Path<String>,
    AppQuery(page): AppQuery<super::PageQuery>,
) -> Result<Json<super::ListOf<PossibleDuplicateView>>, ApiError> {
    let (after, limit) = report_page(&page)?;
    let caller = &auth.caller;
    visible_job(&state, caller, &id).await?;
    let found = state.store.batch_duplicates(&id, after, limit + 1).await?;
    record_read(&state, caller, "registration_batch", &id).await?;
    let page = Page::from_overfetch(found, limit, |(key, _)| key.encode());
    Ok(Json(super::ListOf::from_page(page, |(_, d)| {
        PossibleDuplicateView::from(d)
    })))
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
