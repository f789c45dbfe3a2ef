//! The administrator's commands, each a call to a running hub's AdminService: `apply`, `get`,
//! `delete`, `diff`, `test-record`.
//!
//! Exit codes: 0 done (for `diff`: no differences), 1 refused by the hub (invalid resources, a
//! conflict, not found, not allowed; for `diff`: there are differences; for `test-record`: the
//! record would be rejected), 2 a usage error (flags, unreadable files), 3 the hub or its Kafka
//! cannot be reached.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use mekong_proto::v1 as pb;
use mekong_proto::v1::admin_service_client::AdminServiceClient;
use serde_json::Value;
use similar::TextDiff;
use tonic::Code;

use crate::remote::{Authed, Failure, Remote, code_name};

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// Resource files, or directories of *.yaml / *.yml / *.json files (repeatable).
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true)]
    files: Vec<PathBuf>,
    /// Judge the change and show what it would do, without changing anything.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// Resource files, or directories of them (repeatable).
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true)]
    files: Vec<PathBuf>,
    #[command(flatten)]
    remote: Remote,
}

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

#[derive(Args, Debug)]
pub struct DeleteArgs {
    kind: String,
    name: String,
    /// Refuse if the stored version is not this one (optimistic concurrency).
    #[arg(long)]
    expected_version: Option<u64>,
    /// Check whether the delete would be accepted, without deleting.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Args, Debug)]
pub struct TestRecordArgs {
    /// The record type.
    #[arg(long = "type", value_name = "TYPE")]
    record_type: String,
    /// The client to act as.
    #[arg(long = "as", value_name = "CLIENT")]
    client: String,
    /// A file holding the record's JSON payload; `-` for stdin.
    file: PathBuf,
    /// Partition key, as a publisher may give it.
    #[arg(long)]
    key: Option<String>,
    /// Schema version to validate against (default: the latest).
    #[arg(long, default_value_t = 0)]
    schema_version: u32,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Args, Debug)]
pub struct TraceArgs {
    /// The record id (as Publish answered it).
    #[arg(required_unless_present = "key", conflicts_with = "key")]
    record_id: Option<String>,
    /// Every record with this partition key instead (a dossier's MaHoSo).
    #[arg(long)]
    key: Option<String>,
    /// Output: a timeline (default) or the events as JSON lines.
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    output: TraceOutput,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum TraceOutput {
    Text,
    Json,
}

pub async fn trace(args: TraceArgs) -> Result<u8, Failure> {
    let records = client(&args.remote)
        .await?
        .trace(pb::TraceRequest {
            record_id: args.record_id.unwrap_or_default(),
            key: args.key.unwrap_or_default(),
        })
        .await
        .map_err(refused)?
        .into_inner()
        .records;
    for (i, record) in records.iter().enumerate() {
        if matches!(args.output, TraceOutput::Json) {
            for event in &record.events {
                println!("{event}");
            }
            continue;
        }
        if i > 0 {
            println!();
        }
        println!("record {}", record.record_id);
        for event in &record.events {
            let e: Value = serde_json::from_str(event).unwrap_or(Value::Null);
            println!(
                "  {:<24}  {:<22}  {}",
                e["time"].as_str().unwrap_or(""),
                e["event"].as_str().unwrap_or(""),
                describe(&e)
            );
        }
    }
    Ok(0)
}

/// One line about an audit event, for people.
fn describe(e: &Value) -> String {
    let s = |field: &str| e[field].as_str().unwrap_or("").to_owned();
    match e["event"].as_str().unwrap_or("") {
        "record.accepted" => {
            let copies: Vec<String> = e["copies"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    format!(
                        "{} [{}@{}] by {}",
                        c["topic"].as_str().unwrap_or(""),
                        c["partition"],
                        c["offset"],
                        strings(&c["routes"]).join(",")
                    )
                })
                .collect();
            format!(
                "{} from {}, key {}, schema version {}; routed to {}",
                s("recordType"),
                s("source"),
                s("key"),
                e["schemaVersion"],
                copies.join("; ")
            )
        }
        "record.rejected" => {
            let violations = strings(&e["violations"]);
            format!(
                "{} from {}, key {}: {}: {}{}",
                s("recordType"),
                s("source"),
                s("key"),
                s("reason"),
                s("message"),
                if violations.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", violations.join("; "))
                }
            )
        }
        "delivery.replayed" => format!("adapter {}, by {}", s("adapter"), s("actor")),
        _ => {
            let mut line = format!(
                "adapter {}, attempt {}, from {}/{}/{}",
                s("adapter"),
                e["attempt"],
                s("topic"),
                e["partition"],
                e["offset"]
            );
            if let Some(status) = e["status"].as_u64() {
                line.push_str(&format!(", HTTP {status}"));
            }
            if let Some(error) = e["error"].as_str() {
                line.push_str(&format!(": {error}"));
            }
            if let Some(ms) = e["retryInMs"].as_u64() {
                line.push_str(&format!("; next attempt in {ms} ms"));
            }
            line
        }
    }
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

