// The eligibility read path, shared by both databases through `include!` like `shared.rs`.
// The hot path of the service: on PostgreSQL one statement answers every check (and claim)
// asking at the same moment; on SQLite a check reads in place (`sqlite_facts.rs`) and claims
// batch. An index is behind every join, and product versions are parsed once per process (they
// never change once written).

use std::borrow::Cow;

use passerelle_domain::beneficiary::births_agree;
use passerelle_domain::eligibility::PrincipalStanding;
use passerelle_domain::money::Xof;
use passerelle_domain::ports::{CoverageFacts, EligibilityFacts, EligibilityStore, PersonKey, AMBIGUOUS_PERSON};
use passerelle_domain::registration::member_number_key;

struct FactsRow {
    person_id: String,
    birth_date: NaiveDate,
    birth_date_precision: String,
    coverage: OptionalCoverageRow,
    principal_paid_through: Option<NaiveDate>,
    principal_status: Option<String>,
    principal_end_date: Option<NaiveDate>,
    product_version: Option<i64>,
    used_xof: Option<i64>,
    latest_version: Option<i64>,
}

struct OptionalCoverageRow {
    id: Option<String>,
    beneficiary: Option<String>,
    product: Option<String>,
    organization: Option<String>,
    layer: Option<String>,
    member_number: Option<String>,
    relationship: Option<String>,
    principal_coverage: Option<String>,
    start_date: Option<NaiveDate>,
    end_date: Option<NaiveDate>,
    status: Option<String>,
    paid_through: Option<NaiveDate>,
    version: Option<i64>,
}

impl OptionalCoverageRow {
    fn into_row(self) -> Option<CoverageRow> {
        Some(CoverageRow {
            id: self.id?,
            beneficiary: self.beneficiary?,
            product: self.product?,
            organization: self.organization?,
            layer: self.layer?,
            member_number: self.member_number?,
            relationship: self.relationship?,
            principal_coverage: self.principal_coverage,
            start_date: self.start_date?,
            end_date: self.end_date,
            status: self.status?,
            paid_through: self.paid_through,
            version: self.version?,
        })
    }
}

/// The facts of one person and their coverages; `k` names the key being answered (its number
/// `n`, service date `day` and `plan_year`, and the person's key columns `k1`..`k3`). The product
/// version in force is read by number only; its body comes from [`This::product_version`].
const FACTS_COLUMNS: &str = "CAST(k.n AS BIGINT) AS n, b.id AS person_id, b.birth_date, b.birth_date_precision, \
     c.id, c.beneficiary, c.product, c.organization, c.layer, c.member_number, c.relationship, \
     c.principal_coverage, c.start_date, c.end_date, c.status, c.paid_through, c.version, \
     p.paid_through AS principal_paid_through, p.status AS principal_status, \
     p.end_date AS principal_end_date, \
          CAST((SELECT max(x.version) FROM product_versions x WHERE x.product_id = c.product \
       AND x.effective_from <= k.day) AS BIGINT) AS product_version, \
     u.used_xof, \
     CAST((SELECT r.current_version FROM products r WHERE r.id = c.product) AS BIGINT) AS latest_version";

const FACTS_JOINS: &str = " LEFT JOIN coverages c ON c.beneficiary = b.id \
     LEFT JOIN coverages p ON p.id = c.principal_coverage \
     LEFT JOIN ceiling_usage u ON u.beneficiary = c.beneficiary AND u.product = c.product \
     AND u.plan_year = k.plan_year";

/// How a batch names its people, one statement text per way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Id,
    NationalId,
    Member,
}

impl KeyKind {
    fn of(key: &PersonKey) -> KeyKind {
        match key {
            // Resolved to an id before any facts are read (`household_member`); one that came
            // here would name no one (no id column given).
            PersonKey::Id(_) | PersonKey::MemberBorn { .. } => KeyKind::Id,
            PersonKey::NationalId(_) => KeyKind::NationalId,
            PersonKey::Member { .. } => KeyKind::Member,
        }
    }

    /// The key's columns, `k1`..`k3`. A member number is given folded (`member_number_key`),
    /// which the SQL compares with `lower` of the stored one: folding the caller's text in Rust
    /// keeps both databases alike, where PostgreSQL's `lower` would also fold non-ASCII letters
    /// (`İ`, the Kelvin sign) that SQLite's leaves alone. Stored numbers are ASCII.
    fn columns(key: &PersonKey) -> [Option<Cow<'_, str>>; 3] {
        match key {
            PersonKey::Id(id) => [Some(Cow::Borrowed(id)), None, None],
            PersonKey::NationalId(n) => [
                Some(Cow::Borrowed(&n.country)),
                Some(Cow::Borrowed(&n.id_type)),
                Some(Cow::Borrowed(&n.value)),
            ],
            PersonKey::Member {
                organization,
                member_number,
            } => [
                Some(Cow::Borrowed(organization)),
                Some(Cow::Owned(member_number_key(member_number))),
                None,
            ],
            PersonKey::MemberBorn { .. } => [None, None, None],
        }
    }

