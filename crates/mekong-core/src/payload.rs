//! Reading a record's payload: UTF-8 JSON that means exactly one thing. A member name that appears
//! twice in one object is refused (JSON leaves its meaning open: the schema and the routes would
//! judge the last value while the byte-for-byte copy carries both), and so is a number beyond the
//! range of a double (`1e400`), which most consumers cannot read. The payload is parsed once, here,
//! into the value that the schema, the routes, the key and the redaction all use.
//!
//! Resource documents are read into values by the same code, with a budget of values: YAML aliases
//! can make a small text expand into billions of nodes.

use std::cell::{Cell, RefCell};
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::map::Entry;
use serde_json::{Map, Number, Value};

/// serde_json (feature `arbitrary_precision`) hands numbers to a visitor as a one-member map with
/// this key and the number's text as its value.
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

/// Why a payload was refused: where (a JSON pointer, "" for the payload as a whole) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PayloadError {
    pub field: String,
    pub problem: String,
}

/// Parses a payload, refusing repeated member names and numbers a double cannot hold.
pub(crate) fn parse(payload: &[u8]) -> Result<Value, PayloadError> {
    // A payload's size bounds its values; no budget is needed.
    let budget = Cell::new(usize::MAX);
    let mut deserializer = serde_json::Deserializer::from_slice(payload);
    let value = read(&mut deserializer, &budget).map_err(|e| match e {
        Unreadable::Refused(e) => e,
        Unreadable::Syntax(e) => PayloadError {
            field: String::new(),
            problem: e.to_string(),
        },
    })?;
    deserializer.end().map_err(|e| PayloadError {
        field: String::new(),
        problem: e.to_string(),
    })?;
    Ok(value)
}

/// Why a value could not be read: a refusal of this module, or the format's own error.
#[derive(Debug)]
pub(crate) enum Unreadable<E> {
    Refused(PayloadError),
    Syntax(E),
}

/// Reads one value from any serde deserializer (JSON, a YAML document) with the same refusals,
/// and at most `budget` values in all (the budget is shared by the calls that pass it).
pub(crate) fn read<'de, D: Deserializer<'de>>(
    deserializer: D,
    budget: &Cell<usize>,
) -> Result<Value, Unreadable<D::Error>> {
    let found = RefCell::new(None);
    Strict {
        at: Path::Root,
        found: &found,
        budget,
    }
    .deserialize(deserializer)
    .map_err(|e| match found.into_inner() {
        Some(refused) => Unreadable::Refused(refused),
        None => Unreadable::Syntax(e),
    })
}

/// Where a value is in the payload, as a chain up to the root.
#[derive(Clone, Copy)]
enum Path<'p> {
    Root,
    Member(&'p Path<'p>, &'p str),
    Element(&'p Path<'p>, usize),
}

impl fmt::Display for Path<'_> {
    /// The JSON pointer (RFC 6901) of the place.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => Ok(()),
            Path::Member(parent, name) => {
                write!(f, "{parent}/{}", name.replace('~', "~0").replace('/', "~1"))
            }
            Path::Element(parent, index) => write!(f, "{parent}/{index}"),
        }
    }
}

/// Builds a `Value` as serde_json does, with the two refusals above; the first problem found is
/// kept in `found`, with its pointer, since serde's errors carry only text.
#[derive(Clone, Copy)]
struct Strict<'p> {
    at: Path<'p>,
    found: &'p RefCell<Option<PayloadError>>,
    budget: &'p Cell<usize>,
}