#[derive(clap::Subcommand, Debug)]
pub enum DlqCommand {
    /// The records an adapter could not deliver, oldest first, and why.
    List {
        adapter: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Send dead letters through their adapter again.
    Replay {
        adapter: String,
        /// The record id of a dead letter to replay (repeatable).
        #[arg(
            long = "record",
            value_name = "ID",
            required_unless_present = "all",
            conflicts_with = "all"
        )]
        records: Vec<String>,
        /// Every dead letter not replayed yet.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        remote: Remote,
    },
}

pub async fn dlq(command: DlqCommand) -> Result<u8, Failure> {
    match command {
        DlqCommand::List { adapter, remote } => {
            let mut client = client(&remote).await?;
            let mut page_token = String::new();
            let mut listed = 0usize;
            loop {
                let page = client
                    .list_dead_letters(pb::ListDeadLettersRequest {
                        adapter: adapter.clone(),
                        page_size: 500,
                        page_token,
                    })
                    .await
                    .map_err(refused)?
                    .into_inner();
                if listed == 0 && !page.dead_letters.is_empty() {
                    println!(
                        "{:>6}  {:<36}  {:<16}  {:>8}  {:>6}  {:<8}  {:<24}  ERROR",
                        "OFFSET", "RECORD", "TYPE", "ATTEMPTS", "STATUS", "REPLAYED", "TIME"
                    );
                }
                for l in &page.dead_letters {
                    println!(
                        "{:>6}  {:<36}  {:<16}  {:>8}  {:>6}  {:<8}  {:<24}  {}",
                        l.offset,
                        l.record_id,
                        l.record_type,
                        l.attempts,
                        if l.last_status.is_empty() {
                            "-"
                        } else {
                            &l.last_status
                        },
                        if l.replayed { "yes" } else { "no" },
                        l.time,
                        l.error
                    );
                }
                listed += page.dead_letters.len();
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            if listed == 0 {
                println!("adapter `{adapter}` has no dead letters");
            }
            Ok(0)
        }
        DlqCommand::Replay {
            adapter,
            records,
            all,
            remote,
        } => {
            let replayed = client(&remote)
                .await?
                .replay_dead_letters(pb::ReplayDeadLettersRequest {
                    adapter: adapter.clone(),
                    record_ids: records,
                    all,
                })
                .await
                .map_err(refused)?
                .into_inner()
                .replayed;
            for id in &replayed {
                println!("replayed {id}");
            }
            println!(
                "{} dead letter(s) of `{adapter}` sent again",
                replayed.len()
            );
            Ok(0)
        }
    }
}

/// Runs one admin command on a small runtime and turns its result into an exit code.
pub fn run<F, Fut>(command: F) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<u8, Failure>>,
{
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::other(format!("cannot start the runtime: {e}")))
        .and_then(|runtime| runtime.block_on(command()));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.exit)
        }
    }
}

async fn client(remote: &Remote) -> Result<AdminServiceClient<Authed>, Failure> {
    Ok(AdminServiceClient::new(remote.connect().await?)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20))
}

/// A refused call: the hub's message (which lists every problem) and the admin exit codes.
fn refused(status: tonic::Status) -> Failure {
    let exit = match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Unknown => 3,
        _ => 1,
    };
    Failure {
        exit,
        message: format!("{}: {}", code_name(status.code()), status.message()),
    }
}

fn read_sources(files: &[PathBuf]) -> Result<Vec<pb::SourceText>, Failure> {
    let sources = crate::resources::read(files).map_err(|e| Failure::usage(format!("{e:#}")))?;
    Ok(sources
        .into_iter()
        .map(|(name, text)| pb::SourceText { name, text })
        .collect())
}

pub async fn apply(args: ApplyArgs) -> Result<u8, Failure> {
    let sources = read_sources(&args.files)?;
    let mut admin = client(&args.remote).await?;
    let response = admin
        .apply(pb::ApplyRequest {
            sources,
            dry_run: args.dry_run,
            expected_versions: Default::default(),
        })
        .await
        .map_err(refused)?
        .into_inner();
    for r in &response.results {
        let mut line = format!("{}/{} {}", r.kind, r.name, r.outcome);
        if r.version > 0 {
            line.push_str(&format!(" (version {}", r.version));
            if r.kind == "RecordType" {
                line.push_str(&format!(", schema version {}", r.schema_version));
            }
            line.push(')');
        }
        println!("{line}");
    }
    if args.dry_run {
        println!("dry run: nothing was changed");
    } else if !response.applied {
        println!("nothing to change");
    }
    Ok(0)
}

