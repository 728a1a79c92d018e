// Registry storage (people, coverages, contributions), shared by both databases through
// `include!` from `shared.rs`'s includers, like `shared.rs` itself.

use passerelle_domain::beneficiary::{Beneficiary, NationalId, ValidBeneficiary};
use passerelle_domain::coverage::{Contribution, Coverage, CoverageStatus, Relationship};
use passerelle_domain::ports::{
    CoverageUpdate, NewHousehold, NewMember, PersonRef, RegisteredMember, Registration, RegistryStore,
};

use super::rows::{
    BeneficiaryRow, ContributionRow, CoverageRow, BENEFICIARY_COLUMNS, CONTRIBUTION_COLUMNS, COVERAGE_COLUMNS,
};

/// Most likely duplicates reported for one person.
const MAX_POSSIBLE_DUPLICATES: i64 = 20;

/// `coverage.changed` to the coverage's organisation (and operators and auditors).
async fn announce_coverage(tx: &mut Tx, ctx: &WriteContext, c: &Coverage) -> Result<(), StoreError> {
    let data = serde_json::to_value(c).map_err(|e| StoreError::Internal(e.to_string()))?;
    enqueue(
        tx,
        ctx,
        "coverage.changed",
        [Some(c.organization.as_str()), None, None, None],
        "coverage",
        &data,
    )
    .await
}

/// A household's conflict, on the member at fault (0 the principal): the answer then points at
/// that member instead of the household.
fn at_member(e: StoreError, member: usize) -> StoreError {
    match e {
        StoreError::Conflict { constraint } => StoreError::Conflict {
            constraint: passerelle_domain::batch::member_conflict(&constraint, member),
        },
        other => other,
    }
}

fn member_number_taken() -> StoreError {
    StoreError::Conflict {
        constraint: "member_number_taken".into(),
    }
}

/// A national id already stored for someone of another sex or birth (`Identity::agrees_with`):
/// a typo or a guess, refused rather than merged, and answered without a word of the stored
/// person.
fn identity_mismatch() -> StoreError {
    StoreError::Conflict {
        constraint: "identity_mismatch".into(),
    }
}

/// The birth dates a person without a national id is compared on: their day, or their whole
/// year when only the year is known; and a stored person known only by the year (stored as
/// 1 January) matches any day of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct BirthWindow {
    from: NaiveDate,
    to: NaiveDate,
    year_start: NaiveDate,
}

impl BirthWindow {
    fn of(b: &Beneficiary) -> BirthWindow {
        let year_start = NaiveDate::from_ymd_opt(b.birth_date.year(), 1, 1).unwrap_or(b.birth_date);
        let year_end = NaiveDate::from_ymd_opt(b.birth_date.year(), 12, 31).unwrap_or(b.birth_date);
        let (from, to) = match b.birth_date_precision {
            BirthDatePrecision::Day => (b.birth_date, b.birth_date),
            BirthDatePrecision::Year => (year_start, year_end),
        };
        BirthWindow { from, to, year_start }
    }

    /// The same test as the SQL of `upsert_person`, for people not stored yet.
    fn holds(&self, other: &Beneficiary) -> bool {
        (other.birth_date >= self.from && other.birth_date <= self.to)
            || (other.birth_date_precision == BirthDatePrecision::Year && other.birth_date == self.year_start)
    }
}

/// Finds the person by national id or creates them; without a national id, creates them and
/// reports look-alikes. Returns (person, matched, possible duplicates). A person stored under the
/// national id whose sex or birth disagrees is `identity_mismatch`: nothing of them is returned.
async fn upsert_person(
    tx: &mut Tx,
    ctx: &WriteContext,
    person: &ValidBeneficiary,
    events: &mut Vec<NewAuditEvent>,
) -> Result<(Beneficiary, bool, Vec<String>), StoreError> {
    // Once more when the person holding the national id had their personal data erased between
    // this insert and the read below: the id is then free, and the person new.
    for _ in 0..2 {
        if let Some(found) = insert_person(tx, ctx, person, events).await? {
            return Ok(found);
        }
    }
    Err(StoreError::Internal("beneficiary insert lost".into()))
}

/// One try of [`upsert_person`]: `None` when the national id conflicted with a person no longer
/// holding it once read.
async fn insert_person(
    tx: &mut Tx,
    ctx: &WriteContext,
    person: &ValidBeneficiary,
    events: &mut Vec<NewAuditEvent>,
) -> Result<Option<(Beneficiary, bool, Vec<String>)>, StoreError> {
    let candidate = person
        .clone()
        .into_beneficiary(uuid::Uuid::now_v7().to_string(), ctx.at);
    let mut possible_duplicates = Vec::new();
    if candidate.national_id.is_none() {
        let BirthWindow { from, to, year_start } = BirthWindow::of(&candidate);
        // Only people the caller already covers: another organisation's members are not the
        // caller's to know of (API.md §2, no existence leak), and their ids would be of no use
        // to it anyway, since it may not read them.
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT id FROM beneficiaries b WHERE match_key = $1 AND sex = $2 \
             AND ((birth_date >= $3 AND birth_date <= $4) OR (birth_date_precision = 'year' AND birth_date = $5)) \
             AND EXISTS (SELECT 1 FROM coverages c WHERE c.beneficiary = b.id AND c.organization = $7) \
             ORDER BY id LIMIT $6",
        )
        .bind(person.match_key())
        .bind(candidate.sex.as_str())
        .bind(from)
        .bind(to)
        .bind(year_start)
        .bind(MAX_POSSIBLE_DUPLICATES)
        .bind(&ctx.organization)
        .fetch_all(&mut **tx)
        .await
        .map_err(db_err)?;
        possible_duplicates = rows.into_iter().map(|(id,)| id).collect();
    }
    let nid = candidate.national_id.as_ref();
    let locality = candidate.locality.as_ref();
    let inserted = sqlx::query(
        "INSERT INTO beneficiaries (id, nid_country, nid_type, nid_value, family_name, given_names, match_key, sex, \
         birth_date, birth_date_precision, phone, region, district, commune, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
         ON CONFLICT (nid_country, nid_type, nid_value) DO NOTHING",
    )
    .bind(&candidate.id)
    .bind(nid.map(|n| n.country.as_str()))
    .bind(nid.map(|n| n.id_type.as_str()))
    .bind(nid.map(|n| n.value.as_str()))
    .bind(&candidate.family_name)
    .bind(&candidate.given_names)
    .bind(person.match_key())
    .bind(candidate.sex.as_str())
    .bind(candidate.birth_date)
    .bind(candidate.birth_date_precision.as_str())
    .bind(&candidate.phone)
    .bind(locality.map(|l| l.region.as_str()))
    .bind(locality.map(|l| l.district.as_str()))
    .bind(locality.map(|l| l.commune.as_str()))
    .bind(candidate.created_at)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?
    .rows_affected();
    if inserted == 1 {
        events.push(ctx.audit("beneficiary.created", "beneficiary", &candidate.id));
        return Ok(Some((candidate, false, possible_duplicates)));
    }
    let Some(existing) = (match nid {
        Some(nid) => find_by_national_id_tx(tx, nid).await?,
        None => None,
    }) else {
        return Ok(None);
    };
    if !existing.identity().agrees_with(&person.identity()) {
        return Err(identity_mismatch());
    }
    Ok(Some((existing, true, Vec::new())))
}

