//! `PATCH /v1/beneficiaries/{id}`: an organisation that covers a person corrects their names,
//! phone or locality, or gives them the national id they were registered without.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::NaiveDate;
use passerelle_domain::beneficiary::{
    read_birth_date, Beneficiary, Correction, Locality, LocalityDraft, NationalId, NationalIdRules, Sex,
};
use passerelle_domain::eligibility::BirthDatePrecision;
use passerelle_domain::error::{FieldError, StoreError};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::products::{check_if_match, etag, retry_if_match_any};
use super::registry::BeneficiaryView;
use crate::extract::{perm, Authorized, Caller, MergePatch};
use crate::problem::{conflict_at, ApiError};
use crate::state::AppState;

/// The body of `PATCH /v1/beneficiaries/{id}` (a JSON merge patch).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"given_names": "Akossiwa Élise Mawuena", "phone": "+22891234567"}))]
pub struct BeneficiaryPatch {
    /// Only for a person registered without one (the stored one cannot change: 422
    /// `not_changeable`), checked as at registration; one already another person's is 409
    /// `national_id_taken`, and the two records are not merged.
    pub national_id: Option<super::registry::NationalIdWrite>,
    /// 1–100 characters, kept as sent (accents too), refused as at registration when garbled,
    /// a spreadsheet's error or holding a control or invisible character. Never `null`.
    #[schema(
        nullable = false,
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\s\x00-\x1F\x7F-\x9F](?:[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F])?$"
    )]
    pub family_name: Option<String>,
    /// As `family_name`.
    #[schema(
        nullable = false,
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\s\x00-\x1F\x7F-\x9F](?:[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F])?$"
    )]
    pub given_names: Option<String>,
    /// E.164 (`+22890123456`; spaces, dots and dashes are removed, and `00` before the country
    /// code is read as `+`); `null` removes it.
    pub phone: Option<String>,
    /// Merged member by member (RFC 7396): `{"commune": "Zio 2"}` changes the commune alone.
    /// A locality has all three parts or none (422 `incomplete_locality`); `null`, or a merge
    /// that leaves no part, removes it.
    pub locality: Option<LocalityPatch>,
    /// Not changeable: ignored when it is the stored one (so that a read may be sent back), else
    /// 422 `not_changeable`. So are `sex`, `birth_date` and `birth_date_precision`, read as at
    /// registration (`"1985"` is a year-only birth date, spaces around a value are ignored).
    #[schema(nullable = false)]
    pub id: Option<String>,
    /// Not changeable (see `id`).
    #[schema(nullable = false)]
    pub sex: Option<String>,
    /// Not changeable (see `id`).
    #[schema(nullable = false)]
    pub birth_date: Option<String>,
    /// Not changeable (see `id`).
    #[schema(nullable = false)]
    pub birth_date_precision: Option<String>,
    /// Not changeable: ignored when it is the person's current version (a read sent back), else
    /// 422 `not_changeable`; a body read before someone else's correction would undo it, even
    /// with `If-Match: *`. `If-Match` names the version a patch is for.
    #[schema(nullable = false, minimum = 1)]
    pub version: Option<u32>,
}

/// The parts of a locality to change; those left out keep their stored value.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"commune": "Zio 2"}))]
pub struct LocalityPatch {
    /// 1–100 characters; `null` removes it (and then the others must go too).
    pub region: Option<String>,
    /// 1–100 characters.
    pub district: Option<String>,
    /// 1–100 characters.
    pub commune: Option<String>,
}

/// The members a correction may change; the others of a person are named in `IDENTITY`. A
/// national id may be added to a person who has none (`read_national_id`).
const CORRECTABLE: [&str; 4] = ["family_name", "given_names", "phone", "locality"];
const IDENTITY: [&str; 4] = ["id", "sex", "birth_date", "birth_date_precision"];

