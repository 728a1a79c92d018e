//! Errors the domain and its ports report. The API maps each to one problem+json status and code.

use serde::{Deserialize, Serialize};

/// Most members one object may name that it does not know ([`FieldError::unknown_fields`]).
pub const MAX_UNKNOWN_FIELDS_NAMED: usize = 20;

/// One rule a request broke, at a JSON Pointer into that request, with its message in both
/// languages the API speaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub code: String,
    pub en: String,
    pub fr: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, code: &str, en: impl Into<String>, fr: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            code: code.to_owned(),
            en: en.into(),
            fr: fr.into(),
        }
    }

    /// The fault that stands for `more` faults not listed (`at_least`: more may be found once
    /// those are corrected), at `at`, the object they were found in.
    pub fn too_many(at: impl Into<String>, more: usize, at_least: bool) -> Self {
        let (en, fr) = if at_least {
            (format!("at least {more} more faults"), format!("au moins {more}"))
        } else {
            (format!("{more} more faults"), format!("{more}"))
        };
        FieldError::new(
            at,
            "too_many_errors",
            format!("{en}, not listed: correct these first"),
            format!("erreurs supplémentaires non listées : {fr} ; corrigez d'abord celles qui sont listées"),
        )
    }

    /// `unknown_field` at the pointer of each of `names` (in the order given) the first
    /// [`MAX_UNKNOWN_FIELDS_NAMED`] of them; the rest are counted in one `too_many_errors` at
    /// `object`, the object's own pointer. A body of a hundred thousand made-up members is
    /// answered in a few lines, and its faults are never all held in memory.
    pub fn unknown_fields(object: &str, names: &[&String], pointer: impl Fn(&str) -> String) -> Vec<Self> {
        let mut errors: Vec<Self> = names
            .iter()
            .take(MAX_UNKNOWN_FIELDS_NAMED)
            .map(|name| {
                FieldError::new(
                    pointer(name),
                    "unknown_field",
                    "is not a field of this resource",
                    "n'est pas un champ de cette ressource",
                )
            })
            .collect();
        if names.len() > MAX_UNKNOWN_FIELDS_NAMED {
            errors.push(FieldError::too_many(
                object,
                names.len() - MAX_UNKNOWN_FIELDS_NAMED,
                false,
            ));
        }
        errors
    }

    pub fn required(field: impl Into<String>) -> Self {
        FieldError::new(field, "required", "this field is required", "ce champ est obligatoire")
    }

    /// A text holding a control character (a line break, a tab, a bell) or an invisible
    /// formatting one (a direction mark, a zero-width space): [`crate::text::is_forbidden`].
    pub fn control_characters(field: impl Into<String>) -> Self {
        FieldError::new(
            field,
            "invalid_characters",
            "must not contain control or invisible characters (line breaks, tabs, direction marks, zero-width spaces…)",
            "ne doit pas contenir de caractères de contrôle ou invisibles (retours à la ligne, tabulations, marques de sens d'écriture, espaces de largeur nulle…)",
        )
    }

    pub fn unknown_reference(field: impl Into<String>) -> Self {
        FieldError::new(
            field,
            "unknown_reference",
            "no such resource, or not visible to you",
            "ressource inconnue ou non visible pour vous",
        )
    }
}

/// What storage can report besides success. Internal details (SQL, driver messages) stay in
/// `Internal`/`Unavailable` and are logged, never shown to callers.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A unique or state rule was broken; `constraint` names which, for the API to translate.
    #[error("conflict on {constraint}")]
    Conflict { constraint: String },
    /// The same `Idempotency-Key` was used earlier with a different request.
    #[error("idempotency key reused with a different request")]
    IdempotencyMismatch,
    /// A stale `If-Match` version.
    #[error("stale version")]
    StaleVersion,
    /// A cursor that decodes but names no position in the list it was given to: forged, or
    /// issued by another list.
    #[error("cursor names no position in this list")]
    InvalidCursor,
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The connection failed while the transaction was committing: the change may have been
    /// applied whole, or not at all, and the service cannot tell which. Never "nothing changed".
    #[error("database connection lost while committing: {0}")]
    Indeterminate(String),
    /// The transaction lost to a concurrent one (a deadlock's victim, a serialization failure)
    /// and was rolled back whole: trying again is safe, and usually succeeds.
    #[error("lost to a concurrent transaction: {0}")]
    Contention(String),
    #[error("storage failure: {0}")]
    Internal(String),
    /// No event can be chained: the record of the chain's head is behind events already
    /// chained (moved back, or rows stored after it), so each new event's `seq` is taken. Only
    /// an operator can put it right; a verification of the chain names the first such event.
    #[error("the audit chain's head is behind events already chained: {0}")]
    ChainBlocked(String),
    /// The person's personal data was erased under the deployment's retention period
    /// (`passerelle erase-personal-data`), at `at`: nothing about them is read or changed again.
    #[error("the person's personal data was erased")]
    Erased { at: chrono::DateTime<chrono::Utc> },
}
