//! Schema evolution: whether a new version of a record type's schema keeps the promise its
//! compatibility mode makes. The check is conservative: it reasons about the keywords it knows
//! (`type`, `required`, `properties`, `additionalProperties`, `items`, `enum`, `const`, bounds,
//! `pattern`, `format`) and refuses any other change it cannot prove harmless. It compares the new
//! schema with the latest version only.

use serde_json::{Map, Value};

use crate::resource::Compatibility;

/// Keywords that only describe; changing them never changes which records are valid.
const ANNOTATIONS: [&str; 9] = [
    "title",
    "description",
    "examples",
    "default",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$comment",
    "$schema",
];

/// Keywords that set a lower bound: raising one narrows what is valid.
const LOWER_BOUNDS: [&str; 6] = [
    "minimum",
    "exclusiveMinimum",
    "minLength",
    "minItems",
    "minProperties",
    "multipleOf",
];
/// Keywords that set an upper bound: lowering one narrows what is valid.
const UPPER_BOUNDS: [&str; 5] = [
    "maximum",
    "exclusiveMaximum",
    "maxLength",
    "maxItems",
    "maxProperties",
];

/// Why `new` breaks `mode` with respect to `old`; empty when it does not.
pub fn incompatibilities(old: &Value, new: &Value, mode: Compatibility) -> Vec<String> {
    let mut reasons = Vec::new();
    if matches!(mode, Compatibility::Backward | Compatibility::Full) {
        // Backward: everything the old schema accepted, the new one accepts.
        let mut found = Vec::new();
        narrowings(old, new, "", &mut found);
        reasons.extend(found.into_iter().map(|r| format!("backward: {r}")));
    }
    if matches!(mode, Compatibility::Forward | Compatibility::Full) {
        // Forward: everything the new schema accepts, the old one accepted.
        let mut found = Vec::new();
        narrowings(new, old, "", &mut found);
        reasons.extend(
            found
                .into_iter()
                .map(|r| format!("forward: {}", r.replace("the new schema", "the old schema"))),
        );
    }
    reasons
}

