//! Extractors whose rejections are problem+json: the JSON body, the authorised caller, and the
//! `Idempotency-Key` header.

use std::marker::PhantomData;

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use passerelle_domain::error::FieldError;
use passerelle_domain::organization::{OrgId, OrgKind};
use passerelle_domain::policy::{Action, Decision};
use passerelle_domain::ports::{IdempotencyKey, WriteContext};
use passerelle_domain::scope::Scope;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::problem::{ApiError, REQUEST};
use crate::state::AppState;

/// A JSON body: 415 without a JSON content type, 400 when it does not parse, is not an object or
/// names a member twice in one object (`json_members`), 413 when too large, 422 (with the field) when a value has the wrong type.
pub struct AppJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for AppJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType {
                expected: "application/json",
            });
        }
        if foreign_charset(req.headers()) {
            return Err(ApiError::JsonCharset);
        }
        let bytes = match axum::body::Bytes::from_request(req, state).await {
            Ok(bytes) => bytes,
            Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(ApiError::PayloadTooLarge),
            Err(_) => {
                return Err(ApiError::malformed(
                    "The body could not be read as JSON.",
                    "Le corps n'a pas pu être lu comme du JSON.",
                ))
            }
        };
        let mut value = passerelle_domain::json_members::parse(&bytes).map_err(|e| not_json(&bytes, &e))?;
        // Rare: a fraction the parser rounded to a whole number is read as a plain fraction, so
        // that its field is refused like any other (a whole-number field is `invalid_type`).
        let rounded = crate::json_numbers::fractions_read_as_whole(&bytes);
        if !rounded.is_empty() {
            let plain = crate::json_numbers::with_plain_fractions(&bytes, &rounded);
            value = passerelle_domain::json_members::parse(&plain).map_err(|e| not_json(&plain, &e))?;
        }
        if !value.is_object() {
            return Err(ApiError::malformed(
                "The body must be a JSON object.",
                "Le corps doit être un objet JSON.",
            ));
        }
        if let Some(field) = passerelle_domain::nul::first_nul(&value) {
            return Err(ApiError::field(passerelle_domain::nul::nul_error(field)));
        }
        // Every handler reads a `Map` and judges its fields itself (`crate::fields`), so this
        // cannot fail today; if it did, serde's text (English, naming Rust types) stays out.
        serde_json::from_value(value).map(AppJson).map_err(|_| {
            ApiError::field(FieldError::new(
                "",
                "invalid_type",
                "does not have the expected shape",
                "n'a pas la forme attendue",
            ))
        })
    }
}

/// A request's `Content-Type` without its parameters, in lower case.
pub fn media_type(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
}

/// Whether the `Content-Type` names a charset other than UTF-8 (`charset=utf-8`, `utf8`, quoted
/// or not, in any case, is UTF-8; so are none and US-ASCII, its subset).
pub fn foreign_charset(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    value.split(';').skip(1).any(|param| {
        param.split_once('=').is_some_and(|(name, charset)| {
            let charset = charset.trim().trim_matches('"');
            name.trim().eq_ignore_ascii_case("charset")
                // US-ASCII is UTF-8's subset: such a body reads the same.
                && !["utf-8", "utf8", "us-ascii", "ascii"]
                    .iter()
                    .any(|utf8| charset.eq_ignore_ascii_case(utf8))
        })
    })
}

/// The media type of a `PATCH` body (RFC 7396).
pub const MERGE_PATCH: &str = "application/merge-patch+json";

/// A `PATCH` body: a JSON merge patch, sent as `application/merge-patch+json` or
/// `application/json`. Any other type is 415 with `Accept-Patch`, so that a JSON Patch
/// (`application/json-patch+json`, RFC 6902: a list of operations with other meanings) is
/// never applied as if it were a merge patch. Otherwise as [`AppJson`].
pub struct MergePatch<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for MergePatch<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match media_type(req.headers()).as_deref() {
            Some(MERGE_PATCH | "application/json") => {}
            _ => return Err(ApiError::UnsupportedMediaType { expected: MERGE_PATCH }),
        }
        AppJson::<T>::from_request(req, state)
            .await
            .map(|AppJson(v)| MergePatch(v))
    }
}

