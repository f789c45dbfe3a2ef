//! `mekong serve`: flags into a [`HubConfig`] (a pure step, tested below), then the hub started,
//! served until SIGTERM or Ctrl-C, and stopped in order.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use mekong_hub::{BackboneConfig, GatewayListener, HubConfig, LineageConfig, Seed, TopicDefaults};
use mekong_kafka::ProducerSettings;
use tracing::{info, warn};

use super::Failure;
use super::evidence::{AuditKeyArgs, NotaryArgs};
use super::kafka::KafkaArgs;
use super::limits::{AdapterPolicyArgs, GatewayArgs};
use super::tls::TlsArgs;

/// Where the gateway listens when nobody says; the address `--server` reaches by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";
/// Where `/metrics`, `/healthz` and `/readyz` are served when nobody says.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address the gRPC gateway listens on.
    #[arg(long, default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Directory of *.yaml / *.yml / *.json resource files applied to the resource store at start
    /// (unchanged resources are not rewritten). Default: the city's examples built into the binary
    /// on the embedded backbone; none with --kafka, where the store holds the resources.
    #[arg(long)]
    resources: Option<PathBuf>,
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    gateway: GatewayArgs,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    adapter_policy: AdapterPolicyArgs,
    /// How long Kafka has to acknowledge a record before the publish fails with UNAVAILABLE.
    #[arg(long, default_value_t = ProducerSettings::default().delivery_timeout.into())]
    publish_timeout: humantime::Duration,
    /// Partitions of destination topics the hub creates (-1: the cluster's default).
    #[arg(long, default_value_t = TopicDefaults::default().partitions, allow_negative_numbers = true)]
    topic_partitions: i32,
    /// Do not run the delivery adapters here (run them with `mekong adapters run` instead).
    #[arg(long)]
    no_adapters: bool,
    /// Address of the HTTP endpoint with /metrics, /healthz and /readyz.
    #[arg(long, default_value = DEFAULT_METRICS_LISTEN)]
    metrics_listen: SocketAddr,
    /// Directory of the lineage index that `mekong trace` answers from, read from the audit trail
    /// and kept up to date (rebuilt when empty). Without it there is no index, except on the
    /// embedded backbone, which keeps one in a temporary directory.
    #[arg(long)]
    lineage_dir: Option<PathBuf>,
    #[command(flatten)]
    audit: AuditKeyArgs,
    #[command(flatten)]
    notary: NotaryArgs,
    #[command(flatten)]
    console: super::console::ConsoleArgs,
    #[command(flatten)]
    deadlines: super::deadlines::DeadlineArgs,
}

/// Who the audit trail names for changes made by seeding at start.
const SEED_ACTOR: &str = "mekong serve --resources";

/// Where the seed resources come from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SeedFrom {
    Dir(PathBuf),
    /// The examples built into the binary.
    Examples,
}

impl ServeArgs {
    fn seed_from(&self) -> Option<SeedFrom> {
        match (&self.resources, &self.kafka.kafka) {
            (Some(dir), _) => Some(SeedFrom::Dir(dir.clone())),
            (None, None) => Some(SeedFrom::Examples),
            (None, Some(_)) => None,
        }
    }

    /// The hub these flags describe, seeded with `seed` (what [`ServeArgs::read_seed`] read).
    pub fn hub_config(&self, seed: Option<Vec<(String, String)>>) -> HubConfig {
        let backbone = self.kafka.backbone();
        let embedded = matches!(backbone, BackboneConfig::Embedded);
        let defaults = ProducerSettings::default();
        HubConfig {
            backbone,
            store: self.kafka.store(),
            seed: seed.map(|sources| Seed {
                sources,
                actor: SEED_ACTOR.into(),
            }),
            topics: TopicDefaults {
                partitions: self.topic_partitions,
                replication: self.kafka.topic_replication,
            },
            producer: ProducerSettings {
                delivery_timeout: self.publish_timeout.into(),
                ..defaults
            },
            gateway: Some(GatewayListener {
                listen: self.listen,
                config: self.gateway.config(),
                tls: self.tls.settings(),
            }),
            adapters: (!self.no_adapters).then(|| self.adapter_policy.policy()),
            deadlines: self.deadlines.settings(),
            metrics: Some(self.metrics_listen),
            metrics_tls: self.tls.metrics_settings(),
            lineage: match (&self.lineage_dir, embedded) {
                (Some(dir), _) => LineageConfig::Dir(dir.clone()),
                (None, true) => LineageConfig::Temporary,
                (None, false) => LineageConfig::None,
            },
            evidence: Default::default(),
            console: self.console.config(),
        }
    }

    /// The seed resources' texts, read before anything starts: a missing directory is a quick,
    /// plain error.
    fn read_seed(&self) -> Result<Option<Vec<(String, String)>>, Failure> {
        Ok(match self.seed_from() {
            Some(SeedFrom::Dir(dir)) => Some(
                super::resources::read(std::slice::from_ref(&dir))
                    .map_err(|e| Failure::usage(format!("{e:#}")))?,
            ),
            Some(SeedFrom::Examples) => Some(crate::examples::sources()),
            None => None,
        })
    }
}

