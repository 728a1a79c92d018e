//! Cursor pagination: `limit` 1–500 (default 50) and an opaque cursor naming the last key seen.

use crate::error::FieldError;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u32,
    /// The sort key of the last item of the previous page, decoded from the cursor.
    pub after: Option<String>,
}

impl PageRequest {
    pub fn first(limit: u32) -> Self {
        PageRequest { limit, after: None }
    }

    pub fn parse(limit: Option<i64>, cursor: Option<&str>) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(l) if (1..=i64::from(MAX_LIMIT)).contains(&l) => l as u32,
            Some(_) => {
                errors.push(FieldError::new(
                    "/query/limit",
                    "out_of_range",
                    format!("must be between 1 and {MAX_LIMIT}"),
                    format!("doit être compris entre 1 et {MAX_LIMIT}"),
                ));
                DEFAULT_LIMIT
            }
        };
        let after = match cursor {
            None | Some("") => None,
            Some(c) => match decode_cursor(c) {
                Some(key) => Some(key),
                None => {
                    errors.push(invalid_cursor());
                    None
                }
            },
        };
        if errors.is_empty() {
            Ok(PageRequest { limit, after })
        } else {
            Err(errors)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_key: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from `limit + 1` fetched rows: the extra row only tells that more exist.
    pub fn from_overfetch(mut rows: Vec<T>, limit: u32, key: impl Fn(&T) -> String) -> Self {
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_key = if more { rows.last().map(key) } else { None };
        Page { items: rows, next_key }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_key: self.next_key,
        }
    }
}

const CURSOR_PREFIX: &str = "c1";

pub fn encode_cursor(key: &str) -> String {
    format!("{CURSOR_PREFIX}{}", hex::encode(key.as_bytes()))
}

/// The key a cursor holds; `None` for text this service did not issue. A key never holds a NUL
/// (`crate::nul`): one decoded from a forged cursor is refused here, before a statement sees it.
/// The error of a cursor this service did not issue for this list.
pub fn invalid_cursor() -> FieldError {
    FieldError::new(
        "/query/cursor",
        "invalid_cursor",
        "not a cursor this service issued",
        "ce curseur n'a pas été émis par ce service",
    )
}

pub fn decode_cursor(cursor: &str) -> Option<String> {
    let body = cursor.strip_prefix(CURSOR_PREFIX)?;
    let bytes = hex::decode(body).ok()?;
    String::from_utf8(bytes)
        .ok()
        .filter(|key| !crate::nul::contains_nul(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = encode_cursor("mut-tsevie");
        assert_eq!(decode_cursor(&c).as_deref(), Some("mut-tsevie"));
        assert_eq!(decode_cursor(&encode_cursor("a\0b")), None, "a NUL is no key");
        assert_eq!(decode_cursor("zz"), None);
        assert_eq!(decode_cursor("c1zz"), None);
    }

    #[test]
    fn limits_outside_range_are_field_errors() {
        assert_eq!(PageRequest::parse(None, None).unwrap().limit, 50);
        assert_eq!(PageRequest::parse(Some(500), None).unwrap().limit, 500);
        let errs = PageRequest::parse(Some(0), Some("bad")).unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["/query/limit", "/query/cursor"]);
    }

    #[test]
    fn overfetch_sets_next_key_only_when_more_exist() {
        let p = Page::from_overfetch(vec![1, 2, 3], 2, |n| n.to_string());
        assert_eq!(p.items, vec![1, 2]);
        assert_eq!(p.next_key.as_deref(), Some("2"));
        let p = Page::from_overfetch(vec![1, 2], 2, |n| n.to_string());
        assert_eq!(p.next_key, None);
    }
}