    /// The join of the person on the key's columns.
    fn person(self) -> &'static str {
        match self {
            KeyKind::Id => "b.id = k.k1",
            KeyKind::NationalId => "b.nid_country = k.k1 AND b.nid_type = k.k2 AND b.nid_value = k.k3",
            // Member numbers ignore case; `lower(m.member_number)` is the unique index's expression.
            KeyKind::Member => {
                "b.id = (SELECT m.beneficiary FROM coverages m \
                 WHERE m.organization = k.k1 AND lower(m.member_number) = k.k2 AND m.own_number)"
            }
        }
    }

    fn slot(self) -> usize {
        match self {
            KeyKind::Id => 0,
            KeyKind::NationalId => 1,
            KeyKind::Member => 2,
        }
    }

    /// The facts statement for a batch of keys given as [`FACTS_KEYS`].
    fn sql(self) -> &'static str {
        use std::sync::OnceLock;
        static SQL: [OnceLock<String>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
        SQL[self.slot()].get_or_init(|| facts_sql(FACTS_KEYS, self))
    }
}

/// The facts statement for the keys `k` of `keys`, a row source with the columns `n`, `day`,
/// `plan_year`, `k1`, `k2` and `k3`.
fn facts_sql(keys: &str, kind: KeyKind) -> String {
    format!(
        "SELECT {FACTS_COLUMNS} FROM {keys} JOIN beneficiaries b ON {}{FACTS_JOINS}",
        kind.person()
    )
}

/// A key holding a NUL names no one (no stored text can hold it), and PostgreSQL would fail the
/// whole statement on it, and every check batched with it: answered as unknown without asking.
/// The API refuses such keys already; this keeps one caller's input from ever failing another's
/// check.
fn names_no_one(key: &PersonKey) -> bool {
    KeyKind::columns(key)
        .iter()
        .flatten()
        .any(|c| passerelle_domain::nul::contains_nul(c))
}

struct NumberedFactsRow {
    n: i64,
    facts: FactsRow,
}

/// A [`FactsRow`] read by position, in the order of [`FACTS_COLUMNS`] (the test in
/// `sqlite_facts.rs` holds the two together): `facts_row_at!(row.get)` with the row's accessor
/// by index (sqlx's `try_get`, rusqlite's `get`). By name, each of a row's 23 values costs a
/// search of the column names: a tenth of the service's instructions for a check on PostgreSQL
/// (callgrind).
macro_rules! facts_row_at {
    ($row:ident . $get:ident) => {
        FactsRow {
            person_id: $row.$get(1)?,
            birth_date: $row.$get(2)?,
            birth_date_precision: $row.$get(3)?,
            coverage: OptionalCoverageRow {
                id: $row.$get(4)?,
                beneficiary: $row.$get(5)?,
                product: $row.$get(6)?,
                organization: $row.$get(7)?,
                layer: $row.$get(8)?,
                member_number: $row.$get(9)?,
                relationship: $row.$get(10)?,
                principal_coverage: $row.$get(11)?,
                start_date: $row.$get(12)?,
                end_date: $row.$get(13)?,
                status: $row.$get(14)?,
                paid_through: $row.$get(15)?,
                version: $row.$get(16)?,
            },
            principal_paid_through: $row.$get(17)?,
            principal_status: $row.$get(18)?,
            principal_end_date: $row.$get(19)?,
            product_version: $row.$get(20)?,
            used_xof: $row.$get(21)?,
            latest_version: $row.$get(22)?,
        }
    };
}
#[allow(unused_imports)] // Only SQLite's in-place reader imports it.
pub(crate) use facts_row_at;

impl<'r> sqlx::FromRow<'r, <Db as sqlx::Database>::Row> for NumberedFactsRow {
    fn from_row(row: &'r <Db as sqlx::Database>::Row) -> Result<Self, sqlx::Error> {
        use sqlx::Row as _;
        Ok(NumberedFactsRow {
            n: row.try_get(0)?,
            facts: facts_row_at!(row.try_get),
        })
    }
}

/// One front desk's question: who, and on which day.
type FactsKey = (PersonKey, NaiveDate);

/// Reads the facts of a batch of people from one pool: one statement per way of naming them.
struct FactsReader {
    pool: sqlx::Pool<Db>,
}

#[async_trait]
impl crate::batch_loader::BatchRead for FactsReader {
    type Key = FactsKey;
    type Value = Vec<FactsRow>;

