//! The tamper-evident audit trail: each event's digest is SHA-256 over the previous digest and
//! the event's canonical form, so editing, removing or reordering any stored event breaks every
//! digest after it.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The actions of an eligibility check answered: most of the log, one per check. The audit
/// log's action index leaves them out (migration 25), so that checks do not maintain it.
pub const ELIGIBILITY_ELIGIBLE: &str = "eligibility.eligible";
pub const ELIGIBILITY_NOT_ELIGIBLE: &str = "eligibility.not_eligible";
pub const CHECK_ACTIONS: [&str; 2] = [ELIGIBILITY_ELIGIBLE, ELIGIBILITY_NOT_ELIGIBLE];
/// The resource type of those events (the person checked): the log's index of an organisation's
/// events by type leaves them out too (migration 34), so a query for any other type may use it.
pub const CHECK_RESOURCE_TYPE: &str = "beneficiary";

/// `prev_digest` of the first event.
pub const GENESIS_DIGEST: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What a change records about itself before storage places it in the chain. Personal data is
/// never copied here: people are referenced by id only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAuditEvent {
    pub at: DateTime<Utc>,
    pub organization: String,
    pub subject: String,
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    pub request_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub organization: String,
    pub subject: String,
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    pub request_id: String,
    pub digest: String,
    pub prev_digest: String,
    /// What storage found wrong with the stored row beyond what the digest covers; `None` for
    /// a row as storage writes it, and for an event not read from storage.
    #[serde(skip)]
    pub damage: Option<RowDamage>,
}

/// A stored audit row that storage could not have written, though its digest may still match.
/// SQLite keeps `at` as text, and compares that text (the list's `since`): only the text it
/// writes for an instant is that instant. (PostgreSQL's `timestamptz` holds instants only.)
/// Verification names such an event as it names an edited one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowDamage {
    /// `at` holds no RFC 3339 instant; the text stored is kept here, and the event's `at` is
    /// the Unix epoch in its place. The event cannot be served.
    AtUnreadable(String),
    /// `at` holds the event's instant, spelled otherwise than storage writes it (another
    /// offset, `Z`, more fractional digits…): the text stored is kept here. The event is
    /// served with its instant, which the digest covers; the list's `since` may miss it.
    AtRespelled(String),
}

/// An event's `at` as its canonical form holds it, and as the API serves it: RFC 3339, UTC,
/// exactly six fractional digits and `Z` (`2026-12-02T01:34:50.640000Z`).
pub fn canonical_at(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The canonical form hashed for one event: a JSON array in a fixed order, so that no field can
/// be moved into another without changing the bytes. Written straight into the hasher (a tuple
/// serializes as the same compact array a `json!` value would), since every check's event is
/// hashed on the hot path.
fn write_canonical(out: &mut Sha256, seq: i64, event: &NewAuditEvent, prev_digest: &str) {
    let fields = (
        seq,
        canonical_at(&event.at),
        &event.organization,
        &event.subject,
        &event.action,
        &event.resource_type,
        &event.resource_id,
        &event.request_id,
        prev_digest,
    );
    // Writing into a hasher cannot fail, and neither can serializing strings and an integer.
    let _ = serde_json::to_writer(out, &fields);
}

pub fn digest(seq: i64, event: &NewAuditEvent, prev_digest: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev_digest.as_bytes());
    hasher.update(b"\n");
    write_canonical(&mut hasher, seq, event, prev_digest);
    hex::encode(hasher.finalize())
}

impl NewAuditEvent {
    /// Places the event after `prev` (None for the first event of the chain).
    pub fn chain(self, prev: Option<(i64, &str)>) -> AuditEvent {
        let (seq, prev_digest) = match prev {
            Some((seq, d)) => (seq + 1, d.to_owned()),
            None => (1, GENESIS_DIGEST.to_owned()),
        };
        let digest = digest(seq, &self, &prev_digest);
        AuditEvent {
            seq,
            at: self.at,
            organization: self.organization,
            subject: self.subject,
            action: self.action,
            resource_type: self.resource_type,
            resource_id: self.resource_id,
            request_id: self.request_id,
            digest,
            prev_digest,
            damage: None,
        }
    }
}

