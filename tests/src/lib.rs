//! The harness for Mekong's end-to-end tests: the hub served in-process on a loopback port (the
//! real assembly, `mekong_hub`), wired to the real Kafka broker the test command started
//! (`MEKONG_TEST_KAFKA`), gRPC clients for it, `mekong` processes (`process`), and an independent
//! Kafka consumer to look at what really landed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub mod pki;
pub mod process;
pub mod subscriber;
pub mod targets;
pub mod tsa;

use mekong_core::{Catalog, parse_documents};
use mekong_gateway::GatewayConfig;
use mekong_gateway::tls::TlsSettings;
use mekong_hub::{
    BackboneConfig, GatewayListener, HubConfig, LineageConfig, RunningHub, Seed, TopicDefaults,
};
use mekong_kafka::{ProducerSettings, StoreSettings};
use mekong_proto::v1::PublishRequest;
use mekong_proto::v1::admin_service_client::AdminServiceClient;
use mekong_proto::v1::ingest_service_client::IngestServiceClient;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message, OwnedMessage};
use tonic::transport::Channel;

/// The bootstrap address of the real broker the test command started.
pub fn kafka_bootstrap() -> String {
    std::env::var("MEKONG_TEST_KAFKA").unwrap_or_else(|_| {
        refuse(
            "MEKONG_TEST_KAFKA is not set; the end-to-end tests need a real Kafka broker: run ./deploy/test.sh (it starts one and runs the whole workspace)",
        )
    })
}

/// Records that a check could not run here (a tool missing), so the run's summary counts it as
/// skipped instead of passing in silence: `./deploy/test.sh` collects these lines from the file in
/// `MEKONG_TEST_SKIPS`.
pub fn skip(test: &str, reason: &str) {
    eprintln!("skipped: {test}: {reason}");
    if let Ok(path) = std::env::var("MEKONG_TEST_SKIPS") {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("the skips file");
        writeln!(file, "{test}: {reason}").expect("a skip recorded");
    }
}

/// Stops the whole test binary with one line on stderr, rather than a panic in every test. The
/// line is written past the harness' output capture, which would lose it at exit.
pub fn refuse(why: &str) -> ! {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "error: {why}");
    std::process::exit(2)
}

/// A short random suffix so each test has topics of its own.
pub fn unique() -> String {
    uuid::Uuid::now_v7().simple().to_string()[20..].to_string()
}

/// The Python of the environment ./deploy/test.sh makes (tests/python/requirements.txt:
/// confluent-kafka, the CloudEvents SDK, schemathesis).
pub fn test_python() -> String {
    std::env::var("MEKONG_TEST_PYTHON").unwrap_or_else(|_| {
        refuse(
            "MEKONG_TEST_PYTHON is not set: run ./deploy/test.sh, which makes the Python \
             environment of tests/python/requirements.txt and sets it",
        )
    })
}

/// The resources most tests use; `{s}` is replaced by a suffix unique to the test.
/// Clients: `q1` (key `q1-key`, may publish dossier.* and tax.*), `reader` (key `reader-key`,
/// subscriber only), `ops` (key `admin-key`, admin only). `tax.filed` has no route.
pub const RESOURCES: &str = r#"
kind: RecordType
name: dossier.sync
key: /MaHoSo
schema:
  type: object
  required: [MaHoSo, LoaiDoiTuong, NgayTiepNhan]
  properties:
    MaHoSo: {type: string, minLength: 1}
    LoaiDoiTuong: {type: integer, enum: [1, 2]}
    NgayTiepNhan: {type: string, pattern: "^[0-9]{14}$"}
    Email: {type: string, format: email}
    SoDienThoai: {type: string}
    NguoiNop:
      type: object
      properties:
        SoDienThoai: {type: string}
---
kind: RecordType
name: payment.completed
schema: {type: object}
---
kind: RecordType
name: tax.filed
schema: {type: object}
---
kind: Route
name: city
match: {types: [dossier.sync]}
to: [{topic: "t-city-{s}"}]
---
kind: Route
name: national
match: {types: [dossier.sync], when: "data.LoaiDoiTuong == 1"}
to: [{topic: "t-national-{s}", redact: [/SoDienThoai, /Email, /NguoiNop/SoDienThoai]}]
---
kind: Route
name: payments
match: {types: ["payment.*"]}
to: [{topic: "t-pay-{s}"}]
---
kind: Client
name: q1
roles: [publisher]
apiKeys: [{sha256: "SHA_Q1"}]
publish: ["dossier.*", "tax.*"]
---
kind: Client
name: reader
roles: [subscriber]
apiKeys: [{sha256: "SHA_READER"}]
subscribe: ["t-city-{s}"]
---
kind: Client
name: ops
roles: [admin]
apiKeys: [{sha256: "SHA_ADMIN"}]
"#;

