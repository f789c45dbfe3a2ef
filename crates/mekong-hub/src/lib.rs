//! The assembly of a hub. One [`HubConfig`] says what runs: the backbone (a real Kafka cluster or
//! the embedded development one), the resource store and what to seed it with, the gateway and its
//! listener, the delivery adapters, the lineage index, the metrics and health listener.
//! [`HubConfig::start`] starts it as a [`RunningHub`], which stops it again in dependency order.
//! `mekong serve`, `mekong adapters run`, the end-to-end tests and the benchmarks all start the hub
//! here, so what is tested is what ships.
//!
//! This room wires; it holds no rule and speaks no protocol of its own.

mod observe;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use mekong_adapters::{AdapterMetrics, AdapterPolicy, EngineSettings};
use mekong_control::{Changes, SeedError, Seeded};
use mekong_core::evidence::{AuditKey, SigningKey};
use mekong_core::{AUDIT_TOPIC, Catalog};
use mekong_gateway::tls::{TlsConfig, TlsError, TlsReload, TlsSettings};
use mekong_gateway::{Gateway, GatewayConfig, GatewayMetrics};
use mekong_kafka::{
    Backbone, KafkaError, KafkaOptions, Lineage, LineageError, Notary, NotaryError, NotarySettings,
    Producer, ProducerSettings, Stamper, Store, StoreError, StoreSettings, TopicSettings,
    ensure_topics, message_bytes_for,
};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// Where Kafka is.
#[derive(Debug, Clone)]
pub enum BackboneConfig {
    /// librdkafka's mock cluster, in-process: for development, not durable.
    Embedded,
    /// A real cluster.
    External {
        bootstrap: String,
        options: KafkaOptions,
    },
}

/// Resource texts applied to the store at start, as an ordinary change.
#[derive(Debug, Clone)]
pub struct Seed {
    /// (file name, text) pairs.
    pub sources: Vec<(String, String)>,
    /// Who the audit trail names for the change.
    pub actor: String,
}

/// Where the lineage index (what `mekong trace` answers from) is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineageConfig {
    None,
    Dir(PathBuf),
    /// A directory of its own in the system's temporary directory, removed at shutdown.
    Temporary,
}

/// How destination topics the hub creates are made (-1: the cluster's default). Internal topics
/// take the replication too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicDefaults {
    pub partitions: i32,
    pub replication: i32,
}

impl Default for TopicDefaults {
    fn default() -> Self {
        TopicDefaults {
            partitions: -1,
            replication: -1,
        }
    }
}

/// The gateway's listener and config.
#[derive(Debug, Clone)]
pub struct GatewayListener {
    pub listen: SocketAddr,
    pub config: GatewayConfig,
    /// TLS on the listener; `None` serves plaintext (and says so at start).
    pub tls: Option<TlsSettings>,
}

/// Everything a hub runs with. Each part is optional where a process may go without it: a gateway
/// without adapters (`--no-adapters`), adapters without a gateway (`mekong adapters run`).
#[derive(Debug, Clone)]
pub struct HubConfig {
    pub backbone: BackboneConfig,
    pub store: StoreSettings,
    pub seed: Option<Seed>,
    pub topics: TopicDefaults,
    pub producer: ProducerSettings,
    pub gateway: Option<GatewayListener>,
    /// The adapters run here, held to this policy.
    pub adapters: Option<AdapterPolicy>,
    /// The deadline trackers run here (docs/deadlines.md). Their topics take `topics`' replication
    /// and partitions, and their metrics go to this hub's registry, whatever these settings say.
    pub deadlines: Option<mekong_deadlines::TrackerSettings>,
    /// The `/metrics`, `/healthz`, `/readyz` listener.
    pub metrics: Option<SocketAddr>,
    /// TLS on that listener (no client certificates: it serves probes and scrapers).
    pub metrics_tls: Option<TlsSettings>,
    pub lineage: LineageConfig,
    /// Sealed audit events and, with a signing key, the notary.
    pub evidence: EvidenceConfig,
    /// The administrators' console at `/console` on the metrics listener (cookies `Secure` when
    /// that listener serves TLS).
    pub console: Option<mekong_console::ConsoleConfig>,
}

/// The evidence of the audit trail (docs/evidence.md).
#[derive(Debug, Clone, Default)]
pub struct EvidenceConfig {
    /// Every audit event this instance writes is sealed with it; the notary and the lineage index
    /// take the events it seals as the trail's leaves.
    pub audit_key: Option<AuditKey>,
    /// Runs a notary here.
    pub notary: Option<NotaryConfig>,
}