/// The person holding a national id, held (`FOR KEY SHARE`, which a merge or a correction waits
/// for only when it changes a national id) until the caller commits the coverage it gives them:
/// an erasure of the person
/// (`erase_personal_data`, which takes them `FOR UPDATE`) then either waits and sees that
/// coverage, or commits first, and the national id, erased, names no one here.
async fn find_by_national_id_tx(tx: &mut Tx, nid: &NationalId) -> Result<Option<Beneficiary>, StoreError> {
    let row: Option<BeneficiaryRow> = sqlx::query_as(&format!(
        "SELECT {BENEFICIARY_COLUMNS} FROM beneficiaries WHERE nid_country = $1 AND nid_type = $2 AND nid_value = $3{FOR_KEY_SHARE}"
    ))
    .bind(&nid.country)
    .bind(&nid.id_type)
    .bind(&nid.value)
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_err)?;
    row.map(Beneficiary::try_from).transpose()
}

/// The household's membership ends with its principal's: each dependant's coverage still live is
/// terminated with it, ending when the principal's does (or its own end, when earlier), so that
/// its rows say what eligibility already answers and the people can be registered again.
async fn terminate_dependants(
    tx: &mut Tx,
    ctx: &WriteContext,
    principal: &Coverage,
    events: &mut Vec<NewAuditEvent>,
) -> Result<(), StoreError> {
    // Decided by the statement on each row as it stands when written: a change to a dependant
    // committed meanwhile is built upon (its version, an earlier end date), never overwritten.
    // A dependant whose own start comes after the principal's end is terminated before it
    // starts, and keeps no end date, as a principal would (its own end date, when set, is on or
    // after its start).
    let rows: Vec<CoverageRow> = sqlx::query_as(&format!(
        "UPDATE coverages SET status = 'terminated', version = version + 1, updated_at = $3, \
         end_date = CASE WHEN end_date IS NOT NULL AND ($2 IS NULL OR end_date < $2) THEN end_date \
         WHEN $2 < start_date THEN NULL ELSE $2 END \
         WHERE principal_coverage = $1 AND status <> 'terminated' RETURNING {COVERAGE_COLUMNS}"
    ))
    .bind(&principal.id)
    .bind(principal.end_date)
    .bind(ctx.at)
    .fetch_all(&mut **tx)
    .await
    .map_err(db_err)?;
    let mut dependants = rows
        .into_iter()
        .map(Coverage::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    dependants.sort_by(|a, b| a.id.cmp(&b.id));
    for dependant in dependants {
        announce_coverage(tx, ctx, &dependant).await?;
        events.push(ctx.audit("coverage.terminated", "coverage", &dependant.id));
    }
    Ok(())
}

async fn insert_coverage(tx: &mut Tx, ctx: &WriteContext, c: &Coverage, own_number: bool) -> Result<(), StoreError> {
    // The same person may hold several coverages (base + complementary, two mutuelles), but
    // not the same product twice at once.
    let (already,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM coverages WHERE beneficiary = $1 AND product = $2 AND status <> 'terminated'",
    )
    .bind(&c.beneficiary)
    .bind(&c.product)
    .fetch_one(&mut **tx)
    .await
    .map_err(db_err)?;
    if already > 0 {
        return Err(StoreError::Conflict {
            constraint: "already_covered".into(),
        });
    }
    let result = sqlx::query(
        "INSERT INTO coverages (id, beneficiary, product, organization, layer, member_number, own_number, relationship, \
         principal_coverage, start_date, end_date, status, paid_through, registered_paid_through, version, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14, $15, $15)",
    )
    .bind(&c.id)
    .bind(&c.beneficiary)
    .bind(&c.product)
    .bind(&c.organization)
    .bind(c.layer.as_str())
    .bind(&c.member_number)
    .bind(own_number)
    .bind(c.relationship.as_str())
    .bind(&c.principal_coverage)
    .bind(c.start_date)
    .bind(c.end_date)
    .bind(c.status.as_str())
    .bind(c.paid_through)
    .bind(i64::from(c.version))
    .bind(ctx.at)
    .execute(&mut **tx)
    .await;
    match result {
        Ok(_) => Ok(()),
        Err(e) => match db_err(e) {
            // The check above, raced by a concurrent registration of the same person.
            StoreError::Conflict { constraint } if constraint == "coverages_one_live_per_product" => {
                Err(StoreError::Conflict {
                    constraint: "already_covered".into(),
                })
            }
            StoreError::Conflict { .. } => Err(member_number_taken()),
            other => Err(other),
        },
    }
}

/// The person holding a member number as their own in an organisation, if any, in whatever case
/// it was written.
async fn holder_of(tx: &mut Tx, organization: &str, member_number: &str) -> Result<Option<Beneficiary>, StoreError> {
    let row: Option<BeneficiaryRow> = sqlx::query_as(&format!(
        "SELECT {} FROM beneficiaries b WHERE b.id = \
         (SELECT c.beneficiary FROM coverages c WHERE c.organization = $1 AND lower(c.member_number) = $2 \
         AND c.own_number)",
        BENEFICIARY_COLUMNS
            .split(", ")
            .map(|c| format!("b.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
    .bind(organization)
    .bind(member_number_key(member_number))
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_err)?;
    row.map(Beneficiary::try_from).transpose()
}

/// Whether the holder of a member number is the person a bulk row gives for it. A row without a
/// national id may name someone whose id was recorded since (`PATCH /v1/beneficiaries/{id}`): a
/// file that does not know the id cannot contradict it, and is judged on names, sex and birth
/// date. A row with an id the holder lacks is not taken for them: the id would be dropped.
fn same_person(stored: &Beneficiary, incoming: &ValidBeneficiary) -> bool {
    match (&stored.national_id, &incoming.national_id) {
        (Some(a), Some(b)) => a == b,
        (_, None) => {
            stored.match_key() == incoming.match_key()
                && stored.sex == incoming.sex
                && stored.birth_date == incoming.birth_date
        }
        (None, Some(_)) => false,
    }
}

/// A household already registered: its principal coverage and product, and its members (see
/// `stored_households`).
struct StoredHousehold {
    coverage: String,
    product: String,
    terminated: bool,
    members: Vec<Beneficiary>,
}

/// Whether a stored member is the incoming person, as `add_dependant` judges it: the same national
/// id when both have one, else a likely match. So a member reported as not held is one that
/// call would add, not refuse as a `duplicate_member`.
fn holds_member(stored: &Beneficiary, incoming: &ValidBeneficiary) -> bool {
    match (&stored.national_id, &incoming.national_id) {
        (Some(a), Some(b)) => a == b,
        _ => stored.likely_match().matches(&incoming.likely_match()),
    }
}

/// A bulk household whose member number its principal already holds: skipped, naming the members
/// of the file the stored household does not hold (a dependant added to the spreadsheet since,
/// say), who would otherwise be dropped without a word; failed when that household is registered
/// for another product, since none of the file's would be, or when a member's national id is
/// stored for a person of another sex or birth date. A dependant's own number stands for the
/// household they belong to.
/// `registered` holds the people stored under the file's national ids: a member the household
/// does not hold yet whose id is someone else's fails it too, as a first registration of them
/// would (API.md §5 Bulk), not reported as a member to add.
fn skipped_household(
    stored: &StoredHousehold,
    household: &NewHousehold,
    registered: &HashMap<NidKey, Beneficiary>,
) -> Result<passerelle_domain::ports::Registered, StoreError> {
    if stored.product != household.product.product_id {
        return Err(at_member(
            StoreError::Conflict {
                constraint: "registered_for_other_product".into(),
            },
            0,
        ));
    }
    // The same national id with another sex or birth date is someone else's, as in a first
    // registration: skipping it would take a mistyped row for the stored person in silence.
    for (index, member) in household.members.iter().enumerate() {
        let elsewhere = member
            .person
            .national_id
            .as_ref()
            .and_then(|n| registered.get(&(n.country.clone(), n.id_type.clone(), n.value.clone())));
        let disagrees = stored
            .members
            .iter()
            .filter(|s| s.national_id.is_some() && s.national_id == member.person.national_id)
            .chain(elsewhere)
            .any(|s| !s.identity().agrees_with(&member.person.identity()));
        if disagrees {
            return Err(at_member(identity_mismatch(), index));
        }
    }
    let unregistered = household
        .members
        .iter()
        .enumerate()
        .filter(|(_, m)| !stored.members.iter().any(|s| holds_member(s, &m.person)))
        .map(|(index, _)| index)
        .collect();
    Ok(passerelle_domain::ports::Registered::Skipped {
        coverage: stored.coverage.clone(),
        terminated: stored.terminated,
        unregistered,
    })
}

/// The household of the coverage holding `member_number` in `organization` as its own number
/// (the household of a dependant's own number is their principal's).
async fn stored_household(
    tx: &mut Tx,
    organization: &str,
    member_number: &str,
) -> Result<Option<StoredHousehold>, StoreError> {
    let root: Option<String> = sqlx::query_scalar(
        "SELECT COALESCE(c.principal_coverage, c.id) FROM coverages c \
         WHERE c.organization = $1 AND lower(c.member_number) = $2 AND c.own_number",
    )
    .bind(organization)
    .bind(member_number_key(member_number))
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_err)?;
    let Some(root) = root else { return Ok(None) };
    Ok(stored_households(tx, &[root.as_str()]).await?.remove(&root))
}

/// The households whose principal coverages are `roots`, by principal coverage: in a live
/// household its principal and the dependants not terminated, in a terminated one everyone who
/// was in it. Each root is probed on its own, by scalar subqueries as in `bulk_registry.rs`: a
/// join with the dependants was planned as a scan of every coverage after a bulk load.
async fn stored_households(
    tx: &mut Tx,
    roots: &[&str],
) -> Result<std::collections::HashMap<String, StoredHousehold>, StoreError> {
    type Head = (String, Option<String>, Option<String>, Option<String>, Option<String>);
    let mut heads: Vec<Head> = Vec::new();
    for chunk in roots.chunks(500) {
        let mut q = sqlx::QueryBuilder::<Db>::new(format!(
            "SELECT v.column1, (SELECT r.product FROM coverages r WHERE r.id = v.column1), \
             (SELECT r.beneficiary FROM coverages r WHERE r.id = v.column1), \
             (SELECT r.status FROM coverages r WHERE r.id = v.column1), \
             (SELECT {ID_LIST} FROM (SELECT m.beneficiary AS id FROM coverages m \
              WHERE m.principal_coverage = v.column1 AND (m.status <> 'terminated' \
              OR (SELECT r.status FROM coverages r WHERE r.id = v.column1) = 'terminated')) x) FROM ("
        ));
        q.push_values(chunk, |mut row, root| {
            row.push_bind(*root);
        });
        q.push(") AS v");
        heads.extend(q.build_query_as::<Head>().fetch_all(&mut **tx).await.map_err(db_err)?);
    }
    let ids: Vec<&str> = heads
        .iter()
        .flat_map(|(_, _, principal, _, dependants)| {
            principal
                .as_deref()
                .into_iter()
                .chain(dependants.as_deref().into_iter().flat_map(|ids| ids.split(',')))
        })
        .collect();
    let people = people_by_id(tx, &ids).await?;
    let mut households = std::collections::HashMap::new();
    for (root, product, principal, status, dependants) in heads {
        let (Some(product), Some(principal), Some(status)) = (product, principal, status) else {
            continue;
        };
        let members = std::iter::once(principal.as_str())
            .chain(dependants.as_deref().into_iter().flat_map(|ids| ids.split(',')))
            .map(|id| {
                people
                    .get(id)
                    .cloned()
                    .ok_or_else(|| corrupt("coverage without its beneficiary"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        households.insert(
            root.clone(),
            StoredHousehold {
                coverage: root,
                product,
                terminated: status == "terminated",
                members,
            },
        );
    }
    Ok(households)
}

/// People by id, read by primary key in lists of 500.
async fn people_by_id(tx: &mut Tx, ids: &[&str]) -> Result<std::collections::HashMap<String, Beneficiary>, StoreError> {
    people_by_id_then(tx, ids, "").await
}

/// [`people_by_id`], each list's statement ending with `tail` (a further condition, an order, a
/// lock), the lists in the order of `ids`.
async fn people_by_id_then(
    tx: &mut Tx,
    ids: &[&str],
    tail: &str,
) -> Result<std::collections::HashMap<String, Beneficiary>, StoreError> {
    let mut people = std::collections::HashMap::new();
    for chunk in ids.chunks(500) {
        let mut q =
            sqlx::QueryBuilder::<Db>::new(format!("SELECT {BENEFICIARY_COLUMNS} FROM beneficiaries WHERE id IN ("));
        let mut list = q.separated(", ");
        for id in chunk {
            list.push_bind(*id);
        }
        q.push(")");
        q.push(tail);
        let rows: Vec<BeneficiaryRow> = q.build_query_as().fetch_all(&mut **tx).await.map_err(db_err)?;
        for row in rows {
            let person = Beneficiary::try_from(row)?;
            people.insert(person.id.clone(), person);
        }
    }
    Ok(people)
}

fn new_coverage(
    ctx: &WriteContext,
    household: &NewHousehold,
    beneficiary: &str,
    relationship: Relationship,
    member_number: &str,
    principal: Option<&str>,
) -> Coverage {
    Coverage {
        id: uuid::Uuid::now_v7().to_string(),
        beneficiary: beneficiary.to_owned(),
        product: household.product.product_id.clone(),
        organization: ctx.organization.clone(),
        layer: household.product.layer,
        member_number: member_number.to_owned(),
        relationship,
        principal_coverage: principal.map(str::to_owned),
        start_date: household.start_date,
        end_date: household.end_date,
        status: CoverageStatus::Active,
        paid_through: household.paid_through,
        version: 1,
    }
}

/// A household's registration inside the caller's transaction; its audit events are added to
/// `events` for the caller to append. Shared by single registrations and bulk groups.
async fn register_in(
    tx: &mut Tx,
    ctx: &WriteContext,
    household: &NewHousehold,
    skip_existing: bool,
    events: &mut Vec<NewAuditEvent>,
) -> Result<Registration, StoreError> {
    let principal_person = household
        .members
        .first()
        .ok_or_else(|| StoreError::Internal("empty household".into()))?;
    if let Some(holder) = holder_of(tx, &ctx.organization, &household.member_number).await? {
        if skip_existing && same_person(&holder, &principal_person.person) {
            return Ok(Registration {
                members: Vec::new(),
                skipped: true,
            });
        }
        return Err(at_member(member_number_taken(), 0));
    }
    // Every number the household would take is checked before anyone is matched by national id,
    // as the household's is: a dependant's number taken was answered only once the principal's
    // national id had matched, so that a right guess of a person's sex and birth came back as
    // `member_number_taken`, unaudited, and a wrong one as the audited `identity_mismatch`.
    for (index, member) in household.members.iter().enumerate().skip(1) {
        if let Some(own) = &member.own_number {
            if holder_of(tx, &ctx.organization, own).await?.is_some() {
                return Err(at_member(member_number_taken(), index));
            }
        }
    }
    let mut members = Vec::with_capacity(household.members.len());
    let mut principal_coverage: Option<String> = None;
    for (index, member) in household.members.iter().enumerate() {
        let (beneficiary, matched, possible_duplicates) = upsert_person(tx, ctx, &member.person, events)
            .await
            .map_err(|e| at_member(e, index))?;
        if matched
            && passerelle_domain::eligibility::stored_child_over_age_limit(
                &household.product,
                member.relationship,
                &beneficiary,
                household.start_date,
            )
        {
            return Err(at_member(
                StoreError::Conflict {
                    constraint: "dependant_age_limit".into(),
                },
                index,
            ));
        }
        let (number, own) = match (&principal_coverage, &member.own_number) {
            (None, _) => (household.member_number.as_str(), true),
            (Some(_), Some(own)) => (own.as_str(), true),
            (Some(_), None) => (household.member_number.as_str(), false),
        };
        let coverage = new_coverage(
            ctx,
            household,
            &beneficiary.id,
            member.relationship,
            number,
            principal_coverage.as_deref(),
        );
        insert_coverage(tx, ctx, &coverage, own)
            .await
            .map_err(|e| at_member(e, index))?;
        events.push(ctx.audit("coverage.created", "coverage", &coverage.id));
        if principal_coverage.is_none() {
            principal_coverage = Some(coverage.id.clone());
        }
        members.push(RegisteredMember {
            relationship: member.relationship,
            beneficiary,
            coverage,
            matched,
            possible_duplicates,
        });
    }
    Ok(Registration {
        members,
        skipped: false,
    })
}

/// One person's new coverage, its events (with those of `events`, the person's) and the answer
/// kept for its idempotency key, inside the caller's transaction.
async fn write_member(
    tx: &mut Tx,
    ctx: &WriteContext,
    member: &RegisteredMember,
    own_number: bool,
    mut events: Vec<NewAuditEvent>,
) -> Result<(), StoreError> {
    insert_coverage(tx, ctx, &member.coverage, own_number).await?;
    events.push(ctx.audit("coverage.created", "coverage", &member.coverage.id));
    queue_events(tx, &events).await?;
    store_idempotent_response(tx, ctx, member).await
}

/// A new version of a coverage whose contributions change; the row stays held until the
/// transaction ends, and `paid_through` is worked out again by [`pay_up`] once they changed. A
/// terminated coverage is final: `coverage_terminated`.
async fn hold_live_coverage(tx: &mut Tx, coverage: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
    let held = sqlx::query(
        "UPDATE coverages SET version = version + 1, updated_at = $2 WHERE id = $1 AND status <> 'terminated'",
    )
    .bind(coverage)
    .bind(at)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?
    .rows_affected();
    if held == 0 {
        return Err(StoreError::Conflict {
            constraint: "coverage_terminated".into(),
        });
    }
    // A row registered by a binary before migration 19 (during a rolling update, say) lacks
    // the registration's paid_through: where no contribution reaches its paid_through, that is
    // the registration's, as migration 19 reasons. Kept before the contributions change, since
    // `pay_up` starts from it.
    sqlx::query(
        "UPDATE coverages SET registered_paid_through = paid_through \
         WHERE id = $1 AND registered_paid_through IS NULL AND paid_through IS NOT NULL \
         AND NOT EXISTS (SELECT 1 FROM contributions c WHERE c.coverage = coverages.id \
         AND c.cancelled_at IS NULL AND c.period_end >= coverages.paid_through)",
    )
    .bind(coverage)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Sets the coverage's `paid_through` to the end of its paid run (`paid_run`): from the one given
/// at registration through the contributions not cancelled that join up, so that a payment for a
/// later period does not pay the days before it. A function of the rows alone, whatever order
/// they were recorded in.
async fn pay_up(tx: &mut Tx, coverage: &str) -> Result<(), StoreError> {
    let registered: Option<NaiveDate> =
        sqlx::query_scalar("SELECT registered_paid_through FROM coverages WHERE id = $1")
            .bind(coverage)
            .fetch_one(&mut **tx)
            .await
            .map_err(db_err)?;
    let periods: Vec<(NaiveDate, NaiveDate)> = sqlx::query_as(
        "SELECT period_start, period_end FROM contributions WHERE coverage = $1 AND cancelled_at IS NULL",
    )
    .bind(coverage)
    .fetch_all(&mut **tx)
    .await
    .map_err(db_err)?;
    sqlx::query("UPDATE coverages SET paid_through = $2 WHERE id = $1")
        .bind(coverage)
        .bind(passerelle_domain::paid_run::paid_through(registered, &periods))
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// A row of `coverages` (unaliased) that still ties its organisation to the person: not
/// terminated, and not a dependant's of a terminated principal (rows terminated before a
/// principal's termination ended the dependants' with it, which eligibility reads as terminated).
const LIVE_COVERAGE: &str = "coverages.status <> 'terminated' AND NOT EXISTS (SELECT 1 FROM coverages principal \
     WHERE principal.id = coverages.principal_coverage AND principal.status = 'terminated')";

/// Whether `organization` holds a coverage of the person meeting `and_also` (an SQL condition).
async fn holds_coverage(
    pool: &sqlx::Pool<Db>,
    organization: &str,
    beneficiary: &str,
    and_also: &str,
) -> Result<bool, StoreError> {
    let (n,): (i64,) = sqlx::query_as(&format!(
        "SELECT count(*) FROM coverages WHERE organization = $1 AND beneficiary = $2{and_also}"
    ))
    .bind(organization)
    .bind(beneficiary)
    .fetch_one(pool)
    .await
    .map_err(db_err)?;
    Ok(n > 0)
}

/// A person's coverages, locked for a change of their person (a merge), in id order.
async fn coverages_held(tx: &mut Tx, beneficiary: &str) -> Result<Vec<Coverage>, StoreError> {
    let rows: Vec<CoverageRow> = sqlx::query_as(&format!(
        "SELECT {COVERAGE_COLUMNS} FROM coverages WHERE beneficiary = $1 ORDER BY id{FOR_UPDATE}"
    ))
    .bind(beneficiary)
    .fetch_all(&mut **tx)
    .await
    .map_err(db_err)?;
    rows.into_iter().map(Coverage::try_from).collect()
}

#[async_trait]
impl RegistryStore for This {
    async fn register_household(
        &self,
        ctx: &WriteContext,
        household: &NewHousehold,
        skip_existing: bool,
    ) -> Result<Written<Registration>, StoreError> {
        let mut tx = self.begin_write().await?;
        if let Some(replayed) = claim_idempotency::<Registration>(&mut tx, ctx).await? {
            return Ok(Written {
                value: replayed,
                replayed: true,
            });
        }
        let mut events = Vec::new();
        let registration = register_in(&mut tx, ctx, household, skip_existing, &mut events).await?;
        if registration.skipped {
            return Ok(Written {
                value: registration,
                replayed: false,
            });
        }
        queue_events(&mut tx, &events).await?;
        store_idempotent_response(&mut tx, ctx, &registration).await?;
        self.commit(tx).await?;
        Ok(Written {
            value: registration,
            replayed: false,
        })
    }

    async fn add_dependant(
        &self,
        ctx: &WriteContext,
        principal: &str,
        member: &NewMember,
        start_date: NaiveDate,
        product: &ProductVersion,
    ) -> Result<Written<RegisteredMember>, StoreError> {
        let mut tx = self.begin_write().await?;
        if let Some(replayed) = claim_idempotency::<RegisteredMember>(&mut tx, ctx).await? {
            return Ok(Written {
                value: replayed,
                replayed: true,
            });
        }
        // Holds the principal's row without changing it, so that two additions racing for the
        // household's last place count each other.
        let held: Option<CoverageRow> = sqlx::query_as(&format!(
            "UPDATE coverages SET status = status WHERE id = $1 AND status <> 'terminated' RETURNING {COVERAGE_COLUMNS}"
        ))
        .bind(principal)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let Some(held) = held else {
            return Err(StoreError::Conflict {
                constraint: "household_terminated".into(),
            });
        };
        let principal = Coverage::try_from(held)?;
        // Judged by the route on the principal's row as read before; an end date moved since
        // is judged again here, under the lock.
        if principal.end_date.is_some_and(|end| start_date > end) {
            return Err(StoreError::Conflict {
                constraint: "after_household_end".into(),
            });
        }
        if let Some(max) = product.max_dependants {
            let live: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM coverages WHERE principal_coverage = $1 AND status <> 'terminated'",
            )
            .bind(&principal.id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
            if live >= i64::from(max) {
                return Err(StoreError::Conflict {
                    constraint: "household_full".into(),
                });
            }
        }
        // A person of the household already, as a registration refuses a member listed twice:
        // the same person without a national id would otherwise join again as someone new.
        let members: Vec<BeneficiaryRow> = sqlx::query_as(&format!(
            "SELECT {BENEFICIARY_COLUMNS} FROM beneficiaries WHERE id IN (SELECT beneficiary FROM coverages \
             WHERE (id = $1 OR principal_coverage = $1) AND status <> 'terminated')"
        ))
        .bind(&principal.id)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        let likely = member.person.likely_match();
        for row in members {
            let known = Beneficiary::try_from(row)?;
            // Two different national ids are two people, whatever their names.
            let both_identified = known.national_id.is_some() && member.person.national_id.is_some();
            if !both_identified && known.likely_match().matches(&likely) {
                return Err(StoreError::Conflict {
                    constraint: "duplicate_member".into(),
                });
            }
        }
        let registered: Option<NaiveDate> =
            sqlx::query_scalar("SELECT registered_paid_through FROM coverages WHERE id = $1")
                .bind(&principal.id)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
        // The number first, as a registration checks its members' (`register_in`): answered after
        // the national id matched, it told a right guess of the person's sex and birth, unaudited.
        if let Some(own) = &member.own_number {
            if holder_of(&mut tx, &ctx.organization, own).await?.is_some() {
                return Err(member_number_taken());
            }
        }
        let mut events = Vec::new();
        let (beneficiary, matched, possible_duplicates) =
            upsert_person(&mut tx, ctx, &member.person, &mut events).await?;
        if matched
            && passerelle_domain::eligibility::stored_child_over_age_limit(
                product,
                member.relationship,
                &beneficiary,
                start_date,
            )
        {
            return Err(StoreError::Conflict {
                constraint: "dependant_age_limit".into(),
            });
        }
        let (number, own) = match &member.own_number {
            Some(own) => (own.clone(), true),
            None => (principal.member_number.clone(), false),
        };
        let coverage = Coverage {
            id: uuid::Uuid::now_v7().to_string(),
            beneficiary: beneficiary.id.clone(),
            product: principal.product.clone(),
            organization: ctx.organization.clone(),
            layer: principal.layer,
            member_number: number,
            relationship: member.relationship,
            principal_coverage: Some(principal.id.clone()),
            start_date,
            // None, as a dependant registered with the household: its membership ends with the
            // principal's, whose end date eligibility reads; a copy would outlive a later one.
            end_date: None,
            status: CoverageStatus::Active,
            // As a dependant registered with the household: the registration's paid_through. The
            // household's payments are the principal's, which eligibility follows, and a
            // contribution cancelled there must not live on here.
            paid_through: registered,
            version: 1,
        };
        let added = RegisteredMember {
            relationship: member.relationship,
            beneficiary,
            coverage,
            matched,
            possible_duplicates,
        };
        write_member(&mut tx, ctx, &added, own, events).await?;
        self.commit(tx).await?;
        Ok(Written {
            value: added,
            replayed: false,
        })
    }

    async fn create_coverage(
        &self,
        ctx: &WriteContext,
        person: &PersonRef,
        household: &NewHousehold,
    ) -> Result<Written<RegisteredMember>, StoreError> {
        let mut tx = self.begin_write().await?;
        if let Some(replayed) = claim_idempotency::<RegisteredMember>(&mut tx, ctx).await? {
            return Ok(Written {
                value: replayed,
                replayed: true,
            });
        }
        let mut events = Vec::new();
        let (beneficiary, matched, possible_duplicates) = match person {
            PersonRef::Existing(id) => {
                // Held, so that a merge of the person (which locks them) either commits first,
                // and the record merged away is no one to cover, or waits for this coverage and
                // moves it.
                let row: Option<BeneficiaryRow> = sqlx::query_as(&format!(
                    "SELECT {BENEFICIARY_COLUMNS} FROM beneficiaries WHERE id = $1 AND merged_into IS NULL{FOR_SHARE}"
                ))
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
                let found = row
                    .map(Beneficiary::try_from)
                    .transpose()?
                    .ok_or(StoreError::NotFound)?;
                // Covered again, an erased person would be checked and claimed for with no name.
                if let Some(at) = found.erased_at {
                    return Err(StoreError::Erased { at });
                }
                (found, true, Vec::new())
            }
            PersonRef::New(person) => upsert_person(&mut tx, ctx, person, &mut events).await?,
        };
        if holder_of(&mut tx, &ctx.organization, &household.member_number)
            .await?
            .is_some()
        {
            return Err(member_number_taken());
        }
        let coverage = new_coverage(
            ctx,
            household,
            &beneficiary.id,
            Relationship::Principal,
            &household.member_number,
            None,
        );
        let member = RegisteredMember {
            relationship: Relationship::Principal,
            beneficiary,
            coverage,
            matched,
            possible_duplicates,
        };
        write_member(&mut tx, ctx, &member, true, events).await?;
        self.commit(tx).await?;
        Ok(Written {
            value: member,
            replayed: false,
        })
    }

    async fn get_beneficiary(&self, id: &str) -> Result<Option<Beneficiary>, StoreError> {
        let row: Option<BeneficiaryRow> = sqlx::query_as(&format!(
            "SELECT {BENEFICIARY_COLUMNS} FROM beneficiaries WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.read)
        .await
        .map_err(db_err)?;
        row.map(Beneficiary::try_from).transpose()
    }

    async fn erase_personal_data(
        &self,
        ctx: &WriteContext,
        before: NaiveDate,
        dry_run: bool,
    ) -> Result<passerelle_domain::retention::Erasure, StoreError> {
        erase_personal_data(self, ctx, before, dry_run).await
    }

    async fn find_by_national_id(&self, nid: &NationalId) -> Result<Option<Beneficiary>, StoreError> {
        let row: Option<BeneficiaryRow> = sqlx::query_as(&format!(
            "SELECT {BENEFICIARY_COLUMNS} FROM beneficiaries WHERE nid_country = $1 AND nid_type = $2 AND nid_value = $3"
        ))
        .bind(&nid.country)
        .bind(&nid.id_type)
        .bind(&nid.value)
        .fetch_optional(&self.read)
        .await
        .map_err(db_err)?;
        row.map(Beneficiary::try_from).transpose()
    }

    async fn covers(&self, organization: &str, beneficiary: &str) -> Result<bool, StoreError> {
        holds_coverage(&self.read, organization, beneficiary, "").await
    }

    async fn covers_now(&self, organization: &str, beneficiary: &str) -> Result<bool, StoreError> {
        holds_coverage(&self.read, organization, beneficiary, &format!(" AND {LIVE_COVERAGE}")).await
    }

    async fn get_coverage(&self, id: &str) -> Result<Option<Coverage>, StoreError> {
        let row: Option<CoverageRow> =
            sqlx::query_as(&format!("SELECT {COVERAGE_COLUMNS} FROM coverages WHERE id = $1"))
                .bind(id)
                .fetch_optional(&self.read)
                .await
                .map_err(db_err)?;
        row.map(Coverage::try_from).transpose()
    }

    async fn list_coverages(
        &self,
        beneficiary: &str,
        organization: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<Coverage>, StoreError> {
        let rows: Vec<CoverageRow> = sqlx::query_as(&format!(
            "SELECT {COVERAGE_COLUMNS} FROM coverages WHERE beneficiary = $1 AND ($2 IS NULL OR organization = $2) \
             AND ($3 IS NULL OR id > $3) ORDER BY id LIMIT $4"
        ))
        .bind(beneficiary)
        .bind(organization)
        .bind(&page.after)
        .bind(i64::from(page.limit) + 1)
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        let coverages = rows
            .into_iter()
            .map(Coverage::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(coverages, page.limit, |c| c.id.clone()))
    }

    async fn update_coverage(&self, ctx: &WriteContext, update: &CoverageUpdate) -> Result<(), StoreError> {
        let c = &update.coverage;
        let mut tx = self.begin_write().await?;
        // The person first, as a correction or a merge takes them, and shared: an erasure
        // (which takes them for update) either committed before, and an erased person's coverage
        // is not extended, or waits and sees this change.
        let (erased_at,): (Option<DateTime<Utc>>,) =
            sqlx::query_as(&format!("SELECT erased_at FROM beneficiaries WHERE id = $1{FOR_SHARE}"))
                .bind(&c.beneficiary)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?
                .ok_or(StoreError::StaleVersion)?;
        if let Some(at) = erased_at {
            return Err(StoreError::Erased { at });
        }
        let changed = sqlx::query(
            "UPDATE coverages SET status = $2, end_date = $3, version = $4, updated_at = $5 \
             WHERE id = $1 AND version = $6",
        )
        .bind(&c.id)
        .bind(c.status.as_str())
        .bind(c.end_date)
        .bind(i64::from(c.version))
        .bind(ctx.at)
        .bind(i64::from(c.version) - 1)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
        if changed == 0 {
            return Err(StoreError::StaleVersion);
        }
        announce_coverage(&mut tx, ctx, c).await?;
        let mut events = vec![ctx.audit(update.action, "coverage", &c.id)];
        if c.status == CoverageStatus::Terminated && !c.is_dependant() {
            terminate_dependants(&mut tx, ctx, c, &mut events).await?;
        }
        queue_events(&mut tx, &events).await?;
        self.commit(tx).await
    }

    async fn update_beneficiary(&self, ctx: &WriteContext, b: &Beneficiary) -> Result<(), StoreError> {
        let (region, district, commune) = match &b.locality {
            Some(l) => (Some(&l.region), Some(&l.district), Some(&l.commune)),
            None => (None, None, None),
        };
        let nid = b.national_id.as_ref();
        let mut tx = self.begin_write().await?;
        // The corrector must still cover the person when the correction commits: its coverages
        // of them are held against a termination committing meanwhile (which changes coverage
        // rows, not the person's version), then read as they now stand. The person first, as a
        // merge takes them, so that the two wait for each other rather than deadlock.
        let held: Option<(i64, Option<String>, Option<DateTime<Utc>>)> = sqlx::query_as(&format!(
            "SELECT version, merged_into, erased_at FROM beneficiaries WHERE id = $1{FOR_NO_KEY_UPDATE}"
        ))
        .bind(&b.id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        if let Some((_, _, Some(at))) = held {
            return Err(StoreError::Erased { at });
        }
        // Changed meanwhile (a merge that committed first moved its coverages away): a stale
        // version, as the update below would find, rather than "your coverages ended".
        if !matches!(held, Some((version, None, _)) if version == i64::from(b.version) - 1) {
            return Err(StoreError::StaleVersion);
        }
        sqlx::query(&format!(
            "SELECT id FROM coverages WHERE organization = $1 AND beneficiary = $2 ORDER BY id{FOR_SHARE}"
        ))
        .bind(&ctx.organization)
        .bind(&b.id)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        let (live,): (i64,) = sqlx::query_as(&format!(
            "SELECT count(*) FROM coverages WHERE organization = $1 AND beneficiary = $2 AND {LIVE_COVERAGE}"
        ))
        .bind(&ctx.organization)
        .bind(&b.id)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        if live == 0 {
            return Err(StoreError::Conflict {
                constraint: "coverage_terminated".into(),
            });
        }
        // A national id already another person's is looked for first, so that the refusal does
        // not go through the unique index, whose violation PostgreSQL logs with the key's
        // values; the index still refuses two people given one id at once.
        if let Some(n) = nid {
            let taken: Option<(String,)> = sqlx::query_as(
                "SELECT id FROM beneficiaries WHERE nid_country = $1 AND nid_type = $2 AND nid_value = $3 AND id <> $4",
            )
            .bind(&n.country)
            .bind(&n.id_type)
            .bind(&n.value)
            .bind(&b.id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
            if taken.is_some() {
                return Err(StoreError::Conflict {
                    constraint: "national_id_taken".into(),
                });
            }
        }
        // The match key follows the names, so that likely matches are judged on the corrected
        // ones.
        let changed = sqlx::query(
            "UPDATE beneficiaries SET family_name = $2, given_names = $3, match_key = $4, phone = $5, \
             region = $6, district = $7, commune = $8, version = $9, \
             nid_country = $11, nid_type = $12, nid_value = $13 WHERE id = $1 AND version = $10",
        )
        .bind(&b.id)
        .bind(&b.family_name)
        .bind(&b.given_names)
        .bind(b.match_key())
        .bind(&b.phone)
        .bind(region)
        .bind(district)
        .bind(commune)
        .bind(i64::from(b.version))
        .bind(i64::from(b.version) - 1)
        .bind(nid.map(|n| &n.country))
        .bind(nid.map(|n| &n.id_type))
        .bind(nid.map(|n| &n.value))
        .execute(&mut *tx)
        .await
        .map_err(|e| match db_err(e) {
            StoreError::Conflict { .. } => StoreError::Conflict {
                constraint: "national_id_taken".into(),
            },
            other => other,
        })?
        .rows_affected();
        if changed == 0 {
            return Err(StoreError::StaleVersion);
        }
        // `beneficiary.changed` to whoever covers the person: the copies they keep of it.
        let data = serde_json::to_value(b).map_err(|e| StoreError::Internal(e.to_string()))?;
        enqueue_to(
            &mut tx,
            ctx,
            "beneficiary.changed",
            Audience::Covering(&b.id),
            "beneficiary",
            &data,
        )
        .await?;
        queue_events(&mut tx, &[ctx.audit("beneficiary.updated", "beneficiary", &b.id)]).await?;
        self.commit(tx).await
    }

    async fn merge_beneficiary(
        &self,
        ctx: &WriteContext,
        from: &str,
        from_version: u32,
        into: &str,
    ) -> Result<Beneficiary, StoreError> {
        let mut tx = self.begin_write().await?;
        // Both people locked in id order, so that two merges of one pair in opposite directions
        // queue rather than deadlock, and without blocking the key checks of claims being
        // inserted for them (which hold the coverage a merge waits for); then the coverages,
        // before any usage row, the order in which a claim takes a coverage (`FOR_KEY_SHARE`)
        // and then its person's usage.
        let rows: Vec<BeneficiaryRow> = sqlx::query_as(&format!(
            "SELECT {BENEFICIARY_COLUMNS} FROM beneficiaries WHERE id IN ($1, $2) ORDER BY id{FOR_NO_KEY_UPDATE}"
        ))
        .bind(from)
        .bind(into)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        let people = rows
            .into_iter()
            .map(Beneficiary::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let person = |id: &str| people.iter().find(|p| p.id == id).cloned().ok_or(StoreError::NotFound);
        let (source, target) = (person(from)?, person(into)?);
        // Nothing moves to or from a person erased meanwhile: covered again, they would be
        // checked and claimed for with no name.
        if let Some(at) = source.erased_at.or(target.erased_at) {
            return Err(StoreError::Erased { at });
        }
        let moved = coverages_held(&mut tx, from).await?;
        let kept = coverages_held(&mut tx, into).await?;
        passerelle_domain::merge::check_merge(&ctx.organization, &source, &moved, &target, &kept).map_err(
            |refusal| StoreError::Conflict {
                constraint: refusal.constraint().into(),
            },
        )?;
        if source.version != from_version {
            return Err(StoreError::StaleVersion);
        }
        // The index of one live coverage per product backs the check above up against a
        // registration of `into` committing meanwhile.
        sqlx::query(
            "UPDATE coverages SET beneficiary = $2, version = version + 1, updated_at = $3 WHERE beneficiary = $1",
        )
        .bind(from)
        .bind(into)
        .bind(ctx.at)
        .execute(&mut *tx)
        .await
        .map_err(|e| match db_err(e) {
            StoreError::Conflict { .. } => StoreError::Conflict {
                constraint: "already_covered".into(),
            },
            other => other,
        })?;
        // The ceiling is the person's (API.md §6.3): what both records used of one product in
        // one plan year adds up, held at the largest amount a row holds as a claim adds its share
        // (`saturating_add`): an overflowing sum fails the statement on both databases.
        sqlx::query(
            "INSERT INTO ceiling_usage (beneficiary, product, plan_year, used_xof) \
             SELECT $2, product, plan_year, used_xof FROM ceiling_usage WHERE beneficiary = $1 \
             ON CONFLICT (beneficiary, product, plan_year) DO UPDATE SET used_xof = \
             CASE WHEN ceiling_usage.used_xof > 9223372036854775807 - excluded.used_xof THEN 9223372036854775807 \
             ELSE ceiling_usage.used_xof + excluded.used_xof END",
        )
        .bind(from)
        .bind(into)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query("DELETE FROM ceiling_usage WHERE beneficiary = $1")
            .bind(from)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        // A pointer is one step: the records merged into `from` before now point at `into`, each
        // one version more, so that a client holding one sees it changed.
        let repointed: Vec<BeneficiaryRow> = sqlx::query_as(&format!(
            "UPDATE beneficiaries SET merged_into = $2, version = version + 1 WHERE merged_into = $1 \
             RETURNING {BENEFICIARY_COLUMNS}"
        ))
        .bind(from)
        .bind(into)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query("UPDATE beneficiaries SET merged_into = $2, merged_by = $3, version = version + 1 WHERE id = $1")
            .bind(from)
            .bind(into)
            .bind(&ctx.organization)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let mut events = vec![
            ctx.audit("beneficiary.merged", "beneficiary", from),
            ctx.audit("beneficiary.merged", "beneficiary", into),
        ];
        // Each record merged earlier is told to the organisation that merged it, whose record it
        // was, as its own merge was.
        for row in repointed {
            let earlier = Beneficiary::try_from(row)?;
            events.push(ctx.audit("beneficiary.merged", "beneficiary", &earlier.id));
            let data = serde_json::to_value(&earlier).map_err(|e| StoreError::Internal(e.to_string()))?;
            let merged_by = earlier.merged_by.as_deref();
            enqueue(
                &mut tx,
                ctx,
                "beneficiary.changed",
                [merged_by, None, None, None],
                "beneficiary",
                &data,
            )
            .await?;
        }
        for coverage in moved {
            let now = Coverage {
                beneficiary: into.to_owned(),
                version: coverage.version + 1,
                ..coverage
            };
            announce_coverage(&mut tx, ctx, &now).await?;
            events.push(ctx.audit("coverage.updated", "coverage", &now.id));
        }
        // Only the caller covered the record merged away: the person's other organisations
        // are not told that it existed.
        let merged = Beneficiary {
            version: source.version + 1,
            merged_into: Some(into.to_owned()),
            merged_by: Some(ctx.organization.clone()),
            ..source
        };
        let data = serde_json::to_value(&merged).map_err(|e| StoreError::Internal(e.to_string()))?;
        enqueue(
            &mut tx,
            ctx,
            "beneficiary.changed",
            [Some(ctx.organization.as_str()), None, None, None],
            "beneficiary",
            &data,
        )
        .await?;
        queue_events(&mut tx, &events).await?;
        self.commit(tx).await?;
        Ok(target)
    }

    async fn add_contribution(
        &self,
        ctx: &WriteContext,
        contribution: &Contribution,
    ) -> Result<Written<Contribution>, StoreError> {
        let mut tx = self.begin_write().await?;
        if let Some(replayed) = claim_idempotency::<Contribution>(&mut tx, ctx).await? {
            return Ok(Written {
                value: replayed,
                replayed: true,
            });
        }
        hold_live_coverage(&mut tx, &contribution.coverage, ctx.at).await?;
        // The update above holds the coverage's row, so two entries of one receipt cannot both
        // pass this check.
        let recorded: Vec<String> =
            sqlx::query_scalar("SELECT reference FROM contributions WHERE coverage = $1 AND cancelled_at IS NULL")
                .bind(&contribution.coverage)
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?;
        if recorded
            .iter()
            .any(|r| passerelle_domain::text::same_reference(r, &contribution.reference))
        {
            return Err(StoreError::Conflict {
                constraint: "duplicate_reference".into(),
            });
        }
        sqlx::query(
            "INSERT INTO contributions (id, coverage, amount_xof, period_start, period_end, paid_at, reference, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&contribution.id)
        .bind(&contribution.coverage)
        .bind(contribution.amount_xof.value())
        .bind(contribution.period_start)
        .bind(contribution.period_end)
        .bind(contribution.paid_at)
        .bind(&contribution.reference)
        .bind(contribution.created_at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        pay_up(&mut tx, &contribution.coverage).await?;
        let row: CoverageRow = sqlx::query_as(&format!("SELECT {COVERAGE_COLUMNS} FROM coverages WHERE id = $1"))
            .bind(&contribution.coverage)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        announce_coverage(&mut tx, ctx, &Coverage::try_from(row)?).await?;
        queue_events(
            &mut tx,
            &[ctx.audit("contribution.created", "contribution", &contribution.id)],
        )
        .await?;
        store_idempotent_response(&mut tx, ctx, contribution).await?;
        self.commit(tx).await?;
        Ok(Written {
            value: contribution.clone(),
            replayed: false,
        })
    }

    async fn cancel_contribution(
        &self,
        ctx: &WriteContext,
        coverage: &str,
        contribution: &str,
    ) -> Result<Written<Contribution>, StoreError> {
        let mut tx = self.begin_write().await?;
        // A contribution the coverage does not hold is unknown (404), and one cancelled already
        // says so, whatever the coverage's state since: a cancellation is never undone, so a
        // retry whose first answer was lost learns it succeeded.
        let known: Option<Option<DateTime<Utc>>> =
            sqlx::query_scalar("SELECT cancelled_at FROM contributions WHERE id = $1 AND coverage = $2")
                .bind(contribution)
                .bind(coverage)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        match known {
            None => return Err(StoreError::NotFound),
            Some(Some(_)) => {
                return Err(StoreError::Conflict {
                    constraint: "already_cancelled".into(),
                })
            }
            Some(None) => {}
        }
        let held = hold_live_coverage(&mut tx, coverage, ctx.at).await;
        let terminated =
            matches!(&held, Err(StoreError::Conflict { constraint }) if constraint == "coverage_terminated");
        if terminated {
            // A cancel of the same contribution may have committed while this one waited for
            // the coverage, and the coverage been terminated after it: read again (a fresh
            // snapshot on PostgreSQL), so that the retry still learns it had succeeded.
            let cancelled: Option<DateTime<Utc>> =
                sqlx::query_scalar("SELECT cancelled_at FROM contributions WHERE id = $1")
                    .bind(contribution)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_err)?;
            if cancelled.is_some() {
                return Err(StoreError::Conflict {
                    constraint: "already_cancelled".into(),
                });
            }
        }
        held?;
        let newly_cancelled = sqlx::query(
            "UPDATE contributions SET cancelled_at = $3 WHERE id = $1 AND coverage = $2 AND cancelled_at IS NULL",
        )
        .bind(contribution)
        .bind(coverage)
        .bind(ctx.at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
        // Known to exist (read above; contributions are never deleted).
        let row: ContributionRow = sqlx::query_as(&format!(
            "SELECT {CONTRIBUTION_COLUMNS} FROM contributions WHERE id = $1 AND coverage = $2"
        ))
        .bind(contribution)
        .bind(coverage)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        if newly_cancelled == 0 {
            return Err(StoreError::Conflict {
                constraint: "already_cancelled".into(),
            });
        }
        let cancelled = Contribution::from(row);
        pay_up(&mut tx, coverage).await?;
        let current: CoverageRow = sqlx::query_as(&format!("SELECT {COVERAGE_COLUMNS} FROM coverages WHERE id = $1"))
            .bind(coverage)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        announce_coverage(&mut tx, ctx, &Coverage::try_from(current)?).await?;
        queue_events(
            &mut tx,
            &[ctx.audit("contribution.cancelled", "contribution", contribution)],
        )
        .await?;
        self.commit(tx).await?;
        Ok(Written {
            value: cancelled,
            replayed: false,
        })
    }

    async fn list_contributions(&self, coverage: &str, page: &PageRequest) -> Result<Page<Contribution>, StoreError> {
        // Newest first by (paid_at, id); the cursor carries both.
        let (after_date, after_id) = match page.after.as_deref() {
            Some(key) => {
                let (date, id) = key.split_once('|').ok_or(StoreError::InvalidCursor)?;
                // Strictly: chrono's `%Y` takes `-5000-01-01`, which PostgreSQL refuses as out of range.
                let date = passerelle_domain::dates::parse(date).ok_or(StoreError::InvalidCursor)?;
                (Some(date), Some(id.to_owned()))
            }
            None => (None, None),
        };
        let rows: Vec<ContributionRow> = sqlx::query_as(&format!(
            "SELECT {CONTRIBUTION_COLUMNS} FROM contributions WHERE coverage = $1 \
             AND ($2 IS NULL OR paid_at < $2 OR (paid_at = $2 AND id < $3)) \
                          ORDER BY paid_at DESC, id DESC LIMIT $4"
        ))
        .bind(coverage)
        .bind(after_date)
        .bind(after_id)
        .bind(i64::from(page.limit) + 1)
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        let items: Vec<Contribution> = rows.into_iter().map(Contribution::from).collect();
        Ok(Page::from_overfetch(items, page.limit, |c| {
            format!("{}|{}", c.paid_at, c.id)
        }))
    }
}
