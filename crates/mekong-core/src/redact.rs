//! JSON pointers (RFC 6901), parsed once at load time, and the two things Mekong does with them:
//! read a partition key out of a payload, and redact a field from one copy of it.

use std::fmt;

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::Value;

/// A parsed JSON pointer such as `/ChuHoSo/SoDienThoai`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPointer {
    text: String,
    tokens: Vec<String>,
}

/// Why a pointer does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PointerError {
    #[error("a JSON pointer must start with `/` (e.g. `/MaHoSo`), got `{0}`")]
    NoLeadingSlash(String),
    #[error("`{0}` is the whole document; point at a field inside it")]
    WholeDocument(String),
    #[error("`{0}` has a `~` not followed by 0 or 1 (write `~0` for `~` and `~1` for `/`)")]
    BadEscape(String),
}

impl JsonPointer {
    /// Parses a pointer to a field (the empty pointer, the whole document, is refused).
    pub fn parse(text: &str) -> Result<JsonPointer, PointerError> {
        if text.is_empty() {
            return Err(PointerError::WholeDocument(text.into()));
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(PointerError::NoLeadingSlash(text.into()));
        };
        let tokens = rest
            .split('/')
            .map(|raw| unescape(raw).ok_or_else(|| PointerError::BadEscape(text.into())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(JsonPointer {
            text: text.to_owned(),
            tokens,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether removing this pointer's field removes `other`'s too: the same field, or one inside it.
    pub fn covers(&self, other: &JsonPointer) -> bool {
        other.tokens.starts_with(&self.tokens)
    }

    /// The value this pointer names, if the document has one there.
    pub fn get<'v>(&self, document: &'v Value) -> Option<&'v Value> {
        self.tokens
            .iter()
            .try_fold(document, |node, token| match node {
                Value::Object(map) => map.get(token.as_str()),
                Value::Array(items) => index(token).and_then(|i| items.get(i)),
                _ => None,
            })
    }
}

impl fmt::Display for JsonPointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A JSON value written without the fields some pointers name, straight from the parsed value:
/// no copy of the payload is made. Members and elements keep their order; numbers keep their text.
pub struct Redacted<'a> {
    value: &'a Value,
    pointers: &'a [&'a JsonPointer],
    depth: usize,
}

impl<'a> Redacted<'a> {
    pub fn new(value: &'a Value, pointers: &'a [&'a JsonPointer]) -> Self {
        Redacted {
            value,
            pointers,
            depth: 0,
        }
    }

    /// The JSON text of the redacted value.
    pub fn to_vec(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a JSON value always serialises")
    }

    /// The pointers that continue below the member `token`, and whether one ends exactly there.
    fn below(&self, token: &str) -> (Vec<&'a JsonPointer>, bool) {
        let mut continuing = Vec::new();
        for p in self
            .pointers
            .iter()
            .filter(|p| p.tokens.get(self.depth).is_some_and(|t| t == token))
        {
            if p.tokens.len() == self.depth + 1 {
                return (Vec::new(), true);
            }
            continuing.push(*p);
        }
        (continuing, false)
    }
}

impl Serialize for Redacted<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.pointers.is_empty() {
            return self.value.serialize(serializer);
        }
        match self.value {
            Value::Object(map) => {
                let mut out = serializer.serialize_map(None)?;
                for (key, value) in map {
                    match self.below(key) {
                        (_, true) => {}
                        (pointers, false) => out.serialize_entry(
                            key,
                            &Redacted {
                                value,
                                pointers: &pointers,
                                depth: self.depth + 1,
                            },
                        )?,
                    }
                }
                out.end()
            }
            Value::Array(items) => {
                let mut out = serializer.serialize_seq(Some(items.len()))?;
                for (i, value) in items.iter().enumerate() {
                    match self.below(&i.to_string()) {
                        (_, true) => {}
                        (pointers, false) => out.serialize_element(&Redacted {
                            value,
                            pointers: &pointers,
                            depth: self.depth + 1,
                        })?,
                    }
                }
                out.end()
            }
            scalar => scalar.serialize(serializer),
        }
    }
}

