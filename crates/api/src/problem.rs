//! The one error type of the API and its RFC 9457 problem+json form, in French or English.

use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use passerelle_domain::error::{FieldError, StoreError};
use serde::Serialize;
use utoipa::ToSchema;

pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Fr,
    En,
}

impl Lang {
    /// Picks from `Accept-Language` by quality; French unless English is preferred. As RFC 9110
    /// §12.4.2 reads weights: `q=0` says the language is not acceptable, and a range whose weight
    /// is not a qvalue (`0` to `1`, three decimals at most: no `NaN`, `inf` or `2`) is invalid and
    /// read past.
    pub fn negotiate(header: Option<&str>) -> Lang {
        let Some(header) = header else { return Lang::Fr };
        // (language, weight in thousandths)
        let mut best: Option<(Lang, u16)> = None;
        for part in header.split(',') {
            let mut pieces = part.trim().split(';');
            let tag = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
            let weight = pieces
                .map(str::trim)
                .find_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")).map(qvalue));
            let q = match weight {
                None => 1000,
                Some(Some(q)) if q > 0 => q,
                // Not acceptable, or an invalid element.
                Some(_) => continue,
            };
            let lang = match tag.split('-').next() {
                Some("fr") => Lang::Fr,
                Some("en") => Lang::En,
                _ => continue,
            };
            if best.is_none_or(|(_, bq)| q > bq) {
                best = Some((lang, q));
            }
        }
        best.map(|(l, _)| l).unwrap_or(Lang::Fr)
    }

    pub fn pick<'a>(self, en: &'a str, fr: &'a str) -> &'a str {
        match self {
            Lang::En => en,
            Lang::Fr => fr,
        }
    }
}

/// An RFC 9110 qvalue in thousandths: `0` or `1`, or either with a `.` and up to three digits
/// (`1.000` at most); anything else is `None`.
fn qvalue(text: &str) -> Option<u16> {
    let (whole, decimals) = text.split_once('.').unwrap_or((text, ""));
    if decimals.len() > 3 || !decimals.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = decimals
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0u16, |n, b| n * 10 + u16::from(b - b'0'));
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// What the request-context middleware knows while the request runs.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    pub lang: Lang,
    pub path: String,
    /// The query string, without its `?` (empty when none).
    pub query: String,
    /// The route's template (`/v1/coverages/{id}`), empty when no route matched.
    pub route: String,
    pub request_id: String,
    /// The W3C `traceparent` what this request causes later carries on (its webhook deliveries):
    /// `telemetry::join_caller_trace`.
    pub trace_parent: Option<String>,
}

tokio::task_local! {
    pub static REQUEST: RequestContext;
}

pub fn current_lang() -> Lang {
    REQUEST.try_with(|r| r.lang).unwrap_or_default()
}

/// An RFC 9457 problem document: the body of every error response, as
/// `application/problem+json`. Clients branch on `code` (stable); `title`, `detail` and each
/// `errors[].message` are for people, in French unless `Accept-Language` prefers English. No
/// error body carries a stack trace, SQL or internal names.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:passerelle:problem:validation_failed",
    "title": "Requête invalide",
    "status": 422,
    "detail": "Nombre d'erreurs dans la requête : 1.",
    "instance": "/v1/organizations",
    "code": "validation_failed",
    "request_id": "0193a5b2-7c1e-7d3a-9f00-2b1c4e5d6f70",
    "errors": [{"field": "/country", "code": "invalid_country", "message": "doit être un code ISO 3166-1 alpha-2 en majuscules, comme TG, ML ou SN"}]
}))]
pub struct Problem {
    /// `urn:passerelle:problem:<code>`.
    #[serde(rename = "type")]
    #[schema(example = "urn:passerelle:problem:validation_failed")]
    pub type_: String,
    /// Short summary, in the language of `Accept-Language` (`fr` by default, or `en`).
    pub title: String,
    /// The HTTP status code of the response, repeated.
    #[schema(example = 422)]
    pub status: u16,
    /// What happened, in the same language.
    pub detail: String,
    /// The request path (without its query string).
    pub instance: String,
    /// Stable machine code: `malformed_request`, `unauthorized`, `forbidden`, `not_found`,
    /// `method_not_allowed`, `not_acceptable` (406, an `Accept` the FHIR façade cannot answer),
    /// `conflict`, `precondition_failed`, `payload_too_large`,
    /// `unsupported_media_type`, `validation_failed`, `idempotency_key_reused`,
    /// `precondition_required`, `rate_limited` (429, over the organisation's rate, with
    /// `Retry-After`), `unavailable`, `internal_error`, `audit_log_damaged` (500: a read of the
    /// audit log met an event changed outside the service; run the verification).
    pub code: String,
    /// The `X-Request-Id` of the request, to quote when reporting a problem.
    pub request_id: String,
    /// Every rule the request broke, for `validation_failed`. For a `conflict`, the case, where a
    /// program must tell them apart: a registration's member at fault (`member_number_taken`,
    /// `already_covered` or `identity_mismatch`); a base affiliation's (`member_number_taken` at
    /// `/member_number`, `already_covered` or `identity_mismatch` at `/beneficiary`); a
    /// dependant's addition (`not_principal`, `household_terminated`, `household_full`,
    /// `duplicate_member`, `already_covered`, `identity_mismatch`, `member_number_taken`); a
    /// contribution's (`duplicate_reference` at `/reference`, `already_cancelled`,
    /// `coverage_terminated`); `organization_exists` at `/id`; `idempotency_in_progress`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub errors: Option<Vec<ProblemField>>,
}

