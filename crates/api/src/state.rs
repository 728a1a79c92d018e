//! What every handler shares.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use passerelle_adapters::Backend;
use passerelle_domain::clock::Clock;
use passerelle_domain::organization::OrgKind;
use passerelle_domain::ports::Store;

use crate::auth::Authenticator;
use crate::config::Config;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub backend: Backend,
    pub auth: Arc<Authenticator>,
    pub config: Arc<Config>,
    pub clock: Arc<dyn Clock>,
    pub org_kinds: Arc<OrgKindCache>,
    /// The organisations an operator deactivated, whose requests are refused.
    pub deactivated: Arc<DeactivatedOrgs>,
    /// Wakes this replica's bulk registration worker when a job is queued.
    pub batch_queued: Arc<tokio::sync::Notify>,
    /// Stops this replica's bulk registration worker at a group boundary when the process stops.
    pub bulk: Arc<crate::bulk::runner::Control>,
    /// Each organisation's request rate on this replica.
    pub rate_limits: Arc<crate::rate_limit::RateLimits>,
    /// The national id types accepted and their formats (`PASSERELLE_NATIONAL_ID_RULES`).
    pub national_ids: Arc<passerelle_domain::beneficiary::NationalIdRules>,
}

/// Organisation kinds never change once created, so the kind behind a token's `org` is read
/// from the database once per process, not once per request.
#[derive(Default)]
pub struct OrgKindCache(RwLock<HashMap<String, OrgKind>>);

/// The deactivated organisations, kept in memory so that the check costs a request nothing: the
/// replica that deactivates one knows at once, the others within `housekeeping::DEACTIVATED_EVERY`.
#[derive(Default)]
pub struct DeactivatedOrgs(RwLock<(std::collections::HashSet<String>, u64)>);

impl DeactivatedOrgs {
    pub fn contains(&self, org: &str) -> bool {
        self.0.read().is_ok_and(|s| s.0.contains(org))
    }

    /// A change this replica made, known at once.
    pub fn set(&self, org: &str, deactivated: bool) {
        if let Ok(mut s) = self.0.write() {
            if deactivated {
                s.0.insert(org.to_owned());
            } else {
                s.0.remove(org);
            }
            s.1 += 1;
        }
    }

    /// How many changes this replica made so far; taken before reading the set from the store.
    pub fn generation(&self) -> u64 {
        self.0.read().map_or(0, |s| s.1)
    }

    /// The set as read from the store, unless this replica changed it since `generation`: that
    /// read may predate the change, and the next one will not.
    pub fn replace(&self, orgs: Vec<String>, generation: u64) {
        if let Ok(mut s) = self.0.write() {
            if s.1 == generation {
                s.0 = orgs.into_iter().collect();
            }
        }
    }
}

impl OrgKindCache {
    pub fn get(&self, org: &str) -> Option<OrgKind> {
        self.0.read().ok().and_then(|m| m.get(org).copied())
    }

    pub fn insert(&self, org: &str, kind: OrgKind) {
        if let Ok(mut m) = self.0.write() {
            m.insert(org.to_owned(), kind);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DeactivatedOrgs;

    /// A reading of the store begun before this replica's own change does not undo it.
    #[test]
    fn a_reading_older_than_a_change_is_dropped() {
        let orgs = DeactivatedOrgs::default();
        let before = orgs.generation();
        orgs.set("mut-a", true);
        orgs.replace(Vec::new(), before);
        assert!(orgs.contains("mut-a"));
        orgs.replace(vec!["mut-b".into()], orgs.generation());
        assert!(!orgs.contains("mut-a") && orgs.contains("mut-b"));
    }
}
