//! `mekong get KIND [NAME]`: stored resources as a table, as YAML to edit and apply again, or as
//! JSON.

use clap::{Args, ValueEnum};
use mekong_proto::v1 as pb;
use serde_json::Value;

use super::Failure;
use super::remote::{Remote, admin_client, refused};
use super::render::{json_of, yaml_of_json};

#[derive(Args, Debug)]
pub struct GetArgs {
    /// RecordType, Route or Client (case and a plural `s` do not matter).
    kind: String,
    /// One resource; without it, all of the kind.
    name: Option<String>,
    /// Output: a table (lists) or YAML (one resource) by default.
    #[arg(short = 'o', long = "output", value_enum)]
    output: Option<Output>,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Output {
    /// Resource documents, ready to edit and apply again.
    Yaml,
    /// The stored resources with version, author and time, as JSON.
    Json,
    #[value(skip)]
    Table,
}

pub async fn get(args: GetArgs) -> Result<u8, Failure> {
    let mut admin = admin_client(&args.remote).await?;
    let resources = match &args.name {
        Some(name) => vec![
            admin
                .get(pb::GetRequest {
                    kind: args.kind.clone(),
                    name: name.clone(),
                })
                .await
                .map_err(refused)?
                .into_inner(),
        ],
        None => {
            admin
                .list(pb::ListRequest {
                    kind: args.kind.clone(),
                })
                .await
                .map_err(refused)?
                .into_inner()
                .resources
        }
    };
    let output = args.output.unwrap_or(if args.name.is_some() {
        Output::Yaml
    } else {
        Output::Table
    });
    match output {
        Output::Yaml => {
            for (i, r) in resources.iter().enumerate() {
                if i > 0 {
                    println!("---");
                }
                println!(
                    "# {}/{}: version {}, changed by {} at {}{}",
                    r.kind,
                    r.name,
                    r.version,
                    r.changed_by,
                    r.changed_at,
                    if r.kind == "RecordType" {
                        format!(", schema version {}", r.schema_version)
                    } else {
                        String::new()
                    }
                );
                print!("{}", yaml_of_json(&r.spec));
            }
        }
        Output::Json => {
            let list: Vec<Value> = resources.iter().map(json_of).collect();
            let value = match (&args.name, list.as_slice()) {
                (Some(_), [one]) => one.clone(),
                _ => Value::Array(list),
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&value).expect("JSON values serialise")
            );
        }
        Output::Table => {
            if resources.is_empty() {
                eprintln!("no resources of kind {}", args.kind);
            }
            let width = resources
                .iter()
                .map(|r| r.name.len())
                .max()
                .unwrap_or(4)
                .max(4);
            let clients = resources.iter().any(|r| r.kind == "Client");
            let by_width = resources
                .iter()
                .map(|r| r.changed_by.len())
                .max()
                .unwrap_or(10)
                .max(10);
            println!(
                "{:<11} {:<width$} {:>7} {:>6}  {:<24} {}",
                "KIND",
                "NAME",
                "VERSION",
                "SCHEMA",
                "CHANGED-AT",
                if clients {
                    format!("{:<by_width$} CREDENTIALS", "CHANGED-BY")
                } else {
                    "CHANGED-BY".into()
                }
            );
            for r in &resources {
                let schema = if r.kind == "RecordType" {
                    r.schema_version.to_string()
                } else {
                    "-".into()
                };
                let by = if clients {
                    format!("{:<by_width$} {}", r.changed_by, credentials(&r.spec))
                } else {
                    r.changed_by.clone()
                };
                println!(
                    "{:<11} {:<width$} {:>7} {:>6}  {:<24} {}",
                    r.kind, r.name, r.version, schema, r.changed_at, by
                );
            }
        }
    }
    Ok(0)
}

/// What a client may authenticate with, in one line: `any: 1 key; uri spiffe://...; dns ...`.
fn credentials(spec: &str) -> String {
    let spec: Value = serde_json::from_str(spec).unwrap_or(Value::Null);
    let mut parts = Vec::new();
    let keys = spec["apiKeys"].as_array().map_or(0, Vec::len);
    if keys > 0 {
        parts.push(format!("{keys} key{}", if keys == 1 { "" } else { "s" }));
    }
    for binding in spec["certificates"].as_array().into_iter().flatten() {
        let Some((kind, value)) = binding.as_object().and_then(|b| b.iter().next()) else {
            continue;
        };
        let value = match value {
            Value::Object(attributes) => attributes
                .iter()
                .map(|(name, v)| format!("{name}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(","),
            other => other.as_str().unwrap_or_default().to_owned(),
        };
        parts.push(format!("{kind} {value}"));
    }
    let rule = spec["authentication"].as_str().unwrap_or("any");
    if parts.is_empty() {
        format!("{rule}: none")
    } else {
        format!("{rule}: {}", parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_clients_credentials_in_one_line() {
        let spec = r#"{"apiKeys":[{"sha256":"ab"}],"certificates":[{"uri":"spiffe://hcmc.gov.vn/q1"},{"subject":{"CN":"motcua-q1","O":"UBND Quan 1"}},{"sha256":"9f86"}],"authentication":"both"}"#;
        assert_eq!(
            super::credentials(spec),
            "both: 1 key; uri spiffe://hcmc.gov.vn/q1; subject CN=motcua-q1,O=UBND Quan 1; sha256 9f86"
        );
        assert_eq!(super::credentials(r#"{"apiKeys":[]}"#), "any: none");
    }
}
