//! `serve --demo`: clearly-labelled demo organisations and a ready token for each.

use passerelle_domain::organization::{Country, OrgId, OrgKind, Organization};
use passerelle_domain::ports::WriteContext;

use crate::auth::mint_dev_token;
use crate::config::Secret;
use crate::state::AppState;

/// (id, kind, country, name). Every name says DEMO: nobody should mistake them for real bodies.
pub const DEMO_ORGANIZATIONS: &[(&str, OrgKind, &str, &str)] = &[
    (
        "demo-tg-inam",
        OrgKind::Scheme,
        "TG",
        "[DEMO] Institut national d'assurance maladie (AMU Togo)",
    ),
    (
        "demo-mut-tsevie",
        OrgKind::Mutuelle,
        "TG",
        "[DEMO] Mutuelle de santé de Tsévié",
    ),
    (
        "demo-mut-segou",
        OrgKind::Mutuelle,
        "ML",
        "[DEMO] Mutuelle de santé de Ségou",
    ),
    (
        "demo-mut-thies",
        OrgKind::Mutuelle,
        "SN",
        "[DEMO] Mutuelle de santé communautaire de Thiès",
    ),
    (
        "demo-cms-tsevie",
        OrgKind::Provider,
        "TG",
        "[DEMO] Centre médico-social de Tsévié",
    ),
    ("demo-cscom-segou", OrgKind::Provider, "ML", "[DEMO] CSCom de Ségou"),
    (
        "demo-poste-thies",
        OrgKind::Provider,
        "SN",
        "[DEMO] Poste de santé de Thiès",
    ),
    ("demo-auditor", OrgKind::Auditor, "SN", "[DEMO] Cabinet d'audit"),
];

/// The scopes a demo token of each kind carries: everything that kind may use.
pub fn scopes_for(kind: OrgKind) -> &'static str {
    match kind {
                OrgKind::Operator => "admin registry:read claims:read webhooks:write audit:read",
        OrgKind::Mutuelle => {
            "registry:read registry:write eligibility:check claims:read claims:adjudicate settlements:write webhooks:write audit:read"
        }
        OrgKind::Scheme => "registry:read registry:write eligibility:check claims:submit claims:read webhooks:write audit:read",
        OrgKind::Provider => "registry:read eligibility:check claims:submit claims:read webhooks:write",
                OrgKind::Auditor => "registry:read claims:read webhooks:write audit:read",
    }
}

pub const DEMO_TTL_SECONDS: i64 = 24 * 3600;

/// Seeds the demo organisations (idempotent) and returns a token per organisation, operator first.
pub async fn seed(state: &AppState, secret: &Secret) -> Result<Vec<(String, OrgKind, String)>, String> {
    let now = state.clock.now();
    let ctx = WriteContext {
        organization: state.config.operator_org.to_string(),
        subject: "passerelle-demo".into(),
        request_id: "demo-seed".into(),
        trace_parent: None,
        at: now,
        idempotency: None,
    };
    let mut tokens = Vec::new();
    let operator = state.config.operator_org.to_string();
    tokens.push((
        operator.clone(),
        OrgKind::Operator,
        token(state, secret, &operator, OrgKind::Operator)?,
    ));
    for (id, kind, country, name) in DEMO_ORGANIZATIONS {
        let org = Organization {
            id: OrgId::parse(id).ok_or("bad demo id")?,
            kind: *kind,
            country: Country::parse(country).ok_or("bad demo country")?,
            name: (*name).to_owned(),
            registration_number: None,
            created_at: now,
            deactivated_at: None,
        };
        state
            .store
            .ensure_organization(&ctx, &org)
            .await
            .map_err(|e| format!("cannot seed demo data: {e}"))?;
        tokens.push(((*id).to_owned(), *kind, token(state, secret, id, *kind)?));
    }
    // Replicas started at once on a new database seed at once: what one of them lost to
    // another's write (the same product, the same household) is there once the other commits,
    // and a later pass skips it.
    let mut tries = 0;
    while let Err(e) = seed_registry(state).await {
        tries += 1;
        if tries == 5 {
            return Err(e);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50 * tries)).await;
    }
    Ok(tokens)
}

fn token(state: &AppState, secret: &Secret, org: &str, kind: OrgKind) -> Result<String, String> {
    let now = state.clock.now().timestamp();
    mint_dev_token(
        secret,
        &state.config,
        org,
        // The organisation's ids already start with `demo-`.
        &format!("{org}-user"),
        scopes_for(kind),
        DEMO_TTL_SECONDS,
        now,
    )
}

