//! `mekong test-record --type T --as CLIENT FILE`: run a record through access, validation and
//! routing as that client would publish it, writing nothing (exit 1 when it would be rejected).

use std::path::PathBuf;

use clap::Args;
use mekong_proto::v1 as pb;

use super::Failure;
use super::remote::{Remote, admin_client, refused};

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
    let mut admin = admin_client(&args.remote).await?;
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