/// One rule a request broke, in a `validation_failed` problem (or the member at fault in a
/// registration's `conflict`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"field": "/lines/0/unit_price_xof", "code": "out_of_range", "message": "doit être de 1 à 1 000 000 000 000 XOF"}))]
pub struct ProblemField {
    /// JSON Pointer into the request (`/header/<name>` and `/query/<name>` for those parts);
    /// empty for the body as a whole.
    pub field: String,
    /// Stable machine code of the rule, e.g. `required`, `invalid_type`, `unknown_field`,
    /// `unknown_value`, `unknown_reference`, `out_of_range`, `invalid_date`, `invalid_character`
    /// (a NUL, U+0000, which no text of the service may hold; in a path it is 404).
    pub code: String,
    /// What is wrong, for people, in the response's language.
    pub message: String,
}

/// Most faults a problem lists; a last one (`too_many_errors`, at the whole body) says how many
/// more there are.
pub const MAX_LISTED_ERRORS: usize = 100;

/// Every `code` of a problem (API.md §4), as [`ApiError::code`] gives them.
pub const PROBLEM_CODES: [&str; 19] = [
    "malformed_request",
    "unauthorized",
    "forbidden",
    "not_found",
    "personal_data_erased",
    "method_not_allowed",
    "conflict",
    "precondition_failed",
    "payload_too_large",
    "unsupported_media_type",
    "not_acceptable",
    "validation_failed",
    "idempotency_key_reused",
    "precondition_required",
    "request_timeout",
    "rate_limited",
    "unavailable",
    "internal_error",
    "audit_log_damaged",
];

/// The 401 of a request without a bearer token: the one whose challenge names no error.
pub const NO_TOKEN: (&str, &str) = (
    "This endpoint needs an Authorization: Bearer <JWT> header.",
    "Ce point d'accès exige un en-tête Authorization: Bearer <JWT>.",
);

/// The 401 of a request with two `Authorization` headers: which was meant is not guessed.
pub const TOKEN_TWICE: (&str, &str) = (
    "The Authorization header is given twice: send one.",
    "L'en-tête Authorization est donné deux fois : n'en envoyez qu'un.",
);

