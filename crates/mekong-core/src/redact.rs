//! JSON pointers (RFC 6901), parsed once at load time, and the two things Mekong does with them:
//! read a partition key out of a payload, and redact a field from one copy of it.

use std::fmt;

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

    /// Removes the field this pointer names; returns whether there was one. Object members are
    /// removed in place, keeping the order of the others.
    pub fn remove(&self, document: &mut Value) -> bool {
        let Some((last, parents)) = self.tokens.split_last() else {
            return false;
        };
        let parent = parents.iter().try_fold(document, |node, token| match node {
            Value::Object(map) => map.get_mut(token.as_str()),
            Value::Array(items) => index(token).and_then(|i| items.get_mut(i)),
            _ => None,
        });
        match parent {
            Some(Value::Object(map)) => map.shift_remove(last.as_str()).is_some(),
            Some(Value::Array(items)) => match index(last) {
                Some(i) if i < items.len() => {
                    items.remove(i);
                    true
                }
                _ => false,
            },
            _ => false,
        }
    }
}

impl fmt::Display for JsonPointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
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

    #[test]
    fn removes_exactly_the_named_field_and_keeps_order() {
        let mut doc: Value = serde_json::from_str(
            r#"{"z":1,"SoDienThoai":"0901","a":{"Email":"x@y.vn","keep":true},"m":2}"#,
        )
        .unwrap();
        assert!(JsonPointer::parse("/SoDienThoai").unwrap().remove(&mut doc));
        assert!(JsonPointer::parse("/a/Email").unwrap().remove(&mut doc));
        assert!(
            !JsonPointer::parse("/a/Email").unwrap().remove(&mut doc),
            "already gone"
        );
        assert!(!JsonPointer::parse("/nowhere/x").unwrap().remove(&mut doc));
        assert_eq!(
            serde_json::to_string(&doc).unwrap(),
            r#"{"z":1,"a":{"keep":true},"m":2}"#
        );
    }

    #[test]
    fn removes_array_elements() {
        let mut doc = json!({"l": [1, 2, 3]});
        assert!(JsonPointer::parse("/l/1").unwrap().remove(&mut doc));
        assert!(!JsonPointer::parse("/l/9").unwrap().remove(&mut doc));
        assert_eq!(doc, json!({"l": [1, 3]}));
    }
}
