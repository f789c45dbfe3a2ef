//! `mekong apply -f PATH...`: create or update resources on a running hub, all or nothing.

use std::path::PathBuf;

use clap::Args;
use mekong_proto::v1 as pb;

use super::Failure;
use super::remote::{Remote, admin_client, refused};
use super::resources::read_sources;

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

pub async fn apply(args: ApplyArgs) -> Result<u8, Failure> {
    let sources = read_sources(&args.files)?;
    let mut admin = admin_client(&args.remote).await?;
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