#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("malformed request")]
    Malformed { en: String, fr: String },
    #[error("unauthorized")]
    Unauthorized { en: &'static str, fr: &'static str },
    #[error("forbidden")]
    Forbidden {
        en: String,
        fr: String,
        /// The scope the token lacks, named in `WWW-Authenticate` (RFC 6750 §3.1).
        scope: Option<&'static str>,
    },
    #[error("not found")]
    NotFound,
    /// A person whose personal data was erased under the deployment's retention period
    /// (`passerelle erase-personal-data`), on that day: gone for good, not merely out of sight.
    #[error("personal data erased")]
    Erased { on: chrono::NaiveDate },
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("conflict")]
    Conflict {
        en: String,
        fr: String,
        /// Where in the body, when one member of it is at fault (a dependant already covered).
        errors: Vec<FieldError>,
    },
    #[error("precondition failed")]
    PreconditionFailed,
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("unsupported media type")]
    UnsupportedMediaType { expected: &'static str },
    /// A body sent with a `Content-Encoding` (gzip…): bodies are taken as they are.
    #[error("encoded body")]
    EncodedBody,
    /// A FHIR request whose `Accept` (or `_format`) admits nothing the façade writes.
    #[error("not acceptable")]
    NotAcceptable { available: &'static str },
    /// A bulk upload whose `Content-Type` names a charset other than UTF-8: 415 as any other
    /// type, saying how to save the file instead.
    #[error("unsupported charset")]
    UnsupportedCharset,
    /// A JSON body whose `Content-Type` names a charset other than UTF-8 (JSON is UTF-8, RFC
    /// 8259 §8.1): 415, rather than reading the bytes as what they were declared not to be.
    #[error("unsupported charset")]
    JsonCharset,
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("idempotency key reused")]
    IdempotencyKeyReused,
    #[error("precondition required")]
    PreconditionRequired { header: &'static str },
    /// The request's body did not arrive in the time the service waits for it (the request
    /// timeout, or a bulk upload silent for `batch_upload_idle`): 408, nothing done, since
    /// nothing acts on a body before all of it is in.
    #[error("request timeout")]
    RequestTimeout { en: String, fr: String },
    #[error("rate limited")]
    RateLimited { retry_after: u64 },
    #[error("unavailable")]
    Unavailable,
    /// A bulk upload that cannot be written to the spool folder (a full disk, a folder not
    /// writable): 503 `unavailable` as for the database, saying what is missing.
    #[error("spool unavailable")]
    SpoolUnavailable,
    /// A bulk upload refused because the spool folder holds, or the uploads being received may
    /// still write, as much as `batch_spool_max_bytes` allows: 503 `unavailable`, for a retry
    /// once jobs have read their files.
    #[error("spool full")]
    SpoolFull,
    /// A change rolled back whole after losing to concurrent changes of the same rows more
    /// often than the service retries: 503 `unavailable`, saying so, for a retry soon.
    #[error("contended")]
    Contended,
    /// The request outlasted the request timeout: 503 `unavailable`, but unlike the others it
    /// may have been applied (a transaction can commit just as the deadline passes).
    #[error("timed out")]
    TimedOut,
    /// The database connection broke while the change was committing: 503 `unavailable`, and
    /// like a timeout it may have been applied.
    #[error("connection lost while committing")]
    Indeterminate,
    /// The audit chain cannot grow (its head is behind events already chained): 503
    /// `unavailable`, saying that an operator must put it right, not that the database is out
    /// of reach.
    #[error("audit chain blocked")]
    AuditBlocked,
    #[error("internal error: {0}")]
    Internal(String),
    /// An audit event changed outside the service, so that it cannot be read (SQLite: its `at`
    /// is no instant). Verification names it too.
    #[error("the audit log is damaged at seq {seq}")]
    AuditLogDamaged { seq: i64 },
}

impl ApiError {
    pub fn validation(errors: Vec<FieldError>) -> ApiError {
        ApiError::Validation(errors)
    }

    pub fn field(error: FieldError) -> ApiError {
        ApiError::Validation(vec![error])
    }

    pub fn forbidden(en: impl Into<String>, fr: impl Into<String>) -> ApiError {
        ApiError::Forbidden {
            en: en.into(),
            fr: fr.into(),
            scope: None,
        }
    }

    pub fn conflict(en: impl Into<String>, fr: impl Into<String>) -> ApiError {
        ApiError::Conflict {
            en: en.into(),
            fr: fr.into(),
            errors: Vec::new(),
        }
    }

    pub fn malformed(en: impl Into<String>, fr: impl Into<String>) -> ApiError {
        ApiError::Malformed {
            en: en.into(),
            fr: fr.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Malformed { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Erased { .. } => StatusCode::GONE,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType { .. }
            | ApiError::EncodedBody
            | ApiError::UnsupportedCharset
            | ApiError::JsonCharset => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::NotAcceptable { .. } => StatusCode::NOT_ACCEPTABLE,
            ApiError::Validation(_) | ApiError::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PreconditionRequired { .. } => StatusCode::PRECONDITION_REQUIRED,
            ApiError::RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable
            | ApiError::SpoolUnavailable
            | ApiError::SpoolFull
            | ApiError::Contended
            | ApiError::TimedOut
            | ApiError::Indeterminate
            | ApiError::AuditBlocked => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) | ApiError::AuditLogDamaged { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Malformed { .. } => "malformed_request",
            ApiError::Unauthorized { .. } => "unauthorized",
            ApiError::Forbidden { .. } => "forbidden",
            ApiError::NotFound => "not_found",
            ApiError::Erased { .. } => "personal_data_erased",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Conflict { .. } => "conflict",
            ApiError::PreconditionFailed => "precondition_failed",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::UnsupportedMediaType { .. }
            | ApiError::EncodedBody
            | ApiError::UnsupportedCharset
            | ApiError::JsonCharset => "unsupported_media_type",
            ApiError::NotAcceptable { .. } => "not_acceptable",
            ApiError::Validation(_) => "validation_failed",
            ApiError::IdempotencyKeyReused => "idempotency_key_reused",
            ApiError::PreconditionRequired { .. } => "precondition_required",
            ApiError::RequestTimeout { .. } => "request_timeout",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Unavailable
            | ApiError::SpoolUnavailable
            | ApiError::SpoolFull
            | ApiError::Contended
            | ApiError::TimedOut
            | ApiError::Indeterminate
            | ApiError::AuditBlocked => "unavailable",
            ApiError::Internal(_) => "internal_error",
            ApiError::AuditLogDamaged { .. } => "audit_log_damaged",
        }
    }

    /// (title, detail) in English and French.
    fn texts(&self) -> ((&'static str, String), (&'static str, String)) {
        match self {
            ApiError::Malformed { en, fr } => (("Malformed request", en.clone()), ("Requête mal formée", fr.clone())),
            ApiError::RequestTimeout { en, fr } => (
                ("Request timeout", en.clone()),
                ("Délai de la requête dépassé", fr.clone()),
            ),
            ApiError::Unauthorized { en, fr } => {
                (("Unauthorized", (*en).to_owned()), ("Non authentifié", (*fr).to_owned()))
            }
            ApiError::Forbidden { en, fr, .. } => (("Forbidden", en.clone()), ("Interdit", fr.clone())),
            ApiError::NotFound => (
                ("Not found", "No such resource, or it is not visible to you.".into()),
                ("Introuvable", "Cette ressource n'existe pas ou ne vous est pas visible.".into()),
            ),
            ApiError::Erased { on } => (
                (
                    "Gone",
                    format!("This person's personal data was erased on {on}, at the end of the retention period this deployment keeps it for. The record's id remains, named by its coverages and claims; nothing else of the person is kept, and the record can no longer be changed or covered."),
                ),
                (
                    "Données effacées",
                    format!("Les données personnelles de cette personne ont été effacées le {on}, au terme de la durée de conservation de ce déploiement. L'identifiant de la fiche demeure, cité par ses couvertures et ses demandes de remboursement ; rien d'autre de la personne n'est conservé, et la fiche ne peut plus être modifiée ni couverte."),
                ),
            ),
            ApiError::MethodNotAllowed => (
                ("Method not allowed", "This path does not accept this method.".into()),
                ("Méthode non autorisée", "Ce chemin n'accepte pas cette méthode.".into()),
            ),
                        ApiError::Conflict { en, fr, .. } => (("Conflict", en.clone()), ("Conflit", fr.clone())),
            ApiError::PreconditionFailed => (
                ("Precondition failed", "The resource changed since you read it: read it again (If-Match is stale).".into()),
                ("Condition préalable non remplie", "La ressource a changé depuis votre dernière lecture : consultez-la de nouveau (la version donnée dans If-Match n'est plus à jour).".into()),
            ),
            ApiError::PayloadTooLarge => (
                ("Payload too large", "The request body is larger than this endpoint accepts.".into()),
                ("Requête trop volumineuse", "Le corps de la requête dépasse la taille qu'accepte ce point d'accès.".into()),
            ),
            ApiError::UnsupportedCharset => (
                (
                    "Unsupported media type",
                    "The file must be UTF-8: send it with charset=utf-8 or no charset. A spreadsheet saves \"CSV UTF-8\" (LibreOffice: character set \"Unicode (UTF-8)\").".to_owned(),
                ),
                (
                    "Type de contenu non pris en charge",
                    "Le fichier doit être en UTF-8 : envoyez-le avec charset=utf-8 ou sans charset. Dans un tableur, enregistrez-le au format « CSV UTF-8 » (LibreOffice : jeu de caractères « Unicode (UTF-8) »).".to_owned(),
                ),
            ),
            ApiError::JsonCharset => (
                (
                    "Unsupported media type",
                    "A JSON body is UTF-8: send it with charset=utf-8 or no charset.".to_owned(),
                ),
                (
                    "Type de contenu non pris en charge",
                    "Un corps JSON doit être en UTF-8 : envoyez-le avec charset=utf-8 ou sans charset.".to_owned(),
                ),
            ),
            ApiError::NotAcceptable { available } => (
                ("Not acceptable", format!("This endpoint answers {available} only: accept it (or any type).")),
                ("Non acceptable", format!("Ce point d'accès ne répond qu'en {available} : indiquez-le dans l'en-tête Accept (ou */*).")),
            ),
            ApiError::EncodedBody => (
                (
                    "Unsupported media type",
                    "Compressed bodies are not taken: send the body as it is, without Content-Encoding.".to_owned(),
                ),
                (
                    "Type de contenu non pris en charge",
                    "Les corps compressés ne sont pas acceptés : envoyez le corps tel quel, sans Content-Encoding."
                        .to_owned(),
                ),
            ),
            ApiError::UnsupportedMediaType { expected } => (
                ("Unsupported media type", format!("Send the body as {expected}.")),
                (
                    "Type de contenu non pris en charge",
                    // The types are the same in both languages; the word between them is not.
                    format!("Envoyez le corps en {}.", expected.replace(" or ", " ou ")),
                ),
            ),
            ApiError::Validation(errors) if errors.len() > MAX_LISTED_ERRORS + 1 || errors.iter().any(|e| e.code == "too_many_errors") => (
                ("Invalid request", "The request has too many errors to list them all: correct those listed first.".into()),
                ("Requête invalide", "La requête contient trop d'erreurs pour les lister toutes : corrigez d'abord celles qui sont listées.".into()),
            ),
            ApiError::Validation(errors) => (
                ("Invalid request", format!("The request has {} error(s).", errors.len())),
                ("Requête invalide", format!("Nombre d'erreurs dans la requête : {}.", errors.len())),
            ),
            ApiError::IdempotencyKeyReused => (
                ("Idempotency key reused", "This Idempotency-Key was already used with a different request: send a new key with a new request (a corrected file, a changed body).".into()),
                ("Clé d'idempotence réutilisée", "Cette Idempotency-Key a déjà servi pour une autre requête : envoyez une nouvelle clé avec une nouvelle requête (un fichier corrigé, un corps modifié).".into()),
            ),
            ApiError::PreconditionRequired { header } => (
                ("Precondition required", format!("This request needs the {header} header.")),
                ("Condition préalable requise", format!("Cette requête exige l'en-tête {header}.")),
            ),
            ApiError::RateLimited { retry_after } => (
                (
                    "Too many requests",
                    format!("Your organisation sent more requests than this service accepts; retry in {retry_after} s."),
                ),
                (
                    "Trop de requêtes",
                    format!("Votre organisation a envoyé plus de requêtes que ce service n'en accepte ; réessayez dans {retry_after} s."),
                ),
            ),
            ApiError::Unavailable => (
                ("Service unavailable", "The service cannot reach its database; nothing was changed. Retry later.".into()),
                ("Service indisponible", "Le service ne parvient pas à joindre sa base de données ; rien n'a été modifié. Réessayez plus tard.".into()),
            ),
            ApiError::TimedOut => (
                ("Service unavailable", "The request took longer than the service allows. It may have been applied all the same: retry with the same Idempotency-Key (the first answer is replayed), or read the resource before repeating an action that takes none.".into()),
                ("Service indisponible", "La requête a duré plus longtemps que le service ne le permet. Elle a pu être appliquée malgré tout : réessayez avec la même Idempotency-Key (la première réponse est rejouée), ou relisez la ressource avant de répéter une action qui ne prend pas d'Idempotency-Key.".into()),
            ),
            ApiError::AuditBlocked => (
                ("Service unavailable", "The audit log cannot take new events until an operator repairs it (the service has logged why); nothing was changed. Retry later.".into()),
                ("Service indisponible", "Le journal d'audit ne peut plus recevoir d'événements tant qu'un opérateur ne l'a pas réparé (le service a consigné pourquoi) ; rien n'a été modifié. Réessayez plus tard.".into()),
            ),
            ApiError::Indeterminate => (
                ("Service unavailable", "The service lost its database connection while the change was being committed. It may have been applied all the same: retry with the same Idempotency-Key (the first answer is replayed), or read the resource before repeating an action that takes none.".into()),
                ("Service indisponible", "Le service a perdu sa connexion à la base de données pendant l'enregistrement de la modification. Elle a pu être appliquée malgré tout : réessayez avec la même Idempotency-Key (la première réponse est rejouée), ou relisez la ressource avant de répéter une action qui ne prend pas d'Idempotency-Key.".into()),
            ),
            ApiError::Contended => (
                ("Service unavailable", "The request met concurrent changes of the same data more often than the service retries; nothing was changed. Retry (with the same Idempotency-Key, if you sent one).".into()),
                ("Service indisponible", "La requête a rencontré des modifications simultanées des mêmes données plus souvent que le service ne réessaie ; rien n'a été modifié. Réessayez (avec la même Idempotency-Key, si vous en avez envoyé une).".into()),
            ),
            ApiError::SpoolUnavailable => (
                ("Service unavailable", "The service cannot store uploads now (its disk is full or its spool folder cannot be written); nothing was created. Retry later, or tell its operators.".into()),
                ("Service indisponible", "Le service ne peut pas enregistrer d'envoi pour l'instant (son disque est plein ou son dossier de dépôt n'est pas accessible en écriture) ; rien n'a été créé. Réessayez plus tard, ou prévenez son opérateur.".into()),
            ),
            ApiError::SpoolFull => (
                ("Service unavailable", "The service holds as many uploads as its spool folder may, waiting for their jobs; nothing was created. Retry in a minute, with the same Idempotency-Key.".into()),
                ("Service indisponible", "Le dossier de dépôt du service est plein d'envois qui attendent leur traitement ; rien n'a été créé. Réessayez dans une minute, avec la même Idempotency-Key.".into()),
            ),
            ApiError::Internal(_) => (
                ("Internal error", "An unexpected error occurred; nothing was changed. Quote the request id when reporting it.".into()),
                                ("Erreur interne", "Une erreur inattendue s'est produite ; rien n'a été modifié. Indiquez l'identifiant de la requête (request_id) en la signalant.".into()),
            ),
            ApiError::AuditLogDamaged { seq } => (
                (
                    "Audit log damaged",
                    format!("The audit log is damaged at seq {seq}: this event was changed outside the service. Run `passerelle audit verify` (or GET /v1/audit-events/verify) and restore the log from a backup."),
                ),
                (
                    "Journal d'audit endommagé",
                    format!("Le journal d'audit est endommagé à l'événement seq {seq} : cet événement a été modifié hors du service. Lancez `passerelle audit verify` (ou GET /v1/audit-events/verify) et restaurez le journal depuis une sauvegarde."),
                ),
            ),
        }
    }

    pub fn to_problem(&self, ctx: &RequestContext) -> Problem {
        let ((title_en, detail_en), (title_fr, detail_fr)) = self.texts();
        let (title, detail) = match ctx.lang {
            Lang::En => (title_en, detail_en),
            Lang::Fr => (title_fr, detail_fr),
        };
        let field = |e: &FieldError| ProblemField {
            field: e.field.clone(),
            code: e.code.clone(),
            message: ctx.lang.pick(&e.en, &e.fr).to_owned(),
        };
        let errors = match self {
            // The first ones and how many more: an answer a client can read, not megabytes.
            ApiError::Validation(errors) | ApiError::Conflict { errors, .. }
                if errors.len() > MAX_LISTED_ERRORS + 1 =>
            {
                let more = FieldError::too_many("", errors.len() - MAX_LISTED_ERRORS, false);
                Some(errors[..MAX_LISTED_ERRORS].iter().chain([&more]).map(field).collect())
            }
            ApiError::Validation(errors) | ApiError::Conflict { errors, .. } if !errors.is_empty() => {
                Some(errors.iter().map(field).collect())
            }
            _ => None,
        };
        Problem {
            type_: format!("urn:passerelle:problem:{}", self.code()),
            title: title.to_owned(),
            status: self.status().as_u16(),
            detail,
            instance: ctx.path.clone(),
            code: self.code().to_owned(),
            request_id: ctx.request_id.clone(),
            errors,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound,
            StoreError::Erased { at } => ApiError::Erased { on: at.date_naive() },
            StoreError::Conflict { constraint } => conflict_for(&constraint),
            StoreError::IdempotencyMismatch => ApiError::IdempotencyKeyReused,
            StoreError::StaleVersion => ApiError::PreconditionFailed,
            StoreError::InvalidCursor => ApiError::field(passerelle_domain::pagination::invalid_cursor()),
            StoreError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "database unavailable");
                ApiError::Unavailable
            }
            StoreError::Indeterminate(detail) => {
                tracing::warn!(error = %detail, "database connection lost while committing");
                ApiError::Indeterminate
            }
            // Rolled back whole: the client retries (with the same Idempotency-Key) safely.
            StoreError::Contention(detail) => {
                tracing::warn!(error = %detail, "a change lost to a concurrent one");
                ApiError::Contended
            }
            StoreError::Internal(detail) => ApiError::Internal(detail),
            // The chainer logs it as an error, with what to do; the caller can only wait.
            StoreError::ChainBlocked(detail) => {
                tracing::debug!(error = %detail, "audit chain blocked");
                ApiError::AuditBlocked
            }
        }
    }
}