/// (product id, owner, layer, name, rules as (care level, category, rate), ceiling, waiting days).
type DemoProduct = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [DemoRule],
    Option<i64>,
    i64,
);
type DemoRule = (Option<&'static str>, Option<&'static str>, i64);

const DEMO_PRODUCTS: &[DemoProduct] = &[
    (
        "demo-amu-tg",
        "demo-tg-inam",
        "base",
        "[DEMO] AMU Togo — régime de base",
        &[(None, None, 8000)],
        None,
        0,
    ),
    (
        "demo-tsevie-famille",
        "demo-mut-tsevie",
        "complementary",
        "[DEMO] Tsévié — formule famille (ticket modérateur)",
        &[(None, Some("pharmacy"), 7000), (None, None, 10000)],
        Some(150_000),
        90,
    ),
    (
        "demo-segou-base",
        "demo-mut-segou",
        "primary",
        "[DEMO] Ségou — paquet de base",
        &[
            (Some("health_post"), None, 8000),
            (Some("health_center"), None, 7500),
            (None, Some("maternity"), 7000),
        ],
        Some(100_000),
        60,
    ),
    (
        "demo-thies-cmu",
        "demo-mut-thies",
        "primary",
        "[DEMO] Thiès — paquet CMU communautaire",
        &[
            (Some("health_post"), None, 8000),
            (Some("health_center"), None, 8000),
            (Some("hospital"), None, 5000),
        ],
        Some(200_000),
        90,
    ),
];

