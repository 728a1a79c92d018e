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
pub struct DeactivatedOrgs(RwLock<Known>);

#[derive(Default)]
struct Known {
    set: std::collections::HashSet<String>,
    /// How many changes this replica made so far.
    generation: u64,
    /// This replica's changes not yet known to be in a reading of the store, by generation.
    changes: Vec<(u64, String, bool)>,
}

impl Known {
    fn apply(&mut self, org: &str, deactivated: bool) {
        if deactivated {
            self.set.insert(org.to_owned());
        } else {
            self.set.remove(org);
        }
    }
}

impl DeactivatedOrgs {
    pub fn contains(&self, org: &str) -> bool {
        self.0.read().is_ok_and(|s| s.set.contains(org))
    }

    /// A change this replica made, known at once.
    pub fn set(&self, org: &str, deactivated: bool) {
        if let Ok(mut s) = self.0.write() {
            s.apply(org, deactivated);
            s.generation += 1;
            let generation = s.generation;
            s.changes.push((generation, org.to_owned(), deactivated));
        }
    }

    /// How many changes this replica made so far; taken before reading the set from the store.
    pub fn generation(&self) -> u64 {
        self.0.read().map_or(0, |s| s.generation)
    }

    /// The set as read from the store, with this replica's changes made since `generation` applied
    /// again over it: the reading may predate them. Every reading is applied, however many
    /// changes this replica makes meanwhile, so another replica's change is never held back.
    pub fn replace(&self, orgs: Vec<String>, generation: u64) {
        if let Ok(mut s) = self.0.write() {
            s.set = orgs.into_iter().collect();
            s.changes.retain(|(g, _, _)| *g > generation);
            let later = std::mem::take(&mut s.changes);
            for (_, org, deactivated) in &later {
                s.apply(org, *deactivated);
            }
            s.changes = later;
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

    /// A reading of the store begun before this replica's own change does not undo it, and is
    /// applied all the same: another replica's change in it is known at once.
    #[test]
    fn a_reading_older_than_a_change_keeps_the_change() {
        let orgs = DeactivatedOrgs::default();
        let before = orgs.generation();
        orgs.set("mut-a", true);
        orgs.set("mut-c", true);
        orgs.set("mut-c", false);
        orgs.replace(vec!["mut-b".into(), "mut-c".into()], before);
        assert!(orgs.contains("mut-a") && orgs.contains("mut-b") && !orgs.contains("mut-c"));
        // A reading begun after them holds them, or what another replica did since.
        orgs.replace(vec!["mut-d".into()], orgs.generation());
        assert!(!orgs.contains("mut-a") && !orgs.contains("mut-b") && orgs.contains("mut-d"));
    }

    /// Changes made all the time on this replica never hold back a reading (they did: a reading
    /// was dropped whenever this replica changed anything while it ran).
    #[test]
    fn a_busy_replica_still_learns_of_the_others() {
        let orgs = DeactivatedOrgs::default();
        for i in 0..100 {
            let started = orgs.generation();
            orgs.set(&format!("own-{i}"), true);
            orgs.replace(vec!["elsewhere".into()], started);
            assert!(orgs.contains("elsewhere") && orgs.contains(&format!("own-{i}")));
        }
    }
}