fn conflict_for(constraint: &str) -> ApiError {
    let (code, member) = passerelle_domain::batch::split_member_conflict(constraint);
    let mut error = conflict_of(code);
    // A registration's member at fault: the principal is member 0, whose number is the
    // household's `member_number`; dependant `i` is member `i + 1`.
    if let (Some(member), ApiError::Conflict { en, fr, errors }) = (member, &mut error) {
        let at = match member.checked_sub(1) {
            None => String::new(),
            Some(i) => format!("/dependants/{i}"),
        };
        let field = match (code, member) {
            ("member_number_taken", _) => format!("{at}/member_number"),
            (_, 0) => "/principal".to_owned(),
            _ => at,
        };
        errors.push(FieldError::new(field, code, en.clone(), fr.clone()));
    }
    // A single person's (a base affiliation) names its case too, at the field it concerns.
    if let ApiError::Conflict { en, fr, errors } = &mut error {
        let field = match code {
            "member_number_taken" => Some("/member_number"),
            "already_covered" | "identity_mismatch" => Some("/beneficiary"),
            _ => None,
        };
        if let (true, Some(field)) = (errors.is_empty(), field) {
            errors.push(FieldError::new(field, code, en.clone(), fr.clone()));
        }
    }
    error
}

/// `identity_mismatch`, in English and French: a national id already stored for a person whose
/// sex or birth date disagrees. It names neither that person nor the field that differs.
pub const IDENTITY_MISMATCH: (&str, &str) = (
    "This national id is already registered for a person of another sex or birth date: check the person's national id, sex and birth date.",
    "Ce numéro d'identité nationale est déjà enregistré pour une personne d'un autre sexe ou d'une autre date de naissance : vérifiez le numéro d'identité nationale, le sexe et la date de naissance de la personne.",
);