/// Correct a person's names, phone, locality or missing national id (an organisation that covers them; `If-Match`
/// required).
///
/// Mutuelles and schemes with `registry:write` that hold a coverage of the person (404
/// otherwise, as for an unknown id) that is not terminated (409 `coverage_terminated` when all
/// of them are: the organisation still reads the person, but no longer corrects them). The body is a JSON merge patch of `family_name`,
/// `given_names`, `phone` and `locality`, each checked as at registration, and of `national_id`
/// for a person registered without one (409 `national_id_taken` when it is already another
/// person's: the two records are not merged). A person is shared: every organisation that
/// covers them sees the correction. Identity is not corrected: a stored `national_id`, `sex`,
/// `birth_date` or `birth_date_precision` sent with another value is 422 `not_changeable`
/// (other organisations find and match the person by it), and a member sent with the value it
/// already has is ignored, so that a client may send back what it read; so is `version`, the
/// person's current one (another is 422 `not_changeable`).
/// Any other member is 422 `unknown_field`. `If-Match` carries the `ETag` of the last read
/// (`GET /v1/beneficiaries/{id}`): 428 without it, 412 when the person was corrected since. A
/// patch that changes nothing answers 200 with the same `ETag`, and writes nothing. Audited as
/// `beneficiary.updated`, naming the person by id only.
#[utoipa::path(
    patch,
    path = "/v1/beneficiaries/{id}",
    tag = "beneficiaries",
    request_body(content(
        (BeneficiaryPatch = "application/merge-patch+json"),
        (BeneficiaryPatch = "application/json")
    )),
    params(
        ("id" = String, Path, description = "Beneficiary id"),
        ("If-Match" = String, Header, description = "The ETag of the last read (RFC 9110: a list matches when one of its tags does, `*` matches any version, and a weak tag `W/\"n\"` names version n as `\"n\"` does, since proxies that compress answers weaken tags)"),
    ),
    responses(
        (status = 200, description = "The corrected person", body = BeneficiaryView, headers(("ETag" = String, description = "The new version")),
            example = json!({"id": "01937f0e-6c2a-7d3b-9e0f-1a2b3c4d5e6f", "national_id": {"country": "TG", "type": "NIU", "value": "234567890123"},
                "family_name": "Agbéko", "given_names": "Akossiwa Élise Mawuena", "sex": "F", "birth_date": "1988-01-01",
                "birth_date_precision": "year", "phone": "+22891234567",
                "locality": {"region": "Maritime", "district": "Zio", "commune": "Zio 1"}, "version": 2})),
        (status = 404, description = "No such person, or not covered by you", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 410, description = "The person's personal data was erased at the end of the deployment's retention period (`personal_data_erased`): nothing of them is corrected", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`errors[0].code` names the case: the national id given to a person registered without one is already another person's (`national_id_taken` at `/national_id`, audited as `beneficiary.national_id_taken`); or every coverage the caller held of the person is terminated (`coverage_terminated`): it still reads the person, but no longer corrects them", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 412, description = "If-Match is stale", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is neither `application/merge-patch+json` nor `application/json` (a JSON Patch, `application/json-patch+json`, is not taken); `Accept-Patch` names the type", body = crate::problem::Problem, content_type = "application/problem+json",
            headers(("Accept-Patch" = String, description = "application/merge-patch+json"))),
        (status = 428, description = "If-Match is missing", body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["registry:write"]))
)]
pub async fn patch_beneficiary(
    State(state): State<AppState>,
    auth: Authorized<perm::UpdateBeneficiary>,
    Path(id): Path<String>,
    headers: HeaderMap,
    MergePatch(body): MergePatch<Map<String, Value>>,
) -> Result<Response, ApiError> {
    retry_if_match_any(&headers, || patch_once(&state, &auth.caller, &id, &headers, &body)).await
}