/// (relationship, national id, family name, given names, sex, birth date or year).
type DemoPerson = (
    &'static str,
    Option<(&'static str, &'static str, &'static str)>,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

/// (mutuelle, product, member number, people).
const DEMO_HOUSEHOLDS: &[(&str, &str, &str, &[DemoPerson])] = &[
    (
        "demo-mut-tsevie",
        "demo-tsevie-famille",
        "DEMO-TSV-0001",
        &[
            (
                "principal",
                Some(("TG", "NIU", "900000000001")),
                "Agbéko",
                "Kossi",
                "M",
                "1984-03-12",
            ),
            ("spouse", None, "Agbéko", "Akossiwa Élise", "F", "1988"),
            ("child", None, "Agbéko", "Yao", "M", "2015-07-30"),
        ],
    ),
    (
        "demo-mut-segou",
        "demo-segou-base",
        "DEMO-SEG-0001",
        &[
            (
                "principal",
                Some(("ML", "NINA", "90000000000001A")),
                "Traoré",
                "Moussa",
                "M",
                "1979-11-02",
            ),
            ("spouse", None, "Coulibaly", "Fatoumata", "F", "1985"),
            ("child", None, "Traoré", "Aïssata", "F", "2019-02-14"),
        ],
    ),
    (
        "demo-mut-thies",
        "demo-thies-cmu",
        "DEMO-THS-0001",
        &[
            (
                "principal",
                Some(("SN", "CNI", "9000000000001")),
                "Ndiaye",
                "Mame Diarra",
                "F",
                "1990-05-21",
            ),
            ("child", None, "Sarr", "Ousmane", "M", "2016-09-03"),
        ],
    ),
];

fn demo_err(e: impl std::fmt::Display) -> String {
    format!("cannot seed demo data: {e}")
}

/// Demo data that its own rules refuse: a mistake in this file.
fn demo_invalid(e: impl std::fmt::Debug) -> String {
    format!("the demo data is not valid: {e:?}")
}

fn demo_ctx(org: &str, at: chrono::DateTime<chrono::Utc>) -> WriteContext {
    WriteContext {
        organization: org.to_owned(),
        subject: "passerelle-demo".into(),
        request_id: "demo-seed".into(),
        trace_parent: None,
        at,
        idempotency: None,
    }
}

/// Products and a household per country, created once: fixed product ids and member numbers
/// make the seeding idempotent across restarts.
async fn seed_registry(state: &AppState) -> Result<(), String> {
    use chrono::{Datelike, NaiveDate};
    use passerelle_domain::beneficiary::{BeneficiaryDraft, NationalId, NationalIdDraft};
    use passerelle_domain::coverage::Relationship;
    use passerelle_domain::ports::{NewHousehold, NewMember, PersonRef};
    use passerelle_domain::product::{ProductDraft, RuleDraft};

    let now = state.clock.now();
    let today = state.clock.today();
    // A year back, so that every waiting period is over whatever the day of the first start,
    // and paid through the end of next year: the README's checks answer `eligible` for a year
    // or more after seeding (households seeded once are not touched again).
    let start = today.checked_sub_months(chrono::Months::new(12)).unwrap_or(today);
    for (id, owner, layer, name, rules, ceiling, waiting) in DEMO_PRODUCTS {
        if !state.store.product_versions(id).await.map_err(demo_err)?.is_empty() {
            continue;
        }
        let kind = if *layer == "base" {
            OrgKind::Scheme
        } else {
            OrgKind::Mutuelle
        };
        let draft = ProductDraft {
            layer: Some((*layer).to_owned()),
            name: Some((*name).to_owned()),
            rules: Some(
                rules
                    .iter()
                    .map(|(care_level, category, rate)| RuleDraft {
                        care_level: care_level.map(str::to_owned),
                        category: category.map(str::to_owned),
                        rate_bp: Some(*rate),
                    })
                    .collect(),
            ),
            annual_ceiling_xof: *ceiling,
            waiting_period_days: Some(*waiting),
            grace_period_days: Some(30),
            excluded_categories: Some(vec!["optical".to_owned()]),
            // A base affiliation is one person's: household rules are the mutuelles'.
            max_dependants: (kind == OrgKind::Mutuelle).then_some(10),
            child_max_age: (kind == OrgKind::Mutuelle).then_some(21),
            effective_from: Some("2024-01-01".to_owned()),
        };
        let valid = draft.validate(kind).map_err(demo_invalid)?;
        let version = valid.into_version((*id).to_owned(), (*owner).to_owned(), 1);
        state
            .store
            .create_product(&demo_ctx(owner, now), &version)
            .await
            .map_err(demo_err)?;
    }
    for (mutuelle, product, member_number, people) in DEMO_HOUSEHOLDS {
        let product = state
            .store
            .product_versions(product)
            .await
            .map_err(demo_err)?
            .pop()
            .ok_or("demo product missing")?;
        let mut members = Vec::new();
        for (relationship, nid, family, given, sex, birth) in people.iter() {
            let draft = BeneficiaryDraft {
                national_id: nid.map(|(c, t, v)| NationalIdDraft {
                    country: Some(c.to_owned()),
                    id_type: Some(t.to_owned()),
                    value: Some(v.to_owned()),
                }),
                family_name: Some((*family).to_owned()),
                given_names: Some((*given).to_owned()),
                sex: Some((*sex).to_owned()),
                birth_date: Some((*birth).to_owned()),
                ..BeneficiaryDraft::default()
            };
            let person = draft.validate("", today).map_err(demo_invalid)?;
            let relationship = Relationship::parse(relationship).ok_or("bad demo relationship")?;
            members.push(NewMember {
                relationship,
                own_number: None,
                person,
            });
        }
        let household = NewHousehold {
            product,
            member_number: (*member_number).to_owned(),
            start_date: start,
            end_date: None,
            paid_through: NaiveDate::from_ymd_opt(today.year() + 1, 12, 31),
            members,
        };
        state
            .store
            .register_household(&demo_ctx(mutuelle, now), &household, true)
            .await
            .map_err(demo_err)?;
    }
    // The Togolese principal is also an INAM affiliate: the base-then-complementary case.
    let base = state
        .store
        .product_versions("demo-amu-tg")
        .await
        .map_err(demo_err)?
        .pop()
        .ok_or("demo product missing")?;
    let nid = NationalId::parse("TG", "NIU", "900000000001", "").map_err(demo_invalid)?;
    if let Some(person) = state.store.find_by_national_id(&nid).await.map_err(demo_err)? {
        if !state.store.covers("demo-tg-inam", &person.id).await.map_err(demo_err)? {
            let household = NewHousehold {
                product: base,
                member_number: "DEMO-INAM-0001".to_owned(),
                start_date: NaiveDate::from_ymd_opt(2024, 1, 1).unwrap_or(start),
                end_date: None,
                paid_through: None,
                members: Vec::new(),
            };
            let ctx = demo_ctx("demo-tg-inam", now);
            state
                .store
                .create_coverage(&ctx, &PersonRef::Existing(person.id), &household)
                .await
                .map_err(demo_err)?;
        }
    }
    Ok(())
}
