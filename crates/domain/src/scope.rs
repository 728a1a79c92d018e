//! OAuth scopes a token may carry (API.md §2).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scope {
    #[serde(rename = "admin")]
    Admin,
    #[serde(rename = "registry:read")]
    RegistryRead,
    #[serde(rename = "registry:write")]
    RegistryWrite,
    #[serde(rename = "eligibility:check")]
    EligibilityCheck,
    #[serde(rename = "claims:submit")]
    ClaimsSubmit,
    #[serde(rename = "claims:read")]
    ClaimsRead,
    #[serde(rename = "claims:adjudicate")]
    ClaimsAdjudicate,
    #[serde(rename = "settlements:write")]
    SettlementsWrite,
    #[serde(rename = "webhooks:write")]
    WebhooksWrite,
    #[serde(rename = "audit:read")]
    AuditRead,
}

impl Scope {
    pub const ALL: [Scope; 10] = [
        Scope::Admin,
        Scope::RegistryRead,
        Scope::RegistryWrite,
        Scope::EligibilityCheck,
        Scope::ClaimsSubmit,
        Scope::ClaimsRead,
        Scope::ClaimsAdjudicate,
        Scope::SettlementsWrite,
        Scope::WebhooksWrite,
        Scope::AuditRead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Admin => "admin",
            Scope::RegistryRead => "registry:read",
            Scope::RegistryWrite => "registry:write",
            Scope::EligibilityCheck => "eligibility:check",
            Scope::ClaimsSubmit => "claims:submit",
            Scope::ClaimsRead => "claims:read",
            Scope::ClaimsAdjudicate => "claims:adjudicate",
            Scope::SettlementsWrite => "settlements:write",
            Scope::WebhooksWrite => "webhooks:write",
            Scope::AuditRead => "audit:read",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == s)
    }

    /// The scopes of an OAuth `scope` claim: separated by spaces (RFC 6749 §3.3), so that
    /// `registry:read\tadmin` is one unknown scope, not two. Unknown scopes are ignored.
    pub fn parse_list(s: &str) -> Vec<Scope> {
        s.split(' ').filter_map(Scope::parse).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scope_round_trips() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
        }
        assert_eq!(
            Scope::parse_list("admin  audit:read bogus"),
            vec![Scope::Admin, Scope::AuditRead]
        );
        // Only spaces separate scopes: a tab or a line break glues two into one unknown scope.
        for glued in [
            "registry:read\tadmin",
            "registry:read\nadmin",
            "registry:read\u{A0}admin",
        ] {
            assert_eq!(Scope::parse_list(glued), vec![], "{glued:?}");
        }
        assert_eq!(Scope::parse_list(" admin "), vec![Scope::Admin]);
    }
}
