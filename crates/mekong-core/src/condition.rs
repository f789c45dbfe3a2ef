//! Route conditions: CEL expressions over `data` (the payload), `type` (the record type) and
//! `source` (the publishing client), compiled once when the catalog is built.

use std::sync::{Arc, LazyLock};

use cel::common::ast::{EntryExpr, Expr, IdedExpr};
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
    /// The top-level payload fields the condition reads, when it reads `data` only as `data.<field>`:
    /// then only those fields are handed to CEL, not a copy of the whole payload.
    data_fields: Option<Vec<String>>,
}

impl Condition {
    pub fn compile(text: &str) -> Result<Condition, String> {
        let program = ENV
            .compile(text)
            .map_err(|e| format!("CEL does not parse: {e}"))?;
        let usage = usage(program.expression());
        if let Some(unknown) = usage.unknown {
            return Err(format!(
                "CEL refers to `{unknown}`; a condition may use only `data`, `type` and `source`"
            ));
        }
        if let Some(costly) = usage.costly {
            return Err(format!(
                "{costly}: its cost would grow with the square of the payload's size. Inside \
                 all/exists/exists_one/map/filter use only the loop's own variable, `type`, `source` \
                 and constants; match() takes a constant pattern"
            ));
        }
        Ok(Condition {
            program,
            data_fields: usage.data_fields,
        })
    }

    /// Evaluates the condition. An error (a missing field, a type mismatch, a result that is not a
    /// boolean) is returned, not hidden: the caller treats it as "no match" and makes it visible.
    pub fn evaluate(&self, data: &Value, record_type: &str, source: &str) -> Result<bool, String> {
        let mut context = Context::with_env(Arc::clone(&ENV));
        let data = match (&self.data_fields, data) {
            (Some(fields), Value::Object(map)) => {
                let used = fields
                    .iter()
                    .filter_map(|f| map.get(f).map(|v| (f.clone(), to_cel(v))));
                Cel::from(used.collect::<std::collections::HashMap<String, Cel>>())
            }
            _ => to_cel(data),
        };
        context.add_variable_from_value("data", data);
        context.add_variable_from_value("type", record_type);
        context.add_variable_from_value("source", source);
        match self.program.execute(&context) {
            Ok(Cel::Bool(b)) => Ok(b),
            Ok(other) => Err(format!("condition gave {other:?}, not a boolean")),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// What a condition's expression uses: identifiers that are neither a variable, a name bound by a
/// macro (`exists(x, ...)`) nor a type, the fields of `data.<field>` selections (`None` once
/// `data` is used any other way), and the first thing that would make its cost grow faster than
/// the payload: a loop whose body reaches outside its own element (the payload, or an outer loop's
/// variable), or a regular expression taken from the payload.
struct Usage {
    unknown: Option<String>,
    data_fields: Option<Vec<String>>,
    costly: Option<String>,
}

/// Where the walk is: the names bound by enclosing loops, and where the innermost loop body's own
/// names start (`None` outside any loop body).
struct Scope<'e> {
    bound: Vec<&'e str>,
    body_from: Option<usize>,
}

impl Scope<'_> {
    /// Whether `name` is bound, and if so whether an enclosing loop body may not use it.
    fn lookup(&self, name: &str) -> Option<bool> {
        let at = self.bound.iter().rposition(|b| *b == name)?;
        Some(self.body_from.is_some_and(|from| at < from))
    }
}

/// Type names an expression may mention, as in `type(data.x) == int`.
const TYPE_NAMES: [&str; 11] = [
    "bool",
    "bytes",
    "double",
    "dyn",
    "int",
    "list",
    "map",
    "null_type",
    "string",
    "type",
    "uint",
];

fn usage(e: &IdedExpr) -> Usage {
    let mut usage = Usage {
        unknown: None,
        data_fields: Some(Vec::new()),
        costly: None,
    };
    let mut scope = Scope {
        bound: Vec::new(),
        body_from: None,
    };
    walk(e, &mut scope, &mut usage);
    usage
}

fn walk<'e>(e: &'e IdedExpr, scope: &mut Scope<'e>, usage: &mut Usage) {
    match &e.expr {
        Expr::Select(select) => match &select.operand.expr {
            Expr::Ident(name) if name == "data" && scope.lookup("data").is_none() => {
                if let Some(fields) = usage
                    .data_fields
                    .as_mut()
                    .filter(|f| !f.contains(&select.field))
                {
                    fields.push(select.field.clone());
                }
                in_body(scope, usage, "data");
            }
            _ => walk(&select.operand, scope, usage),
        },
        Expr::Ident(name) => match scope.lookup(name) {
            Some(true) => in_body(scope, usage, name),
            Some(false) => {}
            None if name == "data" => {
                usage.data_fields = None;
                in_body(scope, usage, name);
            }
            None if !VARIABLES.contains(&name.as_str())
                && !TYPE_NAMES.contains(&name.as_str())
                && usage.unknown.is_none() =>
            {
                usage.unknown = Some(name.clone());
            }
            None => {}
        },
        Expr::Call(call) => {
            if call.func_name == "matches" && usage.costly.is_none() {
                let pattern = if call.target.is_some() {
                    call.args.first()
                } else {
                    call.args.get(1)
                };
                if !pattern.is_some_and(|p| matches!(p.expr, Expr::Literal(_))) {
                    usage.costly = Some("matches() with a pattern that is not a constant".into());
                }
            }
            call.target.iter().for_each(|t| walk(t, scope, usage));
            call.args.iter().for_each(|a| walk(a, scope, usage));
        }
        Expr::Comprehension(c) => {
            walk(&c.iter_range, scope, usage);
            walk(&c.accu_init, scope, usage);
            let (depth, outer_body) = (scope.bound.len(), scope.body_from);
            scope.body_from = Some(depth);
            scope
                .bound
                .extend([c.iter_var.as_str(), c.accu_var.as_str()]);
            scope.bound.extend(c.iter_var2.as_deref());
            // The condition and the step run once per element; the result once.
            walk(&c.loop_cond, scope, usage);
            walk(&c.loop_step, scope, usage);
            scope.body_from = outer_body;
            walk(&c.result, scope, usage);
            scope.bound.truncate(depth);
        }
        Expr::List(list) => list.elements.iter().for_each(|x| walk(x, scope, usage)),
        Expr::Map(map) => map
            .entries
            .iter()
            .for_each(|x| walk_entry(&x.expr, scope, usage)),
        Expr::Struct(st) => st
            .entries
            .iter()
            .for_each(|x| walk_entry(&x.expr, scope, usage)),
        Expr::Literal(_) | Expr::Unspecified => {}
    }
}

