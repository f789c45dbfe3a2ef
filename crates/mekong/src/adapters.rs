//! `mekong adapters run`: the delivery adapters alone, without the gateway, so they scale apart from
//! it. They follow the resource store like a gateway does and share each adapter's consumer group
//! with every other process running it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use arc_swap::ArcSwap;
use clap::{Args, Subcommand};
use mekong_adapters::{AdapterMetrics, EngineSettings};
use mekong_core::Catalog;
use mekong_kafka::{Backbone, Producer, ProducerSettings, RESOURCES_TOPIC, Store, StoreSettings};
use prometheus_client::registry::Registry;
use tracing::info;

use crate::observe::Observed;

#[derive(Subcommand, Debug)]
pub enum AdaptersCommand {
    /// Run every adapter of the resource store until SIGTERM or Ctrl-C.
    Run(RunArgs),
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Kafka bootstrap servers (host:port,...).
    #[arg(long, env = "MEKONG_KAFKA")]
    kafka: String,
    /// Extra librdkafka client property (repeatable).
    #[arg(long = "kafka-option", value_name = "KEY=VALUE", value_parser = crate::serve::key_value)]
    kafka_options: Vec<(String, String)>,
    /// The compacted topic that holds the resources.
    #[arg(long, default_value = RESOURCES_TOPIC)]
    resources_topic: String,
    /// Replication of the dead-letter and replay topics created (-1: the cluster's default).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    topic_replication: i32,
    /// Address of the HTTP endpoint with /metrics, /healthz and /readyz.
    #[arg(long, default_value = "127.0.0.1:9464")]
    metrics_listen: std::net::SocketAddr,
    #[command(flatten)]
    policy: crate::limits::AdapterPolicyArgs,
}

pub fn run(command: AdaptersCommand) -> anyhow::Result<()> {
    let AdaptersCommand::Run(args) = command;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let metrics_listener = crate::observe::bind(args.metrics_listen).await?;
        let backbone = Arc::new(Backbone::external(args.kafka.clone(), args.kafka_options));
        let catalog = Arc::new(ArcSwap::from_pointee(Catalog::default()));
        let settings = StoreSettings {
            topic: args.resources_topic.clone(),
            replication: args.topic_replication,
            ..Default::default()
        };
        // Kept for as long as the adapters run: it keeps the catalog up to date.
        let store = Store::open(Arc::clone(&backbone), Arc::clone(&catalog), settings)
            .await
            .with_context(|| {
                format!(
                    "cannot read the resource store `{}` on Kafka at {}",
                    args.resources_topic, args.kafka
                )
            })?;
        let producer = Producer::new(&backbone, ProducerSettings::default())?;
        let adapters: Vec<String> = catalog
            .load()
            .adapters()
            .map(|a| a.spec.name.clone())
            .collect();
        info!(?adapters, "running the adapters of the resource store");
        println!("adapters running: {}", adapters.join(", "));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let metrics = AdapterMetrics::default();
        let mut registry = Registry::with_prefix("mekong");
        metrics.register(&mut registry);
        let observed = Observed {
            registry,
            gateway: None,
            producer: producer.clone(),
            store: Arc::new(store),
        };
        let mut observe_stop = stopped.clone();
        let observe = tokio::spawn(crate::observe::serve(
            metrics_listener,
            observed,
            async move {
                let _ = observe_stop.wait_for(|s| *s).await;
            },
        ));
        let supervisor = tokio::spawn(mekong_adapters::supervise(
            catalog,
            backbone,
            producer.clone(),
            EngineSettings {
                replication: args.topic_replication,
                metrics,
                policy: Arc::new(args.policy.policy()),
            },
            stopped,
        ));
        crate::serve::shutdown_signal().await;
        info!("shutting down: stopping the adapters");
        let _ = stop.send(true);
        let _ = supervisor.await;
        let _ = observe.await;
        producer.flush(Duration::from_secs(10))?;
        anyhow::Ok(())
    })
}
