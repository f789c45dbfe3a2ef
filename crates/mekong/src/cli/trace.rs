//! `mekong trace RECORD_ID | --key KEY`: where a record is and what happened to it, from the
//! audit trail.

use clap::{Args, ValueEnum};
use mekong_core::{AuditEvent, PlacedCopy};
use mekong_proto::v1 as pb;

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
            // Events are the core's typed audit events; one this binary does not know (a newer
            // hub) is shown as its raw JSON.
            match serde_json::from_str::<AuditEvent>(event) {
                Ok(e) => println!("  {:<24}  {:<22}  {}", e.time(), e.name(), describe(&e)),
                Err(_) => println!("  {event}"),
            }
        }
    }
    Ok(0)
}

/// One line about an audit event, for people.
fn describe(event: &AuditEvent) -> String {
    match event {
        AuditEvent::RecordAccepted(e) => format!(
            "{} from {}, key {}, schema version {}; routed to {}",
            e.record_type,
            e.source,
            e.key,
            e.schema_version.map_or("?".into(), |v| v.to_string()),
            copies(&e.copies)
        ),
        AuditEvent::RecordPlaced(e) => format!("landed in {}", copies(&e.copies)),
        AuditEvent::RecordRejected(e) | AuditEvent::RecordPartial(e) => {
            let mut line = format!(
                "{} from {}, key {}: {}: {}",
                e.record_type,
                e.source,
                e.key,
                e.reason.as_deref().unwrap_or(""),
                e.message.as_deref().unwrap_or("")
            );
            if !e.violations.is_empty() {
                line.push_str(&format!(" ({})", e.violations.join("; ")));
            }
            if !e.copies.is_empty() {
                line.push_str(&format!("; landed in {}", copies(&e.copies)));
            }
            line
        }
        AuditEvent::ConsoleSession(e) => format!("console {} of {}", e.outcome, e.client),
        AuditEvent::Replayed(e) => format!(
            "adapter {}, by {}",
            e.adapter,
            e.actor.as_deref().unwrap_or("")
        ),
        AuditEvent::Delivered(e) | AuditEvent::Retried(e) | AuditEvent::DeadLettered(e) => {
            let mut line = format!(
                "adapter {}, attempt {}, from {}/{}/{}",
                e.adapter, e.attempt, e.topic, e.partition, e.offset
            );
            if let Some(status) = e.status {
                line.push_str(&format!(", HTTP {status}"));
            }
            if let Some(error) = &e.error {
                line.push_str(&format!(": {error}"));
            }
            if let Some(ms) = e.retry_in_ms {
                line.push_str(&format!("; next attempt in {ms} ms"));
            }
            line
        }
        AuditEvent::ResourceChanged(e) | AuditEvent::ResourceRejected(e) => format!(
            "{} {}/{} by {}: {}",
            e.action, e.kind, e.name, e.actor, e.outcome
        ),
    }
}

fn copies(copies: &[PlacedCopy]) -> String {
    copies
        .iter()
        .map(|c| {
            let mut copy = c.topic.clone();
            if c.offset >= 0 {
                copy.push_str(&format!(" [{}@{}]", c.partition, c.offset));
            }
            copy.push_str(&format!(" by {}", c.routes.join(",")));
            if let Some(digest) = &c.sha256 {
                copy.push_str(&format!(" (sha256 {})", &digest[..digest.len().min(12)]));
            }
            copy
        })
        .collect::<Vec<_>>()
        .join("; ")
}