/// A JSON media type, as axum's `Json` takes them: `application/json` or `application/*+json`
/// (`application/fhir+json`, `application/merge-patch+json`), parameters aside.
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    media_type(headers)
        .as_deref()
        .and_then(|m| m.split_once('/'))
        .is_some_and(|(kind, sub)| kind == "application" && (sub == "json" || sub.ends_with("+json")))
}

/// How deep arrays and objects may nest in a body: the parser's own limit (serde_json stops at
/// its 128th level).
pub const MAX_JSON_DEPTH: usize = 127;

/// Why a body is not JSON, in words of our own: where the parser stopped (line and column), or
/// that it nests too deep. Never the parser's text, nor a path into the body (API.md §4).
fn not_json(body: &[u8], e: &serde_json::Error) -> ApiError {
    if body.iter().all(u8::is_ascii_whitespace) {
        return ApiError::malformed(
            "The body is empty: a JSON object is expected.",
            "Le corps est vide : un objet JSON est attendu.",
        );
    }
    // A body in another character set (Latin-1, Windows-1252: `é` as one byte) fails on its first
    // accent; its line and column alone did not say why.
    if let Err(bad) = std::str::from_utf8(body) {
        let at = bad.valid_up_to();
        return ApiError::malformed(
            format!("The body is not UTF-8 text (its byte {at}, counted from 0, is not): JSON is sent in UTF-8; send the text encoded as UTF-8, not Latin-1 or Windows-1252."),
            format!("Le corps n'est pas du texte UTF-8 (l'octet {at}, compté à partir de 0, ne l'est pas) : le JSON s'envoie en UTF-8 ; envoyez le texte encodé en UTF-8, pas en Latin-1 ni en Windows-1252."),
        );
    }
    // serde_json tells this case by its message alone.
    if e.to_string().starts_with("recursion limit exceeded") {
        return ApiError::malformed(
            format!("The body nests arrays and objects more than {MAX_JSON_DEPTH} deep."),
            format!("Le corps imbrique tableaux et objets sur plus de {MAX_JSON_DEPTH} niveaux."),
        );
    }
    if e.to_string()
        .starts_with(passerelle_domain::json_members::DUPLICATE_MEMBER)
    {
        return ApiError::malformed(
            format!(
                "The body names one member twice in an object (line {}, column {}): say it once.",
                e.line(),
                e.column()
            ),
            format!(
                "Le corps contient deux fois la même clé dans un objet (ligne {}, colonne {}) : ne la donnez qu'une fois.",
                e.line(),
                e.column()
            ),
        );
    }
    ApiError::malformed(
        format!("The body is not valid JSON (line {}, column {}).", e.line(), e.column()),
        format!(
            "Le corps n'est pas du JSON valide (ligne {}, colonne {}).",
            e.line(),
            e.column()
        ),
    )
}

/// Query strings: a value of the wrong type is 422 on `/query/<name>`.
pub struct AppQuery<T>(pub T);

/// Whether an URL part holds an escaped NUL (`%00`).
pub fn has_nul(s: &str) -> bool {
    s.as_bytes().windows(3).any(|w| w == b"%00")
}

/// Whether an URL part's escapes decode to UTF-8 (`%FF` does not).
fn decodes(s: &str) -> bool {
    percent_encoding::percent_decode_str(s).decode_utf8().is_ok()
}

