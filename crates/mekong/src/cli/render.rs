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
        Ok(value) => mekong_core::yaml_text(&value),
        Err(_) => text.to_owned(),
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
