// Registering a group of households in one transaction (bulk jobs), shared by both databases
// through `include!` from `batches.rs`.
//
// A household costs a dozen round trips when registered alone; here a group costs a handful: the
// member numbers, national ids and coverages the group touches are read in a few queries, each
// household is decided in memory in file order (seeing the households before it in the group),
// and the accepted ones are written with multi-row inserts. Should a write fail all the same (a
// concurrent writer took a member number or a national id meanwhile), the group is rolled back to
// before the writes and registered household by household, one savepoint each, the single
// registration's way: either way each household is all or nothing.

use std::collections::{HashMap, HashSet};

use passerelle_domain::batch::member_conflict;
use passerelle_domain::ports::{LookAlike, Registered};

/// Values per `IN (…)` list and rows per multi-row insert: far below both databases' limits on
/// bound parameters (SQLite 32766, PostgreSQL 65535).
const IN_CHUNK: usize = 500;
const INSERT_CHUNK: usize = 1000;

type NidKey = (String, String, String);

fn nid_key(b: &Beneficiary) -> Option<NidKey> {
    b.national_id
        .as_ref()
        .map(|n| (n.country.clone(), n.id_type.clone(), n.value.clone()))
}

/// What the group's households find already stored.
#[derive(Default)]
struct Known {
    /// Own member numbers of the organisation (by `member_number_key`), with who holds them.
    holders: HashMap<String, Beneficiary>,
    /// People by national id.
    people: HashMap<NidKey, Beneficiary>,
    /// (beneficiary, product) of coverages not terminated.
    covered: HashSet<(String, String)>,
    /// Stored look-alikes of the group's members without a national id, by what they are
    /// compared on, each list sorted by id.
    stored_alikes: HashMap<AlikeKey, Vec<String>>,
    /// The principal coverage of the household of each member number in `holders` (by the same
    /// key), and the households the group's households may be skipped for.
    roots: HashMap<String, String>,
    households: HashMap<String, StoredHousehold>,
    /// People the group created so far, by (match key, sex): the later members compare with
    /// them too, as they would with stored people had each household been registered alone.
    created: HashMap<(String, String), Vec<Beneficiary>>,
}

/// A conflict on the `member`th member of a household (0 the principal), so that the job reports
/// it on that member's row rather than the principal's.
fn member_at_fault(code: &str, member: usize) -> StoreError {
    StoreError::Conflict {
        constraint: member_conflict(code, member),
    }
}

/// What a person without a national id is compared on: match key, sex and birth window.
type AlikeKey = (String, String, BirthWindow);

fn alike_key(b: &Beneficiary, match_key: &str) -> AlikeKey {
    (match_key.to_owned(), b.sex.as_str().to_owned(), BirthWindow::of(b))
}

