// The eligibility read path, shared by both databases through `include!` like `shared.rs`.
// The hot path of the service: one statement per check, an index behind every join, and
// product versions parsed once per process (they never change once written).

use passerelle_domain::money::Xof;
use passerelle_domain::ports::{CoverageFacts, EligibilityFacts, EligibilityStore, PersonKey};

#[derive(sqlx::FromRow)]
struct FactsRow {
    person_id: String,
    birth_date: NaiveDate,
    birth_date_precision: String,
    #[sqlx(flatten)]
    coverage: OptionalCoverageRow,
    principal_paid_through: Option<NaiveDate>,
    product_version: Option<i64>,
    used_xof: Option<i64>,
}

#[derive(sqlx::FromRow)]
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

const FACTS_SELECT: &str = "SELECT b.id AS person_id, b.birth_date, b.birth_date_precision, \
     c.id, c.beneficiary, c.product, c.organization, c.layer, c.member_number, c.relationship, \
     c.principal_coverage, c.start_date, c.end_date, c.status, c.paid_through, c.version, \
     p.paid_through AS principal_paid_through, CAST(v.version AS BIGINT) AS product_version, \
     u.used_xof \
     FROM beneficiaries b \
     LEFT JOIN coverages c ON c.beneficiary = b.id \
     LEFT JOIN coverages p ON p.id = c.principal_coverage \
     LEFT JOIN product_versions v ON v.product_id = c.product AND v.version = \
       (SELECT max(x.version) FROM product_versions x WHERE x.product_id = c.product AND x.effective_from <= $1) \
     LEFT JOIN complementary_usage u ON u.coverage = c.id AND u.plan_year = $2 ";

fn facts_sql(key: &PersonKey) -> &'static str {
    use std::sync::OnceLock;
    static BY_ID: OnceLock<String> = OnceLock::new();
    static BY_NID: OnceLock<String> = OnceLock::new();
    static BY_MEMBER: OnceLock<String> = OnceLock::new();
    match key {
        PersonKey::Id(_) => BY_ID.get_or_init(|| format!("{FACTS_SELECT} WHERE b.id = $3")),
        PersonKey::NationalId(_) => BY_NID.get_or_init(|| {
            format!("{FACTS_SELECT} WHERE b.nid_country = $3 AND b.nid_type = $4 AND b.nid_value = $5")
        }),
        PersonKey::Member { .. } => BY_MEMBER.get_or_init(|| {
            format!(
                "{FACTS_SELECT} WHERE b.id = (SELECT m.beneficiary FROM coverages m \
                 WHERE m.organization = $3 AND m.member_number = $4 AND m.own_number)"
            )
        }),
    }
}

impl This {
    /// A product version, parsed once per process: versions never change once written, so the
    /// facts query names the version and only a version this process has not seen is read.
    async fn product_version(
        &self,
        pool: &sqlx::Pool<Db>,
        id: &str,
        version: i64,
    ) -> Result<Arc<ProductVersion>, StoreError> {
        let key = (id.to_owned(), version);
        if let Some(found) = self.products.read().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(found);
        }
        let row: BodyRow = sqlx::query_as("SELECT body FROM product_versions WHERE product_id = $1 AND version = $2")
            .bind(id)
            .bind(version)
            .fetch_one(pool)
            .await
            .map_err(db_err)?;
        let parsed = Arc::new(product_from(row)?);
        if let Ok(mut m) = self.products.write() {
            m.insert(key, parsed.clone());
        }
        Ok(parsed)
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
        let query = sqlx::query_as::<_, FactsRow>(facts_sql(key))
            .bind(service_date)
            .bind(service_date.year());
        let query = match key {
            PersonKey::Id(id) => query.bind(id.clone()),
            PersonKey::NationalId(n) => query
                .bind(n.country.clone())
                .bind(n.id_type.clone())
                .bind(n.value.clone()),
            PersonKey::Member {
                organization,
                member_number,
            } => query.bind(organization.clone()).bind(member_number.clone()),
        };
        let pool = if from_primary {
            &self.write
        } else {
            &self.eligibility_pool
        };
        let rows = query.fetch_all(pool).await.map_err(db_err)?;
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
                Some(version) => Some(self.product_version(pool, &coverage.product, version).await?),
                None => None,
            };
            facts.coverages.push(CoverageFacts {
                coverage,
                product,
                principal_paid_through: row.principal_paid_through,
                complementary_used: Xof(row.used_xof.unwrap_or(0)),
            });
        }
        // In id order, as every listing is; sorted here rather than by the database, which would
        // add a sort step to the hottest statement.
        facts.coverages.sort_by(|a, b| a.coverage.id.cmp(&b.coverage.id));
        Ok(Some(facts))
    }
}
