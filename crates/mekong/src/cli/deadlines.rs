//! The deadline trackers' flags (`mekong serve`, `mekong deadlines run`), `mekong deadlines run`
//! (the trackers alone, beside gateways), and `mekong overdue` (open overdue deadlines, from a
//! running hub).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use mekong_deadlines::TrackerSettings;
use mekong_hub::{HubConfig, LineageConfig, TopicDefaults};
use mekong_proto::v1 as pb;

use super::Failure;
use super::kafka::KafkaArgs;
use super::remote::{Remote, admin_client, refused};
use super::serve::DEFAULT_METRICS_LISTEN;

#[derive(Args, Debug)]
pub struct DeadlineArgs {
    /// Do not track deadlines here (run them with `mekong deadlines run` instead).
    #[arg(long)]
    no_deadlines: bool,
    /// Directory of the trackers' local stores (one file per deadline, rebuilt from its changelog
    /// at start) [default: a directory of their own in the system's temporary directory, removed
    /// at exit].
    #[arg(long, value_name = "DIR")]
    deadlines_dir: Option<PathBuf>,
    /// How long a tracker that died holds its partitions before another instance takes them.
    #[arg(long, default_value = "10s")]
    deadlines_session_timeout: humantime::Duration,
}

impl DeadlineArgs {
    pub fn settings(&self) -> Option<TrackerSettings> {
        (!self.no_deadlines).then(|| TrackerSettings {
            dir: self.deadlines_dir.clone(),
            session_timeout: self.deadlines_session_timeout.into(),
            ..TrackerSettings::default()
        })
    }
}

#[derive(Subcommand, Debug)]
pub enum DeadlinesCommand {
    /// Track every deadline of the resource store until SIGTERM or Ctrl-C, sharing each one's
    /// partitions with every other process tracking it.
    Run(RunArgs),
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Address of the HTTP endpoint with /metrics, /healthz and /readyz.
    #[arg(long, default_value = DEFAULT_METRICS_LISTEN)]
    metrics_listen: SocketAddr,
    #[command(flatten)]
    deadlines: DeadlineArgs,
}

pub fn run(command: DeadlinesCommand) -> Result<u8, Failure> {
    let DeadlinesCommand::Run(args) = command;
    if args.kafka.kafka.is_none() {
        return Err(Failure::usage(
            "`deadlines run` needs --kafka (or MEKONG_KAFKA): trackers share a real cluster".into(),
        ));
    }
    let Some(settings) = args.deadlines.settings() else {
        return Err(Failure::usage(
            "`deadlines run --no-deadlines` would track nothing".into(),
        ));
    };
    let config = HubConfig {
        backbone: super::kafka::resolve_secrets(args.kafka.backbone())?,
        store: args.kafka.store(),
        topics: TopicDefaults {
            replication: args.kafka.topic_replication,
            ..TopicDefaults::default()
        },
        deadlines: Some(settings),
        metrics: Some(args.metrics_listen),
        lineage: LineageConfig::None,
        ..HubConfig::default()
    };
    super::block_on_multi_thread(async move {
        let hub = config.start().await.map_err(Failure::hub)?;
        if let Some(metrics) = hub.metrics_addr() {
            println!("metrics on http://{metrics}");
        }
        let names: Vec<String> = hub
            .catalog()
            .deadlines()
            .map(|d| d.name().to_owned())
            .collect();
        println!("deadlines tracked: {}", names.join(", "));
        hub.run_until(super::shutdown_signal())
            .await
            .map_err(Failure::hub)?;
        Ok(Failure::OK)
    })
}

#[derive(Args, Debug)]
pub struct OverdueArgs {
    /// One deadline only.
    #[arg(long)]
    deadline: Option<String>,
    /// Dossiers held by this unit only.
    #[arg(long)]
    unit: Option<String>,
    /// Overdue for at least this long (e.g. 3d, 12h).
    #[arg(long, value_name = "DURATION")]
    older_than: Option<humantime::Duration>,
    /// At most this many (the total is told).
    #[arg(long, default_value_t = 1000)]
    limit: u32,
    /// `table`, or `json` (one object per line).
    #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
    output: String,
    #[command(flatten)]
    remote: Remote,
}

pub async fn overdue(args: OverdueArgs) -> Result<u8, Failure> {
    let answer = admin_client(&args.remote)
        .await?
        .list_overdue(pb::ListOverdueRequest {
            deadline: args.deadline.unwrap_or_default(),
            unit: args.unit.unwrap_or_default(),
            older_than_seconds: args
                .older_than
                .map_or(0, |d| std::time::Duration::from(d).as_secs()),
            limit: args.limit,
        })
        .await
        .map_err(refused)?
        .into_inner();
    if args.output == "json" {
        for o in &answer.overdue {
            println!(
                "{}",
                serde_json::json!({
                    "deadline": o.deadline,
                    "key": o.key,
                    "unit": o.unit,
                    "due": o.due,
                    "overdueSeconds": o.overdue_seconds,
                    "openedBy": o.opened_by,
                    "extendedBy": o.extended_by,
                })
            );
        }
    } else {
        if !answer.overdue.is_empty() {
            println!(
                "{:<24}  {:<32}  {:<24}  {:<24}  LATE",
                "DEADLINE", "KEY", "UNIT", "DUE"
            );
        }
        for o in &answer.overdue {
            let late =
                humantime::format_duration(std::time::Duration::from_secs(o.overdue_seconds));
            println!(
                "{:<24}  {:<32}  {:<24}  {:<24}  {late}",
                o.deadline,
                o.key,
                if o.unit.is_empty() { "-" } else { &o.unit },
                o.due
            );
        }
        let shown = answer.overdue.len() as u64;
        if answer.total > shown {
            println!("{shown} of {} overdue shown (--limit)", answer.total);
        } else {
            println!("{} overdue", answer.total);
        }
    }
    Ok(Failure::OK)
}