#[derive(Debug, Clone)]
pub struct NotaryConfig {
    pub key: Arc<SigningKey>,
    pub settings: NotarySettings,
    /// `/readyz` fails when events have waited longer than this for a checkpoint.
    pub max_age: Duration,
    /// An RFC 3161 time-stamping authority each checkpoint is sent to (its token is stored with it).
    pub tsa_url: Option<String>,
}

/// Asks the time-stamping authority at `url` (RFC 3161 over HTTP) to stamp a note, from the
/// notary's thread, on this runtime.
fn stamper(url: String) -> Result<Stamper, HubError> {
    let runtime = tokio::runtime::Handle::current();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| HubError::Tsa(e.to_string()))?;
    Ok(Stamper(Arc::new(move |note: &str| {
        let request = mekong_core::evidence::timestamp_request(note.as_bytes());
        let response = runtime
            .block_on(async {
                client
                    .post(&url)
                    .header("content-type", "application/timestamp-query")
                    .body(request)
                    .send()
                    .await?
                    .error_for_status()?
                    .bytes()
                    .await
            })
            .map_err(|e| format!("{url}: {e}"))?;
        mekong_core::evidence::token_from_response(&response).map_err(|e| format!("{url}: {e}"))
    })))
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            backbone: BackboneConfig::Embedded,
            store: StoreSettings::default(),
            seed: None,
            topics: TopicDefaults::default(),
            producer: ProducerSettings::default(),
            gateway: None,
            adapters: None,
            deadlines: None,
            metrics: None,
            metrics_tls: None,
            lineage: LineageConfig::None,
            evidence: EvidenceConfig::default(),
            console: None,
        }
    }
}

