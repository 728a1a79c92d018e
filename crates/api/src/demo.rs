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
        OrgKind::Operator => "admin registry:read claims:read audit:read",
        OrgKind::Mutuelle => {
            "registry:read registry:write eligibility:check claims:read claims:adjudicate settlements:write webhooks:write audit:read"
        }
        OrgKind::Scheme => "registry:read registry:write eligibility:check claims:submit claims:read webhooks:write audit:read",
        OrgKind::Provider => "registry:read eligibility:check claims:submit claims:read webhooks:write",
        OrgKind::Auditor => "registry:read claims:read audit:read",
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
        };
        state
            .store
            .ensure_organization(&ctx, &org)
            .await
            .map_err(|e| format!("cannot seed demo data: {e}"))?;
        tokens.push(((*id).to_owned(), *kind, token(state, secret, id, *kind)?));
    }
    Ok(tokens)
}

fn token(state: &AppState, secret: &Secret, org: &str, kind: OrgKind) -> Result<String, String> {
    let now = state.clock.now().timestamp();
    mint_dev_token(
        secret,
        &state.config,
        org,
        &format!("demo-{org}"),
        scopes_for(kind),
        DEMO_TTL_SECONDS,
        now,
    )
}