/// 409 `coverage_terminated`: every coverage the caller held of the person is terminated.
pub fn coverages_ended() -> ApiError {
    conflict_at(
        "",
        "coverage_terminated",
        "Your organisation's coverages of this person are terminated: it can no longer correct their record.",
        "Toutes les couvertures de cette personne auprès de votre organisation sont résiliées : votre organisation ne peut plus corriger sa fiche.",
    )
}

async fn patch_once(
    state: &AppState,
    caller: &Caller,
    id: &str,
    headers: &HeaderMap,
    body: &Map<String, Value>,
) -> Result<Response, ApiError> {
    let current = state.store.get_beneficiary(id).await?.ok_or(ApiError::NotFound)?;
    // Operators and auditors read everyone but correct no one: only a coverage makes a person
    // the caller's to correct.
    if !state.store.covers(caller.org.as_str(), id).await? {
        return Err(ApiError::NotFound);
    }
    if let Some(at) = current.erased_at {
        return Err(ApiError::Erased { on: at.date_naive() });
    }
    // It still reads the person its claims and history name, but once its coverages are
    // terminated it has no say in who they are and is not told of corrections.
    if !state.store.covers_now(caller.org.as_str(), id).await? {
        return Err(coverages_ended());
    }
    check_if_match(headers, current.version)?;
    let today = state.clock.today();
    let (correction, mut errors) = read_correction(body, &current, &state.national_ids, today);
    let corrected = current.corrected(correction, today).map_err(|faults| {
        // A member that did not read is reported once, as such, not again as missing.
        let unread: Vec<String> = errors.iter().map(|e| e.field.clone()).collect();
        let under = |field: &str, at: &str| field == at || field.starts_with(&format!("{at}/"));
        errors.extend(
            faults
                .into_iter()
                .filter(|f| !unread.iter().any(|at| under(&f.field, at))),
        );
    });
    let mut next = match corrected {
        Ok(next) if errors.is_empty() => next,
        _ => return Err(ApiError::validation(errors)),
    };
    if next == current {
        return Ok(answer(current));
    }
    next.version = current.version + 1;
    let ctx = caller.write_context(state, None);
    match state.store.update_beneficiary(&ctx, &next).await {
        // The refusal tells the caller that the national id is registered: it leaves a trace
        // for the auditors, as `beneficiary.identity_mismatch` does, naming only the caller's
        // own person.
        Err(StoreError::Conflict { constraint }) if constraint == "national_id_taken" => {
            let event = ctx.audit("beneficiary.national_id_taken", "beneficiary", id);
            state.store.append_audit(&[event]).await?;
            Err(StoreError::Conflict { constraint }.into())
        }
        // Terminated since the check above, by a termination that committed first.
        Err(StoreError::Conflict { constraint }) if constraint == "coverage_terminated" => Err(coverages_ended()),
        written => {
            written?;
            Ok(answer(next))
        }
    }
}

/// A person with their `ETag`: the answer of a correction and of a merge.
pub(crate) fn answer(person: passerelle_domain::beneficiary::Beneficiary) -> Response {
    let version = person.version;
    let mut response = Json(BeneficiaryView::from(person)).into_response();
    response.headers_mut().insert(axum::http::header::ETAG, etag(version));
    response
}

fn pointer(key: &str) -> String {
    format!("/{}", key.replace('~', "~0").replace('/', "~1"))
}

/// A name sent as `null`.
pub(crate) fn name_removed(pointer: &str) -> FieldError {
    FieldError::new(
        pointer,
        "required",
        "a name cannot be removed",
        "un nom ne peut pas être retiré",
    )
}