/// The query parameter at fault, `/query/<name>` (`/query` when the name is), by `fault`.
fn query_pointer(pair: &str, fault: fn(&str) -> bool) -> String {
    let name = pair.split('=').next().unwrap_or_default();
    if fault(name) {
        "/query".to_owned()
    } else {
        format!("/query/{name}")
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for AppQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        // Every parameter, read or not: a NUL is no text here, and naming it beats ignoring it
        // where the caller meant a parameter this operation reads.
        if let Some(pair) = parts.uri.query().and_then(|q| q.split('&').find(|pair| has_nul(pair))) {
            let field = query_pointer(pair, has_nul);
            return Err(ApiError::field(passerelle_domain::nul::nul_error(field)));
        }
        // Nor is a value whose escapes are no UTF-8 (`%FF`): read lossily, it would become U+FFFD
        // and quietly match nothing, a filter answering an empty list.
        if let Some(pair) = parts.uri.query().and_then(|q| q.split('&').find(|pair| !decodes(pair))) {
            let field = query_pointer(pair, |name| !decodes(name));
            return Err(ApiError::field(FieldError::new(
                field,
                "invalid_encoding",
                "must be UTF-8 once its %-escapes are decoded",
                "doit être de l'UTF-8 une fois ses échappements % décodés",
            )));
        }
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(q)) => Ok(AppQuery(q)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                // The deserializer's own error, under axum's wrapping: `<name>: <message>` for a
                // bad value, `missing field `<name>`` and the like for the others.
                let inner = std::error::Error::source(&e)
                    .and_then(std::error::Error::source)
                    .map_or_else(|| e.body_text(), ToString::to_string);
                Err(ApiError::field(query_error(&inner)))
            }
            Err(_) => Err(ApiError::malformed(
                "The query string is malformed.",
                "La chaîne de requête est mal formée.",
            )),
        }
    }
}

/// A query string's deserialization error in words of our own, on `/query/<name>` when the
/// error names its parameter, else on `/query`: serde's text is English only and names Rust's
/// notions (API.md §4), so only the parameter and the allowed values are taken from it.
fn query_error(text: &str) -> FieldError {
    let is_name = |name: &str| {
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    let quoted = |text: &str| -> Vec<String> { text.split('`').skip(1).step_by(2).map(str::to_owned).collect() };
    // A missing, unknown or repeated parameter: named in the message alone.
    for (prefix, code) in [
        ("missing field `", "required"),
        ("unknown field `", "unknown_field"),
        ("duplicate field `", "duplicate"),
    ] {
        let Some(name) = text.strip_prefix(prefix).and_then(|rest| rest.split('`').next()) else {
            continue;
        };
        let field = if is_name(name) {
            format!("/query/{name}")
        } else {
            "/query".to_owned()
        };
        return match code {
            "required" => FieldError::new(
                field,
                code,
                "this parameter is required",
                "ce paramètre est obligatoire",
            ),
            "unknown_field" => FieldError::new(
                field,
                code,
                "this operation takes no such parameter",
                "ce point d'accès n'accepte pas ce paramètre",
            ),
            _ => FieldError::new(
                field,
                code,
                "must be given once, not repeated",
                "ne doit être donné qu'une fois",
            ),
        };
    }
    // A bad value: the parameter's path first (`kind: unknown variant `bank`, …`).
    let (field, message) = match text.split_once(": ") {
        Some((name, message)) if is_name(name) => (format!("/query/{name}"), message),
        _ => ("/query".to_owned(), text),
    };
    if let Some((_, expected)) = message
        .strip_prefix("unknown variant `")
        .and_then(|rest| rest.split_once("expected"))
    {
        let allowed = quoted(expected).join(", ");
        return FieldError::new(
            field,
            "unknown_value",
            format!("must be one of {allowed}"),
            format!("doit être l'une des valeurs {allowed}"),
        );
    }
    FieldError::new(
        field,
        "invalid_value",
        "is not a value this parameter takes",
        "n'est pas une valeur admise pour ce paramètre",
    )
}

/// The verified caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub org: OrgId,
    pub kind: OrgKind,
    pub subject: String,
    pub scopes: Vec<Scope>,
    pub request_id: String,
    /// The request's W3C `traceparent` for what it causes later (`RequestContext::trace_parent`).
    pub trace_parent: Option<String>,
}

impl Caller {
    pub fn write_context(&self, state: &AppState, idempotency: Option<IdempotencyKey>) -> WriteContext {
        WriteContext {
            organization: self.org.to_string(),
            subject: self.subject.clone(),
            request_id: self.request_id.clone(),
            trace_parent: self.trace_parent.clone(),
            at: state.clock.now(),
            idempotency,
        }
    }

    pub fn reads_everything(&self) -> bool {
        self.kind.reads_everything()
    }
}

/// The credentials of an `Authorization: Bearer …` header, the scheme in any case (RFC 9110
/// §11.1: `Bearer`, `bearer`, `BEARER`).
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token)
}