/// A conflict of the whole request (`""`), its code in `errors` for programs to tell it apart.
fn coded_conflict(code: &str, en: &str, fr: &str) -> ApiError {
    conflict_at("", code, en, fr)
}

/// A conflict whose code, in `errors`, sits at `field` of the request.
pub fn conflict_at(field: &str, code: &str, en: &str, fr: &str) -> ApiError {
    ApiError::Conflict {
        en: en.to_owned(),
        fr: fr.to_owned(),
        errors: vec![FieldError::new(field, code, en, fr)],
    }
}

fn conflict_of(constraint: &str) -> ApiError {
    match constraint {
        // Several people covered under a member number were born as the check or claim said.
        passerelle_domain::ports::AMBIGUOUS_PERSON => ApiError::field(crate::routes::eligibility::ambiguous_person()),
        "organization_exists" => conflict_at(
            "/id",
            "organization_exists",
            "An organisation with this id already exists.",
            "Une organisation porte déjà cet identifiant.",
        ),
        // Held by another person, or by this one registered before under another key. A
        // registration's adds the member at fault (`conflict_for`); a base affiliation's is its
        // own `member_number`.
        "member_number_taken" => ApiError::conflict(
            "This member number is already held in your organisation.",
            "Ce numéro d'adhérent est déjà attribué dans votre organisation.",
        ),
        "already_covered" => ApiError::conflict(
            "This person already holds a coverage of this product.",
            "Cette personne est déjà couverte par ce produit.",
        ),
        // A national id stored for someone of another sex or birth: a registration's adds the
        // member at fault, a base affiliation's `/beneficiary`. Nothing of the stored person.
        "identity_mismatch" => ApiError::conflict(IDENTITY_MISMATCH.0, IDENTITY_MISMATCH.1),
        // A national id given to a person who had none, already another person's: the two
        // records are not merged. Nothing of that person is told.
        "national_id_taken" => conflict_at(
            "/national_id",
            "national_id_taken",
            "This national id is already registered for another person; the two records are not merged.",
            "Ce numéro d'identité nationale est déjà enregistré pour une autre personne ; les deux fiches ne sont pas fusionnées.",
        ),
        // A merge refused (`routes::merges`): each carries its code.
        "has_national_id" => coded_conflict(
            "has_national_id",
            "This record holds a national id: merge the other record into it instead.",
            "Cette fiche porte un numéro d'identité nationale : fusionnez plutôt l'autre fiche dans celle-ci.",
        ),
        "covered_by_others" => coded_conflict(
            "covered_by_others",
            "Another organisation covers this record too: its coverages are not yours to move.",
            "Une autre organisation couvre aussi cette personne : vous ne pouvez pas déplacer les couvertures de cette organisation.",
        ),
        passerelle_domain::webhook::TOO_MANY_SUBSCRIPTIONS => coded_conflict(
            passerelle_domain::webhook::TOO_MANY_SUBSCRIPTIONS,
            "Your organisation already holds the most webhook subscriptions it may (10): delete one first. One subscription takes any number of event types.",
            "Votre organisation détient déjà le nombre maximal d'abonnements webhook (10) : supprimez-en un d'abord. Un même abonnement peut couvrir autant de types d'événements que nécessaire.",
        ),
        "already_merged" => coded_conflict(
            "already_merged",
            "This record was merged into another person: read it for its merged_into.",
            "Cette fiche a été fusionnée dans celle d'une autre personne : consultez-la pour connaître la fiche qui la remplace (merged_into).",
        ),
        // Both contribution conflicts carry their code, so that a retried cancel that already
        // succeeded is told from one refused.
        "coverage_terminated" => coded_conflict(
            "coverage_terminated",
            "This coverage is terminated: its contributions can no longer change.",
            "Cette couverture est résiliée : ses cotisations ne peuvent plus changer.",
        ),
        // The same receipt entered twice: `errors` points at the reference.
        "duplicate_reference" => ApiError::Conflict {
            en: "A contribution with this reference is already recorded on this coverage.".into(),
            fr: "Une cotisation portant cette référence est déjà enregistrée sur cette couverture.".into(),
            errors: vec![FieldError::new(
                "/reference",
                "duplicate_reference",
                "already recorded on this coverage; cancel that contribution first to record it again",
                "déjà enregistrée sur cette couverture ; annulez d'abord cette cotisation pour l'enregistrer à nouveau",
            )],
        },
        // The same transfer entered twice on one settlement: `errors` points at the reference.
        "duplicate_payment_reference" => ApiError::Conflict {
            en: "A payment with this reference is already recorded on this settlement.".into(),
            fr: "Un paiement portant cette référence est déjà enregistré sur ce bordereau.".into(),
            errors: vec![FieldError::new(
                "/reference",
                "duplicate_reference",
                "already recorded on this settlement: one transfer entered twice counts once",
                "déjà enregistrée sur ce bordereau : un virement saisi deux fois ne compte qu'une fois",
            )],
        },
        "already_deactivated" => coded_conflict(
            "already_deactivated",
            "This organisation is already deactivated.",
            "Cette organisation est déjà désactivée.",
        ),
        "already_active" => coded_conflict(
            "already_active",
            "This organisation is not deactivated.",
            "Cette organisation n'est pas désactivée.",
        ),
        "already_cancelled" => coded_conflict(
            "already_cancelled",
            "This contribution is already cancelled.",
            "Cette cotisation est déjà annulée.",
        ),
        "external_id_taken" => crate::routes::claims::duplicate_external_id(),
        "idempotency_in_progress" => coded_conflict(
            "idempotency_in_progress",
            "A request with this Idempotency-Key is still being processed; retry shortly.",
            "Une requête avec cette Idempotency-Key est encore en cours de traitement ; réessayez dans un instant.",
        ),
        _ => ApiError::conflict("This resource already exists.", "Cette ressource existe déjà."),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            tracing::error!(error = %detail, "internal error");
        }
        if let ApiError::AuditLogDamaged { seq } = &self {
            tracing::error!(seq, "the audit log is damaged: run passerelle audit verify");
        }
        let ctx = REQUEST.try_with(|r| r.clone()).unwrap_or_default();
        problem_response(&self, &ctx)
    }
}