/// The patch's members as a [`Correction`], and the members that do not read as one (each
/// listed; the correction leaves them out).
fn read_correction(
    body: &Map<String, Value>,
    current: &Beneficiary,
    rules: &NationalIdRules,
    today: NaiveDate,
) -> (Correction, Vec<FieldError>) {
    let mut errors = Vec::new();
    for (key, value) in body {
        if key == "national_id" {
            continue;
        }
        if key == "version" {
            if value.as_u64() != Some(u64::from(current.version)) {
                errors.push(FieldError::new(
                    "/version",
                    "not_changeable",
                    "a person's version follows their corrections: sent back, it must be the current one (a read since corrected by someone else would undo their correction); If-Match names the version a patch is for",
                    "la version d'une personne change à chaque correction : si vous la renvoyez, ce doit être la version actuelle (renvoyer une version lue avant la correction d'un autre annulerait celle-ci) ; If-Match indique la version visée par la modification",
                ));
            }
            continue;
        }
        if IDENTITY.contains(&key.as_str()) {
            if !same_identity(key, value, body, current, today) {
                errors.push(FieldError::new(
                    pointer(key),
                    "not_changeable",
                    "a person's id, national id, sex and birth date cannot be changed: other organisations find and match the person by them",
                    "l'identifiant, le numéro d'identité nationale, le sexe et la date de naissance d'une personne ne peuvent pas changer : d'autres organisations la retrouvent et la reconnaissent par eux",
                ));
            }
        } else if !CORRECTABLE.contains(&key.as_str()) {
            errors.push(FieldError::new(
                pointer(key),
                "unknown_field",
                "only family_name, given_names, phone, locality and a national_id the person lacks can change",
                "seuls family_name, given_names, phone, locality et un national_id qui manque à la personne peuvent changer",
            ));
        }
    }
    let name = |key: &str, errors: &mut Vec<FieldError>| match body.get(key) {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Null) => {
            errors.push(name_removed(&pointer(key)));
            None
        }
        Some(_) => {
            errors.push(FieldError::new(
                pointer(key),
                "invalid_type",
                "must be a string",
                "doit être une chaîne de caractères",
            ));
            None
        }
    };
    let family_name = name("family_name", &mut errors);
    let given_names = name("given_names", &mut errors);
    let phone = match body.get("phone") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(s)) => Some(Some(s.clone())),
        Some(_) => {
            errors.push(FieldError::new(
                "/phone",
                "invalid_type",
                "must be a string or null",
                "doit être une chaîne de caractères ou null",
            ));
            None
        }
    };
    let locality = match body.get("locality") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::Object(patch)) => {
            let merged = merged_locality(current.locality.as_ref(), patch, &mut errors);
            // A merge that leaves no part removes the locality (RFC 7396), as `null` does.
            let empty = merged.region.is_none() && merged.district.is_none() && merged.commune.is_none();
            Some((!empty).then_some(merged))
        }
        Some(_) => {
            errors.push(FieldError::new(
                "/locality",
                "invalid_type",
                "must be an object or null",
                "doit être un objet ou null",
            ));
            None
        }
    };
    let national_id = read_national_id(
        body.get("national_id"),
        current.national_id.as_ref(),
        rules,
        &mut errors,
    );
    let correction = Correction {
        national_id,
        family_name,
        given_names,
        phone,
        locality,
    };
    (correction, errors)
}

/// Whether an identity member sent with a correction is the stored one, read as registration
/// reads it (trimmed; `"1985"` for a year-only birth date), so that a client sending back what
/// it read, or what it wrote at registration, is not taken to change it.
fn same_identity(key: &str, sent: &Value, body: &Map<String, Value>, current: &Beneficiary, today: NaiveDate) -> bool {
    let Some(text) = sent.as_str().map(str::trim) else {
        return false;
    };
    match key {
        "id" => text == current.id,
        "sex" => Sex::parse(text) == Some(current.sex),
        "birth_date_precision" => BirthDatePrecision::parse(text) == Some(current.birth_date_precision),
        "birth_date" => {
            let precision = body.get("birth_date_precision").and_then(Value::as_str);
            // A full date is how a read shows either precision; a year alone is only a year-only
            // person's birth date.
            read_birth_date(text, precision, today).is_some_and(|(day, sent)| {
                day == current.birth_date && (sent == current.birth_date_precision || sent == BirthDatePrecision::Day)
            })
        }
        _ => false,
    }
}