async fn authenticate(parts: &Parts, state: &AppState) -> Result<Caller, ApiError> {
    // The header that decides who the caller is, given twice: a gateway that authorised one
    // token and the service acting on the other would disagree on the caller. Which was meant
    // is not guessed, as for a doubled Idempotency-Key.
    // Its challenge says `invalid_request`, not `invalid_token`: the token may be good, and a
    // client told it is not would throw it away.
    if parts.headers.get_all(header::AUTHORIZATION).iter().nth(1).is_some() {
        return Err(ApiError::Unauthorized {
            en: crate::problem::TOKEN_TWICE.0,
            fr: crate::problem::TOKEN_TWICE.1,
        });
    }
    let header_value = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let token = match header_value.and_then(bearer_token) {
        Some(t) if !t.trim().is_empty() => t.trim(),
        _ => {
            return Err(ApiError::Unauthorized {
                en: crate::problem::NO_TOKEN.0,
                fr: crate::problem::NO_TOKEN.1,
            })
        }
    };
    let claims = state.auth.verify(token).await?;
    let unknown_org = ApiError::Unauthorized {
        en: "The token's organisation (org) is not known here.",
        fr: "L'organisation du jeton (org) est inconnue ici.",
    };
    let org = OrgId::parse(&claims.org).ok_or(unknown_org)?;
    // The subject is written into every audit event of the request (`passerelle_domain::nul`).
    if passerelle_domain::nul::contains_nul(&claims.sub) {
        return Err(ApiError::Unauthorized {
            en: "The token's subject (sub) holds a NUL character.",
            fr: "Le sujet du jeton (sub) contient un caractère NUL.",
        });
    }
    let kind = match state.org_kinds.get(org.as_str()) {
        Some(kind) => kind,
        None => {
            let found = state.store.get_organization(org.as_str()).await?;
            let kind = found
                .ok_or(ApiError::Unauthorized {
                    en: "The token's organisation (org) is not known here.",
                    fr: "L'organisation du jeton (org) est inconnue ici.",
                })?
                .kind;
            state.org_kinds.insert(org.as_str(), kind);
            kind
        }
    };
    if state.deactivated.contains(org.as_str()) {
        return Err(ApiError::forbidden(
            "This organisation is deactivated: its requests are refused until the operator of the exchange reactivates it.",
            "Cette organisation est désactivée : ses requêtes sont refusées jusqu'à ce que l'opérateur de la passerelle la réactive.",
        ));
    }
    // After the token is verified: a forged `org` must not spend another organisation's rate.
    state
        .rate_limits
        .check(org.as_str())
        .map_err(|retry_after| ApiError::RateLimited { retry_after })?;
    let (request_id, trace_parent) = REQUEST
        .try_with(|r| (r.request_id.clone(), r.trace_parent.clone()))
        .unwrap_or_default();
    Ok(Caller {
        org,
        kind,
        subject: claims.sub,
        scopes: Scope::parse_list(&claims.scope),
        request_id,
        trace_parent,
    })
}

/// A permission a handler needs: one marker type per action of the policy table.
pub trait Permission: Send + Sync + 'static {
    const ACTION: Action;
}

macro_rules! permissions {
    ($($name:ident),* $(,)?) => {
        pub mod perm {
            use super::Permission;
            use passerelle_domain::policy::Action;
            $(
                pub struct $name;
                impl Permission for $name {
                    const ACTION: Action = Action::$name;
                }
            )*
        }
    };
}

permissions!(
    CreateOrganization,
    ReadOrganizations,
    ReadAuditEvents,
    VerifyAudit,
    ReadProducts,
    WriteProducts,
    ReadRegistry,
    Register,
    CreateCoverage,
    UpdateCoverage,
    UpdateBeneficiary,
    CheckEligibility,
    ReadBatches,
    SubmitClaim,
    ReadClaims,
    BaseAdjudicate,
    Adjudicate,
    CancelClaim,
    WriteSettlements,
    ReadSettlements,
    ManageWebhooks,
);