fn unescape(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// An array index token: digits without a leading zero (RFC 6901).
fn index(token: &str) -> Option<usize> {
    if token.is_empty() || (token.len() > 1 && token.starts_with('0')) {
        return None;
    }
    token.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_and_unescapes() {
        let p = JsonPointer::parse("/a~1b/c~0d").unwrap();
        assert_eq!(p.get(&json!({"a/b": {"c~d": 7}})), Some(&json!(7)));
        assert_eq!(
            JsonPointer::parse("MaHoSo"),
            Err(PointerError::NoLeadingSlash("MaHoSo".into()))
        );
        assert_eq!(
            JsonPointer::parse(""),
            Err(PointerError::WholeDocument("".into()))
        );
        assert_eq!(
            JsonPointer::parse("/a~2"),
            Err(PointerError::BadEscape("/a~2".into()))
        );
    }

    #[test]
    fn gets_through_objects_and_arrays() {
        let doc = json!({"TaiLieuNop": [{"Ten": "CMND"}, {"Ten": "So ho khau"}]});
        assert_eq!(
            JsonPointer::parse("/TaiLieuNop/1/Ten").unwrap().get(&doc),
            Some(&json!("So ho khau"))
        );
        assert_eq!(
            JsonPointer::parse("/TaiLieuNop/01/Ten").unwrap().get(&doc),
            None
        );
        assert_eq!(JsonPointer::parse("/Missing").unwrap().get(&doc), None);
    }

    /// The bytes production writes for a redacted copy.
    fn redact(text: &str, pointers: &[&str]) -> String {
        let doc = crate::payload::parse(text.as_bytes()).unwrap();
        let pointers: Vec<JsonPointer> = pointers
            .iter()
            .map(|p| JsonPointer::parse(p).unwrap())
            .collect();
        let refs: Vec<&JsonPointer> = pointers.iter().collect();
        String::from_utf8(Redacted::new(&doc, &refs).to_vec()).unwrap()
    }

    #[test]
    fn leaves_out_exactly_the_named_members_and_keeps_order_and_numbers() {
        assert_eq!(
            redact(
                r#"{"z":1,"SoDienThoai":"0901","a":{"Email":"x@y.vn","keep":[1,{"b":2,"c":3}]},"n":12345678901234567890,"f":1.0}"#,
                &[
                    "/SoDienThoai",
                    "/a/Email",
                    "/a/keep/1/c",
                    "/missing",
                    "/z/deeper"
                ],
            ),
            r#"{"z":1,"a":{"keep":[1,{"b":2}]},"n":12345678901234567890,"f":1.0}"#
        );
        assert_eq!(redact(r#"{"a":{"x":1}}"#, &["/a"]), "{}", "a whole member");
        assert_eq!(
            redact(r#"{"a/b":1,"c~d":2,"e":3}"#, &["/a~1b", "/c~0d"]),
            r#"{"e":3}"#,
            "escaped names"
        );
    }

    #[test]
    fn array_elements_are_named_by_their_place_in_the_received_payload() {
        // Two pointers into one array: both name places in the payload as received, so leaving
        // out the first does not shift the second onto another element.
        assert_eq!(
            redact(r#"{"l":[1,2,3,4]}"#, &["/l/0", "/l/2"]),
            r#"{"l":[2,4]}"#
        );
        assert_eq!(
            redact(r#"{"l":[1,2,3]}"#, &["/l/9", "/l/01"]),
            r#"{"l":[1,2,3]}"#
        );
        // Nested arrays: a member of one element, and an element of an inner array.
        assert_eq!(
            redact(
                r#"{"TaiLieuNop":[{"Ten":"CMND","So":"079"},{"Ten":"HK","So":"080","Trang":[1,2]}]}"#,
                &["/TaiLieuNop/0/So", "/TaiLieuNop/1/Trang/0"],
            ),
            r#"{"TaiLieuNop":[{"Ten":"CMND"},{"Ten":"HK","So":"080","Trang":[2]}]}"#
        );
    }
}