impl AuditEvent {
    fn body(&self) -> NewAuditEvent {
        NewAuditEvent {
            at: self.at,
            organization: self.organization.clone(),
            subject: self.subject.clone(),
            action: self.action.clone(),
            resource_type: self.resource_type.clone(),
            resource_id: self.resource_id.clone(),
            request_id: self.request_id.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    pub valid: bool,
    pub events_checked: u64,
    pub first_invalid_seq: Option<i64>,
    /// What was found wrong at `first_invalid_seq`; `None` when valid.
    pub failure: Option<ChainBreak>,
}

/// What a walk of the chain found wrong, so that an auditor knows where to look: the event
/// named, or the record of the head. An event's own fields cannot tell an edit of its content
/// from one of its digest: both are `digest_mismatch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChainBreak {
    /// The event is not the next `seq`: events before it were deleted, or it was stored out
    /// of place.
    OutOfSequence,
    /// The stored row is one storage could not have written (its `at` spelled otherwise).
    MalformedRow,
    /// The event's `prev_digest` is not the previous event's digest: the previous event was
    /// rewritten with its digest recomputed, or this one was put in another's place.
    LinkMismatch,
    /// The event's digest does not match its content: the content or the digest was edited.
    DigestMismatch,
    /// The walk ended before the recorded head: the newest events, from the one named, were
    /// deleted (or the record of the head was moved forward).
    MissingTail,
    /// The event at the recorded head is intact and chained, but is not the event the head
    /// records: either it was rewritten with its digest recomputed, or the record of the head
    /// was altered. Compare with a head kept outside the database to tell which.
    HeadMismatch,
    /// The chain goes on past the head recorded once the walk ended, from the event named: the
    /// record of the head was moved back behind intact events, or a row was stored after it. No
    /// event can be chained after such a head (its `seq` is taken), so every change's events
    /// wait in the queue and checks fail.
    HeadBehind,
}

impl ChainBreak {
    pub const ALL: [ChainBreak; 7] = [
        ChainBreak::OutOfSequence,
        ChainBreak::MalformedRow,
        ChainBreak::LinkMismatch,
        ChainBreak::DigestMismatch,
        ChainBreak::MissingTail,
        ChainBreak::HeadMismatch,
        ChainBreak::HeadBehind,
    ];

    pub fn code(self) -> &'static str {
        match self {
            ChainBreak::OutOfSequence => "out_of_sequence",
            ChainBreak::MalformedRow => "malformed_row",
            ChainBreak::LinkMismatch => "link_mismatch",
            ChainBreak::DigestMismatch => "digest_mismatch",
            ChainBreak::MissingTail => "missing_tail",
            ChainBreak::HeadMismatch => "head_mismatch",
            ChainBreak::HeadBehind => "head_behind",
        }
    }
}

/// Walks the chain in pages (the log can be far larger than memory) and remembers the first
/// event whose digest, link or sequence number is wrong.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    expected_seq: i64,
    prev_digest: String,
    checked: u64,
    first_invalid: Option<(i64, ChainBreak)>,
    /// The chain's head as recorded when the walk began, which the walk must reach.
    head: Option<(i64, String)>,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier {
            expected_seq: 1,
            prev_digest: GENESIS_DIGEST.to_owned(),
            checked: 0,
            first_invalid: None,
            head: None,
        }
    }
}

impl ChainVerifier {
    /// Feeds the next event in `seq` order. Returns false once the chain is known broken.
    pub fn push(&mut self, event: &AuditEvent) -> bool {
        if self.first_invalid.is_some() {
            return false;
        }
        self.checked += 1;
        // A gap in `seq` means a deleted event; the event after the gap is the first one whose
        // place in the chain cannot be proven. A row storage could not have written is
        // tampered with, whatever its digest.
        let broken = if event.seq != self.expected_seq {
            Some(ChainBreak::OutOfSequence)
        } else if event.damage.is_some() {
            Some(ChainBreak::MalformedRow)
        } else if event.prev_digest != self.prev_digest {
            Some(ChainBreak::LinkMismatch)
        } else if digest(event.seq, &event.body(), &event.prev_digest) != event.digest {
            Some(ChainBreak::DigestMismatch)
        } else if self
            .head
            .as_ref()
            .is_some_and(|(seq, digest)| event.seq == *seq && event.digest != *digest)
        {
            Some(ChainBreak::HeadMismatch)
        } else {
            None
        };
        if let Some(kind) = broken {
            self.first_invalid = Some((event.seq, kind));
            return false;
        }
        self.expected_seq = event.seq + 1;
        self.prev_digest = event.digest.clone();
        true
    }