    async fn read(&self, keys: Vec<FactsKey>) -> Result<Vec<Vec<FactsRow>>, StoreError> {
        let mut answers: Vec<Vec<FactsRow>> = keys.iter().map(|_| Vec::new()).collect();
        for kind in [KeyKind::Id, KeyKind::NationalId, KeyKind::Member] {
            let picked: Vec<(i64, &FactsKey)> = keys
                .iter()
                .enumerate()
                .filter(|(_, (key, _))| KeyKind::of(key) == kind && !names_no_one(key))
                .map(|(n, key)| (n as i64, key))
                .collect();
            if picked.is_empty() {
                continue;
            }
            let query = bind_facts_keys(sqlx::query_as::<_, NumberedFactsRow>(kind.sql()), &picked);
            for row in query.fetch_all(&self.pool).await.map_err(db_err)? {
                let slot = usize::try_from(row.n)
                    .ok()
                    .and_then(|n| answers.get_mut(n))
                    .ok_or_else(|| corrupt("facts row for a key not asked"))?;
                slot.push(row.facts);
            }
        }
        Ok(answers)
    }
}

/// Concurrent facts reads per pool: the eligibility pool (checks) and the primary (claims, which
/// must see their own writes).
struct FactsLoaders {
    eligibility: crate::batch_loader::Loader<FactsReader>,
    primary: crate::batch_loader::Loader<FactsReader>,
}

/// Most keys in one facts statement.
const FACTS_BATCH: usize = 64;

impl FactsLoaders {
    /// Each loader reads from its pool, with at most its number of statements at once (the
    /// backend's `FACTS_IN_FLIGHT`).
    fn start(primary: (&sqlx::Pool<Db>, usize), eligibility: (&sqlx::Pool<Db>, usize)) -> FactsLoaders {
        let loader = |(pool, in_flight): (&sqlx::Pool<Db>, usize)| {
            crate::batch_loader::Loader::start(
                FactsReader { pool: pool.clone() },
                FACTS_BATCH,
                in_flight,
                YIELD_TO_GATHER,
            )
        };
        FactsLoaders {
            eligibility: loader(eligibility),
            primary: loader(primary),
        }
    }
}

impl This {
    /// A product version, parsed once per process: versions never change once written, so the
    /// facts query names the version and only a version this process has not seen is read. From
    /// `read`, never the replica: the primary has every version a replica names.
    async fn product_version(&self, id: &str, version: i64) -> Result<Arc<ProductVersion>, StoreError> {
        let key = (id.to_owned(), version);
        if let Some(found) = self.products.read().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(found);
        }
        let row: BodyRow = sqlx::query_as("SELECT body FROM product_versions WHERE product_id = $1 AND version = $2")
            .bind(id)
            .bind(version)
            .fetch_one(&self.read)
            .await
            .map_err(db_err)?;
        let parsed = Arc::new(product_from(row)?);
        if let Ok(mut m) = self.products.write() {
            m.insert(key, parsed.clone());
        }
        Ok(parsed)
    }
}

/// The people covered under a member number: whoever holds it as their own, and the dependants
/// of that household who have none of their own (they carry the household's), each with whether
/// that coverage is live (not terminated, nor its principal's). Both branches read an index: the
/// folded number's, then the dependants' by their principal's coverage.
const HOUSEHOLD_BY_NUMBER: &str = "SELECT b.id, b.birth_date, b.birth_date_precision, \
     CAST(CASE WHEN m.status <> 'terminated' THEN 1 ELSE 0 END AS BIGINT) AS live FROM coverages m \
     JOIN beneficiaries b ON b.id = m.beneficiary \
     WHERE m.organization = $1 AND lower(m.member_number) = $2 AND m.own_number \
     UNION ALL SELECT b.id, b.birth_date, b.birth_date_precision, \
     CAST(CASE WHEN c.status <> 'terminated' AND m.status <> 'terminated' THEN 1 ELSE 0 END AS BIGINT) \
     FROM coverages m \
     JOIN coverages c ON c.principal_coverage = m.id AND NOT c.own_number \
     JOIN beneficiaries b ON b.id = c.beneficiary \
     WHERE m.organization = $1 AND lower(m.member_number) = $2 AND m.own_number";

impl This {
    /// The one person covered under the number who was born as given, those whose coverage is
    /// live first (of twins, one terminated, the other is meant); `None` when no one is, and the
    /// conflict `ambiguous_person` when several are (twins, say, neither with a number of
    /// their own).
    async fn household_member(
        &self,
        organization: &str,
        member_number: &str,
        born: (NaiveDate, BirthDatePrecision),
    ) -> Result<Option<String>, StoreError> {
        let rows: Vec<(String, NaiveDate, String, i64)> = sqlx::query_as(HOUSEHOLD_BY_NUMBER)
            .bind(organization)
            .bind(member_number_key(member_number))
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        // Each person once, live if any of their coverages under the number is.
        let mut found: Vec<(String, bool)> = Vec::new();
        for (id, birth_date, precision, live) in rows {
            let precision = BirthDatePrecision::parse(&precision).ok_or_else(|| corrupt("birth date precision"))?;
            if !births_agree((birth_date, precision), born) {
                continue;
            }
            match found.iter_mut().find(|(known, _)| *known == id) {
                Some((_, was_live)) => *was_live |= live == 1,
                None => found.push((id, live == 1)),
            }
        }
        if found.len() > 1 && found.iter().any(|(_, live)| *live) {
            found.retain(|(_, live)| *live);
        }
        match found.len() {
            0 | 1 => Ok(found.pop().map(|(id, _)| id)),
            _ => Err(StoreError::Conflict {
                constraint: AMBIGUOUS_PERSON.into(),
            }),
        }
    }
}