/// Builds a catalog from YAML text (the harness's own resources must be valid).
pub fn catalog(yaml: &str) -> Catalog {
    let (docs, errors) = parse_documents("test.yaml", yaml);
    assert!(errors.is_empty(), "{errors:?}");
    Catalog::build(docs).unwrap_or_else(|e| panic!("{e}"))
}

/// The standard resources with this test's suffix and the keys filled in.
pub fn standard_resources(suffix: &str) -> String {
    RESOURCES
        .replace("{s}", suffix)
        .replace(
            "SHA_Q1",
            &hex::encode(mekong_core::hash_api_key("q1-key").0),
        )
        .replace(
            "SHA_READER",
            &hex::encode(mekong_core::hash_api_key("reader-key").0),
        )
        .replace(
            "SHA_ADMIN",
            &hex::encode(mekong_core::hash_api_key("admin-key").0),
        )
}

/// A hub serving in-process on a loopback port: the real assembly (`mekong_hub`), as `mekong serve`
/// starts it, on the test broker, with a resource store of its own.
pub struct TestHub {
    pub addr: std::net::SocketAddr,
    pub bootstrap: String,
    /// The metrics listener, where the console is, when the hub serves one.
    pub metrics: Option<std::net::SocketAddr>,
    hub: Option<RunningHub>,
}

/// What a test hub serves beside its gateway.
#[derive(Default)]
struct Extras {
    tls: Option<TlsSettings>,
    /// A metrics listener with the console at /console.
    console: Option<mekong_console::ConsoleConfig>,
    /// Deadline trackers (and a metrics listener).
    deadlines: Option<mekong_deadlines::TrackerSettings>,
}

impl TestHub {
    /// Serves `yaml` against the broker at `bootstrap`, creating destination topics (3 partitions).
    /// The hub has a resource store of its own (a topic unique to it), seeded with `yaml`.
    pub async fn start_with(
        bootstrap: &str,
        yaml: &str,
        config: GatewayConfig,
        producer: ProducerSettings,
    ) -> TestHub {
        let store_topic = format!("_mekong.resources.test-{}", unique());
        TestHub::start_on_store(bootstrap, &store_topic, Some(yaml), config, producer).await
    }

    /// Serves the resources of the store in `store_topic`, first applying `yaml` if given (as
    /// `mekong serve --resources` does). Hubs on the same store topic share their resources.
    pub async fn start_on_store(
        bootstrap: &str,
        store_topic: &str,
        yaml: Option<&str>,
        config: GatewayConfig,
        producer: ProducerSettings,
    ) -> TestHub {
        TestHub::start_with_policy(
            bootstrap,
            store_topic,
            yaml,
            config,
            producer,
            test_adapter_policy(),
        )
        .await
    }

    /// As [`TestHub::start_on_store`], with adapters held to `policy`.
    pub async fn start_with_policy(
        bootstrap: &str,
        store_topic: &str,
        yaml: Option<&str>,
        config: GatewayConfig,
        producer: ProducerSettings,
        policy: mekong_adapters::AdapterPolicy,
    ) -> TestHub {
        TestHub::launch(
            bootstrap,
            store_topic,
            yaml,
            config,
            producer,
            policy,
            Extras::default(),
        )
        .await
    }

    /// Serves `yaml` (with a store of its own) over TLS as `tls` says.
    pub async fn start_tls(bootstrap: &str, yaml: &str, tls: TlsSettings) -> TestHub {
        TestHub::start_own_store(
            bootstrap,
            yaml,
            Extras {
                tls: Some(tls),
                ..Extras::default()
            },
        )
        .await
    }

    /// Serves `yaml` (with a store of its own) and the console, on a metrics listener of its own.
    pub async fn start_console(
        bootstrap: &str,
        yaml: &str,
        console: mekong_console::ConsoleConfig,
    ) -> TestHub {
        TestHub::start_own_store(
            bootstrap,
            yaml,
            Extras {
                console: Some(console),
                ..Extras::default()
            },
        )
        .await
    }

    /// As [`TestHub::start_console`], tracking deadlines too.
    pub async fn start_console_deadlines(
        bootstrap: &str,
        yaml: &str,
        console: mekong_console::ConsoleConfig,
        deadlines: mekong_deadlines::TrackerSettings,
    ) -> TestHub {
        TestHub::start_own_store(
            bootstrap,
            yaml,
            Extras {
                console: Some(console),
                deadlines: Some(deadlines),
                ..Extras::default()
            },
        )
        .await
    }