    /// A verifier that also holds the walk to the chain's head as recorded when it begins,
    /// `(head_seq, head_digest)`: the walk must reach that `seq` and find that digest there.
    /// Events chained after it continue the walk and are checked like the others. A walk that
    /// ends before the head met a log whose newest events were deleted, all of them even: the
    /// first missing `seq` is named. (An intruder who rewrites the head as well is not found
    /// this way: compare the head with a copy kept outside the database.)
    pub fn up_to_head(head_seq: i64, head_digest: &str) -> ChainVerifier {
        ChainVerifier {
            head: Some((head_seq, head_digest.to_owned())),
            ..ChainVerifier::default()
        }
    }

    /// As [`finish`](Self::finish), for a walk whose head was read again once it ended
    /// (`head_now`): a chain that goes on past that head is broken at the first event after
    /// it. A head read after the walk is at least every event the walk saw, since an event and
    /// the head that covers it commit together; events chained during the walk are not past it.
    pub fn finish_at_head(mut self, head_now: i64) -> Verification {
        if self.first_invalid.is_none() && self.expected_seq - 1 > head_now {
            self.first_invalid = Some((head_now + 1, ChainBreak::HeadBehind));
        }
        self.finish()
    }

    pub fn finish(mut self) -> Verification {
        if self.first_invalid.is_none() {
            if let Some((head_seq, _)) = &self.head {
                if self.expected_seq - 1 < *head_seq {
                    self.first_invalid = Some((self.expected_seq, ChainBreak::MissingTail));
                }
            }
        }
        Verification {
            valid: self.first_invalid.is_none(),
            events_checked: self.checked,
            first_invalid_seq: self.first_invalid.map(|(seq, _)| seq),
            failure: self.first_invalid.map(|(_, kind)| kind),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn event(n: i64) -> NewAuditEvent {
        NewAuditEvent {
            at: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap() + chrono::Duration::microseconds(n),
            organization: "mut-tsevie".into(),
            subject: "clerk-1".into(),
            action: "organization.created".into(),
            resource_type: "organization".into(),
            resource_id: format!("org-{n}"),
            request_id: format!("req-{n}"),
        }
    }

    /// The digests of stored chains must never change. These values were computed by the
    /// service before the canonical form was streamed into the hasher, and agree with Python's
    /// `hashlib.sha256(prev + "\n" + json.dumps([...], separators=(",", ":"),
    /// ensure_ascii=False))`, over text JSON must escape (quotes, backslashes, control
    /// characters) or must not (non-ASCII, `\u{7f}`, `\u{2028}`).
    #[test]
    fn the_canonical_form_and_its_digest_are_fixed() {
        let tricky = NewAuditEvent {
            at: Utc.with_ymd_and_hms(2026, 12, 3, 8, 30, 0).unwrap() + chrono::Duration::microseconds(640_001),
            organization: "mut-\"é\"".into(),
            subject: "a\\b\u{1}\n\t\u{7f}".into(),
            action: "beneficiary.created".into(),
            resource_type: "beneficiary".into(),
            resource_id: "01937f0e-6c2a-7d3b-9e0f-1a2b3c4d5e6f".into(),
            request_id: "r/é/\u{2028}".into(),
        };
        assert_eq!(
            digest(1, &event(7), GENESIS_DIGEST),
            "e0b3212ea6bcee4af9e7b41df51b388191764deb6297416de586b1d4839e2bbf"
        );
        assert_eq!(
            digest(i64::MAX, &tricky, "ab"),
            "9d46145c2d7093149d3510430477ea65280116bd98ced63c2c15824d58df8ef8"
        );
    }

    fn chain(n: i64) -> Vec<AuditEvent> {
        let mut out: Vec<AuditEvent> = Vec::new();
        for i in 0..n {
            let prev = out.last().map(|e| (e.seq, e.digest.clone()));
            out.push(event(i).chain(prev.as_ref().map(|(s, d)| (*s, d.as_str()))));
        }
        out
    }

    fn verify(events: &[AuditEvent]) -> Verification {
        let mut v = ChainVerifier::default();
        for e in events {
            v.push(e);
        }
        v.finish()
    }

    fn verify_upto(events: &[AuditEvent], head: &AuditEvent) -> Verification {
        let mut v = ChainVerifier::up_to_head(head.seq, &head.digest);
        for e in events {
            if !v.push(e) {
                break;
            }
        }
        v.finish()
    }

    #[test]
    fn a_walk_must_end_at_the_recorded_head() {
        let events = chain(5);
        let head = &events[4];
        assert!(verify_upto(&events, head).valid);
        // The newest two deleted: the first missing one is named.
        let cut = verify_upto(&events[..3], head);
        assert_eq!(
            (cut.valid, cut.events_checked, cut.first_invalid_seq, cut.failure),
            (false, 3, Some(4), Some(ChainBreak::MissingTail))
        );
        // Every event deleted.
        let gone = verify_upto(&[], head);
        assert_eq!(
            (gone.first_invalid_seq, gone.failure),
            (Some(1), Some(ChainBreak::MissingTail))
        );
        // The last event replaced by another, consistently chained to the one before: the
        // walk cannot tell this from a record of the head altered, and says so.
        let mut forged = events.clone();
        forged[4] = event(99).chain(Some((events[3].seq, events[3].digest.as_str())));
        let v = verify_upto(&forged, head);
        assert_eq!(
            (v.first_invalid_seq, v.failure),
            (Some(5), Some(ChainBreak::HeadMismatch))
        );
        // Only the record of the head altered: every event is intact.
        let v = verify_upto(&events, &event(98).chain(Some((4, &events[3].digest))));
        assert_eq!(
            (v.events_checked, v.first_invalid_seq, v.failure),
            (5, Some(5), Some(ChainBreak::HeadMismatch))
        );
        // Events chained after the head was read are walked and checked too.
        assert!(verify_upto(&events, &events[2]).valid);
        let mut past = events.clone();
        past[4].resource_id = "forged".into();
        let v = verify_upto(&past, &events[2]);
        assert_eq!(
            (v.first_invalid_seq, v.failure),
            (Some(5), Some(ChainBreak::DigestMismatch))
        );
        // An empty log with an empty head.
        assert!(ChainVerifier::up_to_head(0, GENESIS_DIGEST).finish().valid);
    }

    /// A head read again after the walk covers every event walked; one behind them was moved
    /// back (or rows were stored after it), and the chain can grow no more.
    #[test]
    fn a_chain_past_the_head_read_after_the_walk_is_broken() {
        let events = chain(5);
        let walk = |head: &AuditEvent, head_now: i64| {
            let mut v = ChainVerifier::up_to_head(head.seq, &head.digest);
            for e in &events {
                v.push(e);
            }
            v.finish_at_head(head_now)
        };
        assert!(walk(&events[4], 5).valid);
        // Chained during the walk: the head moved on with them.
        assert!(walk(&events[2], 5).valid);
        let back = walk(&events[3], 4);
        assert_eq!(
            (back.valid, back.events_checked, back.first_invalid_seq, back.failure),
            (false, 5, Some(5), Some(ChainBreak::HeadBehind))
        );
        // A fault found by the walk is the one named.
        let mut edited = events.clone();
        edited[1].resource_id = "forged".into();
        let mut v = ChainVerifier::up_to_head(4, &events[3].digest);
        for e in &edited {
            if !v.push(e) {
                break;
            }
        }
        assert_eq!(v.finish_at_head(4).failure, Some(ChainBreak::DigestMismatch));
    }

    #[test]
    fn an_untouched_chain_verifies() {
        let events = chain(5);
        assert_eq!(events[0].prev_digest, GENESIS_DIGEST);
        assert_eq!(events[4].seq, 5);
        assert_eq!(
            verify(&events),
            Verification {
                valid: true,
                events_checked: 5,
                first_invalid_seq: None,
                failure: None,
            }
        );
    }

    #[test]
    fn an_edited_field_is_named_by_its_seq() {
        let mut events = chain(5);
        events[2].resource_id = "org-forged".into();
        let v = verify(&events);
        assert!(!v.valid);
        assert_eq!(
            (v.first_invalid_seq, v.failure),
            (Some(3), Some(ChainBreak::DigestMismatch))
        );
    }

    #[test]
    fn a_deleted_event_is_detected() {
        let mut events = chain(5);
        events.remove(1);
        let v = verify(&events);
        assert_eq!(
            (v.first_invalid_seq, v.failure),
            (Some(3), Some(ChainBreak::OutOfSequence))
        );
    }

    #[test]
    fn a_damaged_row_is_named_by_its_seq_whatever_its_digest() {
        for damage in [
            RowDamage::AtRespelled("2026-01-02T03:04:05.000002Z".into()),
            RowDamage::AtUnreadable("not a date".into()),
        ] {
            let mut events = chain(5);
            events[2].damage = Some(damage.clone());
            let v = verify(&events);
            assert_eq!(
                (v.valid, v.events_checked, v.first_invalid_seq, v.failure),
                (false, 3, Some(3), Some(ChainBreak::MalformedRow)),
                "{damage:?}"
            );
        }
    }

    #[test]
    fn the_canonical_at_has_six_fractional_digits_and_z() {
        let second = Utc.with_ymd_and_hms(2026, 12, 2, 1, 34, 50).unwrap();
        for (at, text) in [
            (second, "2026-12-02T01:34:50.000000Z"),
            (
                second + chrono::Duration::milliseconds(640),
                "2026-12-02T01:34:50.640000Z",
            ),
            (
                second + chrono::Duration::microseconds(7),
                "2026-12-02T01:34:50.000007Z",
            ),
        ] {
            assert_eq!(canonical_at(&at), text);
        }
    }

    /// README, "The audit chain": deleting the newest event reports its own `seq`, which the
    /// recorded head still names.
    #[test]
    fn the_newest_event_deleted_is_named_by_its_own_seq() {
        let events = chain(5);
        let v = verify_upto(&events[..4], &events[4]);
        assert_eq!(
            (v.valid, v.events_checked, v.first_invalid_seq, v.failure),
            (false, 4, Some(5), Some(ChainBreak::MissingTail))
        );
    }

    /// The failure codes `verify` answers, as API.md (Audit) and README ("The audit chain")
    /// name them, and as the JSON of the failure writes them.
    #[test]
    fn each_chain_break_has_the_code_the_api_names() {
        let expected = [
            (ChainBreak::OutOfSequence, "out_of_sequence"),
            (ChainBreak::MalformedRow, "malformed_row"),
            (ChainBreak::LinkMismatch, "link_mismatch"),
            (ChainBreak::DigestMismatch, "digest_mismatch"),
            (ChainBreak::MissingTail, "missing_tail"),
            (ChainBreak::HeadMismatch, "head_mismatch"),
            (ChainBreak::HeadBehind, "head_behind"),
        ];
        assert_eq!(ChainBreak::ALL.len(), expected.len());
        for (kind, code) in expected {
            assert_eq!(kind.code(), code);
            assert_eq!(serde_json::to_value(kind).unwrap(), serde_json::json!(code));
        }
    }

    #[test]
    fn a_recomputed_digest_still_breaks_the_next_link() {
        let mut events = chain(4);
        events[1].action = "organization.deleted".into();
        let body = events[1].body();
        events[1].digest = digest(2, &body, &events[1].prev_digest);
        let v = verify(&events);
        assert_eq!(
            (v.first_invalid_seq, v.failure),
            (Some(3), Some(ChainBreak::LinkMismatch))
        );
    }
}