impl<'p> Strict<'p> {
    /// The seed of a value inside this one.
    fn child(&self, at: Path<'p>) -> Strict<'p> {
        Strict { at, ..*self }
    }

    fn refuse<E: de::Error>(&self, at: &Path<'_>, problem: String) -> E {
        let error = E::custom(&problem);
        self.found.borrow_mut().get_or_insert(PayloadError {
            field: at.to_string(),
            problem,
        });
        error
    }
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        match self.budget.get().checked_sub(1) {
            Some(left) => self.budget.set(left),
            None => {
                return Err(self.refuse(
                    &self.at,
                    "too many values (YAML aliases expanding without bound?)".into(),
                ));
            }
        }
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v).map(Value::Number).ok_or_else(|| {
            self.refuse(
                &self.at,
                "the number is beyond the range of a double".into(),
            )
        })
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

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        loop {
            let at = Path::Element(&self.at, items.len());
            match seq.next_element_seed(self.child(at))? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let Some(first) = access.next_key::<String>()? else {
            return Ok(Value::Object(Map::new()));
        };
        if first == NUMBER_TOKEN {
            let text: String = access.next_value()?;
            return number(&text).ok_or_else(|| {
                self.refuse(
                    &self.at,
                    format!(
                        "the number {} is beyond the range of a double; send it as a string",
                        crate::rejection::excerpt(&text, 40)
                    ),
                )
            });
        }
        let mut map = Map::new();
        let mut key = first;
        loop {
            let value = access.next_value_seed(self.child(Path::Member(&self.at, &key)))?;
            match map.entry(key) {
                Entry::Vacant(slot) => {
                    slot.insert(value);
                }
                Entry::Occupied(slot) => {
                    let at = Path::Member(&self.at, slot.key());
                    return Err(self.refuse(
                        &at,
                        "this member name appears more than once in its object; send each member once"
                            .into(),
                    ));
                }
            }
            match access.next_key::<String>()? {
                Some(next) => key = next,
                None => return Ok(Value::Object(map)),
            }
        }
    }
}

/// A number as its exact text, if a double can hold its magnitude.
fn number(text: &str) -> Option<Value> {
    // Short plain integers always fit; anything longer or with an exponent is checked.
    let plain = text.len() <= 300 && !text.contains(['e', 'E']);
    if !plain && !text.parse::<f64>().is_ok_and(f64::is_finite) {
        return None;
    }
    text.parse::<Number>().ok().map(Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> PayloadError {
        parse(text.as_bytes()).unwrap_err()
    }

    #[test]
    fn parses_like_serde_json_with_exact_numbers_and_order() {
        let text = r#"{"b":1,"a":[1.0,12345678901234567890,-0.5e-3,null,true,"x\u00e9"],"c":{}}"#;
        let strict = parse(text.as_bytes()).unwrap();
        let plain: Value = serde_json::from_str(text).unwrap();
        assert_eq!(strict, plain);
        assert_eq!(
            serde_json::to_string(&strict).unwrap(),
            text.replace("\\u00e9", "é")
        );
    }

    #[test]
    fn a_repeated_member_name_is_refused_at_its_pointer() {
        let e = refused(r#"{"TongTien":-999999,"MaHoSo":"A","TongTien":16000}"#);
        assert_eq!(e.field, "/TongTien");
        assert!(e.problem.contains("more than once"), "{}", e.problem);

        let nested = refused(r#"{"ChuHoSo":{"Ten":"A"},"L":[{"a/b":1,"a/b":2}]}"#);
        assert_eq!(nested.field, "/L/0/a~1b");
        // The same name in different objects is fine.
        assert!(parse(br#"{"a":{"x":1},"b":{"x":1}}"#).is_ok());
    }

    #[test]
    fn numbers_beyond_a_double_are_refused() {
        let e = refused(r#"{"x":[1,1e400]}"#);
        assert_eq!(e.field, "/x/1");
        assert!(e.problem.contains("1e+400 is beyond"), "{}", e.problem);
        assert!(parse(&format!("{{\"x\":1{}}}", "0".repeat(400)).into_bytes()).is_err());
        assert!(parse(br#"{"x":-1.7976931348623157e308,"y":1e-400}"#).is_ok());
    }

    #[test]
    fn malformed_json_is_refused_for_the_payload_as_a_whole() {
        for bad in [&b"{\"a\":"[..], b"{} extra", b"\xff", b""] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.field, "");
            assert!(!e.problem.is_empty());
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse(deep.as_bytes()).is_err());
    }
}