    /// Serves the store `store_topic` (first applying `yaml` if given) and tracks its deadlines as
    /// `deadlines` says, with a metrics listener of its own.
    pub async fn start_deadlines(
        bootstrap: &str,
        store_topic: &str,
        yaml: Option<&str>,
        deadlines: mekong_deadlines::TrackerSettings,
    ) -> TestHub {
        TestHub::launch(
            bootstrap,
            store_topic,
            yaml,
            GatewayConfig::default(),
            ProducerSettings::default(),
            test_adapter_policy(),
            Extras {
                deadlines: Some(deadlines),
                ..Extras::default()
            },
        )
        .await
    }

    async fn start_own_store(bootstrap: &str, yaml: &str, extras: Extras) -> TestHub {
        let store_topic = format!("_mekong.resources.test-{}", unique());
        TestHub::launch(
            bootstrap,
            &store_topic,
            Some(yaml),
            GatewayConfig::default(),
            ProducerSettings::default(),
            test_adapter_policy(),
            extras,
        )
        .await
    }

    async fn launch(
        bootstrap: &str,
        store_topic: &str,
        yaml: Option<&str>,
        config: GatewayConfig,
        producer: ProducerSettings,
        policy: mekong_adapters::AdapterPolicy,
        extras: Extras,
    ) -> TestHub {
        let hub = HubConfig {
            backbone: BackboneConfig::External {
                bootstrap: bootstrap.to_owned(),
                options: Vec::new(),
            },
            store: StoreSettings {
                topic: store_topic.to_owned(),
                replication: 1,
                ..StoreSettings::default()
            },
            seed: yaml.map(|yaml| Seed {
                sources: vec![("test.yaml".to_string(), yaml.to_string())],
                actor: "test-harness".into(),
            }),
            topics: TopicDefaults {
                partitions: 3,
                replication: 1,
            },
            producer,
            gateway: Some(GatewayListener {
                listen: "127.0.0.1:0".parse().expect("an address"),
                config,
                tls: extras.tls,
            }),
            adapters: Some(policy),
            metrics: (extras.console.is_some() || extras.deadlines.is_some())
                .then(|| "127.0.0.1:0".parse().expect("an address")),
            deadlines: extras.deadlines,
            metrics_tls: None,
            // The console's record searches answer from a lineage index.
            lineage: if extras.console.is_some() {
                LineageConfig::Temporary
            } else {
                LineageConfig::None
            },
            evidence: Default::default(),
            console: extras.console,
        }
        .start()
        .await
        .unwrap_or_else(|e| panic!("the test hub starts: {}", error_chain(&e)));
        TestHub {
            addr: hub.grpc_addr().expect("the hub serves gRPC"),
            bootstrap: bootstrap.to_owned(),
            metrics: hub.metrics_addr(),
            hub: Some(hub),
        }
    }

    /// The standard resources on the test broker, default settings. Returns the hub and the suffix.
    pub async fn start() -> (TestHub, String) {
        let suffix = unique();
        let hub = TestHub::start_with(
            &kafka_bootstrap(),
            &standard_resources(&suffix),
            GatewayConfig::default(),
            ProducerSettings::default(),
        )
        .await;
        (hub, suffix)
    }

    /// The URL of `path` on the gateway's listener, where the HTTP API is served beside gRPC.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A new connection to the gateway, for any of its services.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .expect("connect to the gateway")
    }

    /// A new TLS connection to the gateway (as `localhost`, checked against `ca`), presenting
    /// `identity` as its client certificate if given.
    pub async fn tls_channel(
        &self,
        ca: &pki::Pki,
        identity: Option<&pki::Issued>,
    ) -> Result<Channel, tonic::transport::Error> {
        let mut tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(ca.ca_pem()))
            .domain_name("localhost");
        if let Some(identity) = identity {
            tls = tls.identity(tonic::transport::Identity::from_pem(
                identity.cert_pem(),
                identity.key_pem(),
            ));
        }
        Channel::from_shared(format!("https://{}", self.addr))
            .unwrap()
            .tls_config(tls)?
            .connect_timeout(Duration::from_secs(10))
            .connect()
            .await
    }

    pub async fn admin(&self) -> AdminServiceClient<Channel> {
        AdminServiceClient::new(self.channel().await)
    }

    pub async fn client(&self) -> IngestServiceClient<Channel> {
        IngestServiceClient::new(self.channel().await)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20)
    }

    /// Stops the hub as `mekong serve` does at SIGTERM.
    pub async fn shutdown(mut self) {
        if let Some(hub) = self.hub.take() {
            let _ = hub.shutdown().await;
        }
    }
}