#[async_trait]
impl EligibilityStore for This {
    async fn eligibility_facts(
        &self,
        key: &PersonKey,
        service_date: NaiveDate,
        from_primary: bool,
    ) -> Result<Option<EligibilityFacts>, StoreError> {
        let key = match key {
            PersonKey::MemberBorn {
                organization,
                member_number,
                birth_date,
                precision,
            } => match self
                .household_member(organization, member_number, (*birth_date, *precision))
                .await?
            {
                Some(id) => &PersonKey::Id(id),
                None => return Ok(None),
            },
            key => key,
        };
        let asked = (key.clone(), service_date);
        let rows = match &self.replica {
            _ if from_primary => self.facts.primary.load(asked).await?,
            None => self.eligibility_rows(asked).await?,
            Some(replica) if !replica.is_up() => self.facts.primary.load(asked).await?,
            Some(replica) => {
                // A replica gone silent answers nothing, not even an error: hence the timeout.
                let read = self.facts.eligibility.load(asked.clone());
                match tokio::time::timeout(replica.read_timeout(), read).await {
                    Ok(Ok(rows)) => rows,
                    // The replica failed where the primary may not: answer from the primary.
                    Ok(Err(StoreError::Unavailable(e))) => {
                        replica.mark_down(&e);
                        self.facts.primary.load(asked).await?
                    }
                    // A standby cancels a read that conflicts with the replay of the primary's
                    // changes (40001): the replica is up, this read goes to the primary.
                    Ok(Err(StoreError::Contention(_))) => self.facts.primary.load(asked).await?,
                    Ok(Err(e)) => return Err(e),
                    Err(_) => {
                        replica.mark_down("no answer within the read timeout");
                        self.facts.primary.load(asked).await?
                    }
                }
            }
        };
        let Some(first) = rows.first() else { return Ok(None) };
        let mut facts = EligibilityFacts {
            person: first.person_id.clone(),
            birth_date: first.birth_date,
            birth_date_precision: BirthDatePrecision::parse(&first.birth_date_precision)
                .ok_or_else(|| corrupt("birth date precision"))?,
            coverages: Vec::with_capacity(rows.len()),
        };
        for row in rows {
            let Some(coverage) = row.coverage.into_row() else {
                continue;
            };
            let coverage = Coverage::try_from(coverage)?;
            let product = match row.product_version {
                Some(version) => Some(self.product_version(&coverage.product, version).await?),
                None => None,
            };
            // The versions that may take effect after the service date are numbered above the
            // one in force (a lower number starting later was superseded); their bodies come
            // from the same cache. They only move a reason's `until`: when one cannot be read
            // (the primary out of reach for a version not cached yet), a check is answered
            // without any of them, since a missing one may be what supersedes the others, rather
            // than failed. A claim keeps its reasons, so it fails instead, and its retry reads
            // them whole.
            let mut later_versions = Vec::new();
            for version in row.product_version.unwrap_or(0) + 1..=row.latest_version.unwrap_or(0) {
                match self.product_version(&coverage.product, version).await {
                    Ok(body) => later_versions.push(body),
                    Err(e) if from_primary => return Err(e),
                    Err(e) => {
                        tracing::warn!(error = %e, version, "a later product version could not be read; until days ignore the later versions");
                        later_versions.clear();
                        break;
                    }
                }
            }
            facts.coverages.push(CoverageFacts {
                coverage,
                product,
                later_versions,
                principal_paid_through: row.principal_paid_through,
                principal: match row.principal_status {
                    Some(status) => Some(PrincipalStanding {
                        status: CoverageStatus::parse(&status).ok_or_else(|| corrupt("principal coverage status"))?,
                        end_date: row.principal_end_date,
                    }),
                    None => None,
                },
                complementary_used: Xof(row.used_xof.unwrap_or(0)),
            });
        }
        // In id order, as every listing is; sorted here rather than by the database, which would
        // add a sort step to the hottest statement.
        facts.coverages.sort_by(|a, b| a.coverage.id.cmp(&b.coverage.id));
        Ok(Some(facts))
    }
}
