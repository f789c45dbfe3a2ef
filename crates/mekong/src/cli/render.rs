//! Resources as people read them: the JSON the hub sends, as YAML (numbers keep their exact text,
//! members their order) or as JSON with the stored metadata.

use mekong_proto::v1 as pb;
use serde_json::Value;

/// A stored resource as JSON, its spec parsed.
pub(super) fn json_of(r: &pb::StoredResource) -> Value {
    let spec: Value = serde_json::from_str(&r.spec).unwrap_or(Value::String(r.spec.clone()));
    let mut value = serde_json::json!({
        "kind": r.kind,
        "name": r.name,
        "version": r.version,
        "changedBy": r.changed_by,
        "changedAt": r.changed_at,
        "spec": spec,
    });
    if r.kind == "RecordType" {
        value["schemaVersion"] = r.schema_version.into();
    }
    value
}

/// JSON text (a resource as the hub sends it) as YAML; empty text stays empty.
pub(super) fn yaml_of_json(text: &str) -> String {
    if text.is_empty() {
        return String::new();
    }
    match serde_json::from_str::<Value>(text) {
        Ok(value) => serde_norway::to_string(&to_yaml(&value)).unwrap_or_else(|_| text.to_owned()),
        Err(_) => text.to_owned(),
    }
}

/// serde_json values (with exact-number support) as YAML values: numbers keep their text.
fn to_yaml(value: &Value) -> serde_norway::Value {
    use serde_norway::Value as Y;
    match value {
        Value::Null => Y::Null,
        Value::Bool(b) => Y::Bool(*b),
        Value::Number(n) => {
            let text = n.to_string();
            serde_norway::from_str(&text).unwrap_or(Y::String(text))
        }
        Value::String(s) => Y::String(s.clone()),
        Value::Array(items) => Y::Sequence(items.iter().map(to_yaml).collect()),
        Value::Object(map) => Y::Mapping(
            map.iter()
                .map(|(k, v)| (Y::String(k.clone()), to_yaml(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_output_keeps_order_and_exact_numbers() {
        let yaml = yaml_of_json(
            r#"{"kind":"RecordType","name":"x","schema":{"type":"object","maximum":12345678901234567890,"multipleOf":0.5}}"#,
        );
        assert_eq!(
            yaml,
            "kind: RecordType\nname: x\nschema:\n  type: object\n  maximum: 12345678901234567890\n  multipleOf: 0.5\n"
        );
    }
}