/// An error and its causes, as one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A request with `authorization: Bearer <key>` metadata.
pub fn authed<T>(key: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    request
}

pub fn record(record_type: &str, payload: &[u8]) -> PublishRequest {
    PublishRequest {
        record_type: record_type.into(),
        payload: payload.to_vec().into(),
        ..Default::default()
    }
}

/// Where the tests keep adapter secrets (`file:` references), as a mounted secret would be.
pub fn test_secrets_dir() -> PathBuf {
    std::env::temp_dir().join("mekong-test-secrets")
}

/// A secret written to a file of its own below [`test_secrets_dir`], as an adapter's `file:` value
/// (a mounted secret). Each file is new: tests running at once never rewrite one another reads.
pub fn secret_file(name: &str, value: &str) -> String {
    let dir = test_secrets_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}-{}", unique()));
    std::fs::write(&path, format!("{value}\n")).unwrap();
    format!("file:{}", path.display())
}

/// What the tests' adapters may do: read secrets from [`test_secrets_dir`] and deliver to the
/// local targets on loopback.
pub fn test_adapter_policy() -> mekong_adapters::AdapterPolicy {
    mekong_adapters::AdapterPolicy {
        secrets_dirs: vec![test_secrets_dir()],
        allowed_networks: vec!["127.0.0.0/8".parse().expect("a network")],
        ..Default::default()
    }
}

/// A valid dossier.sync payload for a citizen (LoaiDoiTuong 1), with personal data to redact.
pub fn citizen_dossier(ma_ho_so: &str) -> Vec<u8> {
    format!(
        r#"{{"MaHoSo":"{ma_ho_so}","LoaiDoiTuong":1,"NgayTiepNhan":"20261128083000","ChuHoSo":"Nguyễn Văn An","SoDienThoai":"0901234567","Email":"an.nguyen@example.vn","NguoiNop":{{"HoTen":"Trần Thị Bình","SoDienThoai":"0912345678"}},"SoTien":12345678901234567890,"TyLe":1.0}}"#
    )
    .into_bytes()
}

/// How many records a topic holds (sum of high - low watermarks over its partitions). Retries
/// while a freshly created topic has no leader yet; panics when the topic does not exist.
pub fn count_records(bootstrap: &str, topic: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match try_count(&consumer, topic) {
            Ok(n) => return n,
            Err(e) if Instant::now() < deadline => {
                eprintln!("counting {topic}: {e}; retrying");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("counting records of {topic}: {e}"),
        }
    }
}

fn try_count(consumer: &BaseConsumer, topic: &str) -> Result<i64, rdkafka::error::KafkaError> {
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    // A topic that does not exist is an error, not 0 records: "nothing written" must not pass
    // because the records went somewhere else.
    let partitions = match metadata.topics().first() {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => t.partitions().len(),
        _ => {
            return Err(rdkafka::error::KafkaError::MetadataFetch(
                rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition,
            ));
        }
    };
    let mut total = 0;
    for p in 0..partitions as i32 {
        let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
        total += high - low;
    }
    Ok(total)
}

/// Reads `expected` records from a topic with an independent consumer (its own group, from the
/// beginning), failing the test if they do not arrive within `timeout`.
pub async fn read_records(
    bootstrap: &str,
    topic: &str,
    expected: usize,
    timeout: Duration,
) -> Vec<OwnedMessage> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("test-{}", unique()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let deadline = Instant::now() + timeout;
    let mut records = Vec::new();
    while records.len() < expected {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, consumer.recv()).await {
            Ok(Ok(m)) => records.push(m.detach()),
            Ok(Err(e)) => panic!("consuming {topic}: {e}"),
            Err(_) => panic!(
                "only {} of {expected} records arrived on {topic} within {timeout:?}",
                records.len()
            ),
        }
    }
    records
}

/// The record at `offset` of `topic`'s `partition` (committed records only), read with a consumer
/// of its own; fails the test if it does not arrive within 30 s.
pub async fn read_at(bootstrap: &str, topic: &str, partition: i32, offset: i64) -> OwnedMessage {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("test-{}", unique()))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let mut assignment = rdkafka::TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, partition, rdkafka::Offset::Offset(offset))
        .unwrap();
    consumer.assign(&assignment).unwrap();
    match tokio::time::timeout(Duration::from_secs(30), consumer.recv()).await {
        Ok(Ok(m)) => {
            assert_eq!(m.offset(), offset, "{topic}[{partition}]");
            m.detach()
        }
        Ok(Err(e)) => panic!("reading {topic}[{partition}]@{offset}: {e}"),
        Err(_) => panic!("no record at {topic}[{partition}]@{offset} within 30 s"),
    }
}

