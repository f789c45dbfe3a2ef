//! `mekong diff -f PATH...`: what `apply` would change, as a unified diff against the stored
//! resources (exit 1 when there are differences).

use std::path::PathBuf;

use clap::Args;
use mekong_proto::v1 as pb;
use similar::TextDiff;

use super::Failure;
use super::remote::{Remote, admin_client, refused};
use super::render::yaml_of_json;
use super::resources::read_sources;

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// Resource files, or directories of them (repeatable).
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true)]
    files: Vec<PathBuf>,
    #[command(flatten)]
    remote: Remote,
}

pub async fn diff(args: DiffArgs) -> Result<u8, Failure> {
    let sources = read_sources(&args.files)?;
    let mut admin = admin_client(&args.remote).await?;
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
