//! `mekong serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use arc_swap::ArcSwap;
use clap::Args;
use mekong_adapters::{AdapterMetrics, EngineSettings};
use mekong_core::{AUDIT_TOPIC, Catalog, Outcome, Verdict};
use mekong_gateway::{Changes, Gateway, GatewayMetrics};
use mekong_kafka::{
    Backbone, Lineage, Producer, ProducerSettings, RESOURCES_TOPIC, Store, StoreSettings,
    TopicSettings, ensure_topics, message_bytes_for,
};
use prometheus_client::registry::Registry;
use tracing::{info, warn};

use crate::limits::{AdapterPolicyArgs, GatewayArgs};
use crate::observe::Observed;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address the gRPC gateway listens on.
    #[arg(long, default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    /// Directory of *.yaml / *.yml / *.json resource files applied to the resource store at start
    /// (unchanged resources are not rewritten). Default: examples/hcmc on the embedded backbone;
    /// none with --kafka, where the store holds the resources.
    #[arg(long)]
    resources: Option<PathBuf>,
    /// The compacted topic that holds the resources. Hubs sharing one Kafka cluster share their
    /// resources when they share this topic.
    #[arg(long, default_value = RESOURCES_TOPIC)]
    resources_topic: String,
    /// Kafka bootstrap servers (host:port,...). Without it, an embedded development backbone starts.
    #[arg(long, env = "MEKONG_KAFKA")]
    kafka: Option<String>,
    /// Extra librdkafka client property, e.g. security.protocol=SASL_SSL (repeatable).
    #[arg(long = "kafka-option", value_name = "KEY=VALUE", value_parser = key_value)]
    kafka_options: Vec<(String, String)>,
    #[command(flatten)]
    gateway: GatewayArgs,
    #[command(flatten)]
    adapter_policy: AdapterPolicyArgs,
    /// How long Kafka has to acknowledge a record before the publish fails with UNAVAILABLE.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    publish_timeout: Duration,
    /// Partitions of destination topics the hub creates (-1: the cluster's default).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    topic_partitions: i32,
    /// Replication factor of destination topics the hub creates (-1: the cluster's default).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    topic_replication: i32,
    /// Do not run the delivery adapters here (run them with `mekong adapters run` instead).
    #[arg(long)]
    no_adapters: bool,
    /// Address of the HTTP endpoint with /metrics, /healthz and /readyz.
    #[arg(long, default_value = "127.0.0.1:9464")]
    metrics_listen: SocketAddr,
    /// Directory of the lineage index that `mekong trace` answers from, read from the audit trail
    /// and kept up to date (rebuilt when empty). Without it there is no index, except on the
    /// embedded backbone, which keeps one in a temporary directory.
    #[arg(long)]
    lineage_dir: Option<PathBuf>,
}

pub(crate) fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got `{s}`"))
}

