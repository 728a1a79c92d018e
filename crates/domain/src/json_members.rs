//! Request bodies parsed into `serde_json::Value`, refusing an object that names a member twice.
//!
//! serde_json keeps the last of two members with one name. Another reader of the same bytes (a
//! proxy, an audit copy, the caller's own logs) may keep the first, and then the two disagree
//! about what was asked: `{"layer": "base", "layer": "complementary"}` would be a base product to
//! one and a complementary one to the other. RFC 8259 §4 leaves such objects' meaning open; a
//! body holding one is refused instead of being read one way.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// How the error for a repeated member begins; the rest is serde_json's position.
pub const DUPLICATE_MEMBER: &str = "duplicate member";

/// The body as a `Value`, as `serde_json::from_slice` reads it, or the parser's error; a repeated
/// member is an error at its position whose text starts with [`DUPLICATE_MEMBER`].
pub fn parse(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    // A byte order mark, which PowerShell's and .NET's writers put first: RFC 8259 §8.1 lets a
    // parser ignore it, and it says nothing of the body.
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Checked.deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// A value whose objects each name a member once; otherwise serde_json's own `Value` visitor.
struct Checked;

impl<'de> DeserializeSeed<'de> for Checked {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Checked {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // As serde_json's own visitor: JSON text holds no NaN nor infinity.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(Checked)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            let value = map.next_value_seed(Checked)?;
            if members.insert(name, value).is_some() {
                // The name is the caller's text: it is not repeated back (API.md §4).
                return Err(de::Error::custom(DUPLICATE_MEMBER));
            }
        }
        Ok(Value::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_serde_json_reads() {
        for body in [
            r#"{"a": 1, "b": [true, null, -2, 1.5, 18446744073709551615, "é\u00e9"], "c": {"d": {}}}"#,
            r#"{"n": 1e308, "m": -0.0, "s": "\ud83d\ude00"}"#,
            "[]",
            "\"text\"",
            "12",
        ] {
            assert_eq!(
                parse(body.as_bytes()).unwrap(),
                serde_json::from_str::<Value>(body).unwrap(),
                "{body}"
            );
        }
    }

    #[test]
    fn a_member_named_twice_is_refused_at_its_place() {
        for body in [
            r#"{"layer": "base", "layer": "complementary"}"#,
            r#"{"a": {"x": 1, "y": 2, "x": 1}}"#,
            r#"{"lines": [{"code": "A"}, {"code": "B", "code": "C"}]}"#,
        ] {
            let e = parse(body.as_bytes()).unwrap_err();
            assert!(e.to_string().starts_with(DUPLICATE_MEMBER), "{body}: {e}");
            assert_eq!(e.line(), 1);
            assert!(e.column() > 0);
        }
        // The same name in two objects is no repetition.
        assert!(parse(br#"{"a": {"x": 1}, "b": {"x": 1}}"#).is_ok());
    }

    #[test]
    fn a_byte_order_mark_first_is_ignored() {
        let body = "\u{FEFF}{\"a\": 1}";
        assert_eq!(parse(body.as_bytes()).unwrap(), serde_json::json!({"a": 1}));
        // Only first: one inside a string is kept, elsewhere it is no JSON.
        assert_eq!(
            parse("\"\u{FEFF}\"".as_bytes()).unwrap(),
            Value::String("\u{FEFF}".into())
        );
        assert!(parse("{\"a\": \u{FEFF}1}".as_bytes()).is_err());
    }

    #[test]
    fn the_parser_s_own_limits_hold() {
        assert!(parse(b"{\"a\": 1} x").is_err(), "trailing text");
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(parse(deep.as_bytes())
            .unwrap_err()
            .to_string()
            .starts_with("recursion limit exceeded"));
    }
}
