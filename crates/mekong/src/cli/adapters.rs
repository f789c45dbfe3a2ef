//! `mekong adapters run`: the delivery adapters alone, without the gateway, so they scale apart from
//! it. They follow the resource store like a gateway does and share each adapter's consumer group
//! with every other process running it. `mekong adapters pause|resume NAME`: an administrator stops
//! and restarts an adapter's deliveries on every instance (a maintenance window at the portal).

use std::net::SocketAddr;

use clap::{Args, Subcommand};
use mekong_hub::{HubConfig, LineageConfig, TopicDefaults};
use tracing::info;

use super::Failure;
use super::kafka::KafkaArgs;
use super::limits::AdapterPolicyArgs;
use super::serve::DEFAULT_METRICS_LISTEN;

#[derive(Subcommand, Debug)]
pub enum AdaptersCommand {
    /// Run every adapter of the resource store until SIGTERM or Ctrl-C.
    Run(RunArgs),
    /// Pause an adapter on every instance: it delivers nothing, its records wait in Kafka.
    Pause(PauseArgs),
    /// Resume a paused adapter: it delivers what waited, in order.
    Resume(PauseArgs),
}

#[derive(Args, Debug)]
pub struct PauseArgs {
    /// The adapter's name.
    name: String,
    #[command(flatten)]
    remote: super::remote::Remote,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Address of the HTTP endpoint with /metrics, /healthz and /readyz.
    #[arg(long, default_value = DEFAULT_METRICS_LISTEN)]
    metrics_listen: SocketAddr,
    #[command(flatten)]
    policy: AdapterPolicyArgs,
    #[command(flatten)]
    audit: super::evidence::AuditKeyArgs,
    #[command(flatten)]
    console: super::console::ConsoleArgs,
}

impl RunArgs {
    /// The hub these flags describe: adapters and the metrics endpoint, no gateway.
    fn hub_config(&self) -> Result<HubConfig, Failure> {
        if self.kafka.kafka.is_none() {
            return Err(Failure::usage(
                "`adapters run` needs --kafka (or MEKONG_KAFKA): adapters deliver from a real cluster"
                    .into(),
            ));
        }
        Ok(HubConfig {
            backbone: super::kafka::resolve_secrets(self.kafka.backbone())?,
            store: self.kafka.store(),
            topics: TopicDefaults {
                replication: self.kafka.topic_replication,
                ..TopicDefaults::default()
            },
            adapters: Some(self.policy.policy()),
            metrics: Some(self.metrics_listen),
            lineage: LineageConfig::None,
            evidence: mekong_hub::EvidenceConfig {
                audit_key: self.audit.key()?,
                notary: None,
            },
            console: self.console.config(),
            ..HubConfig::default()
        })
    }
}

pub fn run(command: AdaptersCommand) -> Result<u8, Failure> {
    let args = match command {
        AdaptersCommand::Run(args) => args,
        AdaptersCommand::Pause(args) => return super::block_on(set_paused(args, true)),
        AdaptersCommand::Resume(args) => return super::block_on(set_paused(args, false)),
    };
    let config = args.hub_config()?;
    super::block_on_multi_thread(async move {
        let hub = config.start().await.map_err(Failure::hub)?;
        if let Some(metrics) = hub.metrics_addr() {
            println!("metrics on http://{metrics}");
        }
        let adapters: Vec<String> = hub
            .catalog()
            .adapters()
            .map(|a| a.spec.name.clone())
            .collect();
        info!(?adapters, "running the adapters of the resource store");
        println!("adapters running: {}", adapters.join(", "));
        hub.run_until(super::shutdown_signal())
            .await
            .map_err(Failure::hub)?;
        Ok(Failure::OK)
    })
}

async fn set_paused(args: PauseArgs, paused: bool) -> Result<u8, Failure> {
    let answer = super::remote::admin_client(&args.remote)
        .await?
        .set_adapter_paused(mekong_proto::v1::SetAdapterPausedRequest {
            name: args.name.clone(),
            paused,
        })
        .await
        .map_err(super::remote::refused)?
        .into_inner();
    let state = if paused { "paused" } else { "resumed" };
    if answer.changed {
        println!("adapter {} {state} (version {})", args.name, answer.version);
    } else if paused {
        println!("adapter {} was already paused", args.name);
    } else {
        println!("adapter {} was not paused", args.name);
    }
    Ok(Failure::OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    #[test]
    fn adapters_alone_need_a_real_cluster_and_run_no_gateway() {
        let none = Cli::parse_from(["run"]).run;
        assert_eq!(
            none.hub_config().err().map(|f| f.exit),
            Some(Failure::USAGE)
        );
        let config = Cli::parse_from(["run", "--kafka", "k:9092", "--topic-replication", "3"])
            .run
            .hub_config()
            .unwrap();
        assert!(config.gateway.is_none() && config.adapters.is_some() && config.seed.is_none());
        assert_eq!(config.topics.replication, 3);
        assert_eq!(config.metrics.unwrap().to_string(), DEFAULT_METRICS_LISTEN);
    }
}