pub async fn diff(args: DiffArgs) -> Result<u8, Failure> {
    let sources = read_sources(&args.files)?;
    let mut admin = client(&args.remote).await?;
    let response = admin
        .apply(pb::ApplyRequest {
            sources,
            dry_run: true,
            expected_versions: Default::default(),
        })
        .await
        .map_err(refused)?
        .into_inner();
    let mut differences = false;
    for r in response.results.iter().filter(|r| r.outcome != "unchanged") {
        differences = true;
        let before = yaml_of_json(&r.before);
        let after = yaml_of_json(&r.after);
        let old_header = if r.before.is_empty() {
            "(none)".to_string()
        } else {
            format!("{}/{} (stored)", r.kind, r.name)
        };
        let new_header = format!("{}/{} ({})", r.kind, r.name, r.outcome);
        print!(
            "{}",
            TextDiff::from_lines(&before, &after)
                .unified_diff()
                .context_radius(3)
                .header(&old_header, &new_header)
        );
    }
    if !differences {
        println!("no differences");
    }
    Ok(u8::from(differences))
}

pub async fn get(args: GetArgs) -> Result<u8, Failure> {
    let mut admin = client(&args.remote).await?;
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
            println!(
                "{:<11} {:<width$} {:>7} {:>6}  {:<24} CHANGED-BY",
                "KIND", "NAME", "VERSION", "SCHEMA", "CHANGED-AT"
            );
            for r in &resources {
                let schema = if r.kind == "RecordType" {
                    r.schema_version.to_string()
                } else {
                    "-".into()
                };
                println!(
                    "{:<11} {:<width$} {:>7} {:>6}  {:<24} {}",
                    r.kind, r.name, r.version, schema, r.changed_at, r.changed_by
                );
            }
        }
    }
    Ok(0)
}

pub async fn delete(args: DeleteArgs) -> Result<u8, Failure> {
    let mut admin = client(&args.remote).await?;
    let kind = mekong_core::Kind::parse(&args.kind).map_or(args.kind.clone(), |k| k.to_string());
    let response = admin
        .delete(pb::DeleteRequest {
            kind: args.kind.clone(),
            name: args.name.clone(),
            expected_version: args.expected_version.unwrap_or(0),
            dry_run: args.dry_run,
        })
        .await
        .map_err(refused)?
        .into_inner();
    if args.dry_run {
        println!(
            "{kind}/{} (version {}) can be deleted; dry run: nothing was changed",
            args.name, response.version
        );
    } else {
        println!(
            "{kind}/{} deleted (was version {})",
            args.name, response.version
        );
    }
    Ok(0)
}

pub async fn test_record(args: TestRecordArgs) -> Result<u8, Failure> {
    let payload = if args.file.as_os_str() == "-" {
        let mut buffer = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buffer)
            .map_err(|e| Failure::usage(format!("cannot read stdin: {e}")))?;
        buffer
    } else {
        std::fs::read(&args.file)
            .map_err(|e| Failure::usage(format!("cannot read `{}`: {e}", args.file.display())))?
    };
    let mut admin = client(&args.remote).await?;
    let report = admin
        .test_record(pb::TestRecordRequest {
            client: args.client.clone(),
            record_type: args.record_type.clone(),
            payload,
            key: args.key.unwrap_or_default(),
            schema_version: args.schema_version,
        })
        .await
        .map_err(refused)?
        .into_inner();
    if report.accepted {
        println!(
            "accepted: `{}` from `{}`, valid against schema version {}",
            args.record_type, args.client, report.schema_version
        );
    } else {
        println!(
            "rejected: {}: {}",
            report.rejection_code, report.rejection_message
        );
        for v in &report.violations {
            let field = if v.field.is_empty() {
                "(payload)"
            } else {
                &v.field
            };
            println!("  {field}: {}", v.description);
        }
    }
    if !report.routes.is_empty() {
        println!("routes:");
        for r in &report.routes {
            if r.matched {
                println!("  matched      {}", r.route);
            } else {
                println!("  not matched  {}: {}", r.route, r.reason);
            }
        }
    }
    for copy in &report.copies {
        println!(
            "copy to {} (key {}, routes {}):",
            copy.topic,
            copy.key,
            copy.routes.join(", ")
        );
        let mut headers: Vec<_> = copy.headers.iter().collect();
        headers.sort();
        for (name, value) in headers {
            println!("  {name}: {value}");
        }
        println!("  {}", String::from_utf8_lossy(&copy.payload));
    }
    Ok(u8::from(!report.accepted))
}

/// A stored resource as JSON, its spec parsed.
fn json_of(r: &pb::StoredResource) -> Value {
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
fn yaml_of_json(text: &str) -> String {
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