/// How long the producer may take to hand Kafka what is still queued at exit.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Who the audit trail names for changes made by seeding from `--resources`.
const SEED_ACTOR: &str = "mekong serve --resources";

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let resources = match (&args.resources, &args.kafka) {
        (Some(dir), _) => Some(dir.clone()),
        (None, None) => Some(PathBuf::from("examples/hcmc")),
        (None, Some(_)) => None,
    };
    // Read the files before anything starts: a missing directory is a quick, plain error.
    let seed = resources
        .as_ref()
        .map(|dir| crate::resources::read(std::slice::from_ref(dir)))
        .transpose()?;

    let backbone = match &args.kafka {
        Some(bootstrap) => Backbone::external(bootstrap.clone(), args.kafka_options.clone()),
        None => {
            let backbone =
                Backbone::embedded().context("cannot start the embedded development backbone")?;
            if !args.kafka_options.is_empty() {
                warn!("--kafka-option is ignored by the embedded development backbone");
            }
            warn!(
                "embedded development backbone: NOT durable, in memory only, keeps only the most recent few MiB \
                 per partition; use --kafka for anything real"
            );
            backbone
        }
    };
    println!("kafka bootstrap: {}", backbone.bootstrap_servers());

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let backbone = Arc::new(backbone);
        let catalog = Arc::new(ArcSwap::from_pointee(Catalog::default()));
        let store_settings = StoreSettings {
            topic: args.resources_topic.clone(),
            replication: args.topic_replication,
            ..Default::default()
        };
        let store = Store::open(Arc::clone(&backbone), Arc::clone(&catalog), store_settings)
            .await
            .with_context(|| format!("cannot read the resource store `{}` on Kafka at {}", args.resources_topic, backbone.bootstrap_servers()))?;
        let store = Arc::new(store);
        let config = args.gateway.config();
        let max_message_bytes = message_bytes_for(config.limits.max_record_bytes);
        let settings = TopicSettings {
            partitions: args.topic_partitions,
            replication: args.topic_replication,
            max_message_bytes,
            configs: &[],
        };
        let changes = Changes { store: Arc::clone(&store), backbone: Arc::clone(&backbone), topics: settings };
        if let (Some(dir), Some(sources)) = (&resources, seed) {
            seed_store(&changes, dir, &sources).await?;
        }
        let current = catalog.load_full();
        let (types, routes, clients) = current.counts();
        info!(types, routes, clients, "serving the stored resources");
        if types + routes + clients == 0 {
            warn!("the resource store is empty: apply resources with `mekong apply` (see docs/operator-guide.md)");
        }
        let topics: Vec<&str> = current.destination_topics().into_iter().collect();
        let created = ensure_topics(&backbone, &topics, settings, Duration::from_secs(30))
            .await
            .with_context(|| format!("cannot create destination topics on Kafka at {}", backbone.bootstrap_servers()))?;
        if !created.is_empty() {
            info!(?created, "destination topics created");
        }

        let producer_settings = ProducerSettings {
            delivery_timeout: args.publish_timeout,
            max_message_bytes,
            ..Default::default()
        };
        let producer = Producer::new(&backbone, producer_settings)?;
        let metrics_listener = crate::observe::bind(args.metrics_listen).await?;
        let (lineage_dir, temporary) = match (&args.lineage_dir, backbone.is_embedded()) {
            (Some(dir), _) => (Some(dir.clone()), false),
            (None, true) => (Some(std::env::temp_dir().join(format!("mekong-lineage-{}", std::process::id()))), true),
            (None, false) => (None, false),
        };
        let lineage = match &lineage_dir {
            Some(dir) => Some(Arc::new(
                Lineage::open(&backbone, dir, AUDIT_TOPIC)
                    .with_context(|| format!("cannot open the lineage index in {}", dir.display()))?,
            )),
            None => {
                info!("no --lineage-dir: this instance keeps no lineage index (mekong trace asks an instance that does)");
                None
            }
        };
        let listener = tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("cannot listen on {}", args.listen))?;
        println!("listening on {}", listener.local_addr()?);
        info!(listen = %args.listen, "gateway serving mekong.v1 IngestService, SubscribeService and AdminService, grpc.health.v1.Health and reflection");

        // Adapters deliver from the same catalog; they stop after the gateway has drained.
        let (stop_adapters, adapters_stop) = tokio::sync::watch::channel(false);
        let gateway_metrics = GatewayMetrics::default();
        let adapter_metrics = AdapterMetrics::default();
        let mut registry = Registry::with_prefix("mekong");
        gateway_metrics.register(&mut registry);
        adapter_metrics.register(&mut registry);
        let adapters = (!args.no_adapters).then(|| {
            tokio::spawn(mekong_adapters::supervise(
                Arc::clone(&catalog),
                Arc::clone(&backbone),
                producer.clone(),
                EngineSettings {
                    replication: args.topic_replication,
                    metrics: adapter_metrics,
                    policy: Arc::new(args.adapter_policy.policy()),
                },
                adapters_stop.clone(),
            ))
        });
        let observed = Observed {
            registry,
            gateway: Some(gateway_metrics.clone()),
            producer: producer.clone(),
            store: Arc::clone(&store),
        };
        let mut observe_stop = adapters_stop;
        let observe = tokio::spawn(crate::observe::serve(metrics_listener, observed, async move {
            let _ = observe_stop.wait_for(|s| *s).await;
        }));
        let gateway = Gateway {
            catalog,
            producer: producer.clone(),
            backbone,
            store,
            topics: settings,
            config,
            metrics: gateway_metrics,
            lineage,
        };
        mekong_gateway::serve(listener, gateway, shutdown_signal()).await?;
        let _ = stop_adapters.send(true);
        let _ = observe.await;
        if let Some(adapters) = adapters {
            info!("shutting down: stopping the adapters");
            let _ = adapters.await;
        }
        info!("shutting down: flushing the producer");
        if let Err(e) = producer.flush(FLUSH_TIMEOUT) {
            warn!(error = %e, "records still queued for Kafka at exit (lineage events: the records themselves were all answered)");
        }
        if let (Some(dir), true) = (&lineage_dir, temporary) {
            let _ = std::fs::remove_dir_all(dir);
        }
        anyhow::Ok(())
    })?;
    Ok(())
}

/// Applies the files of `--resources` as an ordinary change. A refused change stops the start.
async fn seed_store(
    changes: &Changes,
    dir: &std::path::Path,
    sources: &[(String, String)],
) -> anyhow::Result<()> {
    let applied = changes
        .apply(sources, &Default::default(), SEED_ACTOR, false)
        .await
        .with_context(|| format!("cannot apply `{}` to the resource store", dir.display()))?;
    let plan = &applied.plan;
    if plan.verdict != Verdict::Accepted {
        bail!(
            "the resources in `{}` were refused; nothing was changed:\n{}",
            dir.display(),
            plan.problems
                .iter()
                .map(|p| format!("  {p}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let count = |o: Outcome| plan.changes.iter().filter(|c| c.outcome == o).count();
    info!(
        dir = %dir.display(),
        created = count(Outcome::Created),
        updated = count(Outcome::Updated),
        unchanged = count(Outcome::Unchanged),
        "resources applied to the store"
    );
    Ok(())
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