/// The stored people who look like the group's members without a national id: one correlated
/// subquery per distinct key, on the `beneficiaries_likely_match` index.
async fn read_stored_alikes(
    tx: &mut Tx,
    organization: &str,
    households: &[NewHousehold],
) -> Result<HashMap<AlikeKey, Vec<String>>, StoreError> {
    let mut keys: Vec<AlikeKey> = households
        .iter()
        .flat_map(|h| &h.members)
        .filter(|m| m.person.national_id.is_none())
        .map(|m| {
            let b = m
                .person
                .clone()
                .into_beneficiary(String::new(), chrono::DateTime::UNIX_EPOCH);
            alike_key(&b, &m.person.match_key())
        })
        .collect();
    keys.sort_by(|a, b| (&a.0, &a.1, a.2.from, a.2.to).cmp(&(&b.0, &b.1, b.2.from, b.2.to)));
    keys.dedup();
    let mut found = HashMap::new();
    for (chunk_start, chunk) in keys.chunks(IN_CHUNK).enumerate().map(|(i, c)| (i * IN_CHUNK, c)) {
        let mut q = sqlx::QueryBuilder::<Db>::new(format!(
            "SELECT CAST(v.column1 AS BIGINT), (SELECT {ID_LIST} FROM (SELECT b.id FROM beneficiaries b \
             WHERE b.match_key = v.column2 AND b.sex = v.column3 AND ((b.birth_date >= v.column4 \
                          AND b.birth_date <= v.column5) OR (b.birth_date_precision = 'year' AND b.birth_date = v.column6)) \
             AND EXISTS (SELECT 1 FROM coverages c WHERE c.beneficiary = b.id AND c.organization = v.column7) \
             ORDER BY b.id LIMIT {MAX_POSSIBLE_DUPLICATES}) x) FROM ("
        ));
        q.push_values(chunk.iter().enumerate(), |mut row, (i, (match_key, sex, window))| {
            row.push_bind((chunk_start + i) as i64)
                .push_bind(match_key.clone())
                .push_bind(sex.clone())
                .push_bind(window.from)
                .push_bind(window.to)
                .push_bind(window.year_start)
                .push_bind(organization);
        });
        q.push(") AS v");
        let rows: Vec<(i64, Option<String>)> = q.build_query_as().fetch_all(&mut **tx).await.map_err(db_err)?;
        for (n, ids) in rows {
            let Some(ids) = ids else { continue };
            let key = usize::try_from(n)
                .ok()
                .and_then(|n| keys.get(n))
                .ok_or_else(|| corrupt("look-alike row for a key not asked"))?;
            let mut ids: Vec<String> = ids.split(',').map(str::to_owned).collect();
            ids.sort();
            found.insert(key.clone(), ids);
        }
    }
    Ok(found)
}

/// Who a member created without a national id looks like: stored people, and people created
/// earlier in the group (or its own household), at most `MAX_POSSIBLE_DUPLICATES`, by id.
fn look_alikes(known: &Known, own: &[(Beneficiary, String)], created: &Beneficiary, match_key: &str) -> Vec<String> {
    let key = alike_key(created, match_key);
    let window = key.2;
    let mut ids: Vec<String> = known.stored_alikes.get(&key).cloned().unwrap_or_default();
    let earlier = known
        .created
        .get(&(key.0.clone(), key.1.clone()))
        .into_iter()
        .flatten()
        .chain(own.iter().filter(|(_, k)| k == match_key).map(|(b, _)| b))
        .filter(|b| b.sex == created.sex && b.id != created.id && window.holds(b));
    ids.extend(earlier.map(|b| b.id.clone()));
    ids.sort();
    ids.dedup();
    ids.truncate(usize::try_from(MAX_POSSIBLE_DUPLICATES).unwrap_or(usize::MAX));
    ids
}

/// Who holds each of `numbers` as their own number in `organization`, and the principal
/// coverage of their household, for the numbers held, each number given back folded
/// (`member_number_key`).
async fn of_member_numbers(
    tx: &mut Tx,
    organization: &str,
    numbers: &[&str],
) -> Result<Vec<(String, String, String)>, StoreError> {
    // Lists are `VALUES` rows, each probing a unique index, whatever the planner believes of
    // tables a bulk load fills faster than their statistics follow: an `IN` list was planned
    // as a scan of every national id of its type, and a join with the member numbers as a scan
    // of every coverage. A scalar subquery per member number cannot become such a join.
    let mut found = Vec::new();
    for chunk in numbers.chunks(IN_CHUNK) {
        let mut q = sqlx::QueryBuilder::<Db>::new(
            "SELECT v.column1, (SELECT c.beneficiary FROM coverages c WHERE c.own_number AND c.organization = ",
        );
        q.push_bind(organization).push(
            " AND lower(c.member_number) = v.column1), (SELECT COALESCE(c.principal_coverage, c.id) FROM coverages c \
             WHERE c.own_number AND c.organization = ",
        );
        q.push_bind(organization)
            .push(" AND lower(c.member_number) = v.column1) FROM (");
        q.push_values(chunk, |mut row, n| {
            row.push_bind(member_number_key(n));
        });
        q.push(") AS v");
        let rows: Vec<(String, Option<String>, Option<String>)> =
            q.build_query_as().fetch_all(&mut **tx).await.map_err(db_err)?;
        found.extend(
            rows.into_iter()
                .filter_map(|(number, holder, root)| Some((number, holder?, root?))),
        );
    }
    Ok(found)
}