fn walk_entry<'e>(entry: &'e EntryExpr, scope: &mut Scope<'e>, usage: &mut Usage) {
    match entry {
        EntryExpr::StructField(f) => walk(&f.value, scope, usage),
        EntryExpr::MapEntry(m) => {
            walk(&m.key, scope, usage);
            walk(&m.value, scope, usage);
        }
    }
}

/// Notes that a loop body uses `name`, which is not its own, if the walk is inside one.
fn in_body(scope: &Scope<'_>, usage: &mut Usage, name: &str) {
    if scope.body_from.is_some() && usage.costly.is_none() {
        usage.costly = Some(format!(
            "a loop (all/exists/map/filter) uses `{name}` in its body, which is not the loop's own element"
        ));
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
    fn only_the_fields_a_condition_reads_are_handed_over() {
        let c =
            Condition::compile("data.a == 1 && has(data.b) && [data.a].exists(x, x > 0)").unwrap();
        assert_eq!(c.data_fields, Some(vec!["a".to_string(), "b".to_string()]));
        assert_eq!(
            c.evaluate(&json!({"a": 1, "b": 2, "c": 3}), "t", "s"),
            Ok(true)
        );
        assert_eq!(c.evaluate(&json!({"a": 1, "c": 3}), "t", "s"), Ok(false));
        // `data` as a whole: everything is handed over.
        let whole = Condition::compile("size(data) == 3 && data.a == 1").unwrap();
        assert_eq!(whole.data_fields, None);
        assert_eq!(
            whole.evaluate(&json!({"a": 1, "b": 2, "c": 3}), "t", "s"),
            Ok(true)
        );
        let bound = Condition::compile(
            "data.l.exists(x, x.v == type(1) || source == 'q1') && data.l.all(v, v > 0)",
        )
        .unwrap();
        assert_eq!(
            bound.data_fields,
            Some(vec!["l".to_string()]),
            "macro variables are not unknown names"
        );
        let index = Condition::compile("data['a'] == 1").unwrap();
        assert_eq!(index.data_fields, None);
        assert_eq!(index.evaluate(&json!({"a": 1}), "t", "s"), Ok(true));
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

    #[test]
    fn conditions_whose_cost_grows_with_the_square_of_the_payload_are_refused() {
        for quadratic in [
            "data.a.all(x, x in data.a)",
            "data.a.exists(x, data.s.contains(x))",
            "data.a.all(x, data.a.exists(y, y == x))",
            "data.a.all(x, x.l.all(y, y in x.l))",
            "data.s.matches(data.p)",
            "matches(data.s, data.p)",
        ] {
            let e = Condition::compile(quadratic).unwrap_err();
            assert!(e.contains("square of the payload"), "{quadratic}: {e}");
        }
        // Loops over the payload, nested ones too, that look only at their own element are linear.
        for linear in [
            "data.DanhSachLePhi.exists(f, f.SoTien > 0 && source == 'q1')",
            "data.TaiLieuNop.all(d, d.Files.all(f, f.Size < 1000))",
            "data.a.filter(x, x > 1).map(y, y * 2).all(z, z < 100)",
            "data.s.matches('^[0-9]+$') && [1, 2].exists(i, i == 2)",
            "size(data.a.filter(x, x > 0)) == size(data.a)",
        ] {
            assert!(Condition::compile(linear).is_ok(), "{linear}");
        }
    }
}
