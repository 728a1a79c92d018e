//! Fractions that a double would read as whole numbers.
//!
//! serde_json reads every JSON number into an `i64`, a `u64` or an `f64`, so
//! `1.0000000000000001` (a fraction) arrives as the double `1.0`, and a field that takes whole
//! numbers (every amount, quantity and rate: API.md §3) would accept it as 1. The text of the
//! number is gone by then. This module finds such numbers in the body's bytes, where the text is
//! still there, so that the body can be read with each of them replaced by a plain fraction and
//! the field that holds it refused as any fraction is (`invalid_type`, with its pointer).

use std::ops::Range;

/// The byte ranges of the numbers in `body` (valid JSON) whose written value is not a whole
/// number but whose nearest double is: `1.0000000000000001`, `1e-400`. Fractions a double
/// keeps as fractions (`1.5`) are not listed, nor whole numbers however written (`2.0`, `1e3`).
pub fn fractions_read_as_whole(body: &[u8]) -> Vec<Range<usize>> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'"' => i = after_string(body, i),
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < body.len() && matches!(body[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') {
                    i += 1;
                }
                let token = &body[start..i];
                if !is_whole(token) && reads_as_whole(token) {
                    found.push(start..i);
                }
            }
            _ => i += 1,
        }
    }
    found
}

/// `body` with each range replaced by `0.5`, a fraction every reader refuses where a whole
/// number is expected. Still valid JSON: a number stands where a number stood.
pub fn with_plain_fractions(body: &[u8], ranges: &[Range<usize>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut from = 0;
    for r in ranges {
        out.extend_from_slice(&body[from..r.start]);
        out.extend_from_slice(b"0.5");
        from = r.end;
    }
    out.extend_from_slice(&body[from..]);
    out
}

/// The index just past the string that opens at `start`.
fn after_string(body: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < body.len() {
        match body[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    body.len()
}

/// Whether a JSON number, as written, names a whole number: every digit after the decimal
/// point, once the exponent has moved it, is a zero.
fn is_whole(token: &[u8]) -> bool {
    let unsigned = token.strip_prefix(b"-").unwrap_or(token);
    let (mantissa, exponent) = match unsigned.iter().position(|b| matches!(b, b'e' | b'E')) {
        Some(e) => (&unsigned[..e], exponent_of(&unsigned[e + 1..])),
        None => (unsigned, 0),
    };
    let (int, frac) = match mantissa.iter().position(|&b| b == b'.') {
        Some(p) => (&mantissa[..p], &mantissa[p + 1..]),
        None => (mantissa, &[][..]),
    };
    // The digits with the point after the first `point` of them.
    let point = (int.len() as i64).saturating_add(exponent);
    let first_fraction_digit = usize::try_from(point.max(0)).unwrap_or(usize::MAX);
    int.iter().chain(frac).skip(first_fraction_digit).all(|&d| d == b'0')
}

/// An exponent's value, saturated far beyond any that matters.
fn exponent_of(digits: &[u8]) -> i64 {
    let (negative, digits) = match digits.first() {
        Some(b'-') => (true, &digits[1..]),
        Some(b'+') => (false, &digits[1..]),
        _ => (false, digits),
    };
    let magnitude = digits
        .iter()
        .fold(0_i64, |acc, d| {
            acc.saturating_mul(10).saturating_add(i64::from(d - b'0'))
        })
        .min(1 << 40);
    if negative {
        -magnitude
    } else {
        magnitude
    }
}

/// Whether the body's reader reads the number as a whole double. Asked of serde_json itself,
/// which reads the body, so that the detector agrees with it whatever its features: without
/// `float_roundtrip` its fast float parsing is not always correctly rounded (`99.99999999999999`
/// reads as `100.0`, where Rust's own `parse` keeps a fraction), and a detector with another
/// parser would let such numbers through as whole francs.
fn reads_as_whole(token: &[u8]) -> bool {
    serde_json::from_slice::<f64>(token).is_ok_and(|f| f.is_finite() && f.fract() == 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(body: &str) -> Vec<&str> {
        fractions_read_as_whole(body.as_bytes())
            .into_iter()
            .map(|r| &body[r])
            .collect()
    }

    #[test]
    fn a_fraction_past_a_doubles_precision_is_found() {
        assert_eq!(
            found(r#"{"a": 1.0000000000000001, "b": [999999999999.99999, -2.00000000000000001]}"#),
            ["1.0000000000000001", "999999999999.99999", "-2.00000000000000001"]
        );
        assert_eq!(found(r#"{"a": 1e-400, "b": 0.1e-330}"#), ["1e-400", "0.1e-330"]);
        // Numbers serde_json's fast float parsing (without its `float_roundtrip` feature) rounds
        // to a whole double where a correctly rounded parser does not: whichever way the body's
        // reader reads them, each is either found or read as a fraction, never a whole number.
        for fraction in [
            "99.99999999999999",
            "100.00000000000001",
            "10.000000000000001",
            "1000.0000000000001",
            "10000.000000000001",
        ] {
            let body = format!(r#"{{"amount_xof": {fraction}}}"#);
            let read: serde_json::Value = serde_json::from_str(&body).unwrap();
            let whole = read["amount_xof"].as_f64().is_some_and(|f| f.fract() == 0.0);
            let expected: &[&str] = if whole { &[fraction] } else { &[] };
            assert_eq!(found(&body), expected, "serde_json reads it as {}", read["amount_xof"]);
        }
    }

    #[test]
    fn whole_numbers_however_written_and_plain_fractions_are_not() {
        let body = r#"{"a": 2, "b": 2.0, "c": 1e3, "d": 0.1e1, "e": -0.0, "f": 1.5, "g": 12.50e1,
            "h": 1E+2, "i": 0e999999999999999999999, "j": 1.25, "k": 100e-2}"#;
        assert!(found(body).is_empty(), "{:?}", found(body));
    }

    #[test]
    fn numbers_inside_strings_are_text() {
        assert!(found(r#"{"a": "1.0000000000000001", "b\"1.0000000000000001": "\\", "c": 3}"#).is_empty());
        assert_eq!(
            found(r#"{"a": "x\"", "b": 3.0000000000000001}"#),
            ["3.0000000000000001"]
        );
    }

    #[test]
    fn the_replacement_is_a_plain_fraction_in_the_same_place() {
        let body = br#"{"a": 1.0000000000000001, "b": [7, 2.00000000000000001]}"#;
        let out = with_plain_fractions(body, &fractions_read_as_whole(body));
        assert_eq!(std::str::from_utf8(&out).unwrap(), r#"{"a": 0.5, "b": [7, 0.5]}"#);
    }
}
