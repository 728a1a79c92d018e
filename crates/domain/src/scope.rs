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

    /// Parses a space-separated scope claim; unknown scopes are ignored, as OAuth allows.
    pub fn parse_list(s: &str) -> Vec<Scope> {
        s.split_ascii_whitespace().filter_map(Scope::parse).collect()
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
    }
}