/// Why a hub did not start (or stop cleanly); each says what could not be done, with its cause.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("cannot start the embedded development backbone")]
    Embedded(#[source] KafkaError),
    #[error("cannot read the resource store `{topic}` on Kafka at {bootstrap}")]
    Store {
        topic: String,
        bootstrap: String,
        #[source]
        source: StoreError,
    },
    #[error("cannot apply the seed resources to the resource store")]
    Seed(#[source] SeedError),
    #[error("cannot create destination topics on Kafka at {bootstrap}")]
    Topics {
        bootstrap: String,
        #[source]
        source: KafkaError,
    },
    #[error("cannot create the Kafka producer")]
    Producer(#[source] KafkaError),
    #[error("cannot listen on {addr} ({what})")]
    Listen {
        addr: SocketAddr,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the lineage index in {}", dir.display())]
    Lineage {
        dir: PathBuf,
        #[source]
        source: LineageError,
    },
    #[error("the gateway stopped")]
    Serve(#[source] tonic::transport::Error),
    #[error("cannot serve TLS")]
    Tls(#[source] TlsError),
    #[error("cannot start the notary")]
    Notary(#[source] NotaryError),
    #[error("cannot reach a time-stamping authority: {0}")]
    Tsa(String),
}

impl HubError {
    /// Whether the hub could not start because Kafka could not be reached or did not answer (as
    /// opposed to a refused seed, a busy address, a bad directory).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            HubError::Store { .. } | HubError::Topics { .. } | HubError::Seed(SeedError::Store(_))
        )
    }
}

/// The gateway's task: it ends when the gateway has drained.
type ServeTask = JoinHandle<Result<(), tonic::transport::Error>>;

/// A started hub. Dropping it without [`RunningHub::shutdown`] aborts its tasks.
pub struct RunningHub {
    grpc: Option<SocketAddr>,
    metrics: Option<SocketAddr>,
    catalog: Arc<ArcSwap<Catalog>>,
    store: Arc<Store>,
    lineage: Option<Arc<Lineage>>,
    temporary_lineage: Option<PathBuf>,
    notary: Option<Arc<Notary>>,
    producer: Producer,
    gateway: Option<(oneshot::Sender<()>, ServeTask)>,
    adapters: Option<JoinHandle<()>>,
    deadlines: Option<JoinHandle<()>>,
    observe: Option<JoinHandle<std::io::Result<()>>>,
    /// Turns true when the adapters and the metrics endpoint should stop.
    stopping: watch::Sender<bool>,
    /// The listeners' TLS, for [`RunningHub::tls_reloads`].
    tls: Vec<TlsReload>,
    /// Last: fields drop in order, and no Kafka client may outlive the (embedded) backbone.
    backbone: Arc<Backbone>,
}

/// How long the producer may take at shutdown to hand Kafka what is still queued.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long each step of reaching Kafka at start may take.
const KAFKA_TIMEOUT: Duration = Duration::from_secs(30);

impl HubConfig {
    /// Starts the hub: the backbone, the resource store (read to its end, seeded), destination
    /// topics, the producer, then the listeners and the tasks. Returns once the gateway listens.
    pub async fn start(self) -> Result<RunningHub, HubError> {
        // The certificate and keys first: a bad file fails the start before anything else.
        let tls = match self.gateway.as_ref().map(|g| g.tls.clone()) {
            Some(Some(settings)) => Some(TlsConfig::load(settings).map_err(HubError::Tls)?),
            Some(None) => {
                warn!(
                    "the gateway serves plaintext (no --tls-cert): API keys and every record cross the network unencrypted; serve TLS anywhere beyond a trusted host"
                );
                None
            }
            None => None,
        };
        let metrics_tls = match self.metrics_tls.clone() {
            Some(settings) => Some(TlsConfig::load(settings).map_err(HubError::Tls)?),
            None => None,
        };
        let backbone = Arc::new(
            match &self.backbone {
                BackboneConfig::Embedded => Backbone::embedded().map_err(HubError::Embedded)?,
                BackboneConfig::External { bootstrap, options } => {
                    Backbone::external(bootstrap.clone(), options.clone())
                }
            }
            .with_audit_key(self.evidence.audit_key.clone()),
        );
        let catalog = Arc::new(ArcSwap::from_pointee(Catalog::default()));
        let store_topic = self.store.topic.clone();
        let store = Store::open(Arc::clone(&backbone), Arc::clone(&catalog), self.store)
            .await
            .map_err(|source| HubError::Store {
                topic: store_topic,
                bootstrap: backbone.bootstrap_servers().to_owned(),
                source,
            })?;
        let store = Arc::new(store);
        let max_record_bytes = self
            .gateway
            .as_ref()
            .map_or(mekong_core::Limits::DEFAULT_MAX_RECORD_BYTES, |g| {
                g.config.limits.max_record_bytes
            });
        let max_message_bytes = message_bytes_for(max_record_bytes);
        let topics = TopicSettings {
            partitions: self.topics.partitions,
            replication: self.topics.replication,
            max_message_bytes,
            configs: &[],
        };
        let changes = Changes {
            store: Arc::clone(&store),
            backbone: Arc::clone(&backbone),
            topics,
        };
        if let Some(seed) = &self.seed {
            let Seeded {
                created,
                updated,
                unchanged,
            } = changes
                .seed(&seed.sources, &seed.actor)
                .await
                .map_err(HubError::Seed)?;
            info!(
                created,
                updated, unchanged, "seed resources applied to the store"
            );
        }
        let current = catalog.load_full();
        let (types, routes, clients) = current.counts();
        info!(types, routes, clients, "serving the stored resources");
        if types + routes + clients == 0 {
            warn!(
                "the resource store is empty: apply resources with `mekong apply` (see docs/operator-guide.md)"
            );
        }
        let destinations: Vec<&str> = current.destination_topics().into_iter().collect();
        let created = ensure_topics(&backbone, &destinations, topics, KAFKA_TIMEOUT)
            .await
            .map_err(|source| HubError::Topics {
                bootstrap: backbone.bootstrap_servers().to_owned(),
                source,
            })?;
        if !created.is_empty() {
            info!(?created, "destination topics created");
        }
        let producer = Producer::new(
            &backbone,
            ProducerSettings {
                max_message_bytes,
                ..self.producer
            },
        )
        .map_err(HubError::Producer)?;

        let metrics_listener = match self.metrics {
            Some(addr) => Some(bind(addr, "metrics and health, --metrics-listen").await?),
            None => None,
        };
        let temporary_lineage = (self.lineage == LineageConfig::Temporary).then(|| {
            std::env::temp_dir().join(format!(
                "mekong-lineage-{}-{}",
                std::process::id(),
                uuid::Uuid::now_v7().simple()
            ))
        });
        let lineage_dir = match &self.lineage {
            LineageConfig::Dir(dir) => Some(dir.clone()),
            LineageConfig::Temporary => temporary_lineage.clone(),
            LineageConfig::None => None,
        };
        let lineage = match &lineage_dir {
            Some(dir) => Some(Arc::new(
                Lineage::open(&backbone, dir, AUDIT_TOPIC).map_err(|source| HubError::Lineage {
                    dir: dir.clone(),
                    source,
                })?,
            )),
            None => None,
        };

        let notary = match self.evidence.notary {
            Some(NotaryConfig {
                key,
                mut settings,
                max_age,
                tsa_url,
            }) => {
                if let Some(url) = tsa_url {
                    settings.stamper = Some(stamper(url)?);
                }
                Some((
                    Arc::new(
                        Notary::start(Arc::clone(&backbone), key, settings)
                            .map_err(HubError::Notary)?,
                    ),
                    max_age,
                ))
            }
            None => None,
        };

        let (stopping, stopped) = watch::channel(false);
        let gateway_metrics = GatewayMetrics::default();
        let tls_failures = gateway_metrics.tls_reload_failures.clone();
        let adapter_metrics = AdapterMetrics::default();
        let mut registry = Registry::with_prefix("mekong");
        if self.gateway.is_some() {
            gateway_metrics.register(&mut registry);
        }
        if self.adapters.is_some() {
            adapter_metrics.register(&mut registry);
        }
        let adapters = self.adapters.map(|policy| {
            tokio::spawn(mekong_adapters::supervise(
                Arc::clone(&catalog),
                Arc::clone(&backbone),
                producer.clone(),
                EngineSettings {
                    replication: self.topics.replication,
                    metrics: adapter_metrics,
                    policy: Arc::new(policy),
                },
                stopped.clone(),
            ))
        });
        let deadlines = self.deadlines.map(|settings| {
            let metrics = mekong_deadlines::DeadlineMetrics::default();
            metrics.register(&mut registry);
            tokio::spawn(mekong_deadlines::supervise(
                Arc::clone(&catalog),
                Arc::clone(&backbone),
                mekong_deadlines::TrackerSettings {
                    replication: self.topics.replication,
                    event_partitions: self.topics.partitions,
                    metrics,
                    ..settings
                },
                stopped.clone(),
            ))
        });
        let (metrics, observe) = match metrics_listener {
            Some(listener) => {
                let addr = listener.local_addr().ok();
                let signer = notary.as_ref().map(|(n, _)| Arc::clone(n));
                let notary = notary
                    .clone()
                    .map(|(n, max_age)| observe::Notarised::new(n, max_age));
                if let Some(notary) = &notary {
                    notary.register(&mut registry);
                }
                let console = self.console.map(|config| {
                    let gateway = self.gateway.as_ref().map(|_| {
                        Arc::new(ConsoleGateway(gateway_metrics.clone()))
                            as Arc<dyn mekong_console::GatewayView>
                    });
                    mekong_console::router(mekong_console::ConsoleParts {
                        catalog: Arc::clone(&catalog),
                        changes: mekong_control::Changes {
                            store: Arc::clone(&store),
                            backbone: Arc::clone(&backbone),
                            topics,
                        },
                        producer: producer.clone(),
                        lineage: lineage.clone(),
                        notary: signer,
                        limits: self
                            .gateway
                            .as_ref()
                            .map_or_else(mekong_core::Limits::default, |g| g.config.limits),
                        gateway,
                        config: mekong_console::ConsoleConfig {
                            secure_cookies: metrics_tls.is_some(),
                            ..config
                        },
                    })
                });
                let observed = observe::Observed {
                    registry,
                    gateway: self.gateway.as_ref().map(|_| gateway_metrics.clone()),
                    producer: producer.clone(),
                    store: Arc::clone(&store),
                    notary,
                };
                let mut stop = stopped.clone();
                if let Some(tls) = &metrics_tls {
                    let mut stop = stopped.clone();
                    tokio::spawn(Arc::clone(tls).watch(tls_failures.clone(), async move {
                        let _ = stop.wait_for(|s| *s).await;
                    }));
                }
                let task = tokio::spawn(observe::serve(
                    listener,
                    metrics_tls.clone(),
                    observed,
                    console,
                    async move {
                        let _ = stop.wait_for(|s| *s).await;
                    },
                ));
                (addr, Some(task))
            }
            None => (None, None),
        };
        let (grpc, gateway) = match self.gateway {
            Some(GatewayListener { listen, config, .. }) => {
                let listener = bind(listen, "the gateway, --listen").await?;
                let addr = listener.local_addr().ok();
                let (stop, stopped) = oneshot::channel::<()>();
                let gateway = Gateway {
                    catalog: Arc::clone(&catalog),
                    producer: producer.clone(),
                    backbone: Arc::clone(&backbone),
                    store: Arc::clone(&store),
                    topics,
                    config,
                    metrics: gateway_metrics,
                    lineage: lineage.clone(),
                    tls: tls.clone(),
                };
                let task = tokio::spawn(mekong_gateway::serve(listener, gateway, async move {
                    let _ = stopped.await;
                }));
                (addr, Some((stop, task)))
            }
            None => (None, None),
        };
        Ok(RunningHub {
            grpc,
            tls: tls
                .into_iter()
                .chain(metrics_tls)
                .map(|config| TlsReload {
                    config,
                    failures: tls_failures.clone(),
                })
                .collect(),
            metrics,
            catalog,
            store,
            lineage,
            temporary_lineage,
            notary: notary.map(|(n, _)| n),
            producer,
            gateway,
            adapters,
            deadlines,
            observe,
            stopping,
            backbone,
        })
    }
}

/// The gateway's counters, as the console's overview reads them.
struct ConsoleGateway(GatewayMetrics);

impl mekong_console::GatewayView for ConsoleGateway {
    fn counts(&self) -> mekong_console::Counts {
        let (accepted, rejected) = self.0.totals();
        mekong_console::Counts { accepted, rejected }
    }

    fn top_refusals(&self, n: usize) -> Vec<(String, String, String, u64)> {
        self.0.top_refusals(n)
    }
}

/// Binds a listener, naming what it is for when the address cannot be had.
async fn bind(addr: SocketAddr, what: &'static str) -> Result<TcpListener, HubError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| HubError::Listen { addr, what, source })
}

impl RunningHub {
    /// Where the gateway listens, if this hub has one.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc
    }

    /// Where `/metrics`, `/healthz` and `/readyz` are served, if they are.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics
    }

    /// The bootstrap servers of the backbone (the embedded one's, for any Kafka client).
    pub fn bootstrap_servers(&self) -> &str {
        self.backbone.bootstrap_servers()
    }

    pub fn is_embedded(&self) -> bool {
        self.backbone.is_embedded()
    }

    /// What reads the listeners' TLS files again on demand (SIGHUP); they are also checked every
    /// few seconds. A failure keeps the current certificate and is logged and counted.
    pub fn tls_reloads(&self) -> Vec<TlsReload> {
        self.tls.clone()
    }

    /// The catalog the hub serves, as the resource store keeps it up to date.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.load_full()
    }

    /// Runs until `signal` completes (or the gateway stops on its own), then shuts down.
    pub async fn run_until(mut self, signal: impl Future<Output = ()>) -> Result<(), HubError> {
        let served = match self.gateway.as_mut() {
            Some((_, task)) => {
                tokio::select! {
                    () = signal => None,
                    ended = task => Some(ended),
                }
            }
            None => {
                signal.await;
                None
            }
        };
        if let Some(ended) = served {
            // The gateway ended by itself: an error to report after the rest is stopped.
            self.gateway = None;
            self.shutdown().await?;
            return match ended {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(HubError::Serve(e)),
                Err(_) => Ok(()),
            };
        }
        self.shutdown().await
    }

    /// Stops in dependency order: the gateway (it drains within its shutdown grace), the adapters,
    /// the metrics endpoint, the producer (flushed), the consumers of the store and the lineage
    /// index, and the backbone last, so no Kafka client outlives it.
    pub async fn shutdown(mut self) -> Result<(), HubError> {
        let mut result = Ok(());
        if let Some((stop, task)) = self.gateway.take() {
            let _ = stop.send(());
            if let Ok(Err(e)) = task.await {
                result = Err(HubError::Serve(e));
            }
        }
        let _ = self.stopping.send(true);
        if let Some(adapters) = self.adapters.take() {
            info!("shutting down: stopping the adapters");
            let _ = adapters.await;
        }
        if let Some(deadlines) = self.deadlines.take() {
            info!("shutting down: stopping the deadline trackers");
            let _ = deadlines.await;
        }
        if let Some(observe) = self.observe.take() {
            let _ = observe.await;
        }
        info!("shutting down: flushing the producer");
        if let Err(e) = self.producer.flush(FLUSH_TIMEOUT) {
            warn!(error = %e, "records still queued for Kafka at exit (lineage events; every record was answered)");
        }
        if let Some(lineage) = &self.lineage {
            lineage.close();
        }
        if let Some(notary) = &self.notary {
            notary.close();
        }
        self.store.close();
        if let Some(dir) = self.temporary_lineage.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
        result
    }
}

impl Drop for RunningHub {
    fn drop(&mut self) {
        if let Some((_, task)) = self.gateway.take() {
            task.abort();
        }
        if let Some(task) = self.adapters.take() {
            task.abort();
        }
        if let Some(task) = self.deadlines.take() {
            task.abort();
        }
        if let Some(task) = self.observe.take() {
            task.abort();
        }
    }
}
