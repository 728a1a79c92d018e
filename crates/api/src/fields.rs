//! Reading a JSON object field by field, so that one response lists every missing field, wrong
//! type and unknown field at once (API.md §4) rather than stopping at the first.

use passerelle_domain::error::FieldError;
use serde_json::{Map, Value};

pub struct Fields<'a> {
    object: &'a Map<String, Value>,
    prefix: String,
    known: Vec<&'static str>,
    pub errors: Vec<FieldError>,
}

fn type_error(field: &str, expected_en: &str, expected_fr: &str) -> FieldError {
    FieldError::new(
        field,
        "invalid_type",
        format!("must be {expected_en}"),
        format!("doit être {expected_fr}"),
    )
}

impl<'a> Fields<'a> {
    pub fn new(object: &'a Map<String, Value>) -> Self {
        Fields::nested(object, "")
    }

    pub fn nested(object: &'a Map<String, Value>, prefix: &str) -> Self {
        Fields {
            object,
            prefix: prefix.to_owned(),
            known: Vec::new(),
            errors: Vec::new(),
        }
    }

    pub fn pointer(&self, name: &str) -> String {
        format!("{}/{}", self.prefix, name.replace('~', "~0").replace('/', "~1"))
    }

    fn get(&mut self, name: &'static str) -> Option<&'a Value> {
        self.known.push(name);
        self.object.get(name).filter(|v| !v.is_null())
    }

    /// A text, without its surrounding white space: API.md §4 has the server trim every text
    /// and date it reads, so that `" 2026-01-01 "` or `"hospital "` copied from a spreadsheet
    /// means what it shows. A secret is read as sent ([`Fields::opt_str_exact`]).
    pub fn opt_str(&mut self, name: &'static str) -> Option<String> {
        self.opt_str_exact(name).map(|s| match s.trim() {
            trimmed if trimmed.len() == s.len() => s,
            trimmed => trimmed.to_owned(),
        })
    }

    /// A text as sent, white space included: a webhook's signing secret is its bytes.
    pub fn opt_str_exact(&mut self, name: &'static str) -> Option<String> {
        match self.get(name) {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                let p = self.pointer(name);
                self.errors.push(type_error(&p, "a string", "une chaîne de caractères"));
                None
            }
        }
    }

    pub fn str(&mut self, name: &'static str) -> Option<String> {
        let present = self.object.get(name).is_some_and(|v| !v.is_null());
        let value = self.opt_str(name);
        if !present {
            let p = self.pointer(name);
            self.errors.push(FieldError::required(p));
        }
        value
    }

    /// A whole number, however written (`2`, `2.0`; see [`whole_number`]). One past what an
    /// `i64` holds reads as `i64::MAX` (`i64::MIN` below), so that the caller's range check
    /// answers `out_of_range` with the field's own range: every caller bounds the value it
    /// reads. A fraction is `invalid_type`.
    pub fn opt_i64(&mut self, name: &'static str) -> Option<i64> {
        match self.get(name) {
            None => None,
            Some(Value::Number(n)) if whole_number(n).is_some() => whole_number(n),
            Some(_) => {
                let p = self.pointer(name);
                self.errors.push(type_error(&p, "a whole number", "un nombre entier"));
                None
            }
        }
    }