pub fn run(args: ServeArgs, exporting_spans: bool) -> Result<u8, Failure> {
    let seed = args.read_seed()?;
    let mut config = args.hub_config(seed);
    config.backbone = super::kafka::resolve_secrets(config.backbone)?;
    config.evidence = args.notary.evidence(&args.audit)?;
    let args_metrics_tls = config.metrics_tls.is_some();
    if let Some(gateway) = config.gateway.as_mut() {
        gateway.config.record_spans = exporting_spans;
    }
    if config.seed.is_none() {
        info!("no --resources: serving the resources the store holds");
    }
    if !args.kafka.kafka_options.is_empty() && matches!(config.backbone, BackboneConfig::Embedded) {
        warn!("--kafka-option is ignored by the embedded development backbone");
    }
    super::block_on_multi_thread(async move {
        // SIGHUP's default is to end the process: take it over before anything starts.
        let hangups = hangups();
        let hub = config.start().await.map_err(Failure::hub)?;
        if hub.is_embedded() {
            warn!(
                "embedded development backbone: NOT durable, in memory only, keeps only the most recent few MiB \
                 per partition; use --kafka for anything real"
            );
        }
        println!("kafka bootstrap: {}", hub.bootstrap_servers());
        if let Some(metrics) = hub.metrics_addr() {
            let scheme = if args_metrics_tls { "https" } else { "http" };
            println!("metrics on {scheme}://{metrics}");
        }
        if let Some(grpc) = hub.grpc_addr() {
            println!("listening on {grpc}");
            info!(listen = %grpc, "gateway serving mekong.v1 IngestService, SubscribeService and AdminService, grpc.health.v1.Health and reflection");
        }
        tokio::spawn(reload_on_sighup(hangups, hub.tls_reloads()));
        hub.run_until(super::shutdown_signal())
            .await
            .map_err(Failure::hub)?;
        Ok(Failure::OK)
    })
}

#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = ();

fn hangups() -> Hangups {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        signal(SignalKind::hangup()).ok()
    }
}

/// SIGHUP: read the TLS files now (a rotation done by hand need not wait for the next check).
async fn reload_on_sighup(hangups: Hangups, reloads: Vec<mekong_gateway::tls::TlsReload>) {
    #[cfg(unix)]
    {
        let Some(mut hangups) = hangups else {
            return;
        };
        while hangups.recv().await.is_some() {
            if reloads.is_empty() {
                info!("SIGHUP: no TLS files to read again; ignored");
            } else {
                info!("SIGHUP: reading the TLS files again");
                reloads.iter().for_each(mekong_gateway::tls::TlsReload::now);
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (hangups, reloads);
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn args(flags: &[&str]) -> ServeArgs {
        Cli::parse_from(std::iter::once("serve").chain(flags.iter().copied())).serve
    }

    #[test]
    fn without_flags_a_development_hub_with_the_examples() {
        let a = args(&[]);
        assert_eq!(a.seed_from(), Some(SeedFrom::Examples));
        let config = a.hub_config(Some(vec![]));
        assert!(matches!(config.backbone, BackboneConfig::Embedded));
        assert_eq!(config.lineage, LineageConfig::Temporary);
        assert!(config.adapters.is_some());
        let gateway = config.gateway.unwrap();
        assert_eq!(gateway.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.metrics.unwrap().to_string(), DEFAULT_METRICS_LISTEN);
        assert_eq!(
            config.producer.delivery_timeout,
            ProducerSettings::default().delivery_timeout
        );
        assert_eq!(config.store.topic, mekong_kafka::RESOURCES_TOPIC);
        assert_eq!(config.seed.unwrap().actor, SEED_ACTOR);
    }

    #[test]
    fn on_a_real_cluster_the_store_holds_the_resources() {
        let a = args(&[
            "--kafka",
            "b1:9092,b2:9092",
            "--kafka-option",
            "security.protocol=SSL",
        ]);
        assert_eq!(a.seed_from(), None);
        let config = a.hub_config(None);
        match &config.backbone {
            BackboneConfig::External { bootstrap, options } => {
                assert_eq!(bootstrap, "b1:9092,b2:9092");
                assert_eq!(options, &[("security.protocol".into(), "SSL".into())]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(config.lineage, LineageConfig::None);
        assert!(config.seed.is_none());
    }

    #[test]
    fn flags_reach_the_hub() {
        let a = args(&[
            "--kafka",
            "k:9092",
            "--resources",
            "/etc/mekong/resources",
            "--resources-topic",
            "_mekong.resources.q1",
            "--topic-partitions",
            "6",
            "--topic-replication",
            "3",
            "--publish-timeout",
            "3s",
            "--no-adapters",
            "--listen",
            "0.0.0.0:50051",
            "--metrics-listen",
            "0.0.0.0:9464",
            "--lineage-dir",
            "/var/lib/mekong",
            "--max-admin-bytes",
            "1000",
        ]);
        assert_eq!(
            a.seed_from(),
            Some(SeedFrom::Dir("/etc/mekong/resources".into()))
        );
        let config = a.hub_config(Some(vec![]));
        assert_eq!(config.store.topic, "_mekong.resources.q1");
        assert_eq!(config.store.replication, 3);
        assert_eq!(
            config.topics,
            TopicDefaults {
                partitions: 6,
                replication: 3
            }
        );
        assert_eq!(
            config.producer.delivery_timeout,
            std::time::Duration::from_secs(3)
        );
        assert!(config.adapters.is_none());
        assert_eq!(
            config.gateway.as_ref().unwrap().config.max_admin_bytes,
            1000
        );
        assert_eq!(config.gateway.unwrap().listen.to_string(), "0.0.0.0:50051");
        assert_eq!(config.lineage, LineageConfig::Dir("/var/lib/mekong".into()));
    }
}
