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

    /// `limit` as the query string wrote it and a cursor, which must be one issued for `list`
    /// (the path of the list, say): a cursor of another list names no position in this one.
    pub fn parse_list(list: &str, limit: Option<&str>, cursor: Option<&str>) -> Result<Self, Vec<FieldError>> {
        let cursor = cursor.filter(|c| !c.is_empty());
        Self::build(
            limit.map(read_limit),
            cursor.map(|c| decode_list_cursor(list, c).ok_or(())),
        )
    }

    fn build(
        limit: Option<Result<u32, FieldError>>,
        after: Option<Result<String, ()>>,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(Ok(l)) => l,
            Some(Err(e)) => {
                errors.push(e);
                DEFAULT_LIMIT
            }
        };
        let after = match after {
            None => None,
            Some(Ok(key)) => Some(key),
            Some(Err(())) => {
                errors.push(invalid_cursor());
                None
            }
        };
        if errors.is_empty() {
            Ok(PageRequest { limit, after })
        } else {
            Err(errors)
        }
    }
}

fn limit_out_of_range() -> FieldError {
    FieldError::new(
        "/query/limit",
        "out_of_range",
        format!("must be between 1 and {MAX_LIMIT}"),
        format!("doit être compris entre 1 et {MAX_LIMIT}"),
    )
}

/// A `limit` as written in a query string: `invalid_type` when it is no whole number (`abc`,
/// `2.5`, empty), `out_of_range` when it is one outside 1–500, however many digits it has.
pub fn read_limit(raw: &str) -> Result<u32, FieldError> {
    let raw = raw.trim();
    let digits = raw.strip_prefix(['+', '-']).unwrap_or(raw);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FieldError::new(
            "/query/limit",
            "invalid_type",
            "must be a whole number",
            "doit être un nombre entier",
        ));
    }
    // A whole number: past `u32` (or negative) it is out of range like 0 or 501.
    raw.strip_prefix('+')
        .unwrap_or(raw)
        .parse::<u32>()
        .ok()
        .filter(|l| (1..=MAX_LIMIT).contains(l))
        .ok_or_else(limit_out_of_range)
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

/// A cursor of the first releases: the key alone, good for any list.
const UNBOUND_PREFIX: &str = "c1";
/// A cursor bound to its list: the list's tag, then the key.
const BOUND_PREFIX: &str = "c2";
/// Hex digits of a list's tag.
const TAG_LEN: usize = 8;

/// A short digest of a list's name, so a cursor tells which list issued it without naming it.
fn list_tag(list: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(list.as_bytes());
    hex::encode(&digest[..TAG_LEN / 2])
}

/// A cursor good for any list, as the first releases issued them.
pub fn encode_cursor(key: &str) -> String {
    format!("{UNBOUND_PREFIX}{}", hex::encode(key.as_bytes()))
}

/// A cursor for the list named `list` (its path, say), refused by every other list.
pub fn encode_list_cursor(list: &str, key: &str) -> String {
    format!("{BOUND_PREFIX}{}{}", list_tag(list), hex::encode(key.as_bytes()))
}

/// The error of a cursor that names no position of this list with these filters. A cursor is no
/// secret and is not signed: one edited by hand that still decodes names only a position, and the
/// page it gives holds only what the caller may see.
pub fn invalid_cursor() -> FieldError {
    FieldError::new(
        "/query/cursor",
        "invalid_cursor",
        "not the next_cursor of a page of this list with these filters",
        "ce n'est pas le next_cursor d'une page de cette liste avec ces filtres",
    )
}

/// The key a hex body holds. A key never holds a NUL (`crate::nul`): one decoded from a forged
/// cursor is refused here, before a statement sees it.
fn decode_key(body: &str) -> Option<String> {
    let bytes = hex::decode(body).ok()?;
    String::from_utf8(bytes)
        .ok()
        .filter(|key| !crate::nul::contains_nul(key))
}

/// The key a cursor holds, whatever list issued it; `None` for text this service did not issue.
pub fn decode_cursor(cursor: &str) -> Option<String> {
    if let Some(body) = cursor.strip_prefix(UNBOUND_PREFIX) {
        return decode_key(body);
    }
    let body = cursor.strip_prefix(BOUND_PREFIX)?;
    decode_key(body.get(TAG_LEN..)?)
}

/// The key a cursor holds when it was issued for `list`: a bound cursor of another list is
/// `None`, as is text this service did not issue. An unbound cursor, issued before cursors
/// named their list, still reads as its key.
pub fn decode_list_cursor(list: &str, cursor: &str) -> Option<String> {
    if let Some(body) = cursor.strip_prefix(UNBOUND_PREFIX) {
        return decode_key(body);
    }
    let body = cursor.strip_prefix(BOUND_PREFIX)?;
    let (tag, key) = (body.get(..TAG_LEN)?, body.get(TAG_LEN..)?);
    (tag == list_tag(list)).then(|| decode_key(key)).flatten()
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
    fn a_cursor_is_good_for_its_own_list_only() {
        let c = encode_list_cursor("/v1/organizations", "mut-tsevie");
        assert_eq!(
            decode_list_cursor("/v1/organizations", &c).as_deref(),
            Some("mut-tsevie")
        );
        assert_eq!(decode_list_cursor("/v1/claims", &c), None);
        assert_eq!(
            decode_list_cursor(
                "/v1/coverages/b/contributions",
                &encode_list_cursor("/v1/coverages/a/contributions", "k")
            ),
            None
        );
        // A cursor issued before cursors named their list still reads, on any list.
        assert_eq!(
            decode_list_cursor("/v1/claims", &encode_cursor("k")).as_deref(),
            Some("k")
        );
        // The unbound reader takes both forms.
        assert_eq!(decode_cursor(&c).as_deref(), Some("mut-tsevie"));
        for forged in ["c2", "c2abc", "c2zzzzzzzz", "c2é", &format!("{}00", &c[..10])] {
            assert_eq!(decode_list_cursor("/v1/organizations", forged), None, "{forged}");
        }
        let errs = PageRequest::parse_list("/v1/claims", None, Some(&c)).unwrap_err();
        assert_eq!(errs[0].code, "invalid_cursor");
        let ok = PageRequest::parse_list("/v1/organizations", Some("2"), Some(&c)).unwrap();
        assert_eq!((ok.limit, ok.after.as_deref()), (2, Some("mut-tsevie")));
        assert_eq!(
            PageRequest::parse_list("/v1/claims", None, Some("")).unwrap().after,
            None
        );
    }

    #[test]
    fn a_limit_that_is_no_number_is_a_type_error() {
        let code = |raw: &str| read_limit(raw).map_err(|e| e.code);
        assert_eq!(code("50"), Ok(50));
        assert_eq!(code(" +500 "), Ok(500));
        for raw in ["abc", "", "2.5", "1e2", "0x10", "--1", "5 0"] {
            assert_eq!(code(raw), Err("invalid_type".to_owned()), "{raw}");
        }
        for raw in ["0", "-1", "501", "4294967297", "99999999999999999999999"] {
            assert_eq!(code(raw), Err("out_of_range".to_owned()), "{raw}");
        }
    }

    #[test]
    fn limits_outside_range_are_field_errors() {
        assert_eq!(PageRequest::parse_list("/l", None, None).unwrap().limit, 50);
        assert_eq!(PageRequest::parse_list("/l", Some("500"), None).unwrap().limit, 500);
        let errs = PageRequest::parse_list("/l", Some("0"), Some("bad")).unwrap_err();
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