    pub fn opt_array(&mut self, name: &'static str) -> Option<&'a Vec<Value>> {
        match self.get(name) {
            None => None,
            Some(Value::Array(items)) => Some(items),
            Some(_) => {
                let p = self.pointer(name);
                self.errors.push(type_error(&p, "an array", "un tableau"));
                None
            }
        }
    }

    pub fn opt_object(&mut self, name: &'static str) -> Option<&'a Map<String, Value>> {
        match self.get(name) {
            None => None,
            Some(Value::Object(o)) => Some(o),
            Some(_) => {
                let p = self.pointer(name);
                self.errors.push(type_error(&p, "an object", "un objet"));
                None
            }
        }
    }

    /// An array of strings; each wrong item is reported at its own pointer and read as `None`,
    /// so that the items after it keep their indices (and their errors' pointers).
    pub fn opt_str_list(&mut self, name: &'static str) -> Option<Vec<Option<String>>> {
        let items = self.bounded_array(name)?;
        let base = self.pointer(name);
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match item {
                Value::String(s) => out.push(Some(s.trim().to_owned())),
                _ => {
                    self.errors.push(type_error(
                        &format!("{base}/{i}"),
                        "a string",
                        "une chaîne de caractères",
                    ));
                    out.push(None);
                }
            }
        }
        Some(out)
    }

    /// An array of at most [`MAX_LIST_ITEMS`] items; a longer one is one `invalid_length` and
    /// reads as absent, rather than an error for each wrong item of a body full of them.
    fn bounded_array(&mut self, name: &'static str) -> Option<&'a Vec<Value>> {
        let items = self.opt_array(name)?;
        if items.len() > MAX_LIST_ITEMS {
            let p = self.pointer(name);
            self.errors.push(FieldError::new(
                p,
                "invalid_length",
                format!("must hold at most {MAX_LIST_ITEMS} items"),
                format!("doit contenir au plus {MAX_LIST_ITEMS} éléments"),
            ));
            return None;
        }
        Some(items)
    }

    /// Reads each object of an array with its own `Fields`, so nested errors carry their index;
    /// an item that is not an object is reported and read as `None`, so that the items after it
    /// keep their indices.
    pub fn opt_objects<T>(
        &mut self,
        name: &'static str,
        mut read: impl FnMut(&mut Fields<'a>) -> T,
    ) -> Option<Vec<Option<T>>> {
        let items = self.bounded_array(name)?;
        let base = self.pointer(name);
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match item {
                Value::Object(o) => {
                    let mut nested = Fields::nested(o, &format!("{base}/{i}"));
                    out.push(Some(read(&mut nested)));
                    self.errors.extend(nested.finish());
                }
                _ => {
                    self.errors
                        .push(type_error(&format!("{base}/{i}"), "an object", "un objet"));
                    out.push(None);
                }
            }
        }
        Some(out)
    }

    /// Reports every member that is not a known field; call after reading all fields.
    pub fn finish(mut self) -> Vec<FieldError> {
        let mut unknown: Vec<&String> = self
            .object
            .keys()
            .filter(|k| !self.known.contains(&k.as_str()))
            .collect();
        unknown.sort();
        let errors = FieldError::unknown_fields(&self.prefix, &unknown, |name| self.pointer(name));
        self.errors.extend(errors);
        self.errors
    }
}

/// The value of a whole number however it is written (`2`, `2.0`, `2e0`: JSON has one number
/// type, and the idempotency fingerprint reads them alike), past what an `i64` holds saturated
/// to `i64::MAX` or `i64::MIN` so that the field's own range check answers `out_of_range`.
/// `None` for fractions. (A number past about 1e308 is no JSON number serde reads: the body is
/// 400.)
pub fn whole_number(n: &serde_json::Number) -> Option<i64> {
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    if n.is_u64() {
        // Past `i64::MAX`, within `u64`.
        return Some(i64::MAX);
    }
    let f = n.as_f64().filter(|f| f.is_finite() && f.fract() == 0.0)?;
    // Whole: exact within `i64`, saturated beyond it (`as` saturates).
    Some(f as i64)
}

/// A required `YYYY-MM-DD` field, within the dates of the business
/// (`passerelle_domain::dates`): `invalid_date` or `out_of_range` on `/<name>` otherwise.
pub fn required_date(
    f: &mut Fields<'_>,
    name: &'static str,
    today: chrono::NaiveDate,
    errors: &mut Vec<FieldError>,
) -> Option<chrono::NaiveDate> {
    let raw = f.str(name)?;
    let Some(date) = passerelle_domain::dates::parse(&raw) else {
        errors.push(FieldError::new(
            format!("/{name}"),
            "invalid_date",
            "must be YYYY-MM-DD",
            "doit être au format AAAA-MM-JJ",
        ));
        return None;
    };
    match passerelle_domain::dates::check(date, format!("/{name}"), today) {
        Some(e) => {
            errors.push(e);
            None
        }
        None => Some(date),
    }
}

/// Items a list in a request body may hold, whatever its own rule (a claim's 1000 lines are the
/// most any needs).
pub const MAX_LIST_ITEMS: usize = 1000;

/// What is wrong with a reference a clerk types or pastes (an invoice number, a receipt's, a
/// transfer's), if anything: 1 to 100 characters (counted untrimmed), not all white space
/// (`invalid_length`), and no control or invisible character once trimmed
/// (`invalid_characters`, [`passerelle_domain::text::is_forbidden_in_code`]). An invisible
/// character pasted with a reference would make one transfer or receipt entered twice look like
/// two, and travel on into CSV exports.
pub fn reference_error(field: &str, value: &str) -> Option<FieldError> {
    code_error(field, value, 100)
}

/// As [`reference_error`], for a code of at most `max` characters (a claim line's act code).
pub fn code_error(field: &str, value: &str, max: usize) -> Option<FieldError> {
    if value.trim().is_empty() || value.chars().count() > max {
        Some(FieldError::new(
            field,
            "invalid_length",
            format!("must be 1 to {max} characters"),
            format!("doit compter de 1 à {max} caractères"),
        ))
    } else if value.trim().chars().any(passerelle_domain::text::is_forbidden_in_code) {
        Some(FieldError::control_characters(field))
    } else {
        None
    }
}

/// Parse errors first; then the rule errors for fields that parsing did not already report (a
/// mistyped field comes back absent and would otherwise also be called missing).
/// A field is reported when neither it nor an object or list holding it is already: each of its
/// pointer's prefixes is looked up, so that thousands of errors (a claim's thousand lines) are
/// merged in linear time, where comparing every pair took seconds.
pub fn merge(mut parse_errors: Vec<FieldError>, rule_errors: Vec<FieldError>) -> Vec<FieldError> {
    let mut reported: std::collections::HashSet<String> = parse_errors.iter().map(|p| p.field.clone()).collect();
    for e in rule_errors {
        let field = e.field.as_str();
        let held = reported.contains(field) || field.match_indices('/').any(|(at, _)| reported.contains(&field[..at]));
        if !held {
            reported.insert(e.field.clone());
            parse_errors.push(e);
        }
    }
    parse_errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A rule error is kept unless its field, or an object or list holding it, was reported
    /// before it (by parsing, or by an earlier rule error); `/lines/1` does not hold `/lines/10`.
    #[test]
    fn merge_keeps_what_nothing_reported_holds() {
        let e = |field: &str| FieldError::required(field);
        let parse = vec![e("/lines/1"), e("/beneficiary/id")];
        let rules = vec![
            e("/lines/1"),
            e("/lines/1/code"),
            e("/lines/10"),
            e("/lines/10/code"),
            e("/beneficiary"),
            e("/beneficiary/id/x"),
            e("/care_level"),
            e("/care_level"),
        ];
        let merged: Vec<String> = merge(parse, rules).into_iter().map(|e| e.field).collect();
        assert_eq!(
            merged,
            [
                "/lines/1",
                "/beneficiary/id",
                "/lines/10",
                "/beneficiary",
                "/care_level"
            ]
        );
        // An error at the whole body holds every other.
        let merged = merge(vec![e("")], vec![e("/a"), e("/a/b")]);
        assert_eq!(merged.len(), 1);
    }

    #[test]
    fn a_list_past_the_bound_is_one_error() {
        let body = json!({"events": vec![json!(0); MAX_LIST_ITEMS + 1], "rules": vec![json!(0); MAX_LIST_ITEMS]});
        let object = body.as_object().unwrap();
        let mut f = Fields::new(object);
        assert_eq!(f.opt_str_list("events"), None);
        assert_eq!(f.opt_objects("rules", |_| ()).map(|r| r.len()), Some(MAX_LIST_ITEMS));
        let errors = f.finish();
        assert_eq!(errors[0].field, "/events");
        assert_eq!(errors[0].code, "invalid_length");
        // Within the bound, each wrong item is named.
        assert_eq!(errors.len(), 1 + MAX_LIST_ITEMS);
        assert!(errors[1..]
            .iter()
            .all(|e| e.code == "invalid_type" && e.field.starts_with("/rules/")));
    }

    /// A whole number too large for an `i64` is one all the same: the caller's range check calls
    /// it out of range. A whole number written as a float is one; a fraction is not.
    #[test]
    fn a_whole_number_past_i64_reads_as_out_of_any_range() {
        let body: Value = serde_json::from_str(
            r#"{"u": 18446744073709551615, "big": 99999999999999999999, "neg": -99999999999999999999,
                "min1": -9223372036854775809, "e": 1e300, "max": 9223372036854775807,
                "two": 2.0, "half": 0.5, "small": -3}"#,
        )
        .unwrap();
        let object = body.as_object().unwrap();
        let mut f = Fields::new(object);
        assert_eq!(f.opt_i64("u"), Some(i64::MAX));
        assert_eq!(f.opt_i64("big"), Some(i64::MAX));
        assert_eq!(f.opt_i64("neg"), Some(i64::MIN));
        assert_eq!(f.opt_i64("min1"), Some(i64::MIN));
        assert_eq!(f.opt_i64("e"), Some(i64::MAX));
        assert_eq!(f.opt_i64("max"), Some(i64::MAX));
        assert_eq!(f.opt_i64("small"), Some(-3));
        // However it is written: `2.0` is 2.
        assert_eq!(f.opt_i64("two"), Some(2));
        assert_eq!(f.opt_i64("half"), None);
        let errors: Vec<_> = f.finish().into_iter().map(|e| (e.field, e.code)).collect();
        assert_eq!(errors, [("/half".to_owned(), "invalid_type".to_owned())]);
    }

    #[test]
    fn every_problem_is_listed() {
        let body = json!({"name": 3, "extra": true, "a/b": 1});
        let object = body.as_object().unwrap();
        let mut f = Fields::new(object);
        assert_eq!(f.str("name"), None);
        assert_eq!(f.str("id"), None);
        assert_eq!(f.opt_i64("n"), None);
        let fields: Vec<_> = f.finish().into_iter().map(|e| (e.field, e.code)).collect();
        assert_eq!(
            fields,
            [
                ("/name".to_owned(), "invalid_type".to_owned()),
                ("/id".to_owned(), "required".to_owned()),
                ("/a~1b".to_owned(), "unknown_field".to_owned()),
                ("/extra".to_owned(), "unknown_field".to_owned()),
            ]
        );
    }
}
