//! `mekong delete KIND NAME`: delete a resource; refused while others refer to it.

use clap::Args;
use mekong_proto::v1 as pb;

use super::Failure;
use super::remote::{Remote, admin_client, refused};

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

pub async fn delete(args: DeleteArgs) -> Result<u8, Failure> {
    let mut admin = admin_client(&args.remote).await?;
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
