//! Where Kafka is: a real cluster named by its bootstrap servers, or an embedded in-process mock
//! cluster for development.

use std::sync::mpsc;
use std::thread;

use mekong_core::evidence::AuditKey;
use mekong_core::{AuditEvent, KafkaRecord};
use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;

/// Extra librdkafka properties (`security.protocol`, `sasl.*`, `ssl.*` ...) applied to every client.
pub type KafkaOptions = Vec<(String, String)>;

/// A running backbone.
pub struct Backbone {
    bootstrap_servers: String,
    options: KafkaOptions,
    /// For the embedded backbone: the mock cluster's thread, and how to ask it for topics.
    /// Dropping the sender stops the thread.
    embedded: Option<(mpsc::Sender<CreateTopic>, thread::JoinHandle<()>)>,
    /// What this instance seals its audit events with (see `mekong_core::evidence`).
    audit_key: Option<AuditKey>,
}

/// A request to the mock cluster's thread: create a topic, answer on the channel.
pub(crate) struct CreateTopic {
    pub(crate) name: String,
    pub(crate) partitions: i32,
    pub(crate) done: mpsc::Sender<Result<(), rdkafka::error::KafkaError>>,
}

/// Brokers in the embedded cluster: three, so topics behave like on a small real cluster.
const EMBEDDED_BROKERS: i32 = 3;

impl Backbone {
    /// A real Kafka cluster.
    pub fn external(bootstrap_servers: impl Into<String>, options: KafkaOptions) -> Backbone {
        Backbone {
            bootstrap_servers: bootstrap_servers.into(),
            options,
            embedded: None,
            audit_key: None,
        }
    }

    /// Starts librdkafka's mock cluster in-process. It is not durable and keeps only the most recent
    /// few MiB per partition. The cluster is not `Send`, so it lives on a thread of its own.
    pub fn embedded() -> Result<Backbone, rdkafka::error::KafkaError> {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (requests_tx, requests_rx) = mpsc::channel::<CreateTopic>();
        let thread = thread::Builder::new()
            .name("mekong-embedded-kafka".into())
            .spawn(move || match MockCluster::new(EMBEDDED_BROKERS) {
                Ok(cluster) => {
                    let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
                    // Serves topic requests until the backbone is dropped (the sender goes away).
                    // The mock cluster does not implement the CreateTopics API, so admin clients
                    // cannot do this over the wire.
                    for request in requests_rx {
                        let _ = request.done.send(cluster.create_topic(
                            &request.name,
                            request.partitions,
                            1,
                        ));
                    }
                    drop(cluster);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            })
            .expect("spawning a thread");
        let bootstrap_servers = ready_rx.recv().expect("the mock cluster thread answers")?;
        Ok(Backbone {
            bootstrap_servers,
            options: Vec::new(),
            embedded: Some((requests_tx, thread)),
            audit_key: None,
        })
    }

    /// Seals every audit event this instance writes with `key`.
    pub fn with_audit_key(mut self, key: Option<AuditKey>) -> Backbone {
        self.audit_key = key;
        self
    }

    pub fn audit_key(&self) -> Option<&AuditKey> {
        self.audit_key.as_ref()
    }

    /// An audit event as the record to write to the audit topic, sealed with this instance's key.
    pub fn audit_record(&self, event: &AuditEvent) -> KafkaRecord {
        event.to_record(uuid::Uuid::now_v7(), self.audit_key())
    }

    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap_servers
    }

    pub fn is_embedded(&self) -> bool {
        self.embedded.is_some()
    }

    /// For the embedded backbone: creates a topic on the mock cluster (an existing one is kept).
    pub(crate) fn create_embedded_topic(
        &self,
        name: &str,
        partitions: i32,
    ) -> Option<Result<(), rdkafka::error::KafkaError>> {
        let (requests, _) = self.embedded.as_ref()?;
        let (done, answer) = mpsc::channel();
        requests
            .send(CreateTopic {
                name: name.to_owned(),
                partitions,
                done,
            })
            .ok()?;
        answer.recv().ok()
    }

    /// A client configuration pointing at this backbone, with the extra options applied.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap_servers);
        for (k, v) in &self.options {
            config.set(k, v);
        }
        config
    }
}

impl Drop for Backbone {
    fn drop(&mut self) {
        if let Some((stop, thread)) = self.embedded.take() {
            drop(stop);
            let _ = thread.join();
        }
    }
}