/// A national id for a person who has none, checked with the deployment's rules. One the person
/// has already is kept: sent again (in any spelling that normalises to it) it changes nothing,
/// otherwise it is `not_changeable`. `null` for a person without one changes nothing either.
fn read_national_id(
    sent: Option<&Value>,
    stored: Option<&NationalId>,
    rules: &NationalIdRules,
    errors: &mut Vec<FieldError>,
) -> Option<NationalId> {
    match (sent, stored) {
        (None, _) | (Some(Value::Null), None) => None,
        (Some(sent), Some(stored)) => {
            let same = national_id_of(sent, rules, &mut Vec::new()).is_some_and(|id| &id == stored);
            if !same {
                errors.push(FieldError::new(
                    "/national_id",
                    "not_changeable",
                    "a person's national id, once recorded, cannot be changed: other organisations find and match the person by it",
                    "le numéro d'identité nationale d'une personne, une fois enregistré, ne peut pas changer : d'autres organisations la retrouvent et la reconnaissent par lui",
                ));
            }
            None
        }
        (Some(sent), None) => national_id_of(sent, rules, errors),
    }
}

/// `{country, type, value}` at `/national_id`, every fault listed.
fn national_id_of(sent: &Value, rules: &NationalIdRules, errors: &mut Vec<FieldError>) -> Option<NationalId> {
    let Value::Object(id) = sent else {
        errors.push(FieldError::new(
            "/national_id",
            "invalid_type",
            "must be an object",
            "doit être un objet",
        ));
        return None;
    };
    for key in id
        .keys()
        .filter(|k| !["country", "type", "value"].contains(&k.as_str()))
    {
        errors.push(FieldError::new(
            format!("/national_id{}", pointer(key)),
            "unknown_field",
            "a national id has a country, a type and a value",
            "un numéro d'identité nationale ne comporte qu'un pays, un type et une valeur",
        ));
    }
    let mut part = |name: &str| match id.get(name) {
        None | Some(Value::Null) => {
            errors.push(FieldError::required(format!("/national_id/{name}")));
            None
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.push(FieldError::new(
                format!("/national_id/{name}"),
                "invalid_type",
                "must be a string",
                "doit être une chaîne de caractères",
            ));
            None
        }
    };
    let (country, id_type, value) = (part("country"), part("type"), part("value"));
    rules
        .parse_object(&country?, &id_type?, &value?, "/national_id")
        .map_err(|e| errors.push(e))
        .ok()
}

/// The stored locality with the patch's parts merged in (RFC 7396: `null` removes a part).
fn merged_locality(
    stored: Option<&Locality>,
    patch: &Map<String, Value>,
    errors: &mut Vec<FieldError>,
) -> LocalityDraft {
    const PARTS: [&str; 3] = ["region", "district", "commune"];
    for key in patch.keys().filter(|k| !PARTS.contains(&k.as_str())) {
        errors.push(FieldError::new(
            format!("/locality{}", pointer(key)),
            "unknown_field",
            "a locality has a region, a district and a commune",
            "une localité ne comporte qu'une région, un district et une commune",
        ));
    }
    let part = |name: &str, errors: &mut Vec<FieldError>| match patch.get(name) {
        None => stored.map(|l| match name {
            "region" => l.region.clone(),
            "district" => l.district.clone(),
            _ => l.commune.clone(),
        }),
        Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.push(FieldError::new(
                format!("/locality/{name}"),
                "invalid_type",
                "must be a string or null",
                "doit être une chaîne de caractères ou null",
            ));
            None
        }
    };
    LocalityDraft {
        region: part("region", errors),
        district: part("district", errors),
        commune: part("commune", errors),
    }
}