async fn read_known(
    tx: &mut Tx,
    ctx: &WriteContext,
    households: &[NewHousehold],
    skip_existing: bool,
) -> Result<Known, StoreError> {
    let mut known = Known::default();
    let numbers: Vec<&str> = households
        .iter()
        .flat_map(|h| {
            std::iter::once(h.member_number.as_str()).chain(h.members.iter().filter_map(|m| m.own_number.as_deref()))
        })
        .collect();
    let columns = BENEFICIARY_COLUMNS
        .split(", ")
        .map(|c| format!("b.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let holders = of_member_numbers(tx, &ctx.organization, &numbers).await?;
    let ids: Vec<&str> = holders.iter().map(|(_, id, _)| id.as_str()).collect();
    let people = people_by_id(tx, &ids).await?;
    for (number, id, root) in holders {
        let person = people
            .get(&id)
            .cloned()
            .ok_or_else(|| corrupt("coverage without its beneficiary"))?;
        // `number` is the folded key `of_member_numbers` was given.
        known.holders.insert(number.clone(), person);
        known.roots.insert(number, root);
    }
    if skip_existing {
        read_skipped_households(tx, households, &mut known).await?;
    }
    let nids: Vec<(&str, &str, &str)> = households
        .iter()
        .flat_map(|h| &h.members)
        .filter_map(|m| m.person.national_id.as_ref())
        .map(|n| (n.country.as_str(), n.id_type.as_str(), n.value.as_str()))
        .collect();
    for chunk in nids.chunks(IN_CHUNK) {
        let mut q = sqlx::QueryBuilder::<Db>::new(format!("SELECT {columns} FROM ("));
        q.push_values(chunk, |mut row, (country, id_type, value)| {
            row.push_bind(*country).push_bind(*id_type).push_bind(*value);
        });
        q.push(
            ") AS v JOIN beneficiaries b ON b.nid_country = v.column1 AND b.nid_type = v.column2 \
             AND b.nid_value = v.column3",
        );
        let rows: Vec<BeneficiaryRow> = q.build_query_as().fetch_all(&mut **tx).await.map_err(db_err)?;
        for row in rows {
            let person = Beneficiary::try_from(row)?;
            if let Some(key) = nid_key(&person) {
                known.people.insert(key, person);
            }
        }
    }
    hold_people(tx, &mut known.people).await?;
    // Only people already stored can already be covered, and only the households that will
    // not be skipped need to know.
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for h in households
        .iter()
        .filter(|h| !known.holders.contains_key(&member_number_key(&h.member_number)))
    {
        for m in &h.members {
            let stored = m.person.national_id.as_ref().and_then(|n| {
                known
                    .people
                    .get(&(n.country.clone(), n.id_type.clone(), n.value.clone()))
            });
            if let Some(person) = stored {
                pairs.push((person.id.as_str(), h.product.product_id.as_str()));
            }
        }
    }
    let mut covered = Vec::new();
    for chunk in pairs.chunks(IN_CHUNK) {
        let mut q = sqlx::QueryBuilder::<Db>::new(
            "SELECT v.column1, v.column2, (SELECT count(*) FROM coverages c WHERE c.beneficiary = v.column1 \
             AND c.product = v.column2 AND c.status <> 'terminated') FROM (",
        );
        q.push_values(chunk, |mut row, (person, product)| {
            row.push_bind(*person).push_bind(*product);
        });
        q.push(") AS v");
        let rows: Vec<(String, String, i64)> = q.build_query_as().fetch_all(&mut **tx).await.map_err(db_err)?;
        covered.extend(
            rows.into_iter()
                .filter(|r| r.2 > 0)
                .map(|(person, product, _)| (person, product)),
        );
    }
    known.covered.extend(covered);
    known.stored_alikes = read_stored_alikes(tx, &ctx.organization, households).await?;
    Ok(known)
}

/// Holds the people matched by national id until the group commits the coverages it gives them,
/// as `find_by_national_id_tx` holds one person, and reads them again as held: an erasure
/// (`erase_personal_data`, which takes them `FOR UPDATE`) either waits and sees those coverages,
/// or commits first, and the person, erased, is dropped here and registered anew under the
/// national id the erasure freed; a correction that gave the person another national id
/// meanwhile drops them too, since the id the file names is no longer theirs. In id order, as
/// the erasure takes them, so that the two never wait on each other in a cycle. On SQLite the
/// group's transaction holds the only writer already.
async fn hold_people(tx: &mut Tx, people: &mut HashMap<NidKey, Beneficiary>) -> Result<(), StoreError> {
    if FOR_KEY_SHARE.is_empty() || people.is_empty() {
        return Ok(());
    }
    let mut ids: Vec<&str> = people.values().map(|p| p.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    // Sorted, the lists go in id order too.
    let held = people_by_id_then(tx, &ids, &format!(" AND erased_at IS NULL ORDER BY id{FOR_KEY_SHARE}")).await?;
    people.retain(|key, person| match held.get(&person.id) {
        Some(now) if nid_key(now).as_ref() == Some(key) => {
            *person = now.clone();
            true
        }
        _ => false,
    });
    Ok(())
}

/// The people stored under the national ids of a household's members, by national id.
async fn registered_of(tx: &mut Tx, household: &NewHousehold) -> Result<HashMap<NidKey, Beneficiary>, StoreError> {
    let mut people = HashMap::new();
    for nid in household.members.iter().filter_map(|m| m.person.national_id.as_ref()) {
        if let Some(person) = find_by_national_id_tx(tx, nid).await? {
            if let Some(key) = nid_key(&person) {
                people.insert(key, person);
            }
        }
    }
    Ok(people)
}

/// The households stored under the member numbers of the group's households that will be
/// skipped (their principal holds the number), so that their members can be compared.
async fn read_skipped_households(
    tx: &mut Tx,
    households: &[NewHousehold],
    known: &mut Known,
) -> Result<(), StoreError> {
    let mut roots: Vec<&str> = households
        .iter()
        .filter(|h| {
            let holder = known.holders.get(&member_number_key(&h.member_number));
            matches!((holder, h.members.first()), (Some(holder), Some(p)) if same_person(holder, &p.person))
        })
        .filter_map(|h| {
            known
                .roots
                .get(&member_number_key(&h.member_number))
                .map(String::as_str)
        })
        .collect();
    roots.sort_unstable();
    roots.dedup();
    let stored = stored_households(tx, &roots).await?;
    known.households.extend(stored);
    Ok(())
}

/// The rows the accepted households add.
#[derive(Default)]
struct Plan {
    people: Vec<(Beneficiary, String)>,
    coverages: Vec<(Coverage, bool)>,
    events: Vec<NewAuditEvent>,
}

/// Decides one household against what is stored and what the group added before it, as
/// `register_in` would; on success its rows join the plan and what it holds joins `known`.
fn decide(
    ctx: &WriteContext,
    household: &NewHousehold,
    skip_existing: bool,
    known: &mut Known,
    plan: &mut Plan,
) -> HouseholdOutcome {
    let principal = household
        .members
        .first()
        .ok_or_else(|| StoreError::Internal("empty household".into()))?;
    let household_key = member_number_key(&household.member_number);
    if let Some(holder) = known.holders.get(&household_key) {
        if skip_existing && same_person(holder, &principal.person) {
            let stored = known
                .roots
                .get(&household_key)
                .and_then(|root| known.households.get(root))
                .ok_or_else(|| StoreError::Internal("a skipped household is not known".into()))?;
            return skipped_household(stored, household, &known.people);
        }
        return Err(member_at_fault("member_number_taken", 0));
    }
    // Every number taken before anyone is matched by national id, as `register_in` does.
    for (index, member) in household.members.iter().enumerate().skip(1) {
        if let Some(own) = &member.own_number {
            if known.holders.contains_key(&member_number_key(own)) {
                return Err(member_at_fault("member_number_taken", index));
            }
        }
    }
    let mut mine = Plan::default();
    let mut numbers: Vec<(String, Beneficiary)> = Vec::new();
    let mut people: Vec<(NidKey, Beneficiary)> = Vec::new();
    let mut covered: Vec<(String, String)> = Vec::new();
    let mut principal_coverage: Option<String> = None;
    let mut members: Vec<Beneficiary> = Vec::new();
    let mut alikes: Vec<LookAlike> = Vec::new();
    let product = &household.product.product_id;
    for (index, member) in household.members.iter().enumerate() {
        let candidate = member
            .person
            .clone()
            .into_beneficiary(uuid::Uuid::now_v7().to_string(), ctx.at);
        let existing = nid_key(&candidate).and_then(|key| {
            known
                .people
                .get(&key)
                .or_else(|| people.iter().find(|(k, _)| *k == key).map(|(_, b)| b))
                .cloned()
        });
        let beneficiary = match existing {
            // Someone else's national id (a typo, a guess): refused, as `upsert_person` does.
            Some(found) if !found.identity().agrees_with(&candidate.identity()) => {
                return Err(member_at_fault("identity_mismatch", index));
            }
            Some(found)
                if passerelle_domain::eligibility::stored_child_over_age_limit(
                    &household.product,
                    member.relationship,
                    &found,
                    household.start_date,
                ) =>
            {
                return Err(member_at_fault("dependant_age_limit", index));
            }
            Some(found) => found,
            None => {
                mine.events
                    .push(ctx.audit("beneficiary.created", "beneficiary", &candidate.id));
                let match_key = member.person.match_key();
                if candidate.national_id.is_none() {
                    let matches = look_alikes(known, &mine.people, &candidate, &match_key);
                    if !matches.is_empty() {
                        alikes.push(LookAlike {
                            member: index,
                            beneficiary: candidate.id.clone(),
                            matches,
                        });
                    }
                }
                mine.people.push((candidate.clone(), match_key));
                if let Some(key) = nid_key(&candidate) {
                    people.push((key, candidate.clone()));
                }
                candidate
            }
        };
        let (number, own) = match (&principal_coverage, &member.own_number) {
            (None, _) => (household.member_number.as_str(), true),
            (Some(_), Some(own)) => (own.as_str(), true),
            (Some(_), None) => (household.member_number.as_str(), false),
        };
        let pair = (beneficiary.id.clone(), product.clone());
        if known.covered.contains(&pair) || covered.contains(&pair) {
            return Err(member_at_fault("already_covered", index));
        }
        let key = member_number_key(number);
        if own && (known.holders.contains_key(&key) || numbers.iter().any(|(n, _)| *n == key)) {
            return Err(member_at_fault("member_number_taken", index));
        }
        let coverage = new_coverage(
            ctx,
            household,
            &beneficiary.id,
            member.relationship,
            number,
            principal_coverage.as_deref(),
        );
        mine.events
            .push(ctx.audit("coverage.created", "coverage", &coverage.id));
        if principal_coverage.is_none() {
            principal_coverage = Some(coverage.id.clone());
        }
        if own {
            numbers.push((key, beneficiary.clone()));
        }
        covered.push(pair);
        mine.coverages.push((coverage, own));
        members.push(beneficiary);
    }
    // A later household of the group under one of these numbers is this one posted twice.
    let root = principal_coverage.unwrap_or_default();
    known
        .roots
        .extend(numbers.iter().map(|(number, _)| (number.clone(), root.clone())));
    known.households.insert(
        root.clone(),
        StoredHousehold {
            coverage: root,
            product: product.clone(),
            terminated: false,
            members,
        },
    );
    known.holders.extend(numbers);
    known.people.extend(people);
    known.covered.extend(covered);
    for (person, match_key) in &mine.people {
        known
            .created
            .entry((match_key.clone(), person.sex.as_str().to_owned()))
            .or_default()
            .push(person.clone());
    }
    plan.people.append(&mut mine.people);
    plan.coverages.append(&mut mine.coverages);
    plan.events.append(&mut mine.events);
    Ok(Registered::Created(alikes))
}

async fn write_plan(tx: &mut Tx, ctx: &WriteContext, plan: &Plan) -> Result<(), StoreError> {
    for chunk in plan.people.chunks(INSERT_CHUNK) {
        let mut q = sqlx::QueryBuilder::<Db>::new(
            "INSERT INTO beneficiaries (id, nid_country, nid_type, nid_value, family_name, given_names, match_key, \
             sex, birth_date, birth_date_precision, phone, region, district, commune, created_at) ",
        );
        q.push_values(chunk, |mut row, (b, match_key)| {
            let nid = b.national_id.as_ref();
            let locality = b.locality.as_ref();
            row.push_bind(b.id.clone())
                .push_bind(nid.map(|n| n.country.clone()))
                .push_bind(nid.map(|n| n.id_type.clone()))
                .push_bind(nid.map(|n| n.value.clone()))
                .push_bind(b.family_name.clone())
                .push_bind(b.given_names.clone())
                .push_bind(match_key.clone())
                .push_bind(b.sex.as_str())
                .push_bind(b.birth_date)
                .push_bind(b.birth_date_precision.as_str())
                .push_bind(b.phone.clone())
                .push_bind(locality.map(|l| l.region.clone()))
                .push_bind(locality.map(|l| l.district.clone()))
                .push_bind(locality.map(|l| l.commune.clone()))
                .push_bind(b.created_at);
        });
        q.build().execute(&mut **tx).await.map_err(db_err)?;
    }
    for chunk in plan.coverages.chunks(INSERT_CHUNK) {
        let mut q = sqlx::QueryBuilder::<Db>::new(
            "INSERT INTO coverages (id, beneficiary, product, organization, layer, member_number, own_number, \
             relationship, principal_coverage, start_date, end_date, status, paid_through, registered_paid_through, \
             version, created_at, updated_at) ",
        );
        q.push_values(chunk, |mut row, (c, own)| {
            row.push_bind(c.id.clone())
                .push_bind(c.beneficiary.clone())
                .push_bind(c.product.clone())
                .push_bind(c.organization.clone())
                .push_bind(c.layer.as_str())
                .push_bind(c.member_number.clone())
                .push_bind(*own)
                .push_bind(c.relationship.as_str())
                .push_bind(c.principal_coverage.clone())
                .push_bind(c.start_date)
                .push_bind(c.end_date)
                .push_bind(c.status.as_str())
                .push_bind(c.paid_through)
                .push_bind(c.paid_through)
                .push_bind(i64::from(c.version))
                .push_bind(ctx.at)
                .push_bind(ctx.at);
        });
        q.build().execute(&mut **tx).await.map_err(db_err)?;
    }
    Ok(())
}

/// Each household in its own savepoint, the single registration's way.
async fn one_by_one(
    tx: &mut Tx,
    ctx: &WriteContext,
    households: &[NewHousehold],
    skip_existing: bool,
) -> Result<(Vec<HouseholdOutcome>, Vec<NewAuditEvent>), StoreError> {
    let mut events = Vec::new();
    let mut outcomes = Vec::with_capacity(households.len());
    for household in households {
        let mut own_events = Vec::new();
        // A household that lost a deadlock to a concurrent writer (the group fell back here for
        // that reason, often) is tried once more before its failure is reported.
        let mut tries = 0;
        let result = loop {
            tries += 1;
            own_events.clear();
            savepoint(tx, "SAVEPOINT household").await?;
            match register_in(tx, ctx, household, skip_existing, &mut own_events).await {
                Err(StoreError::Contention(_)) if tries < 2 => {
                    savepoint(tx, "ROLLBACK TO SAVEPOINT household").await?;
                    savepoint(tx, "RELEASE SAVEPOINT household").await?;
                }
                other => break other,
            }
        };
        // A skipped household's comparison is read inside its savepoint too: should it fail,
        // that household fails, not the group.
        let outcome = match result {
            Ok(registration) if registration.skipped => {
                let stored = match stored_household(tx, &ctx.organization, &household.member_number).await {
                    Ok(stored) => registered_of(tx, household).await.map(|people| (stored, people)),
                    Err(e) => Err(e),
                };
                match stored {
                    Ok((Some(stored), people)) => skipped_household(&stored, household, &people),
                    Ok((None, _)) => Err(StoreError::Internal("a skipped household is not stored".into())),
                    Err(e) => Err(e),
                }
            }
            Ok(registration) => Ok(Registered::Created(
                registration
                    .members
                    .into_iter()
                    .enumerate()
                    .filter(|(_, m)| !m.possible_duplicates.is_empty())
                    .map(|(member, m)| LookAlike {
                        member,
                        beneficiary: m.beneficiary.id,
                        matches: m.possible_duplicates,
                    })
                    .collect(),
            )),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(registered) => {
                savepoint(tx, "RELEASE SAVEPOINT household").await?;
                events.append(&mut own_events);
                outcomes.push(Ok(registered));
            }
            Err(StoreError::Unavailable(e)) => return Err(StoreError::Unavailable(e)),
            Err(e) => {
                savepoint(tx, "ROLLBACK TO SAVEPOINT household").await?;
                savepoint(tx, "RELEASE SAVEPOINT household").await?;
                // `register_in` names the member at fault in its conflicts.
                outcomes.push(Err(e));
            }
        }
    }
    Ok((outcomes, events))
}

async fn savepoint(tx: &mut Tx, statement: &'static str) -> Result<(), StoreError> {
    sqlx::query(statement).execute(&mut **tx).await.map_err(db_err)?;
    Ok(())
}

/// The group, decided in memory and written in a few statements; household by household when
/// those writes fail. Returns the outcomes and the group's audit events, which the caller
/// chains last in its transaction (`chain_events` holds the chain's head until the commit).
async fn register_group(
    tx: &mut Tx,
    ctx: &WriteContext,
    households: &[NewHousehold],
    skip_existing: bool,
) -> Result<(Vec<HouseholdOutcome>, Vec<NewAuditEvent>), StoreError> {
    let mut known = read_known(tx, ctx, households, skip_existing).await?;
    let mut plan = Plan::default();
    let outcomes: Vec<HouseholdOutcome> = households
        .iter()
        .map(|h| decide(ctx, h, skip_existing, &mut known, &mut plan))
        .collect();
    savepoint(tx, "SAVEPOINT bulk_group").await?;
    match write_plan(tx, ctx, &plan).await {
        Ok(()) => {
            savepoint(tx, "RELEASE SAVEPOINT bulk_group").await?;
            Ok((outcomes, plan.events))
        }
        Err(StoreError::Unavailable(e)) => Err(StoreError::Unavailable(e)),
        Err(e) => {
            tracing::info!(error = %e, "a bulk group met a concurrent change; registering it household by household");
            savepoint(tx, "ROLLBACK TO SAVEPOINT bulk_group").await?;
            savepoint(tx, "RELEASE SAVEPOINT bulk_group").await?;
            one_by_one(tx, ctx, households, skip_existing).await
        }
    }
}