/// Records valid under `wide` that `narrow` may refuse, found keyword by keyword. Messages speak of
/// `narrow` as "the new schema" (the forward check rewrites that).
fn narrowings(wide: &Value, narrow: &Value, path: &str, out: &mut Vec<String>) {
    let at = if path.is_empty() { "/" } else { path };
    let (wide, narrow) = match (wide, narrow) {
        (_, Value::Bool(true)) => return,
        (Value::Bool(false), _) => return,
        (Value::Bool(true), Value::Object(n)) if is_unconstrained(n) => return,
        (Value::Bool(true), _) | (_, Value::Bool(false)) => {
            out.push(format!(
                "`{at}`: the new schema constrains what was unconstrained"
            ));
            return;
        }
        (Value::Object(w), Value::Object(n)) => (w, n),
        _ => {
            out.push(format!("`{at}`: not a schema object"));
            return;
        }
    };

    for (keyword, n) in narrow {
        if ANNOTATIONS.contains(&keyword.as_str()) {
            continue;
        }
        let w = wide.get(keyword);
        match keyword.as_str() {
            "type" => {
                let wide_types = types(w);
                let narrow_types = types(Some(n));
                for t in wide_types.iter().flatten() {
                    if !type_admits(narrow_types.as_deref(), t) {
                        out.push(format!("`{at}`: type narrowed: `{t}` is no longer allowed"));
                    }
                }
                if wide_types.is_none() && narrow_types.is_some() {
                    out.push(format!(
                        "`{at}`: a type is now required where any was allowed"
                    ));
                }
            }
            "required" => {
                for name in strings(n) {
                    if !w.is_some_and(|w| strings(w).contains(&name)) {
                        out.push(format!("`{path}/{name}`: property made required"));
                    }
                }
            }
            "enum" => match w {
                None => out.push(format!("`{at}`: values restricted by a new `enum`")),
                Some(w) => {
                    for value in w.as_array().into_iter().flatten() {
                        if !n.as_array().is_some_and(|n| n.contains(value)) {
                            out.push(format!("`{at}`: enum value {value} removed"));
                        }
                    }
                }
            },
            "properties" => {
                let empty = Map::new();
                let wide_props = w.and_then(Value::as_object).unwrap_or(&empty);
                for (name, n_prop) in n.as_object().into_iter().flatten() {
                    let child = format!("{path}/{name}");
                    match wide_props.get(name) {
                        Some(w_prop) => narrowings(w_prop, n_prop, &child, out),
                        // A property the old schema did not describe. If the old schema closed
                        // additional properties, no old record has it; if it left them open, an
                        // old record may have carried it with another shape. Adding an optional
                        // field is the everyday change, so it is allowed (see the operator guide).
                        None => {
                            if let Some(extra) = wide.get("additionalProperties")
                                && extra.is_object()
                            {
                                narrowings(extra, n_prop, &child, out);
                            }
                        }
                    }
                }
            }
            "additionalProperties" => {
                let closes = matches!(n, Value::Bool(false));
                match w {
                    Some(Value::Bool(false)) => {}
                    _ if closes => out.push(format!(
                        "`{at}`: additional properties closed (records with other fields are refused)"
                    )),
                    Some(w) => narrowings(w, n, &format!("{path}/*"), out),
                    None => narrowings(&Value::Bool(true), n, &format!("{path}/*"), out),
                }
            }
            "items" => narrowings(
                w.unwrap_or(&Value::Bool(true)),
                n,
                &format!("{path}/*"),
                out,
            ),
            k if LOWER_BOUNDS.contains(&k) => {
                if !w.is_some_and(|w| w == n || (k != "multipleOf" && number(w) >= number(n))) {
                    out.push(format!("`{at}`: `{k}` added or raised"));
                }
            }
            k if UPPER_BOUNDS.contains(&k) => {
                if !w.is_some_and(|w| number(w) <= number(n)) {
                    out.push(format!("`{at}`: `{k}` added or lowered"));
                }
            }
            _ => {
                if w != Some(n) {
                    out.push(format!(
                        "`{at}`: `{keyword}` added or changed; the compatibility check cannot prove this harmless"
                    ));
                }
            }
        }
    }

    // Removing a constraint widens, with one exception: removing a described property while
    // additional properties are closed refuses records that carry it.
    if matches!(narrow.get("additionalProperties"), Some(Value::Bool(false))) {
        let narrow_props = narrow.get("properties").and_then(Value::as_object);
        for name in wide
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(Map::keys)
        {
            if !narrow_props.is_some_and(|p| p.contains_key(name)) {
                out.push(format!(
                    "`{path}/{name}`: property removed while additional properties are closed"
                ));
            }
        }
    }
}

/// A schema object that accepts everything: only annotations.
fn is_unconstrained(schema: &Map<String, Value>) -> bool {
    schema.keys().all(|k| ANNOTATIONS.contains(&k.as_str()))
}

/// The `type` keyword as a list; `None` when absent (any type).
fn types(value: Option<&Value>) -> Option<Vec<String>> {
    match value? {
        Value::String(t) => Some(vec![t.clone()]),
        Value::Array(ts) => Some(
            ts.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
        ),
        _ => Some(Vec::new()),
    }
}

