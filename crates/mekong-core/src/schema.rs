//! JSON Schema, compiled once per record type. Draft 2020-12 unless the schema's `$schema` says
//! otherwise; `format` is checked. Compiled without any retriever for remote documents: a schema
//! can never make the hub fetch anything over the network or from disk.

use jsonschema::error::ValidationErrorKind;
use jsonschema::{Draft, Validator};
use serde_json::Value;

use crate::rejection::Violation;

/// A compiled schema.
pub struct Schema {
    validator: Validator,
}

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Schema")
    }
}

impl Schema {
    pub fn compile(schema: &Value) -> Result<Schema, String> {
        if !schema.is_object() && !schema.is_boolean() {
            return Err("a JSON Schema must be an object (or a boolean)".into());
        }
        let mut options = jsonschema::options().should_validate_formats(true);
        if schema.get("$schema").is_none() {
            options = options.with_draft(Draft::Draft202012);
        }
        // Validate the schema itself against its meta-schema first: a typo like `"type": "strng"`
        // is an error at load time, not a surprise on the first record.
        if let Err(e) = jsonschema::meta::validate(schema) {
            return Err(format!(
                "not a valid JSON Schema: {}: {e}",
                pointer_or_root(&e.instance_path().to_string())
            ));
        }
        let validator = options
            .build(schema)
            .map_err(|e| format!("schema does not compile: {e}"))?;
        Ok(Schema { validator })
    }

    /// Every violation of the schema, each at its JSON pointer in the payload. For a missing
    /// required property the pointer names the property itself, so the caller sees which field to add.
    pub fn violations(&self, payload: &Value) -> Vec<Violation> {
        self.validator
            .iter_errors(payload)
            .map(|error| {
                let mut field = error.instance_path().to_string();
                if let ValidationErrorKind::Required { property } = error.kind()
                    && let Some(name) = property.as_str()
                {
                    field = format!("{field}/{}", name.replace('~', "~0").replace('/', "~1"));
                }
                Violation {
                    field,
                    description: error.to_string(),
                }
            })
            .collect()
    }
}

fn pointer_or_root(pointer: &str) -> &str {
    if pointer.is_empty() {
        "(schema root)"
    } else {
        pointer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dossier_schema() -> Schema {
        Schema::compile(&json!({
            "type": "object",
            "required": ["MaHoSo", "NgayTiepNhan"],
            "properties": {
                "MaHoSo": {"type": "string", "minLength": 5},
                "NgayTiepNhan": {"type": "string", "pattern": "^[0-9]{14}$"},
                "Email": {"type": "string", "format": "email"},
                "ChuHoSo": {"type": "object", "properties": {"SoDienThoai": {"type": "string"}}}
            }
        }))
        .unwrap()
    }

    #[test]
    fn valid_payload_has_no_violations() {
        let ok = json!({"MaHoSo": "000.00.01.H29-241128-0001", "NgayTiepNhan": "20261128083000"});
        assert_eq!(dossier_schema().violations(&ok), vec![]);
    }

    #[test]
    fn each_violation_is_reported_at_its_pointer() {
        let bad = json!({"NgayTiepNhan": "28/11/2026", "Email": "not-an-email", "ChuHoSo": {"SoDienThoai": 901}});
        let mut fields: Vec<String> = dossier_schema()
            .violations(&bad)
            .into_iter()
            .map(|v| v.field)
            .collect();
        fields.sort();
        assert_eq!(
            fields,
            ["/ChuHoSo/SoDienThoai", "/Email", "/MaHoSo", "/NgayTiepNhan"]
        );
    }

    #[test]
    fn formats_are_checked() {
        let v = dossier_schema().violations(
            &json!({"MaHoSo": "12345", "NgayTiepNhan": "20261128083000", "Email": "a@"}),
        );
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].field, "/Email");
        assert!(v[0].description.contains("email"), "{}", v[0].description);
    }

    #[test]
    fn broken_schemas_do_not_compile() {
        assert!(Schema::compile(&json!({"type": "strng"})).is_err());
        assert!(Schema::compile(&json!({"pattern": "(unclosed"})).is_err());
        assert!(Schema::compile(&json!(42)).is_err());
    }

    #[test]
    fn remote_references_are_never_fetched() {
        let err = Schema::compile(&json!({"$ref": "https://example.org/schema.json"})).unwrap_err();
        assert!(err.contains("example.org"), "{err}");
    }

    #[test]
    fn big_numbers_are_compared_exactly() {
        let s = Schema::compile(&json!({"type": "integer", "maximum": 18446744073709551615u64}))
            .unwrap();
        let big: Value = serde_json::from_str("12345678901234567890").unwrap();
        assert_eq!(s.violations(&big), vec![]);
        let too_big: Value = serde_json::from_str("123456789012345678901").unwrap();
        assert_eq!(s.violations(&too_big).len(), 1);
    }
}
