//! The NUL character (U+0000) in text. PostgreSQL's `text` cannot hold it, so a value carrying
//! it would fail its statement, and with it every request sharing that statement (eligibility
//! checks and claims are read in batches). No text of this service may contain it, on either
//! database: it is refused where text comes in.

use serde_json::Value;

use crate::error::FieldError;

pub fn contains_nul(text: &str) -> bool {
    text.contains('\0')
}

/// The JSON Pointer of the first string (value or member name) holding a NUL, if any.
pub fn first_nul(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if contains_nul(s) => Some(String::new()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| first_nul(item).map(|rest| format!("/{i}{rest}"))),
        // The member's name is escaped only for the pointer returned: every body passes here.
        Value::Object(members) => members.iter().find_map(|(name, item)| {
            let escaped = || name.replace('~', "~0").replace('/', "~1");
            if contains_nul(name) {
                Some(format!("/{}", escaped()))
            } else {
                first_nul(item).map(|rest| format!("/{}{rest}", escaped()))
            }
        }),
        _ => None,
    }
}

pub fn nul_error(field: impl Into<String>) -> FieldError {
    FieldError::new(
        field,
        "invalid_character",
        "must not contain the NUL character (U+0000)",
        "ne doit pas contenir le caractère NUL (U+0000)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_first_nul_is_named_by_its_pointer() {
        assert_eq!(first_nul(&json!({"a": "ok", "b": [1, "x"]})), None);
        assert_eq!(
            first_nul(&json!({"a": {"b": ["ok", "x\u{0}y"]}})).as_deref(),
            Some("/a/b/1")
        );
        assert_eq!(first_nul(&json!({"a/b~c": "\u{0}"})).as_deref(), Some("/a~1b~0c"));
        assert_eq!(first_nul(&json!({"ok": 1, "k\u{0}": 2})).as_deref(), Some("/k\u{0}"));
        assert_eq!(first_nul(&json!("\u{0}")).as_deref(), Some(""));
    }
}
