//! JSON Schema, compiled once per record type. Draft 2020-12 unless the schema's `$schema` says
//! otherwise; `format` is checked. Compiled without any retriever for remote documents: a schema
//! can never make the hub fetch anything over the network or from disk. Patterns run on a
//! linear-time engine (no back-references, no look-around), so no record can make one run for
//! seconds.

use jsonschema::error::ValidationErrorKind;
use jsonschema::{Draft, Validator};
use serde_json::Value;

use crate::rejection::{Violation, excerpt};

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
        let mut options = jsonschema::options()
            .should_validate_formats(true)
            .with_pattern_options(jsonschema::PatternOptions::regex());
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
        let validator = options.build(schema).map_err(|e| {
            format!(
                "schema does not compile: {e} (patterns may not use back-references or look-around: \
                 the hub evaluates them in linear time)"
            )
        })?;
        Ok(Schema { validator })
    }

    /// The first `max` violations of the schema, each at its JSON pointer in the payload, and how
    /// many there are in all. For a missing required property the pointer names the property
    /// itself, so the caller sees which field to add. Descriptions quote at most a short excerpt of
    /// a value, and the masked ones none.
    pub fn violations(&self, payload: &Value, max: usize) -> (Vec<Violation>, usize) {
        let mut violations = Vec::new();
        let mut count = 0;
        for error in self.validator.iter_errors(payload) {
            count += 1;
            if violations.len() == max {
                continue;
            }
            let mut field = error.instance_path().to_string();
            if let ValidationErrorKind::Required { property } = error.kind()
                && let Some(name) = property.as_str()
            {
                field = format!("{field}/{}", name.replace('~', "~0").replace('/', "~1"));
            }
            let quoted = quote(error.instance());
            violations.push(Violation {
                field: excerpt(&field, MAX_POINTER_CHARS).into_owned(),
                description: excerpt(
                    &error.masked_with(quoted).to_string(),
                    MAX_DESCRIPTION_CHARS,
                )
                .into_owned(),
                masked: excerpt(&error.masked().to_string(), MAX_DESCRIPTION_CHARS).into_owned(),
            });
        }
        (violations, count)
    }
}

/// Bounds on what one violation says: member names and values come from the caller, and the
/// status carrying the violations must stay far below what gRPC clients accept (16 KiB).
const MAX_POINTER_CHARS: usize = 200;
const MAX_DESCRIPTION_CHARS: usize = 300;
const MAX_QUOTED_CHARS: usize = 100;

/// How a violation names the offending value: a short excerpt of a scalar, never a whole object or
/// array.
fn quote(value: &Value) -> String {
    match value {
        Value::String(s) => format!("\"{}\"", excerpt(s, MAX_QUOTED_CHARS)),
        Value::Number(n) => excerpt(&n.to_string(), MAX_QUOTED_CHARS).into_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".into(),
        Value::Array(_) => "the array".into(),
        Value::Object(_) => "the object".into(),
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
        assert_eq!(dossier_schema().violations(&ok, 10), (vec![], 0));
    }

    #[test]
    fn each_violation_is_reported_at_its_pointer() {
        let bad = json!({"NgayTiepNhan": "28/11/2026", "Email": "not-an-email", "ChuHoSo": {"SoDienThoai": 901}});
        let mut fields: Vec<String> = dossier_schema()
            .violations(&bad, 10)
            .0
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
        let (v, _) = dossier_schema().violations(
            &json!({"MaHoSo": "12345", "NgayTiepNhan": "20261128083000", "Email": "a@"}),
            10,
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
        assert_eq!(s.violations(&big, 10).1, 0);
        let too_big: Value = serde_json::from_str("123456789012345678901").unwrap();
        assert_eq!(s.violations(&too_big, 10).1, 1);
    }

    #[test]
    fn violations_quote_little_of_a_value_and_the_masked_ones_nothing() {
        let schema = Schema::compile(&json!({"properties": {
            "Phone": {"type": "string", "pattern": "^[0-9]{10}$"},
            "Notes": {"type": "integer"},
            "Nested": {"type": "string"}
        }}))
        .unwrap();
        let long = "0901234567".repeat(1000);
        let (v, n) = schema.violations(
            &json!({"Phone": "09-01", "Notes": long, "Nested": {"secret": "x"}}),
            10,
        );
        assert_eq!(n, 3);
        let by_field = |f: &str| v.iter().find(|v| v.field == f).unwrap();
        assert!(
            by_field("/Phone").description.starts_with("\"09-01\""),
            "{v:?}"
        );
        assert!(!by_field("/Phone").masked.contains("09-01"), "{v:?}");
        let notes = &by_field("/Notes").description;
        assert!(
            notes.chars().count() < 150 && notes.contains('…'),
            "{notes}"
        );
        assert!(!by_field("/Nested").description.contains("secret"), "{v:?}");
    }

    #[test]
    fn at_most_the_asked_number_of_violations_are_described() {
        let schema = Schema::compile(&json!({"items": {"type": "string"}})).unwrap();
        let (v, n) = schema.violations(&json!((0..5000).collect::<Vec<_>>()), 10);
        assert_eq!((v.len(), n), (10, 5000));
    }

    #[test]
    fn patterns_run_in_linear_time_and_back_references_are_refused() {
        // A back-reference pattern took seconds per record on a backtracking engine.
        let e = Schema::compile(&json!({"pattern": "^(a+)+\\1$"})).unwrap_err();
        assert!(e.contains("back-references"), "{e}");
        let s = Schema::compile(&json!({"type": "string", "pattern": "^(a+)+$"})).unwrap();
        let started = std::time::Instant::now();
        let (_, n) = s.violations(&json!(format!("{}b", "a".repeat(7000))), 10);
        assert_eq!(n, 1);
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }
}
