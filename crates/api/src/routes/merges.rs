//! `POST /v1/beneficiaries/{id}/merge`: one person registered twice, made one by an
//! organisation that covers the record merged away.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use passerelle_domain::beneficiary::{Beneficiary, Correction, NationalId};
use passerelle_domain::error::{FieldError, StoreError};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::people::answer;
use super::products::{check_if_match, retry_if_match_any};
use super::registry::BeneficiaryView;
use crate::extract::{perm, AppJson, Authorized, Caller};
use crate::fields::Fields;
use crate::problem::{conflict_at, ApiError};
use crate::state::AppState;

/// The body of `POST /v1/beneficiaries/{id}/merge`: the person this record is, named by exactly
/// one of `into` and `national_id`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"national_id": {"country": "TG", "type": "NIU", "value": "234567890123"}}))]
pub struct MergeRequest {
    /// The id of another person your organisation covers (a coverage of any status): your
    /// second record of the same person, say one of the `possible_duplicates` a registration
    /// reported.
    #[schema(nullable = false, min_length = 1)]
    pub into: Option<String>,
    /// The person's national id, checked and normalised as at registration. When another
    /// person holds it (a scheme's affiliate, whom you need not cover), this record is merged
    /// into that person; when no one does, this person is given it, as `PATCH` would.
    #[schema(nullable = false)]
    pub national_id: Option<super::registry::NationalIdWrite>,
}

/// Whom the record is merged into, as the body names them.
enum Target {
    Into(String),
    NationalId(NationalId),
}

/// Merge a person registered twice into one record (an organisation that covers it; `If-Match`
/// required).
///
/// A mutuelle that registered a member without a national id holds a second record of a person
/// a scheme affiliated with one (or registered the same person twice itself): a check by
/// national id then finds the base coverage alone, and the coordination of benefits misses the
/// mutuelle's share. The merge moves every coverage of this record (`{id}`, the record merged
/// away) to the person named in the body (`into`, or the holder of `national_id`), whose
/// names, national id, sex and birth date are kept, and adds up the ceiling usage of the two
/// records for each product and plan year. The record merged away keeps its id and history:
/// `GET` answers it with `merged_into` to the organisation that merged it (and to operators and
/// auditors; the person's other organisations never covered it, and get 404), and claims made
/// before keep naming it. A check or a claim naming the old id answers for the person merged
/// into (its `beneficiary` is their id); a coverage list by the old id is empty, a `PATCH` of
/// it 404: use the new id, or the member number, which the coverages keep. A merge has no
/// `Idempotency-Key`: a retry after a lost answer is 409 `already_merged`, and a `GET` of the
/// record tells where it went.
///
/// Mutuelles and schemes with `registry:write` that cover the record (404 otherwise, as for an
/// unknown id), with a coverage of any status: a record whose coverages all ended may be merged
/// away too, into its successor for instance (but not given a national id no one holds, which is
/// a correction: 409 `coverage_terminated`, as for `PATCH`). `If-Match` carries
/// the record's `ETag` (428 without it, 412 when it changed since). Refused with 409 and
/// nothing written: the record holds a national id (`has_national_id`: merge the other record
/// into it instead), another organisation covers it too (`covered_by_others`), the two
/// disagree on sex or birth date as a national id's match would (`identity_mismatch`, audited
/// as `beneficiary.identity_mismatch`, naming no one), both hold a live coverage of one product
/// (`already_covered`: terminate one of the two first), or it was merged already
/// (`already_merged`). Audited as `beneficiary.merged` once for each of the two people, and
/// `coverage.updated` for each coverage moved; subscriptions of the caller's organisation (and of
/// operators and auditors) receive `coverage.changed` for each, and `beneficiary.changed` with
/// the record merged away. Records merged into that record earlier now point at the person
/// merged into, one version more each (`beneficiary.merged`, and `beneficiary.changed` to the
/// organisation that merged it). Answers the person merged into, with its `ETag`.
#[utoipa::path(
    post,
    path = "/v1/beneficiaries/{id}/merge",
    tag = "beneficiaries",
    request_body(content = MergeRequest, content_type = "application/json"),
    params(
        ("id" = String, Path, description = "The record merged away"),
        ("If-Match" = String, Header, description = "That record's ETag (`GET /v1/beneficiaries/{id}`), as for `PATCH`"),
    ),
    responses(
        (status = 200, description = "The person merged into (or, when no one held `national_id`, this person given it)", body = BeneficiaryView,
            headers(("ETag" = String, description = "The version of the person answered")),
            example = json!({"id": "01937f0e-6c2a-7d3b-9e0f-1a2b3c4d5e6f", "national_id": {"country": "TG", "type": "NIU", "value": "234567890123"},
                "family_name": "Agbéko", "given_names": "Akossiwa Élise", "sex": "F", "birth_date": "1988-03-14",
                "birth_date_precision": "day", "version": 2})),
        (status = 404, description = "No such person, or not covered by you", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 410, description = "The record, or the person named by `into`, had their personal data erased at the end of the deployment's retention period (`personal_data_erased`): nothing moves to or from them", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`errors[0].code` names the case: `has_national_id`, `covered_by_others`, `identity_mismatch`, `already_covered` or `already_merged` (the record, or at `/into` the person named, merged away already)", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 412, description = "If-Match is stale", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 428, description = "If-Match is missing", body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["registry:write"]))
)]
pub async fn merge_beneficiary(
    State(state): State<AppState>,
    auth: Authorized<perm::UpdateBeneficiary>,
    Path(id): Path<String>,
    headers: HeaderMap,
    AppJson(body): AppJson<Map<String, Value>>,
) -> Result<Response, ApiError> {
    retry_if_match_any(&headers, || merge_once(&state, &auth.caller, &id, &headers, &body)).await
}