/// A caller allowed to perform `P`: a handler cannot obtain a caller without naming what it does,
/// so no endpoint can forget the scope or organisation-kind check.
pub struct Authorized<P: Permission> {
    pub caller: Caller,
    _permission: PhantomData<P>,
}

impl<P: Permission> FromRequestParts<AppState> for Authorized<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = authenticate(parts, state).await?;
        match P::ACTION.allows(caller.kind, &caller.scopes) {
            Decision::Allowed => Ok(Authorized {
                caller,
                _permission: PhantomData,
            }),
            Decision::MissingScope(scope) => Err(missing_scope(scope)),
            Decision::WrongKind => Err(wrong_kind(caller.kind)),
        }
    }
}

/// A token without the scope an action needs.
pub(crate) fn missing_scope(scope: Scope) -> ApiError {
    ApiError::Forbidden {
        en: format!("This action needs the {} scope.", scope.as_str()),
        fr: format!("Cette action exige la portée {}.", scope.as_str()),
        scope: Some(scope.as_str()),
    }
}

/// A caller whose organisation's kind may not perform an action.
pub(crate) fn wrong_kind(kind: OrgKind) -> ApiError {
    ApiError::forbidden(
        format!("An organisation of kind {} may not do this.", kind.as_str()),
        format!(
            "Une organisation de type « {} » ne peut pas effectuer cette action.",
            kind.as_str()
        ),
    )
}

/// The optional `Idempotency-Key` header, with a fingerprint of the request it came with.
pub struct Idempotency(pub Option<IdempotencyKey>);

pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

impl Idempotency {
    /// Binds the key to the request's method, path, query and body.
    pub fn read(parts_headers: &axum::http::HeaderMap, method: &str, uri: &str, body: &[u8]) -> Result<Self, ApiError> {
        let mut lines = parts_headers.get_all("idempotency-key").iter();
        let Some(value) = lines.next() else {
            return Ok(Idempotency(None));
        };
        // Two lines are one field of two keys (RFC 9110 §5.3): which one was meant is not
        // guessed, as a query parameter given twice is not.
        if lines.next().is_some() {
            return Err(ApiError::field(FieldError::new(
                "/header/Idempotency-Key",
                "duplicate",
                "must be given once, not repeated",
                "ne doit être donné qu'une fois",
            )));
        }
        // Visible ASCII: no space or tab inside (around it, HTTP drops them).
        let key =
            value.to_str().ok().map(str::trim).filter(|k| {
                !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY_LEN && k.bytes().all(|b| b.is_ascii_graphic())
            });
        let Some(key) = key else {
            return Err(ApiError::field(FieldError::new(
                "/header/Idempotency-Key",
                "invalid_format",
                format!("must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters"),
                format!("doit compter de 1 à {MAX_IDEMPOTENCY_KEY_LEN} caractères ASCII visibles"),
            )));
        };
        let hash = |body: &[u8]| {
            let mut hasher = Sha256::new();
            hasher.update(method.as_bytes());
            hasher.update(b" ");
            hasher.update(uri.as_bytes());
            hasher.update(b"\n");
            hasher.update(body);
            hex::encode(hasher.finalize())
        };
        // A JSON body also counts by what it says, not how it is spelt: a client that serialises
        // its retry again (another member order, other spacing) is sending the same request.
        let json = serde_json::from_slice::<Value>(body).ok();
        let canonical = json
            .as_ref()
            .map(|json| hash(canonical_json(json, true).to_string().as_bytes()));
        let legacy_canonical = json
            .as_ref()
            .map(|json| hash(canonical_json(json, false).to_string().as_bytes()));
        Ok(Idempotency(Some(IdempotencyKey {
            key: key.to_owned(),
            fingerprint: hash(body),
            canonical,
            legacy_canonical,
        })))
    }
}

/// The first response to the request's `Idempotency-Key` when this same request was already
/// answered (API.md §3). Handlers that judge a request against stored state (the product version
/// in force, say) ask this first, so a retry is answered as the first request was, whatever
/// changed since, and a key reused with another request is `idempotency_key_reused` before any
/// other judgement. The write itself still claims the key, which settles concurrent retries.
pub async fn replayed<T: DeserializeOwned>(
    state: &crate::state::AppState,
    caller: &Caller,
    key: Option<&IdempotencyKey>,
) -> Result<Option<T>, ApiError> {
    let Some(key) = key else { return Ok(None) };
    match state.store.replay(caller.org.as_str(), key).await? {
        Some(body) => serde_json::from_str(&body)
            .map(Some)
            .map_err(|e| ApiError::Internal(unparsable_response(&e))),
        None => Ok(None),
    }
}