pub fn problem_response(error: &ApiError, ctx: &RequestContext) -> Response {
    let problem = error.to_problem(ctx);
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    let mut response = (error.status(), body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    // Every problem, not only those of a route's own handler: one made by a layer outside the
    // routes' `no-store` (a timeout, an oversized body, an unknown path) is an answer to one
    // caller at one moment too, and no cache may serve it to another request.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // RFC 6750 §3: a token that was sent and refused is `invalid_token`, which tells a client
    // to get a new one; a request without one gets no error code.
    match error {
        ApiError::Unauthorized { en, .. } => {
            let challenge = if *en == NO_TOKEN.0 {
                "Bearer realm=\"passerelle\""
            } else if *en == TOKEN_TWICE.0 {
                "Bearer realm=\"passerelle\", error=\"invalid_request\""
            } else {
                "Bearer realm=\"passerelle\", error=\"invalid_token\""
            };
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        ApiError::Forbidden { scope: Some(scope), .. } => {
            let challenge = format!("Bearer realm=\"passerelle\", error=\"insufficient_scope\", scope=\"{scope}\"");
            if let Ok(challenge) = HeaderValue::from_str(&challenge) {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, challenge);
            }
        }
        _ => {}
    }
    if matches!(error, ApiError::EncodedBody) {
        // RFC 7694: the codings a request body may have.
        response
            .headers_mut()
            .insert(header::ACCEPT_ENCODING, HeaderValue::from_static("identity"));
    }
    if let ApiError::UnsupportedMediaType {
        expected: crate::extract::MERGE_PATCH,
    } = error
    {
        // RFC 5789: a PATCH refused for its body's type names the types it takes.
        response.headers_mut().insert(
            HeaderName::from_static("accept-patch"),
            HeaderValue::from_static(crate::extract::MERGE_PATCH),
        );
    }
    if matches!(error, ApiError::SpoolFull | ApiError::AuditBlocked) {
        // Jobs read their files in minutes, not seconds; a blocked chain waits for an operator.
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    } else if matches!(
        error,
        ApiError::Unavailable
            | ApiError::SpoolUnavailable
            | ApiError::Contended
            | ApiError::TimedOut
            | ApiError::Indeterminate
    ) {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    if let ApiError::RateLimited { retry_after } = error {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
    }
    // The rest of the body may still be on its way: the connection cannot carry another request
    // (RFC 9110 §15.5.9).
    if let ApiError::RequestTimeout { .. } = error {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A number of seconds in French: a decimal comma, and « seconde » below two (`1,5 seconde`,
/// `30 secondes`).
pub fn french_seconds(seconds: f64) -> String {
    let number = seconds.to_string().replace('.', ",");
    let unit = if seconds < 2.0 { "seconde" } else { "secondes" };
    format!("{number} {unit}")
}

impl ApiError {
    /// A request whose body had not all arrived when the request timeout passed.
    pub fn body_too_slow(timeout: std::time::Duration) -> ApiError {
        let seconds = timeout.as_secs_f64();
        // French writes a decimal comma, and the singular below two (1,5 seconde).
        let secondes = french_seconds(seconds);
        ApiError::RequestTimeout {
            en: format!(
                "The request's body had not all arrived after {seconds} seconds; nothing was done: send the request again."
            ),
            fr: format!(
                "Le corps de la requête n'était pas arrivé en entier après {secondes} ; rien n'a été fait : renvoyez la requête."
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented value set of `Problem.code` is what the errors give, no more, no less. The
    /// match names every variant, so a new one fails to compile here until it is listed.
    #[test]
    fn seconds_are_written_as_each_language_writes_them() {
        let ((_, en), (_, fr)) = ApiError::body_too_slow(std::time::Duration::from_millis(1500)).texts();
        assert!(en.contains("after 1.5 seconds"), "{en}");
        assert!(fr.contains("après 1,5 seconde ;"), "{fr}");
        let ((_, en), (_, fr)) = ApiError::body_too_slow(std::time::Duration::from_secs(30)).texts();
        assert!(
            en.contains("after 30 seconds") && fr.contains("après 30 secondes"),
            "{en} {fr}"
        );
    }

    #[test]
    fn problem_codes_are_the_errors_codes() {
        fn one_of_each(e: &ApiError) -> Vec<ApiError> {
            match e {
                ApiError::Malformed { .. }
                | ApiError::Unauthorized { .. }
                | ApiError::Forbidden { .. }
                | ApiError::NotFound
                | ApiError::Erased { .. }
                | ApiError::MethodNotAllowed
                | ApiError::Conflict { .. }
                | ApiError::PreconditionFailed
                | ApiError::PayloadTooLarge
                | ApiError::UnsupportedMediaType { .. }
                | ApiError::EncodedBody
                | ApiError::NotAcceptable { .. }
                | ApiError::UnsupportedCharset
                | ApiError::JsonCharset
                | ApiError::Validation(_)
                | ApiError::IdempotencyKeyReused
                | ApiError::PreconditionRequired { .. }
                | ApiError::RequestTimeout { .. }
                | ApiError::RateLimited { .. }
                | ApiError::Unavailable
                | ApiError::SpoolUnavailable
                | ApiError::SpoolFull
                | ApiError::Contended
                | ApiError::TimedOut
                | ApiError::Indeterminate
                | ApiError::AuditBlocked
                | ApiError::Internal(_)
                | ApiError::AuditLogDamaged { .. } => vec![
                    ApiError::Malformed {
                        en: String::new(),
                        fr: String::new(),
                    },
                    ApiError::Erased {
                        on: chrono::NaiveDate::MIN,
                    },
                    ApiError::Unauthorized { en: "", fr: "" },
                    ApiError::Forbidden {
                        en: String::new(),
                        fr: String::new(),
                        scope: None,
                    },
                    ApiError::NotFound,
                    ApiError::MethodNotAllowed,
                    ApiError::Conflict {
                        en: String::new(),
                        fr: String::new(),
                        errors: Vec::new(),
                    },
                    ApiError::PreconditionFailed,
                    ApiError::PayloadTooLarge,
                    ApiError::UnsupportedMediaType { expected: "" },
                    ApiError::EncodedBody,
                    ApiError::NotAcceptable { available: "" },
                    ApiError::UnsupportedCharset,
                    ApiError::JsonCharset,
                    ApiError::Validation(Vec::new()),
                    ApiError::IdempotencyKeyReused,
                    ApiError::PreconditionRequired { header: "" },
                    ApiError::RequestTimeout {
                        en: String::new(),
                        fr: String::new(),
                    },
                    ApiError::RateLimited { retry_after: 1 },
                    ApiError::Unavailable,
                    ApiError::SpoolUnavailable,
                    ApiError::SpoolFull,
                    ApiError::Contended,
                    ApiError::TimedOut,
                    ApiError::Indeterminate,
                    ApiError::AuditBlocked,
                    ApiError::Internal(String::new()),
                    ApiError::AuditLogDamaged { seq: 1 },
                ],
            }
        }
        let mut given: Vec<&str> = one_of_each(&ApiError::NotFound).iter().map(ApiError::code).collect();
        given.sort_unstable();
        given.dedup();
        let mut documented = PROBLEM_CODES.to_vec();
        documented.sort_unstable();
        assert_eq!(given, documented);
    }

    #[test]
    fn language_follows_accept_language() {
        assert_eq!(Lang::negotiate(None), Lang::Fr);
        assert_eq!(Lang::negotiate(Some("en-GB,en;q=0.9")), Lang::En);
        assert_eq!(Lang::negotiate(Some("fr-SN, en;q=0.5")), Lang::Fr);
        assert_eq!(Lang::negotiate(Some("de, en;q=0.3")), Lang::En);
        assert_eq!(Lang::negotiate(Some("de")), Lang::Fr);
        assert_eq!(Lang::negotiate(Some("fr;q=0.2, en;q=0.8")), Lang::En);
    }

    #[test]
    fn weights_are_read_as_rfc_9110_qvalues() {
        // `q=0`: not acceptable, so French, the default.
        assert_eq!(Lang::negotiate(Some("en;q=0")), Lang::Fr);
        assert_eq!(Lang::negotiate(Some("en;q=0.000")), Lang::Fr);
        assert_eq!(Lang::negotiate(Some("fr;q=0, en;q=0.1")), Lang::En);
        // Invalid weights make their element invalid: it is read past.
        assert_eq!(Lang::negotiate(Some("en;q=NaN, fr")), Lang::Fr);
        assert_eq!(Lang::negotiate(Some("fr, en;q=inf")), Lang::Fr);
        assert_eq!(Lang::negotiate(Some("en;q=2, fr")), Lang::Fr);
        assert_eq!(Lang::negotiate(Some("fr;q=0.5, en;q=1.0001")), Lang::Fr);
        assert_eq!(Lang::negotiate(Some("fr;q=0.5, en;q=-1")), Lang::Fr);
        assert_eq!(Lang::negotiate(Some("fr;q=0.5, en;q=")), Lang::Fr);
        assert_eq!(Lang::negotiate(Some("fr;q=0.5, en;q=.9")), Lang::Fr);
        assert_eq!(Lang::negotiate(Some("fr;q=0.5, en;q=+0.9")), Lang::Fr);
        // Valid ones, whatever their spelling.
        assert_eq!(Lang::negotiate(Some("en;q=0.5, fr;q=0.4")), Lang::En);
        assert_eq!(Lang::negotiate(Some("fr;q=0.999, en;Q=1.000")), Lang::En);
        assert_eq!(Lang::negotiate(Some("fr;q=0.5, en;q=1.")), Lang::En);
        assert_eq!(Lang::negotiate(Some("fr;q=0.001, en ; q=0.01")), Lang::En);
        assert_eq!(qvalue("0.5"), Some(500));
        assert_eq!(qvalue("0.05"), Some(50));
        assert_eq!(qvalue("1"), Some(1000));
        assert_eq!(qvalue("0"), Some(0));
        assert_eq!(qvalue("1.5"), None);
        assert_eq!(qvalue("0.1234"), None);
    }

    /// A change that lost to concurrent ones is 503 `unavailable` with `Retry-After`, as an
    /// unreachable database is, but says what happened: the database was reached.
    #[test]
    fn a_lost_race_says_so() {
        let ctx = RequestContext::default();
        let contended = ApiError::from(StoreError::Contention("deadlock detected".into()));
        let response = problem_response(&contended, &ctx);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key(header::RETRY_AFTER));
        let problem = contended.to_problem(&ctx);
        assert_eq!(problem.code, "unavailable");
        assert!(problem.detail.contains("simultanées"), "{}", problem.detail);
        assert!(!problem.detail.contains("deadlock"), "{}", problem.detail);
        let down = ApiError::from(StoreError::Unavailable("connection refused".into())).to_problem(&ctx);
        assert!(down.detail.contains("ne parvient pas à joindre"), "{}", down.detail);
        // A timeout cannot say that nothing changed: the work may have committed meanwhile.
        let late = ApiError::TimedOut.to_problem(&ctx);
        assert_eq!(late.code, "unavailable");
        assert!(late.detail.contains("a pu être appliquée"), "{}", late.detail);
        assert!(problem_response(&ApiError::TimedOut, &ctx)
            .headers()
            .contains_key(header::RETRY_AFTER));
        // Nor can a commit whose connection broke under it.
        let lost = ApiError::from(StoreError::Indeterminate("connection reset".into()));
        let problem = lost.to_problem(&ctx);
        assert_eq!(problem.code, "unavailable");
        assert!(problem.detail.contains("a pu être appliquée"), "{}", problem.detail);
        assert!(!problem.detail.contains("reset"), "{}", problem.detail);
        assert!(problem_response(&lost, &ctx)
            .headers()
            .contains_key(header::RETRY_AFTER));
    }
}