fn read_target(body: &Map<String, Value>, state: &AppState) -> Result<Target, ApiError> {
    let mut f = Fields::new(body);
    let into = f.opt_str("into");
    let national_id = f.opt_object("national_id");
    let mut errors = f.finish();
    let sent = |name: &str| body.get(name).is_some_and(|v| !v.is_null());
    if usize::from(sent("into")) + usize::from(sent("national_id")) != 1 {
        errors.push(ambiguous_target());
    }
    if into.as_deref().is_some_and(str::is_empty) {
        errors.push(FieldError::required("/into"));
    }
    let national_id = national_id.and_then(|n| {
        let mut g = Fields::nested(n, "/national_id");
        let (country, id_type, value) = (g.str("country"), g.str("type"), g.str("value"));
        errors.extend(g.finish());
        state
            .national_ids
            .parse_object(&country?, &id_type?, &value?, "/national_id")
            .map_err(|e| errors.push(e))
            .ok()
    });
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    match (into, national_id) {
        (Some(into), None) => Ok(Target::Into(into)),
        (None, Some(nid)) => Ok(Target::NationalId(nid)),
        _ => Err(ApiError::Internal("a merge's target read as neither or both".into())),
    }
}

/// 409 `already_covered`, for the request as a whole.
pub(crate) fn both_covered() -> ApiError {
    conflict_at(
        "",
        "already_covered",
        "Both records hold a coverage of one product that is not terminated: terminate one of the two first.",
        "Les deux fiches ont une couverture non résiliée d'un même produit : résiliez d'abord l'une des deux.",
    )
}

/// A record merged already: 409 `already_merged` to whoever may still read it, else 404.
fn merged(caller: &Caller, record: &Beneficiary) -> ApiError {
    match super::registry::may_see_merged(caller, record) {
        true => already_merged(),
        false => ApiError::NotFound,
    }
}

/// Neither or both of `into` and `national_id`.
pub(crate) fn ambiguous_target() -> FieldError {
    FieldError::new(
        "",
        "ambiguous_person",
        "give exactly one of into and national_id",
        "indiquez exactement l'un des deux : into ou national_id",
    )
}

/// 409 `already_merged`: the record was merged into someone.
pub(crate) fn already_merged() -> ApiError {
    StoreError::Conflict {
        constraint: "already_merged".into(),
    }
    .into()
}