/// Where a kept response failed to parse, never what: serde's message quotes the offending
/// value, and a kept response holds names and national ids, which must not reach the log.
fn unparsable_response(e: &serde_json::Error) -> String {
    format!(
        "stored idempotent response does not parse ({:?} error at line {}, column {})",
        e.classify(),
        e.line(),
        e.column()
    )
}

/// A JSON value with every object's members in key order, so that equal values print alike;
/// with `by_value`, numbers too (`canonical_number`). Without, the form of earlier releases.
fn canonical_json(value: &Value, by_value: bool) -> Value {
    match value {
        Value::Object(members) => {
            let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                sorted
                    .into_iter()
                    .map(|(k, v)| (k.clone(), canonical_json(v, by_value)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| canonical_json(v, by_value)).collect()),
        Value::Number(n) if by_value => Value::Number(canonical_number(n)),
        other => other.clone(),
    }
}

/// A number as the value it names: a float that is a whole number (`2.0`, `2e0`, `-0.0`) is that
/// integer, so that it prints as `2` does (API.md §7: 2.0 is 2). Only below 2^53, where every
/// whole float is exactly one integer; larger floats, fractions and integers stay as they are.
/// (A float is the parser's reading: a fraction with more digits than a double holds was read as
/// its nearest double, which may be whole. [`AppJson`] refuses such a body before any handler
/// judges it, so its key is never kept: `crate::json_numbers`.)
fn canonical_number(n: &serde_json::Number) -> serde_json::Number {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if n.is_i64() || n.is_u64() {
        return n.clone();
    }
    match n.as_f64() {
        // Whole and within ±2^53: the conversion is exact.
        Some(f) if f.fract() == 0.0 && f.abs() < EXACT => serde_json::Number::from(f as i64),
        _ => n.clone(),
    }
}

/// A JSON body together with its idempotency key, both read from one request.
pub struct IdempotentJson<T> {
    pub body: T,
    pub idempotency: Option<IdempotencyKey>,
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for IdempotentJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        let uri = parts.uri.to_string();
        let method = parts.method.to_string();
        let headers = parts.headers.clone();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .map_err(|_| ApiError::PayloadTooLarge)?;
        let Idempotency(idempotency) = Idempotency::read(&headers, &method, &uri, &bytes)?;
        let req = Request::from_parts(parts, axum::body::Body::from(bytes));
        let AppJson(body) = AppJson::<T>::from_request(req, state).await?;
        Ok(IdempotentJson { body, idempotency })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_response_that_does_not_parse_is_logged_without_its_content() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Kept {
            count: i64,
        }
        let e = serde_json::from_str::<Kept>(r#"{"count": "Agbéko 123456789012"}"#).unwrap_err();
        assert!(e.to_string().contains("Agbéko"), "serde quotes the value");
        let logged = unparsable_response(&e);
        assert!(!logged.contains("Agbéko") && !logged.contains("1234"), "{logged}");
        assert!(logged.contains("line 1"), "{logged}");
    }

    /// The detail of a body that does not parse, in both languages.
    fn not_json_detail(body: &str) -> (String, String) {
        let e = serde_json::from_str::<Value>(body).unwrap_err();
        match not_json(body.as_bytes(), &e) {
            ApiError::Malformed { en, fr } => (en, fr),
            other => panic!("{other:?}"),
        }
    }

    /// A body written in Latin-1 is told as such, not as JSON broken at its first accent.
    #[test]
    fn a_body_in_another_character_set_is_told_so() {
        let body = b"{\"family_name\": \"K\xe9ita\"}";
        let e = serde_json::from_slice::<Value>(body).unwrap_err();
        match not_json(body, &e) {
            ApiError::Malformed { en, .. } => {
                assert!(en.contains("not UTF-8") && en.contains("byte 18"), "{en}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_body_that_is_not_json_is_told_where_in_our_words() {
        assert_eq!(
            not_json_detail("{bad"),
            (
                "The body is not valid JSON (line 1, column 2).".to_owned(),
                "Le corps n'est pas du JSON valide (ligne 1, colonne 2).".to_owned()
            )
        );
        let (en, fr) = not_json_detail("{\"a\": 1,\n \"b\": tru}");
        assert_eq!(en, "The body is not valid JSON (line 2, column 10).");
        assert!(fr.ends_with("(ligne 2, colonne 10)."), "{fr}");
        assert!(not_json_detail("  \n").0.starts_with("The body is empty"));
    }

    #[test]
    fn a_body_nested_too_deep_is_told_so_without_a_path() {
        let deep = format!("{}{}", "{\"a\":[".repeat(2500), "]}".repeat(2500));
        let (en, fr) = not_json_detail(&deep);
        assert_eq!(
            en,
            format!("The body nests arrays and objects more than {MAX_JSON_DEPTH} deep.")
        );
        assert!(!fr.contains("[0]") && !fr.contains("a."), "{fr}");
        // The limit is the parser's: as deep as it goes parses.
        let deepest = format!("{}{}", "[".repeat(MAX_JSON_DEPTH), "]".repeat(MAX_JSON_DEPTH));
        assert!(serde_json::from_str::<Value>(&deepest).is_ok());
        let past = format!("[{deepest}]");
        assert!(not_json_detail(&past).0.contains("more than"));
    }

    fn content_type(ct: &str) -> axum::http::HeaderMap {
        let mut h = axum::http::HeaderMap::new();
        h.insert(header::CONTENT_TYPE, axum::http::HeaderValue::from_str(ct).unwrap());
        h
    }

    #[test]
    fn only_a_charset_other_than_utf8_is_foreign() {
        let with = |ct: &str| foreign_charset(&content_type(ct));
        for ct in [
            "application/json",
            "application/json; charset=utf-8",
            "application/json;charset=\"UTF-8\"",
            "text/csv; header=present; charset=utf8",
            "application/json; charset=US-ASCII",
        ] {
            assert!(!with(ct), "{ct}");
        }
        for ct in [
            "application/json; charset=iso-8859-1",
            "text/csv; charset=windows-1252",
            "application/json; charset=",
        ] {
            assert!(with(ct), "{ct}");
        }
        assert!(!foreign_charset(&axum::http::HeaderMap::new()));
    }

    #[test]
    fn json_media_types_are_axums() {
        let with = |ct: &str| is_json(&content_type(ct));
        for ct in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/fhir+json; fhirVersion=4.0",
            "application/merge-patch+json",
        ] {
            assert!(with(ct), "{ct}");
        }
        for ct in ["text/json", "text/plain", "application/json-patch", "application/xml"] {
            assert!(!with(ct), "{ct}");
        }
        assert!(!is_json(&axum::http::HeaderMap::new()));
    }

    #[test]
    fn query_errors_name_their_parameter_in_words_of_our_own() {
        let error = query_error("kind: unknown variant `bank`, expected one of `operator`, `mutuelle`");
        assert_eq!(
            (
                error.field.as_str(),
                error.code.as_str(),
                error.en.as_str(),
                error.fr.as_str()
            ),
            (
                "/query/kind",
                "unknown_value",
                "must be one of operator, mutuelle",
                "doit être l'une des valeurs operator, mutuelle"
            )
        );
        let error = query_error("kind: unknown variant `bank`, expected `mutuelle`");
        assert_eq!(error.en, "must be one of mutuelle");
        let error = query_error("missing field `beneficiary`");
        assert_eq!(
            (error.field.as_str(), error.code.as_str()),
            ("/query/beneficiary", "required")
        );
        let error = query_error("duplicate field `kind`");
        assert_eq!(
            (error.field.as_str(), error.code.as_str()),
            ("/query/kind", "duplicate")
        );
        assert_eq!(error.fr, "ne doit être donné qu'une fois");
        let error = query_error("unknown field `sort`, expected `limit`");
        assert_eq!(
            (error.field.as_str(), error.code.as_str()),
            ("/query/sort", "unknown_field")
        );
        // A message that names no parameter stays on the query as a whole, and its text (Rust's
        // type names) is never shown.
        let error = query_error("invalid type: string \"x\", expected i64");
        assert_eq!((error.field.as_str(), error.code.as_str()), ("/query", "invalid_value"));
        assert!(!error.en.contains("i64") && !error.fr.contains("i64"));
    }

    #[test]
    fn a_key_given_twice_is_refused() {
        let mut headers = axum::http::HeaderMap::new();
        headers.append("idempotency-key", axum::http::HeaderValue::from_static("k1"));
        headers.append("idempotency-key", axum::http::HeaderValue::from_static("k2"));
        let Err(ApiError::Validation(errors)) = Idempotency::read(&headers, "POST", "/v1/claims", b"{}") else {
            panic!("two keys were read as one");
        };
        assert_eq!(
            (errors[0].field.as_str(), errors[0].code.as_str()),
            ("/header/Idempotency-Key", "duplicate")
        );
    }

    fn key(body: &str) -> IdempotencyKey {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("idempotency-key", axum::http::HeaderValue::from_static("k"));
        let Idempotency(key) = Idempotency::read(&headers, "POST", "/v1/claims", body.as_bytes()).unwrap();
        key.unwrap()
    }

    /// Whether `retry` is the same request as `first`, as a stored key is compared.
    fn same(first: &str, retry: &str) -> bool {
        let first = key(first);
        key(retry).same_request(&first.fingerprint, first.canonical.as_deref())
    }

    /// A retry serialised again (other key order, other spacing) is the same request; any other
    /// change to what it says is another.
    #[test]
    fn a_json_body_is_fingerprinted_by_what_it_says() {
        assert!(same(
            r#"{"a": 1, "b": {"y": [1, {"q": 2, "p": 3}], "x": "é"}}"#,
            r#"{"b":{"x":"\u00e9","y":[1,{"p":3,"q":2}]},"a":1}"#
        ));
        assert!(!same(r#"{"a": 1}"#, r#"{"a": 2}"#));
        // A whole number written as a float is that number (API.md §7: 2.0 is 2).
        assert!(same(r#"{"a": 1}"#, r#"{"a": 1.0}"#));
        assert!(same(r#"{"q": {"value": 2.0}}"#, r#"{"q": {"value": 2}}"#));
        assert!(same(r#"[2e0, -0.0, 1.50]"#, r#"[2, 0, 1.5]"#));
        assert!(!same(r#"{"a": 1}"#, r#"{"a": 1.5}"#));
        assert!(!same(r#"{"a": 1.0}"#, r#"{"a": "1"}"#));
        // Past 2^53 a float is not read as an integer: 9007199254740993.0 is read as the double
        // 9007199254740992 and must not match the integer 9007199254740993, nor that one.
        assert!(!same(r#"{"a": 9007199254740993}"#, r#"{"a": 9007199254740993.0}"#));
        assert!(!same(r#"{"a": 9007199254740992}"#, r#"{"a": 9007199254740993.0}"#));
        assert!(!same("[1, 2]", "[2, 1]"));
        assert!(same("not json", "not json"));
        assert!(!same("not json", "not  json"));
        // A key claimed by a binary that kept only the bytes' fingerprint: the same bytes match.
        let first = key(r#"{"a": 1, "b": 2}"#);
        assert!(key(r#"{"a": 1, "b": 2}"#).same_request(&first.fingerprint, None));
        assert!(!key(r#"{"b": 2, "a": 1}"#).same_request(&first.fingerprint, None));
        // A key kept by a release that read numbers as written: a retry reordered, its `2.0`
        // unchanged, still matches the canonical form that release stored.
        let first = key(r#"{"q": 2.0, "a": 1}"#);
        let stored_then = first.legacy_canonical.clone();
        assert!(key(r#"{"a": 1, "q": 2.0}"#).same_request("other bytes", stored_then.as_deref()));
        assert!(!key(r#"{"a": 1, "q": 3.0}"#).same_request("other bytes", stored_then.as_deref()));
    }
}