/// Audit events from `_mekong.audit` (read from the start, committed only) that `wanted` picks, in
/// order; fails the test if fewer than `expected` arrive within 30 s. Each is checked to be a
/// CloudEvent whose `ce_type` is `mekong.<event>`.
pub async fn audit_events(
    bootstrap: &str,
    expected: usize,
    wanted: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    audit_event_records(bootstrap, expected, wanted)
        .await
        .iter()
        .map(|m| serde_json::from_slice(m.payload().unwrap_or_default()).unwrap())
        .collect()
}

/// [`audit_events`], as the Kafka records they were read from (headers and offsets too).
pub async fn audit_event_records(
    bootstrap: &str,
    expected: usize,
    wanted: impl Fn(&serde_json::Value) -> bool,
) -> Vec<OwnedMessage> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("test-{}", unique()))
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    consumer.subscribe(&["_mekong.audit"]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut events = Vec::new();
    while events.len() < expected {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = match tokio::time::timeout(left, consumer.recv()).await {
            Ok(m) => m.expect("reading the audit topic").detach(),
            Err(_) => panic!("only {} of {expected} audit events arrived", events.len()),
        };
        let event: serde_json::Value =
            serde_json::from_slice(message.payload().unwrap_or_default()).unwrap();
        if wanted(&event) {
            assert_eq!(
                header(&message, "ce_type"),
                Some(format!(
                    "mekong.{}",
                    event["event"].as_str().unwrap_or_default()
                ))
            );
            assert_eq!(header(&message, "ce_source").as_deref(), Some("mekong"));
            events.push(message);
        }
    }
    events
}

/// A header of a Kafka record, as UTF-8.
pub fn header(message: &OwnedMessage, name: &str) -> Option<String> {
    let headers = message.headers()?;
    headers
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A private broker of a test's own (for tests that stop it), through deploy/kafka/kafka.sh.
pub struct PrivateBroker {
    pub dir: tempdir::Dir,
    pub bootstrap: String,
}

pub mod tempdir {
    /// A directory removed when dropped.
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl PrivateBroker {
    pub fn start() -> PrivateBroker {
        PrivateBroker::start_with(&[])
    }

    /// A broker started with these `deploy/kafka/kafka.sh` settings in its environment, e.g.
    /// `MEKONG_KAFKA_SASL_SSL` for a SASL_SSL listener.
    pub fn start_with(env: &[(&str, &str)]) -> PrivateBroker {
        let dir = std::env::temp_dir().join(format!("mekong-broker-{}", unique()));
        let out = Command::new("bash")
            .arg(repo_root().join("deploy/kafka/kafka.sh"))
            .args(["start", dir.to_str().unwrap()])
            .envs(env.iter().copied())
            .output()
            .expect("running deploy/kafka/kafka.sh");
        assert!(
            out.status.success(),
            "kafka.sh start failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        PrivateBroker {
            dir: tempdir::Dir(dir),
            bootstrap: String::from_utf8(out.stdout).unwrap().trim().to_owned(),
        }
    }

    /// The address of its SASL_SSL listener, if it has one.
    pub fn sasl_ssl_bootstrap(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.0.join("bootstrap-sasl-ssl"))
            .ok()
            .map(|s| s.trim().to_owned())
    }

    /// Restarts it on the same address with the same data.
    pub fn restart(&self) {
        let again = kafka_sh(&["start", self.dir.0.to_str().unwrap()]);
        assert_eq!(
            again, self.bootstrap,
            "the broker comes back on the same address"
        );
    }

    /// SIGKILL: a crashed broker.
    pub fn kill(&self) {
        kafka_sh(&["kill", self.dir.0.to_str().unwrap()]);
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let _ = kafka_sh_status(&["stop", self.dir.0.to_str().unwrap()]);
    }
}

fn kafka_sh_status(args: &[&str]) -> std::io::Result<std::process::Output> {
    Command::new("bash")
        .arg(repo_root().join("deploy/kafka/kafka.sh"))
        .args(args)
        .output()
}

fn kafka_sh(args: &[&str]) -> String {
    let out = kafka_sh_status(args).expect("running deploy/kafka/kafka.sh");
    assert!(
        out.status.success(),
        "kafka.sh {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}
