//! Route conditions: CEL expressions over `data` (the payload), `type` (the record type) and
//! `source` (the publishing client), compiled once when the catalog is built.

use std::sync::{Arc, LazyLock};

use cel::{Context, Env, Program, Value as Cel};
use serde_json::Value;

/// The standard CEL environment, built once and shared by every evaluation.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

/// The variables a condition may use.
const VARIABLES: [&str; 3] = ["data", "type", "source"];

/// A compiled `when` condition.
#[derive(Debug)]
pub struct Condition {
    program: Program,
}

impl Condition {
    pub fn compile(text: &str) -> Result<Condition, String> {
        let program = ENV
            .compile(text)
            .map_err(|e| format!("CEL does not parse: {e}"))?;
        let references = program.references();
        if let Some(unknown) = references
            .variables()
            .into_iter()
            .find(|v| !VARIABLES.contains(v))
        {
            return Err(format!(
                "CEL refers to `{unknown}`; a condition may use only `data`, `type` and `source`"
            ));
        }
        Ok(Condition { program })
    }

    /// Evaluates the condition. An error (a missing field, a type mismatch, a result that is not a
    /// boolean) is returned, not hidden: the caller treats it as "no match" and makes it visible.
    pub fn evaluate(&self, data: &Value, record_type: &str, source: &str) -> Result<bool, String> {
        let mut context = Context::with_env(Arc::clone(&ENV));
        context.add_variable_from_value("data", to_cel(data));
        context.add_variable_from_value("type", record_type);
        context.add_variable_from_value("source", source);
        match self.program.execute(&context) {
            Ok(Cel::Bool(b)) => Ok(b),
            Ok(other) => Err(format!("condition gave {other:?}, not a boolean")),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// JSON to CEL. Integers stay integers (int, or uint above i64), everything else maps one to one.
fn to_cel(value: &Value) -> Cel {
    match value {
        Value::Null => Cel::Null,
        Value::Bool(b) => Cel::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Cel::Int(i),
            (None, Some(u)) => Cel::UInt(u),
            _ => Cel::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Cel::String(Arc::new(s.clone())),
        Value::Array(items) => Cel::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(map) => {
            let entries: std::collections::HashMap<String, Cel> =
                map.iter().map(|(k, v)| (k.clone(), to_cel(v))).collect();
            entries.into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn evaluates_over_data_type_and_source() {
        let c = Condition::compile(
            "data.LoaiDoiTuong == 1 && type == 'dossier.sync' && source.startsWith('q1')",
        )
        .unwrap();
        assert_eq!(
            c.evaluate(&json!({"LoaiDoiTuong": 1}), "dossier.sync", "q1-one-stop"),
            Ok(true)
        );
        assert_eq!(
            c.evaluate(&json!({"LoaiDoiTuong": 2}), "dossier.sync", "q1-one-stop"),
            Ok(false)
        );
    }

    #[test]
    fn nested_fields_lists_and_has() {
        let c = Condition::compile("has(data.ChuHoSo) && size(data.TaiLieuNop) > 1").unwrap();
        assert_eq!(
            c.evaluate(&json!({"ChuHoSo": "A", "TaiLieuNop": [1, 2]}), "t", "s"),
            Ok(true)
        );
        assert_eq!(
            c.evaluate(&json!({"TaiLieuNop": [1, 2]}), "t", "s"),
            Ok(false)
        );
    }

    #[test]
    fn a_missing_field_is_an_error_not_a_match() {
        let c = Condition::compile("data.LoaiDoiTuong == 1").unwrap();
        assert!(c.evaluate(&json!({}), "t", "s").is_err());
    }

    #[test]
    fn a_non_boolean_result_is_an_error() {
        let c = Condition::compile("data.n + 1").unwrap();
        assert!(
            c.evaluate(&json!({"n": 1}), "t", "s")
                .unwrap_err()
                .contains("not a boolean")
        );
    }

    #[test]
    fn bad_expressions_and_unknown_variables_are_refused_at_compile_time() {
        assert!(
            Condition::compile("data.x ==")
                .unwrap_err()
                .contains("does not parse")
        );
        assert!(
            Condition::compile("payload.x == 1")
                .unwrap_err()
                .contains("`payload`")
        );
    }
}
