//! `mekong dlq list ADAPTER`, `mekong dlq replay ADAPTER`: an adapter's dead letters, listed page
//! by page, and sent again.

use mekong_proto::v1 as pb;

use super::Failure;
use super::remote::{Remote, admin_client, refused};

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
            let mut client = admin_client(&remote).await?;
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
            let replayed = admin_client(&remote)
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