async fn merge_once(
    state: &AppState,
    caller: &Caller,
    id: &str,
    headers: &HeaderMap,
    body: &Map<String, Value>,
) -> Result<Response, ApiError> {
    let current = state.store.get_beneficiary(id).await?.ok_or(ApiError::NotFound)?;
    if current.merged_into.is_some() {
        return Err(merged(caller, &current));
    }
    // Every coverage of the record must be the caller's (`covered_by_others`), so one whose
    // coverages all ended may still be merged away: no other organisation has a say in it.
    if !state.store.covers(caller.org.as_str(), id).await? {
        // A merge of the record by the caller may have committed since it was read.
        return Err(match state.store.get_beneficiary(id).await? {
            Some(now) if now.merged_into.is_some() => merged(caller, &now),
            _ => ApiError::NotFound,
        });
    }
    if let Some(at) = current.erased_at {
        return Err(ApiError::Erased { on: at.date_naive() });
    }
    // A stale or missing `If-Match` is told so before the body is judged (API.md §3), as for
    // `PATCH`.
    check_if_match(headers, current.version)?;
    let target = &read_target(body, state)?;
    if current.national_id.is_some() {
        return Err(StoreError::Conflict {
            constraint: "has_national_id".into(),
        }
        .into());
    }
    let into = match target {
        Target::Into(into) if into == id => {
            return Err(ApiError::field(FieldError::new(
                "/into",
                "same_person",
                "names the record merged away itself",
                "désigne la fiche même qui est fusionnée",
            )))
        }
        Target::Into(into) => match state.store.get_beneficiary(into).await? {
            Some(p) if p.merged_into.is_none() && state.store.covers(caller.org.as_str(), into).await? => {
                // Covered again through the merge, an erased person would be checked and
                // claimed for with no name.
                if let Some(at) = p.erased_at {
                    return Err(ApiError::Erased { on: at.date_naive() });
                }
                p.id
            }
            // A record the caller merged away itself (and still reads): told so, as a merge
            // that lost the race to that one is, rather than as a record it never covered.
            Some(p) if p.merged_into.is_some() && p.merged_by.as_deref() == Some(caller.org.as_str()) => {
                return Err(into_merged())
            }
            _ => return Err(ApiError::field(FieldError::unknown_reference("/into"))),
        },
        Target::NationalId(nid) => match state.store.find_by_national_id(nid).await? {
            Some(holder) => holder.id,
            // A correction, held to a correction's rule.
            None if !state.store.covers_now(caller.org.as_str(), id).await? => {
                return Err(super::people::coverages_ended())
            }
            None => match give_national_id(state, caller, &current, nid).await? {
                Some(given) => return Ok(answer(given)),
                // Registered meanwhile: merged into its holder after all.
                None => {
                    state
                        .store
                        .find_by_national_id(nid)
                        .await?
                        .ok_or(ApiError::NotFound)?
                        .id
                }
            },
        },
    };
    let ctx = caller.write_context(state, None);
    let merged = state.store.merge_beneficiary(&ctx, id, current.version, &into).await;
    match super::registrations::audit_identity_refusal(state, caller, merged).await {
        Ok(survivor) => Ok(answer(survivor)),
        // At the member that named the person: `into`, or a national id's holder.
        Err(StoreError::Conflict { constraint }) if constraint == "identity_mismatch" => Err(match target {
            Target::Into(_) => conflict_at(
                "/into",
                "identity_mismatch",
                "The two records disagree on sex or birth date: they are not one person.",
                "Les deux fiches diffèrent par le sexe ou la date de naissance : il ne s'agit pas de la même personne.",
            ),
            Target::NationalId(_) => conflict_at(
                "/national_id",
                "identity_mismatch",
                crate::problem::IDENTITY_MISMATCH.0,
                crate::problem::IDENTITY_MISMATCH.1,
            ),
        }),
        Err(StoreError::Conflict { constraint }) if constraint == "already_covered" => Err(both_covered()),
        // The person named was merged away by a merge that committed first.
        Err(StoreError::Conflict { constraint }) if constraint == "into_merged" => Err(into_merged()),
        Err(other) => Err(other.into()),
    }
}

/// 409 `already_merged` at `/into`: the person named was merged into another one.
fn into_merged() -> ApiError {
    conflict_at(
        "/into",
        "already_merged",
        "The record named in into was merged into another person: read it for its merged_into, and merge into that person.",
        "La fiche désignée par into a été fusionnée dans celle d'une autre personne : consultez-la pour connaître la fiche qui la remplace (merged_into), et fusionnez dans celle-ci.",
    )
}

/// No one holds the national id: this person is given it, as `PATCH` gives one. `None` when a
/// holder was registered meanwhile, and nothing was written.
async fn give_national_id(
    state: &AppState,
    caller: &Caller,
    current: &Beneficiary,
    nid: &NationalId,
) -> Result<Option<Beneficiary>, ApiError> {
    let correction = Correction {
        national_id: Some(nid.clone()),
        ..Correction::default()
    };
    let mut next = current
        .corrected(correction, state.clock.today())
        .map_err(ApiError::validation)?;
    next.version = current.version + 1;
    let ctx = caller.write_context(state, None);
    match state.store.update_beneficiary(&ctx, &next).await {
        Err(StoreError::Conflict { constraint }) if constraint == "national_id_taken" => Ok(None),
        Err(StoreError::Conflict { constraint }) if constraint == "coverage_terminated" => {
            Err(crate::routes::people::coverages_ended())
        }
        written => {
            written?;
            Ok(Some(next))
        }
    }
}
