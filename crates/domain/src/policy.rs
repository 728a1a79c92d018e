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

    /// Rows of API.md §2's tables (and bulk-registration.md for the jobs) that mutation testing
    /// cannot see: `scope()` and `kinds()` are matches over every action, so no mutant changes
    /// one row. Each row here is the scope an action needs and a kind the docs name as refused
    /// (403) or allowed.
    #[test]
    fn documented_permissions_hold() {
        use OrgKind::*;
        let cases = [
            // `registry:write`: registrations and batches, by mutuelles.
            (Action::Register, Scope::RegistryWrite, Mutuelle, Decision::Allowed),
            (Action::Register, Scope::RegistryWrite, Provider, Decision::WrongKind),
            // A job is read by its mutuelle, operators and auditors; providers and schemes,
            // which never read jobs, get 403.
            (Action::ReadBatches, Scope::RegistryRead, Auditor, Decision::Allowed),
            (Action::ReadBatches, Scope::RegistryRead, Operator, Decision::Allowed),
            (Action::ReadBatches, Scope::RegistryRead, Provider, Decision::WrongKind),
            (Action::ReadBatches, Scope::RegistryRead, Scheme, Decision::WrongKind),
            // A person's correction: operators, auditors and providers get 403.
            (
                Action::UpdateBeneficiary,
                Scope::RegistryWrite,
                Scheme,
                Decision::Allowed,
            ),
            (
                Action::UpdateBeneficiary,
                Scope::RegistryWrite,
                Operator,
                Decision::WrongKind,
            ),
            (
                Action::UpdateBeneficiary,
                Scope::RegistryWrite,
                Auditor,
                Decision::WrongKind,
            ),
            (
                Action::UpdateBeneficiary,
                Scope::RegistryWrite,
                Provider,
                Decision::WrongKind,
            ),
            // Settlements: reads need `claims:read`; schemes get 403.
            (Action::ReadSettlements, Scope::ClaimsRead, Provider, Decision::Allowed),
            (Action::ReadSettlements, Scope::ClaimsRead, Scheme, Decision::WrongKind),
            (
                Action::WriteSettlements,
                Scope::SettlementsWrite,
                Mutuelle,
                Decision::Allowed,
            ),
            // A provider adjudicating is 403; base adjudication is a scheme's, under
            // `claims:submit`.
            (
                Action::Adjudicate,
                Scope::ClaimsAdjudicate,
                Provider,
                Decision::WrongKind,
            ),
            (Action::BaseAdjudicate, Scope::ClaimsSubmit, Scheme, Decision::Allowed),
            (Action::SubmitClaim, Scope::ClaimsSubmit, Provider, Decision::Allowed),
            (
                Action::CheckEligibility,
                Scope::EligibilityCheck,
                Provider,
                Decision::Allowed,
            ),
            // Audit: every kind reads its own events; verifying is operators' and auditors'.
            (Action::ReadAuditEvents, Scope::AuditRead, Provider, Decision::Allowed),
            (Action::VerifyAudit, Scope::AuditRead, Auditor, Decision::Allowed),
        ];
        for (action, scope, kind, decision) in cases {
            assert_eq!(action.scope(), scope, "{action:?}");
            assert_eq!(action.allows(kind, &[scope]), decision, "{action:?} {kind:?}");
        }
        // `webhooks:write`: every kind, each for what it may read.
        for kind in OrgKind::ALL {
            assert_eq!(
                Action::ManageWebhooks.allows(kind, &[Scope::WebhooksWrite]),
                Decision::Allowed
            );
        }
    }
}