/// Whether a `type` list admits every value of JSON type `t` (every integer is a number).
fn type_admits(types: Option<&[String]>, t: &str) -> bool {
    types.is_none_or(|ts| {
        ts.iter()
            .any(|x| x == t || (x == "number" && t == "integer"))
    })
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

fn number(value: &Value) -> Option<f64> {
    value.as_f64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dossier() -> Value {
        json!({
            "type": "object",
            "required": ["MaHoSo"],
            "properties": {
                "MaHoSo": {"type": "string", "maxLength": 20},
                "TrangThai": {"type": "integer", "enum": [1, 2, 3]},
                "Email": {"type": "string"}
            }
        })
    }

    fn check(change: impl FnOnce(&mut Value), mode: Compatibility) -> Vec<String> {
        let old = dossier();
        let mut new = old.clone();
        change(&mut new);
        incompatibilities(&old, &new, mode)
    }

    #[test]
    fn an_identical_or_merely_redescribed_schema_is_compatible_in_every_mode() {
        for mode in [
            Compatibility::Backward,
            Compatibility::Forward,
            Compatibility::Full,
        ] {
            assert_eq!(check(|_| {}, mode), Vec::<String>::new());
            assert_eq!(
                check(
                    |s| s["properties"]["Email"]["description"] = json!("e-mail"),
                    mode
                ),
                Vec::<String>::new()
            );
        }
    }

    #[test]
    fn backward_refuses_what_would_break_old_records() {
        let r = check(
            |s| s["required"] = json!(["MaHoSo", "Email"]),
            Compatibility::Backward,
        );
        assert_eq!(r, ["backward: `/Email`: property made required"]);

        let r = check(
            |s| s["properties"]["TrangThai"]["enum"] = json!([1, 2]),
            Compatibility::Backward,
        );
        assert_eq!(r, ["backward: `/TrangThai`: enum value 3 removed"]);

        let r = check(
            |s| s["properties"]["MaHoSo"]["type"] = json!("integer"),
            Compatibility::Backward,
        );
        assert_eq!(
            r,
            ["backward: `/MaHoSo`: type narrowed: `string` is no longer allowed"]
        );

        let r = check(
            |s| s["properties"]["MaHoSo"]["maxLength"] = json!(10),
            Compatibility::Backward,
        );
        assert_eq!(r, ["backward: `/MaHoSo`: `maxLength` added or lowered"]);

        let r = check(
            |s| s["additionalProperties"] = json!(false),
            Compatibility::Backward,
        );
        assert_eq!(
            r,
            ["backward: `/`: additional properties closed (records with other fields are refused)"]
        );
    }

    #[test]
    fn backward_accepts_what_only_widens() {
        let widen = |s: &mut Value| {
            s["required"] = json!([]);
            s["properties"]["TrangThai"]["enum"] = json!([1, 2, 3, 4]);
            s["properties"]["TrangThai"]["type"] = json!("number");
            s["properties"]["MaHoSo"]["maxLength"] = json!(40);
            s["properties"]["GhiChu"] = json!({"type": "string"});
            s["properties"]["Email"] = json!({});
        };
        assert_eq!(check(widen, Compatibility::Backward), Vec::<String>::new());
        // The same change read forward: new records may lack MaHoSo, carry TrangThai 4 ...
        let forward = check(widen, Compatibility::Forward);
        assert!(
            forward.contains(&"forward: `/MaHoSo`: property made required".to_string()),
            "{forward:?}"
        );
        assert!(
            forward.contains(&"forward: `/TrangThai`: enum value 4 removed".to_string()),
            "{forward:?}"
        );
    }

    #[test]
    fn removing_a_property_matters_only_when_additional_properties_are_closed() {
        let remove = |s: &mut Value| {
            s["properties"]
                .as_object_mut()
                .unwrap()
                .shift_remove("Email");
        };
        assert_eq!(check(remove, Compatibility::Backward), Vec::<String>::new());
        let old = {
            let mut s = dossier();
            s["additionalProperties"] = json!(false);
            s
        };
        let mut new = old.clone();
        remove(&mut new);
        assert_eq!(
            incompatibilities(&old, &new, Compatibility::Backward),
            ["backward: `/Email`: property removed while additional properties are closed"]
        );
    }

    #[test]
    fn unknown_keywords_are_refused_unless_unchanged_and_none_checks_nothing() {
        let r = check(
            |s| s["oneOf"] = json!([{"required": ["Email"]}]),
            Compatibility::Backward,
        );
        assert_eq!(r.len(), 1);
        assert!(r[0].contains("`oneOf` added or changed"), "{r:?}");
        assert_eq!(
            check(|s| s["required"] = json!(["Email"]), Compatibility::None),
            Vec::<String>::new()
        );
    }

    #[test]
    fn nested_objects_and_arrays_are_followed() {
        let old = json!({"type": "object", "properties": {
            "TaiLieuNop": {"type": "array", "items": {"type": "object", "properties": {"TepDinhKem": {"type": "string"}}}}
        }});
        let mut new = old.clone();
        new["properties"]["TaiLieuNop"]["items"]["required"] = json!(["TepDinhKem"]);
        assert_eq!(
            incompatibilities(&old, &new, Compatibility::Full),
            ["backward: `/TaiLieuNop/*/TepDinhKem`: property made required"]
        );
    }
}
