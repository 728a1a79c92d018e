//! Who may do what: each action names the scope it needs and the organisation kinds that may
//! perform it. The API checks every request against this table, in one place.

use crate::organization::OrgKind;
use crate::scope::Scope;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    CreateOrganization,
    ReadOrganizations,
    ReadAuditEvents,
    VerifyAudit,
    ReadProducts,
    WriteProducts,
    ReadRegistry,
    Register,
    CreateCoverage,
    UpdateCoverage,
    UpdateBeneficiary,
    CheckEligibility,
    ReadBatches,
    SubmitClaim,
    ReadClaims,
    BaseAdjudicate,
    Adjudicate,
    CancelClaim,
    WriteSettlements,
    ReadSettlements,
    ManageWebhooks,
}

const ALL_KINDS: &[OrgKind] = &OrgKind::ALL;

impl Action {
    pub fn scope(self) -> Scope {
        match self {
            Action::CreateOrganization => Scope::Admin,
            Action::ReadOrganizations | Action::ReadProducts => Scope::RegistryRead,
            Action::ReadRegistry | Action::ReadBatches => Scope::RegistryRead,
            Action::SubmitClaim | Action::BaseAdjudicate | Action::CancelClaim => Scope::ClaimsSubmit,
            Action::ReadClaims | Action::ReadSettlements => Scope::ClaimsRead,
            Action::WriteSettlements => Scope::SettlementsWrite,
            Action::ManageWebhooks => Scope::WebhooksWrite,
            Action::Adjudicate => Scope::ClaimsAdjudicate,
            Action::CheckEligibility => Scope::EligibilityCheck,
            Action::WriteProducts
            | Action::Register
            | Action::CreateCoverage
            | Action::UpdateCoverage
            | Action::UpdateBeneficiary => Scope::RegistryWrite,
            Action::ReadAuditEvents | Action::VerifyAudit => Scope::AuditRead,
        }
    }

    pub fn kinds(self) -> &'static [OrgKind] {
        match self {
            Action::CreateOrganization => &[OrgKind::Operator],
            Action::ReadOrganizations | Action::ReadAuditEvents | Action::ReadProducts => ALL_KINDS,
            Action::ReadRegistry => ALL_KINDS,
            Action::WriteProducts | Action::UpdateCoverage | Action::UpdateBeneficiary => {
                &[OrgKind::Mutuelle, OrgKind::Scheme]
            }
            Action::Register => &[OrgKind::Mutuelle],
            Action::CreateCoverage => &[OrgKind::Scheme],
            Action::ReadBatches => &[OrgKind::Mutuelle, OrgKind::Operator, OrgKind::Auditor],
            Action::SubmitClaim | Action::CancelClaim => &[OrgKind::Provider, OrgKind::Scheme],
            Action::ReadClaims | Action::ManageWebhooks => ALL_KINDS,
            Action::BaseAdjudicate => &[OrgKind::Scheme],
            Action::Adjudicate | Action::WriteSettlements => &[OrgKind::Mutuelle],
            Action::ReadSettlements => &[
                OrgKind::Mutuelle,
                OrgKind::Provider,
                OrgKind::Operator,
                OrgKind::Auditor,
            ],
            Action::CheckEligibility => &[OrgKind::Provider, OrgKind::Mutuelle, OrgKind::Scheme],
            Action::VerifyAudit => &[OrgKind::Operator, OrgKind::Auditor],
        }
    }

    pub fn allows(self, kind: OrgKind, scopes: &[Scope]) -> Decision {
        if !scopes.contains(&self.scope()) {
            Decision::MissingScope(self.scope())
        } else if !self.kinds().contains(&kind) {
            Decision::WrongKind
        } else {
            Decision::Allowed
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    MissingScope(Scope),
    WrongKind,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_is_necessary_but_not_sufficient() {
        let admin = [Scope::Admin];
        assert_eq!(
            Action::CreateOrganization.allows(OrgKind::Operator, &admin),
            Decision::Allowed
        );
        assert_eq!(
            Action::CreateOrganization.allows(OrgKind::Mutuelle, &admin),
            Decision::WrongKind
        );
        assert_eq!(
            Action::CreateOrganization.allows(OrgKind::Operator, &[Scope::RegistryRead]),
            Decision::MissingScope(Scope::Admin)
        );
        assert_eq!(
            Action::VerifyAudit.allows(OrgKind::Provider, &[Scope::AuditRead]),
            Decision::WrongKind
        );
    }
}
