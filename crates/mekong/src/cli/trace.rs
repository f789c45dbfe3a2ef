//! `mekong trace RECORD_ID | --key KEY`: where a record is and what happened to it, from the
//! audit trail.

use clap::{Args, ValueEnum};
use mekong_proto::v1 as pb;
use serde_json::Value;

use super::Failure;
use super::remote::{Remote, admin_client, refused};

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
    let records = admin_client(&args.remote)
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
